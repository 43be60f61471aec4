//! The load target: the built-in echo server or a `ws://` URL.

use std::net::Ipv6Addr;

use serde::de::{Deserialize, Deserializer};

/// Where load is sent.
///
/// YAML: `builtin` (barrage's own in-process echo server) or
/// `ws://host[:port][/path][?query]` or `wss://...` (TLS, see `tls:`).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// barrage's built-in echo server.
    Builtin,
    /// An external WebSocket server.
    Url(WsUrl),
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WsUrl {
    /// `wss://`: the connection is wrapped in TLS.
    pub tls: bool,
    /// Host name or IP address; IPv6 literals are stored without brackets.
    pub host: String,
    /// TCP port; 80 (ws) or 443 (wss) when the URL gives none.
    pub port: u16,
    /// Request target sent in the handshake; `/` when the URL gives none.
    pub path_and_query: String,
    /// The URL as written (trimmed).
    pub original: String,
}

impl WsUrl {
    /// Parses `ws[s]://host[:port][/path][?query]`. The host may be an IPv4
    /// address, a bracketed IPv6 literal such as `[::1]`, or a name.
    pub fn parse(s: &str) -> Result<WsUrl, String> {
        let original = s.trim();
        let Some((scheme, rest)) = original.split_once("://") else {
            return Err(format!(
                "\"{original}\" is not a ws:// URL; expected ws://host[:port][/path] or builtin"
            ));
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(format!(
                    "unsupported scheme \"{other}://\"; expected ws:// or wss://host[:port][/path] or builtin"
                ));
            }
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if tail.contains('#') {
            return Err(format!(
                "\"{original}\": URL fragments (#...) are not allowed"
            ));
        }
        let path_and_query = match tail.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        // Host and path go into the request as written: a space or a line
        // break there would forge the request.
        if original.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "{original:?}: a URL must not contain spaces or control characters; percent-encode them in the path (a space is %20)"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "\"{original}\": user info (user@host) is not supported"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) =
            split_host_port(authority, default_port).map_err(|e| format!("\"{original}\": {e}"))?;
        Ok(WsUrl {
            tls,
            host,
            port,
            path_and_query,
            original: original.to_string(),
        })
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("missing \"]\" after IPv6 address".to_string());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("\"{v6}\" is not a valid IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected \"{p}\" after IPv6 address"))?,
            ),
        };
        (v6, port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("IPv6 addresses must be in brackets, e.g. ws://[::1]:8080/".to_string());
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(format!("\"{host}\" is not a valid host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port \"{p}\" must be a number from 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

impl Target {
    /// Parses `builtin` or a `ws://` URL (see [`WsUrl::parse`]).
    pub fn parse(s: &str) -> Result<Target, String> {
        if s.trim() == "builtin" {
            return Ok(Target::Builtin);
        }
        WsUrl::parse(s).map(Target::Url)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        super::units::deserialize_parsed(d, "\"builtin\" or a ws:// URL", Target::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        WsUrl::parse(s).unwrap()
    }

    #[test]
    fn refuses_what_would_forge_the_upgrade_request() {
        for bad in [
            "ws://127.0.0.1:9/a b",
            "ws://127.0.0.1:9/x\r\nX-Injected: 1",
            "ws://127.0.0.1:9/\0",
            "ws://127.0.0.1\r\nX: 1:9/",
        ] {
            let e = WsUrl::parse(bad).unwrap_err();
            assert!(e.contains("control characters"), "{bad:?}: {e}");
        }
        assert_eq!(
            WsUrl::parse("ws://h/a%20b").unwrap().path_and_query,
            "/a%20b"
        );
    }

    #[test]
    fn parses_urls() {
        let u = url("ws://127.0.0.1:9001/echo?x=1");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("127.0.0.1", 9001, "/echo?x=1")
        );
        assert_eq!(u.original, "ws://127.0.0.1:9001/echo?x=1");
        let u = url("ws://localhost");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("localhost", 80, "/")
        );
        let u = url("ws://[::1]:8080");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("::1", 8080, "/")
        );
        let u = url("ws://[::1]?q");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("::1", 80, "/?q")
        );
        let u = url("wss://example.test/x");
        assert_eq!(
            (u.tls, u.port, u.path_and_query.as_str()),
            (true, 443, "/x")
        );
        assert!(!url("ws://h/").tls);
        assert_eq!(Target::parse("builtin"), Ok(Target::Builtin));
        assert!(matches!(Target::parse("ws://h:1/"), Ok(Target::Url(_))));
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(
            WsUrl::parse("http://x/")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert!(WsUrl::parse("localhost:80").is_err());
        assert!(
            WsUrl::parse("ws://:80/")
                .unwrap_err()
                .contains("missing host")
        );
        assert!(WsUrl::parse("ws://h:0/").unwrap_err().contains("port"));
        assert!(WsUrl::parse("ws://h:70000/").is_err());
        assert!(WsUrl::parse("ws://::1/").unwrap_err().contains("brackets"));
        assert!(WsUrl::parse("ws://[::1/").is_err());
        assert!(WsUrl::parse("ws://[zz]/").is_err());
        assert!(WsUrl::parse("ws://a b/").is_err());
        assert!(Target::parse("built-in").is_err());
    }
}

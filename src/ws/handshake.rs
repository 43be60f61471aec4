//! The client opening handshake (RFC 6455 §4.1): one HTTP/1.1 upgrade request,
//! a 101 response with `Upgrade`, `Connection` and a verified
//! `Sec-WebSocket-Accept`, and the subprotocol and extensions the server
//! chose checked against what was offered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest response head accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why an upgrade failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// Socket error while writing the request or reading the response.
    #[error("i/o during handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a full response.
    #[error("server closed the connection during the handshake")]
    Eof,
    /// Not a parseable HTTP response, or one too large.
    #[error("malformed handshake response: {0}")]
    Malformed(String),
    /// The server answered with something other than 101.
    #[error("server refused the upgrade with HTTP {0}")]
    Status(u16),
    /// 101 without the right `Upgrade`/`Connection`/`Sec-WebSocket-Accept`.
    #[error("invalid upgrade response: {0}")]
    Invalid(&'static str),
    /// The server chose a subprotocol that was not offered.
    #[error("server chose subprotocol {0:?}, which was not offered")]
    Subprotocol(String),
    /// The server's `Sec-WebSocket-Extensions` does not fit the offer.
    #[error("server's extensions rejected: {0}")]
    Extensions(String),
}

/// The parts of the upgrade request that are the same for every
/// connection of a run, rendered once.
#[derive(Clone)]
pub struct UpgradeRequest {
    /// Everything up to (not including) the `Sec-WebSocket-Key` line.
    head: String,
    /// Subprotocols offered, in order.
    subprotocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` value offered, if any.
    extensions: Option<String>,
}

impl std::fmt::Debug for UpgradeRequest {
    /// Shows what is offered, never the headers (they may hold secrets).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("subprotocols", &self.subprotocols)
            .field("extensions", &self.extensions)
            .finish()
    }
}

impl UpgradeRequest {
    /// The request for `path` on `host` (the `Host` header value), with
    /// extra `headers`, an `Origin`, offered `subprotocols` and an
    /// extension offer.
    pub fn new(
        host: &str,
        path: &str,
        headers: &[(String, String)],
        origin: Option<&str>,
        subprotocols: &[String],
        extensions: Option<String>,
    ) -> Self {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nUser-Agent: barrage/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(origin) = origin {
            head.push_str(&format!("Origin: {origin}\r\n"));
        }
        if !subprotocols.is_empty() {
            head.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                subprotocols.join(", ")
            ));
        }
        if let Some(ext) = &extensions {
            head.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        UpgradeRequest {
            head,
            subprotocols: subprotocols.to_vec(),
            extensions,
        }
    }
}

/// What the server agreed to in its 101 response.
#[derive(Debug, Default)]
pub struct Upgraded {
    /// Bytes the server sent after the response head (the first frames).
    pub leftover: Vec<u8>,
    /// The subprotocol the server chose, if any (always one offered).
    pub subprotocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` values joined with ", "
    /// (empty when none); the caller checks them against its offer.
    pub extensions: String,
}

/// The `Sec-WebSocket-Accept` value the server must return for `key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Performs the upgrade on `stream` with `request`.
pub async fn client_handshake<S>(
    stream: &mut S,
    request: &UpgradeRequest,
    rng: &mut fastrand::Rng,
) -> Result<Upgraded, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    let key = STANDARD.encode(nonce);
    let mut bytes = Vec::with_capacity(request.head.len() + 64);
    bytes.extend_from_slice(request.head.as_bytes());
    bytes.extend_from_slice(b"Sec-WebSocket-Key: ");
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&bytes).await?;
    stream.flush().await?;

    let mut buf = Vec::with_capacity(512);
    loop {
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(HandshakeError::Malformed(
                "response head over 16 KiB".into(),
            ));
        }
        buf.reserve(512);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if status != 101 {
            return Err(HandshakeError::Status(status));
        }
        let upgraded = check_response(resp.headers, &key, request)?;
        buf.drain(..head_len);
        return Ok(Upgraded {
            leftover: buf,
            ..upgraded
        });
    }
}

/// Checks a 101 response's headers against the request.
fn check_response(
    headers: &[httparse::Header<'_>],
    key: &str,
    request: &UpgradeRequest,
) -> Result<Upgraded, HandshakeError> {
    let all = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
            .collect()
    };
    let one = |name: &str| all(name).into_iter().next();
    let upgrade = one("upgrade").unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(HandshakeError::Invalid("missing Upgrade: websocket"));
    }
    let connection = one("connection").unwrap_or_default();
    if !connection
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err(HandshakeError::Invalid("missing Connection: upgrade"));
    }
    match one("sec-websocket-accept") {
        Some(v) if v == accept_key(key) => {}
        Some(_) => return Err(HandshakeError::Invalid("wrong Sec-WebSocket-Accept")),
        None => return Err(HandshakeError::Invalid("missing Sec-WebSocket-Accept")),
    }
    let protocols = all("sec-websocket-protocol");
    let subprotocol = match protocols.as_slice() {
        [] => None,
        [p] if request.subprotocols.iter().any(|o| o == p) => Some(p.clone()),
        _ => return Err(HandshakeError::Subprotocol(protocols.join(", "))),
    };
    let extensions: Vec<String> = all("sec-websocket-extensions")
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect();
    if !extensions.is_empty() && request.extensions.is_none() {
        return Err(HandshakeError::Extensions(format!(
            "server accepted {:?} but none were offered",
            extensions.join(", ")
        )));
    }
    Ok(Upgraded {
        leftover: Vec::new(),
        subprotocol,
        extensions: extensions.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the handshake against a canned server response.
    async fn against(
        response: &'static str,
        request: &UpgradeRequest,
    ) -> Result<Upgraded, HandshakeError> {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            let mut req = vec![0u8; 2048];
            let n = server.read(&mut req).await.unwrap();
            let text = String::from_utf8_lossy(&req[..n]).to_string();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_string();
            let resp = response.replace("{accept}", &accept_key(&key));
            server.write_all(resp.as_bytes()).await.unwrap();
            text
        });
        let mut rng = fastrand::Rng::with_seed(1);
        let r = client_handshake(&mut client, request, &mut rng).await;
        let sent = task.await.unwrap();
        assert!(
            sent.starts_with("GET /x HTTP/1.1\r\nHost: h:1\r\n"),
            "{sent}"
        );
        r
    }

    const OK: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n";

    #[tokio::test]
    async fn checks_subprotocol_extensions_and_status() {
        let offer = UpgradeRequest::new(
            "h:1",
            "/x",
            &[("X-Token".into(), "t".into())],
            Some("http://o"),
            &["chat.v2".into(), "chat.v1".into()],
            None,
        );
        let resp =
            Box::leak(format!("{OK}Sec-WebSocket-Protocol: chat.v1\r\n\r\nrest").into_boxed_str());
        let up = against(resp, &offer).await.unwrap();
        assert_eq!(up.subprotocol.as_deref(), Some("chat.v1"));
        assert_eq!(up.leftover, b"rest");
        let resp = Box::leak(format!("{OK}Sec-WebSocket-Protocol: other\r\n\r\n").into_boxed_str());
        assert!(
            matches!(against(resp, &offer).await, Err(HandshakeError::Subprotocol(p)) if p == "other")
        );
        let resp = Box::leak(
            format!("{OK}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n").into_boxed_str(),
        );
        assert!(matches!(
            against(resp, &offer).await,
            Err(HandshakeError::Extensions(_))
        ));
        let resp = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            against(resp, &offer).await,
            Err(HandshakeError::Status(429))
        ));
        let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n";
        assert!(
            matches!(against(resp, &offer).await, Err(HandshakeError::Invalid(m)) if m.contains("Accept"))
        );
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3 worked example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

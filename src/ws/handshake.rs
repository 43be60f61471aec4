//! The client opening handshake (RFC 6455 §4.1): one HTTP/1.1 upgrade request,
//! a 101 response with `Upgrade`, `Connection` and a verified
//! `Sec-WebSocket-Accept`.

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
}

/// The `Sec-WebSocket-Accept` value the server must return for `key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Performs the upgrade on `stream`; returns any bytes the server sent after
/// the response head (the start of the first frames).
///
/// `host` is the `Host` header value, `path` the request target.
pub async fn client_handshake<S>(
    stream: &mut S,
    host: &str,
    path: &str,
    rng: &mut fastrand::Rng,
) -> Result<Vec<u8>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    let key = STANDARD.encode(nonce);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: barrage/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await?;

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
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let upgrade = header("upgrade").unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Err(HandshakeError::Invalid("missing Upgrade: websocket"));
        }
        let connection = header("connection").unwrap_or_default();
        if !connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        {
            return Err(HandshakeError::Invalid("missing Connection: upgrade"));
        }
        match header("sec-websocket-accept") {
            Some(v) if v.trim() == accept_key(&key) => {}
            Some(_) => return Err(HandshakeError::Invalid("wrong Sec-WebSocket-Accept")),
            None => return Err(HandshakeError::Invalid("missing Sec-WebSocket-Accept")),
        }
        buf.drain(..head_len);
        return Ok(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3 worked example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

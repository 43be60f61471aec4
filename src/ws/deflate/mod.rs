//! permessage-deflate (RFC 7692) for our own frame codec.
//!
//! This module owns the extension's handshake logic (building the client's
//! offer, checking the server's response, and the server-side choice among a
//! client's offers) and the per-connection compression state: [`Deflater`]
//! turns one whole message into the payload of an RSV1 message (raw deflate,
//! sync flush, trailing `00 00 ff ff` removed) and [`Inflater`] reverses that
//! with a hard cap on the decompressed size. Framing, RSV1 and fragmentation
//! stay in the codec; this module only sees whole message bodies.
//!
//! zlib cannot produce raw deflate with an 8-bit window (it silently uses 9),
//! so only window sizes 9..=15 are ever negotiated for data we compress.
//! Decompression always uses a 15-bit window, which decodes data made with any
//! smaller window.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

/// The registered extension token.
const NAME: &str = "permessage-deflate";
/// What a sync flush ends with; stripped when sending, restored when receiving.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// First output allocation step of [`Inflater::decompress`].
const INFLATE_CHUNK: usize = 16 * 1024;

/// Compression level [`Deflater::new`] uses: 1, zlib's fastest, because a
/// load generator's CPU should go into generating load.
pub const DEFAULT_LEVEL: u32 = 1;

/// Parameters of permessage-deflate, as offered by a client or agreed in a handshake.
///
/// The default offers/agrees plain permessage-deflate: 15-bit windows on both
/// sides and context takeover in both directions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// Largest LZ77 window (bits, 9..=15) the client compresses with; `None` = 15 / not stated.
    pub client_max_window_bits: Option<u8>,
    /// Largest window the server compresses with; `None` = 15 / not stated.
    pub server_max_window_bits: Option<u8>,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
}

/// Why a server's `Sec-WebSocket-Extensions` response is invalid (RFC 7692 §7.1);
/// the client must fail the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// The header value does not parse as `name *(; param[=value])` lists.
    #[error("malformed Sec-WebSocket-Extensions element `{0}`")]
    Malformed(String),
    /// The server accepted an extension the client never offered.
    #[error("server accepted extension `{0}` that was not offered")]
    NotOffered(String),
    /// permessage-deflate appears more than once in the response.
    #[error("server accepted permessage-deflate more than once")]
    DuplicateExtension,
    /// A parameter RFC 7692 does not define.
    #[error("unknown permessage-deflate parameter `{0}`")]
    UnknownParam(String),
    /// The same parameter twice in one element.
    #[error("duplicate permessage-deflate parameter `{0}`")]
    DuplicateParam(String),
    /// A parameter (as written, lowercased) with a value it must not have, without one it
    /// needs, or with a window size that is not 8..=15; the second field says which.
    #[error("permessage-deflate parameter `{0}` {1}")]
    BadValue(String, &'static str),
    /// The server limits the client to a 256-byte window, which RFC 7692 allows
    /// but zlib cannot produce for raw deflate.
    #[error(
        "server requires client_max_window_bits=8, which zlib cannot honour \
         (raw deflate with an 8-bit window silently uses 9 bits)"
    )]
    ClientWindowBits8,
    /// The server's window (first) is larger than the client offered (second).
    #[error("server_max_window_bits={0} in the response is larger than the {1} offered")]
    ServerWindowTooLarge(u8, u8),
    /// client_max_window_bits in the response although the client did not offer it.
    #[error("server sent client_max_window_bits, which the client did not offer")]
    ClientWindowNotOffered,
}

const NO_VALUE: &str = "must not have a value";
const NEEDS_VALUE: &str = "needs a value";
const NOT_BITS: &str = "is not a window size of 8..=15 bits";

/// Why compressing or decompressing a message failed. After any error the
/// connection should be closed (1009 for `TooLarge`, 1007 otherwise): the
/// context shared with the peer is lost.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeflateError {
    /// The decompressed message would exceed the limit (in bytes) given to
    /// [`Inflater::decompress`].
    #[error("decompressed message exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// The received data is not valid raw deflate.
    #[error("corrupt compressed message: {0}")]
    Corrupt(String),
    /// zlib failed while compressing (not expected to happen).
    #[error("compression failed: {0}")]
    Compress(String),
}

/// Which end of the connection this compressor/decompressor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that opened the connection (barrage's load connections).
    Client,
    /// The accepting end (barrage's built-in test server).
    Server,
}

/// The parameters of one permessage-deflate element, as written by the peer.
#[derive(Debug, Default)]
struct Parsed {
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    /// Present (outer `Some`), with or without a value.
    client_bits: Option<Option<u8>>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` header value a client sends to offer these parameters, e.g.
    /// "permessage-deflate; client_max_window_bits" (when client_max_window_bits is None the bare
    /// `client_max_window_bits` param is offered so the server may limit it) or with values.
    /// Window sizes outside 9..=15 are clamped into that range.
    pub fn offer(&self) -> String {
        let offer = self.clamped();
        header(&offer, Some(offer.client_max_window_bits))
    }

    /// Client side: checks the server's `Sec-WebSocket-Extensions` response value(s) (all header
    /// values joined with ", ") against this offer (as [`DeflateParams::offer`] writes it).
    /// Ok(None) when the server did not accept permessage-deflate (empty value); Ok(Some(agreed))
    /// with the agreed params; Err with a reason when the response is invalid per RFC 7692 §7.1.
    ///
    /// In the agreed params, `client_max_window_bits` is the smaller of our offered value and the
    /// server's, `client_no_context_takeover` is set if we offered it or the server asked for it,
    /// and the server_ params are what the server answered (server_max_window_bits=8 is accepted:
    /// we decode with a 15-bit window anyway).
    pub fn accept_response(&self, header: &str) -> Result<Option<DeflateParams>, NegotiationError> {
        let offer = self.clamped();
        offer.check_response(Some(offer.client_max_window_bits), header)
    }

    /// Server side: given the client's `Sec-WebSocket-Extensions` request value(s), picks the first
    /// permessage-deflate offer it can accept (skipping invalid ones and other extensions) and
    /// returns the agreed params and the response header value. `server_no_context_takeover`
    /// here means the server wants to reset its own context (it then includes that param).
    /// Window bits: honours server_max_window_bits requested by the client (an offer asking for
    /// 8 is skipped); answers client_max_window_bits only if the client offered it, with the
    /// client's value or 15 (a client hint of 8 is left unanswered, so the agreed value is
    /// `None`). Returns `None` when no offer is acceptable.
    pub fn negotiate_server(
        request: &str,
        server_no_context_takeover: bool,
    ) -> Option<(DeflateParams, String)> {
        split_unquoted(request, b',')
            .into_iter()
            .find_map(|element| {
                let (name, params) = parse_element(element).ok()??;
                let p = parse_params(&params).ok()?;
                if !name.eq_ignore_ascii_case(NAME) || p.server_bits == Some(8) {
                    return None;
                }
                let agreed = DeflateParams {
                    client_max_window_bits: match p.client_bits {
                        None | Some(Some(8)) => None,
                        Some(bits) => Some(bits.unwrap_or(15)),
                    },
                    server_max_window_bits: p.server_bits,
                    client_no_context_takeover: p.client_nct,
                    server_no_context_takeover: p.server_nct || server_no_context_takeover,
                };
                let response = header(&agreed, agreed.client_max_window_bits.map(Some));
                Some((agreed, response))
            })
    }

    /// These params with window sizes clamped to 9..=15.
    fn clamped(&self) -> DeflateParams {
        DeflateParams {
            client_max_window_bits: self.client_max_window_bits.map(clamp_bits),
            server_max_window_bits: self.server_max_window_bits.map(clamp_bits),
            ..self.clone()
        }
    }

    /// The window size and no_context_takeover flag that govern what `role` compresses.
    fn side(&self, role: Role) -> (Option<u8>, bool) {
        match role {
            Role::Client => (self.client_max_window_bits, self.client_no_context_takeover),
            Role::Server => (self.server_max_window_bits, self.server_no_context_takeover),
        }
    }

    /// [`Self::accept_response`] with the offered client_max_window_bits explicit
    /// (`None`: not offered, `Some(None)`: offered without a value).
    fn check_response(
        &self,
        offered_client_bits: Option<Option<u8>>,
        header: &str,
    ) -> Result<Option<DeflateParams>, NegotiationError> {
        let mut accepted: Option<Parsed> = None;
        for element in split_unquoted(header, b',') {
            let Some((name, params)) = parse_element(element)? else {
                continue;
            };
            if !name.eq_ignore_ascii_case(NAME) {
                return Err(NegotiationError::NotOffered(name.to_string()));
            }
            if accepted.is_some() {
                return Err(NegotiationError::DuplicateExtension);
            }
            accepted = Some(parse_params(&params)?);
        }
        let Some(r) = accepted else { return Ok(None) };
        if let (Some(offered), Some(got)) = (self.server_max_window_bits, r.server_bits)
            && got > offered
        {
            return Err(NegotiationError::ServerWindowTooLarge(got, offered));
        }
        let client_bits = match (offered_client_bits, r.client_bits) {
            (offer, None) => offer.flatten(),
            (None, Some(_)) => return Err(NegotiationError::ClientWindowNotOffered),
            (Some(_), Some(None)) => {
                let param = "client_max_window_bits".to_string();
                return Err(NegotiationError::BadValue(param, NEEDS_VALUE));
            }
            (Some(_), Some(Some(8))) => return Err(NegotiationError::ClientWindowBits8),
            (Some(hint), Some(Some(got))) => Some(hint.map_or(got, |hint| hint.min(got))),
        };
        Ok(Some(DeflateParams {
            client_max_window_bits: client_bits,
            server_max_window_bits: r.server_bits,
            client_no_context_takeover: self.client_no_context_takeover || r.client_nct,
            server_no_context_takeover: r.server_nct,
        }))
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// `permessage-deflate` with the flags and server window of `p`, then `client_bits`
/// (separate because an offer may carry it without a value).
fn header(p: &DeflateParams, client_bits: Option<Option<u8>>) -> String {
    let mut s = String::from(NAME);
    if p.client_no_context_takeover {
        s += "; client_no_context_takeover";
    }
    if p.server_no_context_takeover {
        s += "; server_no_context_takeover";
    }
    if let Some(bits) = p.server_max_window_bits {
        s += &format!("; server_max_window_bits={bits}");
    }
    match client_bits {
        Some(Some(bits)) => s += &format!("; client_max_window_bits={bits}"),
        Some(None) => s += "; client_max_window_bits",
        None => {}
    }
    s
}

/// Splits `s` at `sep` bytes that are outside double quotes.
fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

type Params<'a> = Vec<(&'a str, Option<&'a str>)>;

/// Parses one comma-separated element `name *(; param[=value])`; `Ok(None)`
/// for an empty element (allowed by the HTTP list syntax).
fn parse_element(element: &str) -> Result<Option<(&str, Params<'_>)>, NegotiationError> {
    let bad = || NegotiationError::Malformed(element.trim().to_string());
    if element.trim().is_empty() {
        return Ok(None);
    }
    let mut parts = split_unquoted(element, b';').into_iter();
    let name = parts.next().unwrap_or_default().trim();
    if !is_token(name) {
        return Err(bad());
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(unquote(v.trim()).ok_or_else(bad)?)),
            None => (part.trim(), None),
        };
        if !is_token(key) || value.is_some_and(|v| !is_token(v)) {
            return Err(bad());
        }
        params.push((key, value));
    }
    Ok(Some((name, params)))
}

/// A token as is, or the content of a quoted-string (RFC 7692 values are tokens either way,
/// so an escape inside the quotes is left in place and then rejected as not a token).
fn unquote(v: &str) -> Option<&str> {
    v.strip_prefix('"')
        .map_or(Some(v), |inner| inner.strip_suffix('"'))
}

/// Interprets the params of one permessage-deflate element (offer or response).
fn parse_params(params: &Params<'_>) -> Result<Parsed, NegotiationError> {
    let mut p = Parsed::default();
    let mut seen = [false; 4];
    for (key, value) in params {
        let key = key.to_ascii_lowercase();
        let index = match key.as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(NegotiationError::UnknownParam(key)),
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(NegotiationError::DuplicateParam(key));
        }
        let bad = |why| match value {
            Some(v) => NegotiationError::BadValue(format!("{key}={v}"), why),
            None => NegotiationError::BadValue(key.clone(), why),
        };
        let bits = match value {
            Some(_) if index < 2 => return Err(bad(NO_VALUE)),
            Some(v) => Some(window_bits(v).ok_or_else(|| bad(NOT_BITS))?),
            None if index == 2 => return Err(bad(NEEDS_VALUE)),
            None => None,
        };
        match index {
            0 => p.server_nct = true,
            1 => p.client_nct = true,
            2 => p.server_bits = bits,
            _ => p.client_bits = Some(bits),
        }
    }
    Ok(p)
}

/// RFC 7692's window-bits value: decimal 8..=15 without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    let digits = value.bytes().all(|b| b.is_ascii_digit()) && !value.starts_with('0');
    let bits = value.parse::<u8>().ok()?;
    (digits && (8..=15).contains(&bits)).then_some(bits)
}

/// Compresses outgoing messages for one connection.
pub struct Deflater {
    z: Compress,
    /// Reset after every message (our side's no_context_takeover).
    reset_each: bool,
}

impl Deflater {
    /// A compressor for `role` under the `agreed` params (a client uses client_max_window_bits and
    /// client_no_context_takeover; a server the server_ ones), at [`DEFAULT_LEVEL`] (1, the
    /// cheapest). An absent window size means 15; sizes outside 9..=15 are clamped.
    pub fn new(role: Role, agreed: &DeflateParams) -> Self {
        Self::with_level(role, agreed, DEFAULT_LEVEL)
    }

    /// Like [`Deflater::new`] with an explicit zlib level (0..=9, higher values are capped at 9).
    pub fn with_level(role: Role, agreed: &DeflateParams, level: u32) -> Self {
        let (bits, reset_each) = agreed.side(role);
        let bits = clamp_bits(bits.unwrap_or(15));
        let z = Compress::new_with_window_bits(Compression::new(level.min(9)), false, bits);
        Self { z, reset_each }
    }

    /// Appends the compressed body of one whole message to `out`: raw deflate, sync flush,
    /// with the trailing 0x00 0x00 0xff 0xff removed (RFC 7692 §7.2.1). An empty payload
    /// becomes the single byte 0x00. Resets the context after the message when
    /// no-context-takeover applies to this side. No allocation beyond growing `out`.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        if payload.is_empty() {
            // An empty stored block; zlib itself emits nothing for a repeated
            // sync flush without input.
            out.push(0x00);
            return Ok(());
        }
        let start = out.len();
        out.reserve(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            if out.len() == out.capacity() {
                out.reserve(64);
            }
            let (in_before, out_before) = (self.z.total_in(), out.len());
            self.z
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(|e| DeflateError::Compress(e.to_string()))?;
            let used = (self.z.total_in() - in_before) as usize;
            input = &input[used..];
            let has_room = out.len() < out.capacity();
            if input.is_empty() && has_room {
                break;
            }
            if used == 0 && out.len() == out_before && has_room {
                return Err(DeflateError::Compress("zlib made no progress".into()));
            }
        }
        if !out[start..].ends_with(&TAIL) {
            return Err(DeflateError::Compress(
                "sync flush did not end in 00 00 ff ff".into(),
            ));
        }
        out.truncate(out.len() - TAIL.len());
        if self.reset_each {
            self.z.reset();
        }
        Ok(())
    }
}

/// Decompresses incoming messages for one connection.
pub struct Inflater {
    z: Decompress,
    /// Reset after every message (the peer's no_context_takeover).
    reset_each: bool,
}

impl Inflater {
    /// A decompressor for `role` (a client inflates what the server compressed, so
    /// server_no_context_takeover applies; a server uses client_no_context_takeover). The
    /// window is always 15 bits, which decodes data compressed with any smaller window.
    pub fn new(role: Role, agreed: &DeflateParams) -> Self {
        let peer = if role == Role::Client {
            Role::Server
        } else {
            Role::Client
        };
        let (_, reset_each) = agreed.side(peer);
        Self {
            z: Decompress::new_with_window_bits(false, 15),
            reset_each,
        }
    }

    /// Inflates one whole message body (all its frames' payloads concatenated, as received,
    /// without the tail) into `out` (cleared first), restoring the 0x00 0x00 0xff 0xff tail.
    /// Stops with [`DeflateError::TooLarge`] as soon as the output would exceed `max` bytes
    /// (`out` then grows to at most `max + 1` bytes of capacity, or keeps a larger one it
    /// already had). Corrupt input gives [`DeflateError::Corrupt`]. An empty body is an empty
    /// message; a final (BFINAL) block ends the message and starts a fresh context. Resets
    /// the context after the message when the peer does not take over context, and after
    /// any error.
    pub fn decompress(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), DeflateError> {
        out.clear();
        let result = self.inflate(data, out, max);
        if result.is_err() || self.reset_each {
            self.z.reset(false);
        }
        result
    }

    fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), DeflateError> {
        if data.is_empty() {
            return Ok(());
        }
        let limit = max.saturating_add(1);
        for chunk in [data, &TAIL[..]] {
            let mut input = chunk;
            loop {
                if out.len() == out.capacity() {
                    // out.len() <= max here, so there is room for at least one byte.
                    let grow = out.len().max(INFLATE_CHUNK).min(limit - out.len());
                    out.reserve_exact(grow);
                }
                let (in_before, out_before) = (self.z.total_in(), out.len());
                let status = self
                    .z
                    .decompress_vec(input, out, FlushDecompress::Sync)
                    .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
                if out.len() > max {
                    return Err(DeflateError::TooLarge(max));
                }
                if status == Status::StreamEnd {
                    // BFINAL ends the message (what follows is normally just our
                    // tail) and the peer starts a new stream with the next one.
                    self.z.reset(false);
                    return Ok(());
                }
                let used = (self.z.total_in() - in_before) as usize;
                input = &input[used..];
                let has_room = out.len() < out.capacity();
                if input.is_empty() && has_room {
                    break;
                }
                if used == 0 && out.len() == out_before && has_room {
                    return Err(DeflateError::Corrupt("inflate made no progress".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Client-side WebSocket frame codec (RFC 6455 §5).
//!
//! [`encode_frame`] appends one masked frame to a reusable output buffer.
//! [`Decoder`] owns the read buffer; the caller fills it with
//! `AsyncReadExt::read_buf(decoder.buffer_mut())` (cancel safe) and then drains
//! complete frames with [`Decoder::next_event`], which never awaits.

use thiserror::Error;

/// Opcodes of RFC 6455 §5.2.
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// Text data frame.
    pub const TEXT: u8 = 0x1;
    /// Binary data frame.
    pub const BINARY: u8 = 0x2;
    /// Connection close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// A protocol violation by the peer; the connection must be closed with
/// [`ProtocolError::close_code`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1-3 set without a negotiated extension.
    #[error("reserved bits set in frame header")]
    ReservedBits,
    /// Opcode 3-7 or B-F.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// The server masked a frame (servers must not, §5.1).
    #[error("server sent a masked frame")]
    MaskedServerFrame,
    /// A control frame with FIN unset.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame payload over 125 bytes.
    #[error("control frame of {0} bytes (max 125)")]
    ControlTooLong(u64),
    /// A message (or frame) larger than the configured maximum.
    #[error("message of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(u64, usize),
    /// A continuation frame without a message in progress, or a new data frame
    /// while one is in progress.
    #[error("unexpected continuation state")]
    BadContinuation,
    /// A text message that is not UTF-8.
    #[error("invalid UTF-8 in text message")]
    InvalidUtf8,
    /// A close frame with a one-byte payload, a forbidden code or a non UTF-8 reason.
    #[error("invalid close frame")]
    InvalidClose,
}

impl ProtocolError {
    /// The close code to answer with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => 1007,
            ProtocolError::TooLarge(..) => 1009,
            _ => 1002,
        }
    }
}

/// One complete thing received from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message (fragments reassembled).
    Message {
        /// `opcode::TEXT` or `opcode::BINARY`.
        opcode: u8,
        /// The message payload.
        payload: &'a [u8],
    },
    /// A ping; the caller answers with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame with its code (1005 when absent).
    Close {
        /// Close status code.
        code: u16,
    },
}

/// Largest header the codec writes: 2 + 8 length bytes + 4 mask bytes.
const MAX_HEADER: usize = 14;

/// Appends one masked client frame with `payload` to `out`.
///
/// `mask` is the masking key (random per frame, §5.3). No allocation beyond
/// growing `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let len = payload.len();
    out.reserve(len + MAX_HEADER);
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    fastwebsockets::unmask(&mut out[start..], mask);
}

/// Reassembles frames read from the server into [`Event`]s.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of unparsed data in `buf`.
    pos: usize,
    /// Payload of a fragmented message in progress.
    partial: Vec<u8>,
    /// Opcode of the message in `partial`, 0 when none.
    partial_opcode: u8,
    /// `partial` holds a message already returned.
    partial_done: bool,
    max_message: usize,
}

/// What [`Decoder::frame_at`] found at the front of the buffer.
struct RawFrame {
    fin: bool,
    opcode: u8,
    header_len: usize,
    payload_len: usize,
}

impl Decoder {
    /// A decoder that refuses messages over `max_message` bytes, seeded with
    /// bytes already read past the handshake response.
    pub fn new(max_message: usize, initial: Vec<u8>) -> Self {
        Decoder {
            buf: initial,
            pos: 0,
            partial: Vec::new(),
            partial_opcode: 0,
            partial_done: false,
            max_message,
        }
    }

    /// The buffer to read into (append only). Compacts consumed bytes first.
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(4096);
        }
        &mut self.buf
    }

    /// Releases buffer memory while the connection is idle.
    pub fn shrink(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// Parses the frame header at `pos`; `None` when more bytes are needed.
    fn frame_at(&self) -> Result<Option<RawFrame>, ProtocolError> {
        let b = &self.buf[self.pos..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode = b[0] & 0x0F;
        match opcode {
            0x0..=0x2 | 0x8..=0xA => {}
            other => return Err(ProtocolError::ReservedOpcode(other)),
        }
        if b[1] & 0x80 != 0 {
            return Err(ProtocolError::MaskedServerFrame);
        }
        let (len, header_len) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([b[2], b[3]]) as u64, 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (n as u64, 2),
        };
        if opcode >= 0x8 {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if len > 125 {
                return Err(ProtocolError::ControlTooLong(len));
            }
        }
        // Only continuation frames add to a message in progress.
        let so_far = if opcode == opcode::CONTINUATION {
            self.partial.len() as u64
        } else {
            0
        };
        if len.saturating_add(so_far) > self.max_message as u64 {
            return Err(ProtocolError::TooLarge(
                len.saturating_add(so_far),
                self.max_message,
            ));
        }
        if b.len() < header_len + len as usize {
            return Ok(None);
        }
        Ok(Some(RawFrame {
            fin,
            opcode,
            header_len,
            payload_len: len as usize,
        }))
    }

    /// The next complete event in the buffer, or `Ok(None)` when more bytes
    /// must be read first.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, ProtocolError> {
        if self.partial_done {
            // The reassembled message was handed out last time; let its
            // memory go (a large one must not stay with the connection).
            self.partial = Vec::new();
            self.partial_done = false;
        }
        loop {
            let Some(f) = self.frame_at()? else {
                return Ok(None);
            };
            let start = self.pos + f.header_len;
            let end = start + f.payload_len;
            self.pos = end;
            match f.opcode {
                opcode::PING => return Ok(Some(Event::Ping(&self.buf[start..end]))),
                opcode::PONG => return Ok(Some(Event::Pong(&self.buf[start..end]))),
                opcode::CLOSE => {
                    return Ok(Some(Event::Close {
                        code: parse_close(&self.buf[start..end])?,
                    }));
                }
                opcode::CONTINUATION => {
                    if self.partial_opcode == 0 {
                        return Err(ProtocolError::BadContinuation);
                    }
                    self.partial.extend_from_slice(&self.buf[start..end]);
                    if !f.fin {
                        continue;
                    }
                    let op = std::mem::replace(&mut self.partial_opcode, 0);
                    self.partial_done = true;
                    if op == opcode::TEXT && std::str::from_utf8(&self.partial).is_err() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    return Ok(Some(Event::Message {
                        opcode: op,
                        payload: &self.partial,
                    }));
                }
                op => {
                    if self.partial_opcode != 0 {
                        return Err(ProtocolError::BadContinuation);
                    }
                    if !f.fin {
                        self.partial.clear();
                        self.partial.extend_from_slice(&self.buf[start..end]);
                        self.partial_opcode = op;
                        continue;
                    }
                    let payload = &self.buf[start..end];
                    if op == opcode::TEXT && std::str::from_utf8(payload).is_err() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    return Ok(Some(Event::Message {
                        opcode: op,
                        payload,
                    }));
                }
            }
        }
    }
}

/// Validates a close payload and returns its code (1005 when empty).
fn parse_close(p: &[u8]) -> Result<u16, ProtocolError> {
    match p.len() {
        0 => Ok(1005),
        1 => Err(ProtocolError::InvalidClose),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !allowed || std::str::from_utf8(&p[2..]).is_err() {
                return Err(ProtocolError::InvalidClose);
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an unmasked server frame.
    fn server_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | op];
        if payload.len() < 126 {
            v.push(payload.len() as u8);
        } else {
            v.push(126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn encode_masks_and_sizes_header() {
        let mut out = Vec::new();
        encode_frame(&mut out, opcode::TEXT, b"hello", [1, 2, 3, 4]);
        assert_eq!(&out[..2], &[0x81, 0x85]);
        assert_eq!(&out[2..6], &[1, 2, 3, 4]);
        let unmasked: Vec<u8> = out[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
            .collect();
        assert_eq!(unmasked, b"hello");
        out.clear();
        encode_frame(&mut out, opcode::BINARY, &[0u8; 300], [0; 4]);
        assert_eq!(&out[..4], &[0x82, 0xFE, 0x01, 0x2C]);
        assert_eq!(out.len(), 4 + 4 + 300);
    }

    #[test]
    fn decodes_split_reads_and_fragments() {
        let mut bytes = server_frame(false, opcode::TEXT, b"hel");
        bytes.extend(server_frame(true, opcode::PING, b"p"));
        bytes.extend(server_frame(true, opcode::CONTINUATION, b"lo"));
        let mut d = Decoder::new(1 << 20, Vec::new());
        // Feed one byte at a time: nothing may be lost between calls.
        let mut events = Vec::new();
        for b in bytes {
            d.buffer_mut().push(b);
            while let Some(e) = d.next_event().unwrap() {
                events.push(format!("{e:?}"));
            }
        }
        assert_eq!(
            events,
            vec![
                "Ping([112])",
                "Message { opcode: 1, payload: [104, 101, 108, 108, 111] }"
            ]
        );
    }

    #[test]
    fn a_finished_fragmented_message_does_not_count_against_the_next() {
        let mut bytes = server_frame(false, opcode::BINARY, &[1; 60]);
        bytes.extend(server_frame(true, opcode::CONTINUATION, &[2; 60]));
        bytes.extend(server_frame(true, opcode::BINARY, &[3; 100]));
        bytes.extend(server_frame(true, opcode::CLOSE, &[0x03, 0xF5])); // 1013 Try Again Later
        let mut d = Decoder::new(128, bytes);
        let mut lens = Vec::new();
        while let Some(e) = d.next_event().unwrap() {
            lens.push(match e {
                Event::Message { payload, .. } => payload.len() as u16,
                Event::Close { code } => code,
                _ => 0,
            });
        }
        assert_eq!(lens, vec![120, 100, 1013]);
    }

    #[test]
    fn rejects_violations_with_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0xC1, 0x00], 1002),             // RSV1
            (vec![0x83, 0x00], 1002),             // reserved opcode
            (vec![0x81, 0x80, 0, 0, 0, 0], 1002), // masked
            (vec![0x09, 0x00], 1002),             // fragmented ping
            (server_frame(true, opcode::TEXT, &[0xFF]), 1007),
            (vec![0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0], 1009), // 2^62 bytes
            (server_frame(true, opcode::CLOSE, &[0x03, 0xE4]), 1002), // 996
        ];
        for (bytes, code) in cases {
            let mut d = Decoder::new(1 << 20, bytes.clone());
            let err = d.next_event().unwrap_err();
            assert_eq!(err.close_code(), code, "{bytes:?} gave {err}");
        }
    }
}

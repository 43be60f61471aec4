//! Incoming WebSocket frames (RFC 6455 §5), for either end.
//!
//! [`Decoder`] owns the read buffer; the caller fills it through
//! [`Decoder::buffer_mut`] and then drains complete frames with
//! [`Decoder::next_event`], which never awaits. Fragments are reassembled,
//! permessage-deflate messages inflated (within the size limit), client
//! frames unmasked, and every rule a peer can break is checked.
//! Outgoing frames are in [`super::encoder`].

use thiserror::Error;

use super::deflate::{DeflateError, Inflater, Role};

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
    /// RSV1-3 set without a negotiated extension (or RSV1 where
    /// permessage-deflate does not allow it).
    #[error("reserved bits set in frame header")]
    ReservedBits,
    /// A client sent an unmasked frame (clients must mask, §5.1).
    #[error("client sent an unmasked frame")]
    UnmaskedClientFrame,
    /// A compressed message that does not inflate.
    #[error("compressed message does not inflate: {0}")]
    BadCompression(String),
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
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompression(_) => 1007,
            ProtocolError::TooLarge(..) => 1009,
            _ => 1002,
        }
    }
}

/// One complete thing received from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message (fragments reassembled, inflated).
    Message {
        /// `opcode::TEXT` or `opcode::BINARY`.
        opcode: u8,
        /// The message payload.
        payload: &'a [u8],
        /// Bytes its frames took on the wire (headers included).
        wire: usize,
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

/// Reassembles frames read from the peer into [`Event`]s.
pub struct Decoder {
    /// Which end we are: a client reads unmasked server frames, a server
    /// reads masked client frames.
    role: Role,
    buf: Vec<u8>,
    /// Start of unparsed data in `buf`.
    pos: usize,
    /// Payload of a fragmented message in progress.
    partial: Vec<u8>,
    /// Opcode of the message in `partial`, 0 when none.
    partial_opcode: u8,
    /// The message in `partial` is compressed (RSV1 on its first frame).
    partial_compressed: bool,
    /// Wire bytes of the frames in `partial`.
    partial_wire: usize,
    /// `partial` or the inflated message holds a message already returned.
    partial_done: bool,
    /// Inflates messages when permessage-deflate was agreed.
    /// Inflates messages when permessage-deflate was agreed, with the
    /// last inflated message. Boxed: most connections never compress, and
    /// this sits in every held connection.
    inflater: Option<Box<(Inflater, Vec<u8>)>>,
    max_message: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("role", &self.role)
            .field("buffered", &(self.buf.len() - self.pos))
            .field("compressed", &self.inflater.is_some())
            .finish()
    }
}

/// What [`Decoder::frame_at`] found at the front of the buffer.
struct RawFrame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: usize,
}

impl Decoder {
    /// A client decoder without compression that refuses messages over
    /// `max_message` bytes, seeded with bytes already read past the
    /// handshake response.
    pub fn new(max_message: usize, initial: Vec<u8>) -> Self {
        Decoder::with_role(Role::Client, max_message, None, initial)
    }

    /// A decoder for `role`, inflating with `inflater` when permessage-deflate
    /// was agreed; `max_message` limits a message after reassembly and
    /// inflation.
    pub fn with_role(
        role: Role,
        max_message: usize,
        inflater: Option<Inflater>,
        initial: Vec<u8>,
    ) -> Self {
        Decoder {
            role,
            buf: initial,
            pos: 0,
            partial: Vec::new(),
            partial_opcode: 0,
            partial_compressed: false,
            partial_wire: 0,
            partial_done: false,
            inflater: inflater.map(|i| Box::new((i, Vec::new()))),
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
        let opcode = b[0] & 0x0F;
        match opcode {
            0x0..=0x2 | 0x8..=0xA => {}
            other => return Err(ProtocolError::ReservedOpcode(other)),
        }
        // RSV1 marks a compressed message: only on its first frame, only
        // when permessage-deflate was agreed (RFC 7692 §6).
        let rsv1 = b[0] & 0x40 != 0;
        let rsv1_allowed =
            self.inflater.is_some() && matches!(opcode, opcode::TEXT | opcode::BINARY);
        if b[0] & 0x30 != 0 || (rsv1 && !rsv1_allowed) {
            return Err(ProtocolError::ReservedBits);
        }
        let masked = b[1] & 0x80 != 0;
        match (self.role, masked) {
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            _ => {}
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
        let (mask, header_len) = if masked {
            if b.len() < header_len + 4 {
                return Ok(None);
            }
            let mut m = [0u8; 4];
            m.copy_from_slice(&b[header_len..header_len + 4]);
            (Some(m), header_len + 4)
        } else {
            (None, header_len)
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
            rsv1,
            opcode,
            mask,
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
            if self.partial.capacity() > SHRINK_ABOVE {
                self.partial = Vec::new();
            }
            if let Some(z) = &mut self.inflater
                && z.1.capacity() > SHRINK_ABOVE
            {
                z.1 = Vec::new();
            }
            self.partial_done = false;
        }
        loop {
            let Some(f) = self.frame_at()? else {
                return Ok(None);
            };
            let start = self.pos + f.header_len;
            let end = start + f.payload_len;
            let wire = end - self.pos;
            self.pos = end;
            if let Some(mask) = f.mask {
                fastwebsockets::unmask(&mut self.buf[start..end], mask);
            }
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
                    self.partial_wire += wire;
                    if !f.fin {
                        continue;
                    }
                    let op = std::mem::replace(&mut self.partial_opcode, 0);
                    self.partial_done = true;
                    let wire = self.partial_wire;
                    let payload = if self.partial_compressed {
                        self.inflate_partial()?
                    } else {
                        &self.partial
                    };
                    return message(op, payload, wire);
                }
                op => {
                    if self.partial_opcode != 0 {
                        return Err(ProtocolError::BadContinuation);
                    }
                    if !f.fin {
                        self.partial.clear();
                        self.partial.extend_from_slice(&self.buf[start..end]);
                        self.partial_opcode = op;
                        self.partial_compressed = f.rsv1;
                        self.partial_wire = wire;
                        continue;
                    }
                    if f.rsv1 {
                        let z = self.inflater.as_mut().expect("RSV1 checked in frame_at");
                        inflate(&mut z.0, &self.buf[start..end], &mut z.1, self.max_message)?;
                        self.partial_done = true;
                        return message(op, &z.1, wire);
                    }
                    return message(op, &self.buf[start..end], wire);
                }
            }
        }
    }

    /// Inflates the reassembled compressed message in `partial`.
    fn inflate_partial(&mut self) -> Result<&[u8], ProtocolError> {
        let z = self.inflater.as_mut().expect("RSV1 checked in frame_at");
        inflate(&mut z.0, &self.partial, &mut z.1, self.max_message)?;
        Ok(&z.1)
    }
}

/// Buffers for reassembled or inflated messages larger than this are freed
/// after the message; smaller ones are kept for the next.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Inflates one message body into `out`, within `max` bytes.
fn inflate(
    inflater: &mut Inflater,
    data: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), ProtocolError> {
    inflater.decompress(data, out, max).map_err(|e| match e {
        DeflateError::TooLarge(limit) => ProtocolError::TooLarge(limit as u64 + 1, limit),
        other => ProtocolError::BadCompression(other.to_string()),
    })
}

/// A data message event, after checking that text is UTF-8.
fn message(op: u8, payload: &[u8], wire: usize) -> Result<Option<Event<'_>>, ProtocolError> {
    if op == opcode::TEXT && std::str::from_utf8(payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(Some(Event::Message {
        opcode: op,
        payload,
        wire,
    }))
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
                "Message { opcode: 1, payload: [104, 101, 108, 108, 111], wire: 9 }"
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

//! Outgoing frames (RFC 6455 §5): headers, masking for the client side,
//! permessage-deflate (RSV1 on the first frame) and fragmentation into
//! continuation frames. Frames are appended to a caller-owned buffer; nothing
//! is allocated per message once the buffers have grown.

use super::codec::opcode;
use super::deflate::{DeflateError, Deflater, Role};

/// Largest header written: 2 + 8 length bytes + 4 mask bytes.
const MAX_HEADER: usize = 14;

/// Appends one complete (FIN), masked client frame with `payload` to `out`.
///
/// `mask` is the masking key (random per frame, §5.3).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    encode_raw(out, 0x80 | opcode, payload, Some(mask));
}

/// Appends one frame whose first header byte is `first` (FIN, RSV and
/// opcode bits), masked with `mask` when given (client frames) and plain
/// otherwise (server frames).
pub fn encode_raw(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let len = payload.len();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(len + MAX_HEADER);
    out.push(first);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            let start = out.len();
            out.extend_from_slice(payload);
            fastwebsockets::unmask(&mut out[start..], mask);
        }
        None => out.extend_from_slice(payload),
    }
}

/// Encodes the messages of one connection under what its handshake agreed.
pub struct Encoder {
    role: Role,
    /// The compressor and the compressed body of the message being
    /// encoded. Boxed: most connections never compress, and this sits in
    /// every held connection.
    deflater: Option<Box<(Deflater, Vec<u8>)>>,
    /// Largest payload per frame; `usize::MAX` sends one frame per message.
    fragment: usize,
}

impl Encoder {
    /// An encoder for `role`; `deflater` when permessage-deflate was agreed;
    /// `fragment` splits messages into frames of at most that many payload
    /// bytes (default: one frame per message).
    pub fn new(role: Role, deflater: Option<Deflater>, fragment: Option<usize>) -> Self {
        Encoder {
            role,
            deflater: deflater.map(|d| Box::new((d, Vec::new()))),
            fragment: fragment.unwrap_or(usize::MAX).max(1),
        }
    }

    /// Whether messages are compressed.
    pub fn compresses(&self) -> bool {
        self.deflater.is_some()
    }

    fn mask(&self, rng: &mut fastrand::Rng) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(rng.u32(..).to_ne_bytes()),
            Role::Server => None,
        }
    }

    /// Appends the frames of one data message (`opcode::TEXT` or `BINARY`)
    /// to `out`, compressed when agreed and fragmented when asked; returns
    /// the frame bytes appended.
    pub fn message(
        &mut self,
        out: &mut Vec<u8>,
        op: u8,
        payload: &[u8],
        rng: &mut fastrand::Rng,
    ) -> Result<usize, DeflateError> {
        let before = out.len();
        let mut body = Vec::new();
        let (data, rsv1): (&[u8], u8) = match &mut self.deflater {
            Some(d) => {
                body = std::mem::take(&mut d.1);
                body.clear();
                d.0.compress(payload, &mut body)?;
                (&body, 0x40)
            }
            None => (payload, 0),
        };
        let mut chunks = data.chunks(self.fragment);
        let first = chunks.next().unwrap_or(&[]);
        let last_first = data.len() <= self.fragment;
        let fin = if last_first { 0x80 } else { 0 };
        let mask = self.mask(rng);
        encode_raw(out, fin | rsv1 | op, first, mask);
        let rest = chunks.len();
        for (i, chunk) in chunks.enumerate() {
            let fin = if i + 1 == rest { 0x80 } else { 0 };
            let mask = self.mask(rng);
            encode_raw(out, fin | opcode::CONTINUATION, chunk, mask);
        }
        if let Some(d) = &mut self.deflater {
            d.1 = body;
        }
        Ok(out.len() - before)
    }

    /// Appends one control frame (ping, pong, close); returns its size.
    pub fn control(
        &mut self,
        out: &mut Vec<u8>,
        op: u8,
        payload: &[u8],
        rng: &mut fastrand::Rng,
    ) -> usize {
        let before = out.len();
        let mask = self.mask(rng);
        encode_raw(out, 0x80 | op, payload, mask);
        out.len() - before
    }

    /// Releases the compression buffer while the connection is idle.
    pub fn shrink(&mut self) {
        if let Some(d) = &mut self.deflater {
            d.1 = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::codec::{Decoder, Event};
    use crate::ws::deflate::{DeflateParams, Inflater};

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

    /// Server-role frames decoded by a server-role decoder and back: the
    /// fragments and compression survive the round trip.
    #[test]
    fn fragments_and_compression_round_trip() {
        let agreed = DeflateParams::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let text = "barrage ".repeat(2000);
        for compress in [false, true] {
            let deflater = compress.then(|| Deflater::new(Role::Client, &agreed));
            let mut enc = Encoder::new(Role::Client, deflater, Some(1000));
            let mut out = Vec::new();
            let wire = enc
                .message(&mut out, opcode::TEXT, text.as_bytes(), &mut rng)
                .unwrap();
            assert_eq!(wire, out.len());
            assert_eq!(out[0] & 0x40 != 0, compress, "RSV1 only when compressed");
            if !compress {
                // 16 frames of at most 1000 bytes: the first says TEXT without FIN.
                assert_eq!(out[0], opcode::TEXT);
                assert!(out.len() > text.len() + 16 * 6);
            } else {
                assert!(out.len() < text.len() / 10, "compressed to {}", out.len());
            }
            let inflater = compress.then(|| Inflater::new(Role::Server, &agreed));
            let mut d = Decoder::with_role(Role::Server, 1 << 20, inflater, out);
            match d.next_event().unwrap() {
                Some(Event::Message {
                    opcode: op,
                    payload,
                    wire: w,
                }) => {
                    assert_eq!(op, opcode::TEXT);
                    assert_eq!(payload, text.as_bytes());
                    assert_eq!(w, wire);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

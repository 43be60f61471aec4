//! Arbitrary bytes as what a peer sends: the frame decoder must return events
//! or a protocol error, never panic, and keep its promises on every event.
//!
//! Input layout: byte 0 picks the setup (bit 0: we are the server, so frames
//! must be masked; bit 1: permessage-deflate agreed, with default
//! parameters; bits 2-3: the peer resets its compression context per
//! message), byte 1 seeds the read sizes (1 to 4096 bytes per read, as a
//! socket would deliver them), the rest is the byte stream. Messages are
//! capped at 64 KiB so that zip bombs and oversized frames hit the limit.

#![no_main]

use barrage::ws::codec::opcode;
use barrage::ws::deflate::{DeflateParams, Inflater, Role};
use barrage::ws::{Decoder, Event};
use libfuzzer_sys::fuzz_target;

/// Largest message accepted, after reassembly and inflation.
const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let [setup, seed, stream @ ..] = data else {
        return;
    };
    let role = if setup & 1 != 0 {
        Role::Server
    } else {
        Role::Client
    };
    let inflater = (setup & 2 != 0).then(|| {
        let params = DeflateParams {
            client_no_context_takeover: setup & 4 != 0,
            server_no_context_takeover: setup & 8 != 0,
            ..DeflateParams::default()
        };
        Inflater::new(role, &params)
    });
    let mut decoder = Decoder::with_role(role, MAX_MESSAGE, inflater, Vec::new());

    // Read sizes from a small xorshift generator seeded by byte 1, spread
    // over 1..=4096 with short reads the most common.
    let mut state = u32::from(*seed) | 0x100;
    let mut next_read = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let bits = state % 13; // 2^0 ..= 2^12
        1 + (state >> 4) as usize % (1usize << bits)
    };

    let mut rest = stream;
    while !rest.is_empty() {
        let n = next_read().min(rest.len());
        decoder.buffer_mut().extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if !drain(&mut decoder) {
            // A protocol error ends the connection: nothing more is read.
            return;
        }
    }
});

/// Takes every complete event; false when the decoder reports an error.
fn drain(decoder: &mut Decoder) -> bool {
    loop {
        match decoder.next_event() {
            Ok(None) => return true,
            Err(e) => {
                // Every error maps to a close code a peer may be sent.
                assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e}");
                return false;
            }
            Ok(Some(Event::Message {
                opcode: op,
                payload,
                wire,
            })) => {
                assert!(op == opcode::TEXT || op == opcode::BINARY, "opcode {op}");
                assert!(payload.len() <= MAX_MESSAGE, "{} bytes", payload.len());
                assert!(wire >= 2, "wire {wire}");
                if op == opcode::TEXT {
                    assert!(std::str::from_utf8(payload).is_ok(), "text is not UTF-8");
                }
            }
            Ok(Some(Event::Ping(p) | Event::Pong(p))) => {
                assert!(p.len() <= 125, "control payload of {} bytes", p.len());
            }
            Ok(Some(Event::Close { code })) => {
                assert!(
                    matches!(code, 1000..=1003 | 1005 | 1007..=1014 | 3000..=4999),
                    "close code {code}"
                );
            }
        }
    }
}

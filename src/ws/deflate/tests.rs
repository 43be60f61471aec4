//! Round trips, the RFC 7692 examples, zip bombs and negotiation tables.

use super::*;
use NegotiationError as E;

fn dp(c: Option<u8>, s: Option<u8>, cn: bool, sn: bool) -> DeflateParams {
    let (client_max_window_bits, server_max_window_bits) = (c, s);
    let (client_no_context_takeover, server_no_context_takeover) = (cn, sn);
    DeflateParams {
        client_max_window_bits,
        server_max_window_bits,
        client_no_context_takeover,
        server_no_context_takeover,
    }
}

fn text(len: usize) -> Vec<u8> {
    let line = |i| format!("{{\"seq\":{i},\"msg\":\"the quick brown fox\"}}\n");
    (0..).flat_map(|i| line(i).into_bytes()).take(len).collect()
}

fn random(len: usize) -> Vec<u8> {
    let lcg = |x: &mut u64, _| {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Some((*x >> 56) as u8)
    };
    (0..len).scan(1u64, lcg).collect()
}

fn compress_one(d: &mut Deflater, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    d.compress(payload, &mut out).unwrap();
    out
}

#[test]
fn round_trips_both_ways_with_and_without_takeover() {
    let payloads = [
        vec![],
        b"x".to_vec(),
        text(64 * 1024),
        random(10_000),
        b"x".to_vec(),
    ];
    for (nct, bits, level) in [(false, 15, 1), (true, 15, 1), (false, 9, 6), (true, 12, 9)] {
        for (from, to) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let agreed = dp(Some(bits), Some(bits), nct, nct);
            let mut d = Deflater::with_level(from, &agreed, level);
            let mut i = Inflater::new(to, &agreed);
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            for p in payloads.iter().chain(&payloads) {
                wire.clear();
                d.compress(p, &mut wire).unwrap();
                assert!(!wire.ends_with(&TAIL), "tail not stripped");
                i.decompress(&wire, &mut back, 1 << 20).unwrap();
                assert!(back == *p, "{nct} {bits} {level} {from:?} len {}", p.len());
            }
        }
    }
}

#[test]
fn takeover_shrinks_repeats_and_no_takeover_repeats_bytes() {
    let msg = text(2000);
    let mut d = Deflater::new(Role::Client, &dp(None, None, false, false));
    let (first, second) = (compress_one(&mut d, &msg), compress_one(&mut d, &msg));
    assert!(
        second.len() < first.len() / 2,
        "{} {}",
        second.len(),
        first.len()
    );
    let mut d = Deflater::new(Role::Client, &dp(None, None, true, false));
    assert_eq!(compress_one(&mut d, &msg), compress_one(&mut d, &msg));
}

#[test]
fn rfc7692_examples() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let nct = dp(None, None, true, true);
    let mut d = Deflater::new(Role::Server, &nct);
    assert_eq!(compress_one(&mut d, b"Hello"), hello);
    assert_eq!(compress_one(&mut d, b"Hello"), hello);
    assert_eq!(compress_one(&mut d, b""), [0x00]);
    let mut out = Vec::new();
    Inflater::new(Role::Client, &nct)
        .decompress(&hello, &mut out, 5)
        .unwrap();
    assert_eq!(out, b"Hello");
    let mut i = Inflater::new(Role::Client, &DeflateParams::default());
    #[rustfmt::skip]
    let messages: [(&[u8], &[u8]); 5] = [
        (&hello, b"Hello"),
        (&[0xf2, 0x00, 0x11, 0x00, 0x00], b"Hello"), // §7.2.3.2: back-reference
        (&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], b"Hello"), // §7.2.3.3: BFINAL
        (&hello, b"Hello"), // a new stream after BFINAL
        (&[0x00], b""), // §7.2.3.6: empty message
    ];
    for (n, (wire, want)) in messages.into_iter().enumerate() {
        i.decompress(wire, &mut out, 100).unwrap();
        assert_eq!(out, want, "message {n}");
    }
}

#[test]
fn zip_bomb_is_refused_without_big_allocation() {
    let mut d = Deflater::with_level(Role::Server, &DeflateParams::default(), 9);
    let bomb = compress_one(&mut d, &vec![0u8; 50 << 20]);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let mut i = Inflater::new(Role::Client, &DeflateParams::default());
    let mut out = Vec::new();
    let err = i.decompress(&bomb, &mut out, 1 << 20);
    assert_eq!(err, Err(DeflateError::TooLarge(1 << 20)));
    assert!(out.capacity() < 2 << 20, "capacity {}", out.capacity());
    // Exactly at the limit is fine, one byte less is not.
    let mut d = Deflater::new(Role::Server, &DeflateParams::default());
    let wire = compress_one(&mut d, &[7; 4096]);
    let mut i = Inflater::new(Role::Client, &dp(None, None, false, true));
    i.decompress(&wire, &mut out, 4096).unwrap();
    assert_eq!(out, [7; 4096]);
    let err = i.decompress(&wire, &mut out, 4095);
    assert_eq!(err, Err(DeflateError::TooLarge(4095)));
}

#[test]
fn corrupt_input_is_reported_and_the_inflater_recovers() {
    let mut i = Inflater::new(Role::Client, &DeflateParams::default());
    let mut out = Vec::new();
    // Reserved block type 11, and a stored block whose NLEN does not match LEN.
    for bad in [&[0xff, 0xff][..], &[0x00, 0x05, 0x00, 0x00, 0x00]] {
        let err = i.decompress(bad, &mut out, 100).unwrap_err();
        assert!(matches!(err, DeflateError::Corrupt(_)), "{err}");
    }
    i.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
        .unwrap();
    assert_eq!(out, b"Hello");
}

#[test]
#[rustfmt::skip]
fn offers() {
    assert_eq!(DeflateParams::default().offer(), "permessage-deflate; client_max_window_bits");
    assert_eq!(dp(Some(10), Some(12), true, true).offer(), "permessage-deflate; client_no_context_takeover; \
        server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10");
    assert_eq!(dp(Some(16), Some(8), false, false).offer(),
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=15");
}

#[test]
#[rustfmt::skip]
fn accept_response_valid() {
    let offer = dp(None, Some(12), false, false);
    let cases = [
        ("", None),
        (" , ", None),
        ("permessage-deflate", Some(dp(None, None, false, false))),
        ("Permessage-Deflate ;Server_Max_Window_Bits=\"10\" ; client_max_window_bits = 11",
            Some(dp(Some(11), Some(10), false, false))),
        ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Some(dp(None, None, true, true))),
        ("permessage-deflate; server_max_window_bits=8", Some(dp(None, Some(8), false, false))),
    ];
    for (header, want) in cases {
        assert_eq!(offer.accept_response(header), Ok(want), "{header}");
    }
    // Our own hint and our own no_context_takeover stay in force.
    let hinted = dp(Some(10), None, true, false);
    let want = Ok(Some(dp(Some(10), None, true, false)));
    assert_eq!(hinted.accept_response("permessage-deflate; client_max_window_bits=12"), want);
    assert_eq!(hinted.accept_response("permessage-deflate"), want);
}

#[test]
#[rustfmt::skip]
fn accept_response_invalid() {
    let offer = dp(None, Some(12), false, false);
    let cases = [
        ("x-foo", E::NotOffered("x-foo".into())),
        ("permessage-deflate, x-foo", E::NotOffered("x-foo".into())),
        ("permessage-deflate, permessage-deflate", E::DuplicateExtension),
        ("per message", E::Malformed("per message".into())),
        ("permessage-deflate;; x", E::Malformed("permessage-deflate;; x".into())),
        ("permessage-deflate; a=\"b", E::Malformed("permessage-deflate; a=\"b".into())),
        ("permessage-deflate; foo", E::UnknownParam("foo".into())),
        ("permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover",
            E::DuplicateParam("server_no_context_takeover".into())),
        ("permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            E::DuplicateParam("client_max_window_bits".into())),
        ("permessage-deflate; client_max_window_bits=8", E::ClientWindowBits8),
        ("permessage-deflate; server_max_window_bits=13", E::ServerWindowTooLarge(13, 12)),
    ];
    for (header, want) in cases {
        assert_eq!(offer.accept_response(header), Err(want), "{header}");
    }
    let bad_values = [
        ("client_no_context_takeover=1", NO_VALUE),
        ("server_no_context_takeover=\"x\"", NO_VALUE),
        ("server_max_window_bits", NEEDS_VALUE),
        ("client_max_window_bits", NEEDS_VALUE),
        ("server_max_window_bits=16", NOT_BITS),
        ("server_max_window_bits=7", NOT_BITS),
        ("client_max_window_bits=09", NOT_BITS),
        ("client_max_window_bits=+9", NOT_BITS),
    ];
    for (param, why) in bad_values {
        let got = offer.accept_response(&format!("permessage-deflate; {param}"));
        assert_eq!(got, Err(E::BadValue(param.replace('"', ""), why)), "{param}");
    }
    let msg = E::NotOffered("x-foo".into()).to_string();
    assert_eq!(msg, "server accepted extension `x-foo` that was not offered");
    assert!(E::ClientWindowBits8.to_string().contains("zlib"));
    // Only reachable with an offer without client_max_window_bits (ours always has it).
    let response = "permessage-deflate; client_max_window_bits=10";
    assert_eq!(offer.check_response(None, response), Err(E::ClientWindowNotOffered));
    assert!(offer.check_response(None, "permessage-deflate").unwrap().is_some());
}

#[test]
#[rustfmt::skip]
fn negotiate_server_table() {
    let skip_two = "x-foo, permessage-deflate; server_max_window_bits=8, \
        permessage-deflate; client_max_window_bits=99, permessage-deflate; \
        server_max_window_bits=\"10\"; client_max_window_bits=12; client_no_context_takeover, \
        permessage-deflate";
    let cases = [
        ("", false, None),
        ("x-webkit-deflate-frame", false, None),
        ("permessage-deflate; server_max_window_bits=8", false, None),
        ("permessage-deflate; mystery", false, None),
        ("permessage-deflate", false, Some((dp(None, None, false, false), "permessage-deflate"))),
        ("permessage-deflate; client_max_window_bits=8", false,
            Some((dp(None, None, false, false), "permessage-deflate"))),
        ("permessage-deflate; client_max_window_bits", true, Some((dp(Some(15), None, false, true),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"))),
        ("permessage-deflate; server_no_context_takeover", false,
            Some((dp(None, None, false, true), "permessage-deflate; server_no_context_takeover"))),
        (skip_two, false, Some((dp(Some(12), Some(10), true, false), "permessage-deflate; \
            client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"))),
    ];
    for (request, nct, want) in cases {
        let want = want.map(|(params, header)| (params, header.to_string()));
        assert_eq!(DeflateParams::negotiate_server(request, nct), want, "{request}");
    }
    // What the server agrees is what the client concludes, and data flows.
    let offer = dp(Some(11), Some(10), false, true);
    let (server_side, header) = DeflateParams::negotiate_server(&offer.offer(), false).unwrap();
    assert_eq!(offer.accept_response(&header), Ok(Some(server_side.clone())));
    let mut d = Deflater::new(Role::Server, &server_side);
    let mut i = Inflater::new(Role::Client, &server_side);
    let mut out = Vec::new();
    for _ in 0..3 {
        i.decompress(&compress_one(&mut d, &text(3000)), &mut out, 3000).unwrap();
        assert_eq!(out, text(3000));
    }
}

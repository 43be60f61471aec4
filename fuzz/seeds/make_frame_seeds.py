#!/usr/bin/env python3
"""Writes the frame_decoder seed corpus into seeds/frame_decoder/.

Each seed is: setup byte (bit 0: decoder is the server, so frames are masked;
bit 1: permessage-deflate), read-size seed byte, then WebSocket frames.
Run from fuzz/: python3 seeds/make_frame_seeds.py
"""
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame_decoder")
MASK = b"\x37\xfa\x21\x3d"


def frame(first, payload, masked, length_form=None):
    n = len(payload)
    mbit = 0x80 if masked else 0
    if length_form is None:
        length_form = 7 if n < 126 else (16 if n <= 0xFFFF else 64)
    if length_form == 7:
        head = bytes([first, mbit | n])
    elif length_form == 16:
        head = bytes([first, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mbit | 127]) + struct.pack(">Q", n)
    if masked:
        body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
        return head + MASK + body
    return head + payload


class Deflate:
    """permessage-deflate sender: raw deflate, sync flush, tail removed."""

    def __init__(self):
        self.z = zlib.compressobj(1, zlib.DEFLATED, -15)

    def message(self, data):
        out = self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4] or b"\x00"


def stream(masked, compressed):
    d = Deflate()
    f = []

    def data(op, payload, fin=True):
        if compressed:
            f.append(frame((0x80 if fin else 0) | 0x40 | op, d.message(payload), masked))
        else:
            f.append(frame((0x80 if fin else 0) | op, payload, masked))

    data(0x1, b"hello")
    data(0x2, bytes(range(256)))
    data(0x1, "caf\u00e9 \u20ac \U0001f600".encode())
    f.append(frame(0x89, b"ping", masked))
    # A fragmented text message with a pong in between.
    if compressed:
        body = d.message(b"fragmented " * 40)
        f.append(frame(0x41, body[:10], masked))
        f.append(frame(0x8A, b"", masked))
        f.append(frame(0x00, body[10:20], masked))
        f.append(frame(0x80, body[20:], masked))
    else:
        f.append(frame(0x01, b"frag", masked))
        f.append(frame(0x8A, b"", masked))
        f.append(frame(0x00, b"men", masked))
        f.append(frame(0x80, b"ted", masked))
    data(0x2, b"x" * 300)  # 16-bit length
    f.append(frame(0x88, struct.pack(">H", 1000) + b"bye", masked))
    return b"".join(f)


def write(name, setup, seed, body):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(bytes([setup, seed]) + body)


def main():
    os.makedirs(OUT, exist_ok=True)
    write("client_plain", 0x00, 0x00, stream(False, False))
    write("server_plain", 0x01, 0x55, stream(True, False))
    write("client_deflate", 0x02, 0xA3, stream(False, True))
    write("server_deflate", 0x03, 0x11, stream(True, True))
    # RFC 7692 7.2.3.1: "Hello" compressed, then the same with context takeover.
    write("rfc7692_hello", 0x02, 0x01, bytes.fromhex("c107f248cdc9c90700") + bytes.fromhex("c105f200110000"))
    # A 1 MiB run of zeros in ~1 KiB: inflates past the 64 KiB limit.
    bomb = Deflate().message(b"\x00" * (1 << 20))
    write("zip_bomb", 0x02, 0x7F, frame(0xC2, bomb, False))
    # A frame announcing 2^62 bytes, and one with a 64-bit length form.
    write("huge_length", 0x00, 0x00, bytes([0x82, 127]) + struct.pack(">Q", 1 << 62))
    write("long_form_len", 0x00, 0x09, frame(0x82, b"abc", False, length_form=64))
    # Stored deflate blocks, a final block, and a corrupt block.
    write("stored_block", 0x02, 0x02, frame(0xC1, b"\x00\x03\x00\xfc\xffabc", False))
    fin = zlib.compressobj(1, zlib.DEFLATED, -15)
    write("final_block", 0x02, 0x03, frame(0xC1, fin.compress(b"end") + fin.flush(), False))
    write("corrupt_deflate", 0x02, 0x04, frame(0xC1, b"\xff\xff\xff\xff", False))


if __name__ == "__main__":
    main()

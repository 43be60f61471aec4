//! WebSocket transport for the load generator: the client opening handshake
//! (with `Sec-WebSocket-Accept` verified) and a client frame codec that can be
//! polled for reads and writes at once without losing data.
//!
//! The codec is our own rather than fastwebsockets' client because a
//! connection must keep reading while it waits for its next scheduled send:
//! fastwebsockets' `read_frame` consumes the frame header before it awaits the
//! rest of the frame, so it cannot sit in a `select!` next to a timer. Our
//! decoder only ever awaits `read_buf` into its own buffer (cancel safe) and
//! parses frames synchronously. Masking uses fastwebsockets' `unmask`.

pub mod codec;
pub mod deflate;
pub mod encoder;
pub mod handshake;
pub mod stream;

pub use codec::{Decoder, Event, ProtocolError};
pub use encoder::{Encoder, encode_frame, encode_raw};
pub use handshake::{HandshakeError, client_handshake};
pub use stream::Stream;

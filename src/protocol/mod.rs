//! RESP wire format: the request decoder and the reply writer.
pub mod decode;
pub mod reply;

pub use decode::{Decoded, Decoder, ProtocolError};
pub use reply::Reply;

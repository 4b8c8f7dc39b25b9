//! RESP wire format: the request decoder and the reply writer.
pub mod decode;
pub mod reply;

pub use decode::{ArgSource, Decoded, Decoder, ProtocolError};
pub use reply::Reply;

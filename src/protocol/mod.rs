//! RESP wire format: the request decoder, the reply writer, and the
//! encoding of a command we send (replication stream, MIGRATE).
pub mod decode;
pub mod reply;

pub use decode::{Decoded, Decoder, ProtocolError};
pub use reply::Reply;

/// A command as a RESP array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(parts.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for p in parts {
        out.push(b'$');
        out.extend_from_slice(n.format(p.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

//! Reply encoding straight into the connection's output buffer.
//!
//! Handlers write replies as they compute them; nothing builds an
//! intermediate frame tree on the hot path. The writer knows the client's
//! protocol version and picks the RESP2 or RESP3 form of each type as Redis
//! does (`addReplyMap`, `addReplyNull`, `addReplyDouble`...).

use bytes::{BufMut, BytesMut};

use crate::stats::ErrorCodes;

pub struct Reply<'a> {
    pub out: &'a mut BytesMut,
    pub resp3: bool,
    /// Error replies written so far (commandstats' failed_calls).
    pub errors: u32,
    /// Where each error reply is counted by code (INFO errorstats).
    error_codes: Option<&'a ErrorCodes>,
}

impl<'a> Reply<'a> {
    pub fn new(out: &'a mut BytesMut, resp3: bool) -> Self {
        Reply {
            out,
            resp3,
            errors: 0,
            error_codes: None,
        }
    }

    /// A reply whose error lines are also counted in `codes`.
    pub fn counted(out: &'a mut BytesMut, resp3: bool, codes: &'a ErrorCodes) -> Self {
        Reply {
            error_codes: Some(codes),
            ..Reply::new(out, resp3)
        }
    }

    #[inline]
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    pub fn ok(&mut self) {
        self.raw(b"+OK\r\n");
    }

    #[inline]
    pub fn simple(&mut self, s: &str) {
        self.out.reserve(s.len() + 3);
        self.out.put_u8(b'+');
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// An error line; `msg` starts with the error code (`ERR ...`,
    /// `WRONGTYPE ...`). Newlines would break the protocol, so they are
    /// replaced with spaces as Redis does.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes());
    }

    /// `error` for a message carrying client bytes that need not be UTF-8
    /// (Redis echoes them raw).
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.errors += 1;
        if let Some(codes) = self.error_codes {
            codes.count(msg);
        }
        self.out.reserve(msg.len() + 3);
        self.out.put_u8(b'-');
        for &b in msg {
            self.out
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.prefixed_len(b':', v);
    }

    #[inline]
    fn prefixed_len(&mut self, prefix: u8, v: i64) {
        let mut buf = itoa::Buffer::new();
        let s = buf.format(v);
        self.out.reserve(s.len() + 3);
        self.out.put_u8(prefix);
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        self.out.reserve(data.len() + 16);
        self.prefixed_len(b'$', data.len() as i64);
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn bulk_int(&mut self, v: i64) {
        let mut buf = itoa::Buffer::new();
        self.bulk(buf.format(v).as_bytes());
    }

    /// A null bulk string (RESP2 `$-1`) / null (RESP3 `_`).
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.raw(b"_\r\n");
        } else {
            self.raw(b"$-1\r\n");
        }
    }

    /// A null array (RESP2 `*-1`) / null (RESP3 `_`).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.raw(b"_\r\n");
        } else {
            self.raw(b"*-1\r\n");
        }
    }

    #[inline]
    pub fn array(&mut self, len: usize) {
        self.prefixed_len(b'*', len as i64);
    }

    /// A map of `pairs` entries: RESP3 `%`, RESP2 a flat array.
    pub fn map(&mut self, pairs: usize) {
        if self.resp3 {
            self.prefixed_len(b'%', pairs as i64);
        } else {
            self.prefixed_len(b'*', 2 * pairs as i64);
        }
    }

    /// A set: RESP3 `~`, RESP2 an array.
    pub fn set(&mut self, len: usize) {
        if self.resp3 {
            self.prefixed_len(b'~', len as i64);
        } else {
            self.prefixed_len(b'*', len as i64);
        }
    }

    /// A double: RESP3 `,`, RESP2 a bulk string (formatted as Redis's
    /// `%.17g`).
    pub fn double(&mut self, v: f64) {
        let s = format_double(v);
        if self.resp3 {
            self.out.put_u8(b',');
            self.out.extend_from_slice(s.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    pub fn boolean(&mut self, v: bool) {
        if self.resp3 {
            self.raw(if v { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(v as i64);
        }
    }

    /// A verbatim string (RESP3 `=` with a 3-letter format such as `txt`);
    /// RESP2 gets a bulk string.
    pub fn verbatim(&mut self, format: &str, data: &[u8]) {
        if self.resp3 {
            self.prefixed_len(b'=', (data.len() + 4) as i64);
            self.out.extend_from_slice(format.as_bytes());
            self.out.put_u8(b':');
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(data);
        }
    }
}

/// Formats a double as Redis's `%.17g` replies do, with inf/-inf/nan
/// spelled as Redis spells them.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return "nan".into();
    }
    format_g17(v)
}

/// C's `%.17g`.
fn format_g17(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = v.abs().log10().floor() as i32;
    let sci = format!("{:.16e}", v);
    // Use the exponent from the formatted value: rounding may bump it.
    let (mantissa, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let e: i32 = e.parse().unwrap_or(exp);
    if !(-4..17).contains(&e) {
        let m = trim_zeros(mantissa);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", e.abs())
    } else {
        let decimals = (16 - e).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_matches_c() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(-2.5e-7), "-2.4999999999999999e-07");
        assert_eq!(format_double(123456789.0), "123456789");
    }

    #[test]
    fn resp2_and_resp3_forms() {
        let mut out = BytesMut::new();
        let mut r = Reply::new(&mut out, false);
        r.null();
        r.map(1);
        r.double(1.5);
        assert_eq!(&out[..], b"$-1\r\n*2\r\n$3\r\n1.5\r\n");
        let mut out = BytesMut::new();
        let mut r = Reply::new(&mut out, true);
        r.null();
        r.map(1);
        r.double(1.5);
        r.verbatim("txt", b"hi");
        assert_eq!(&out[..], b"_\r\n%1\r\n,1.5\r\n=6\r\ntxt:hi\r\n");
    }
}

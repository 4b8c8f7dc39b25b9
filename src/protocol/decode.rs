//! Incremental, bounded request decoder (RESP multibulk and inline).
//!
//! The decoder never copies argument bytes: it records where each argument
//! lies in the connection's read buffer, relative to the start of the
//! command being parsed. Its state survives across reads, so a command that
//! arrives in many small reads is parsed exactly once, whatever its size
//! (a partial 100k-argument MSET is resumed where it stopped, never
//! re-parsed). The connection only discards buffer bytes up to the start
//! of an incomplete command, so the recorded offsets stay valid.
//!
//! Limits and error texts follow Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c).

use std::ops::Range;

/// Longest line Redis accepts for an inline command or a `*`/`$` header.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Redis's default `proto-max-bulk-len`.
pub const DEFAULT_PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Redis preallocates at most this many argv slots, whatever the header
/// claims, so a lying header cannot reserve memory it never fills.
const MAX_ARGV_PREALLOC: usize = 1024;

/// A protocol violation. Redis replies with `-ERR Protocol error: ...` and
/// closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    TooBigMultibulkCount,
    ExpectedDollar(u8),
    InvalidBulkLength,
    TooBigBulkCount,
    TooBigInline,
    UnbalancedQuotes,
    UnauthenticatedMultibulkLength,
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error line exactly as Redis sends it, without the `-` and CRLF.
    pub fn message(&self) -> String {
        match self {
            ProtocolError::InvalidMultibulkLength => {
                "ERR Protocol error: invalid multibulk length".into()
            }
            ProtocolError::TooBigMultibulkCount => {
                "ERR Protocol error: too big mbulk count string".into()
            }
            ProtocolError::ExpectedDollar(c) => {
                format!("ERR Protocol error: expected '$', got '{}'", *c as char)
            }
            ProtocolError::InvalidBulkLength => "ERR Protocol error: invalid bulk length".into(),
            ProtocolError::TooBigBulkCount => {
                "ERR Protocol error: too big bulk count string".into()
            }
            ProtocolError::TooBigInline => "ERR Protocol error: too big inline request".into(),
            ProtocolError::UnbalancedQuotes => {
                "ERR Protocol error: unbalanced quotes in request".into()
            }
            ProtocolError::UnauthenticatedMultibulkLength => {
                "ERR Protocol error: unauthenticated multibulk length".into()
            }
            ProtocolError::UnauthenticatedBulkLength => {
                "ERR Protocol error: unauthenticated bulk length".into()
            }
        }
    }
}

/// Where the arguments of a decoded command live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgSource {
    /// Ranges index the read buffer, from the start of the command.
    Buffer,
    /// Ranges index the decoder's own scratch buffer (inline commands,
    /// whose quoting and escapes make arguments that are not in the input).
    Scratch,
}

/// Outcome of one `Decoder::decode` call.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete command; its arguments are in `args()`. The command
    /// occupied `len` bytes of the buffer from `start`.
    Command { start: usize, len: usize },
    /// Bytes that make no command (`*0`, `*-1`, an empty inline line);
    /// consume them and carry on.
    Skip { len: usize },
    /// More bytes are needed. Bytes before `keep_from` may be discarded.
    Incomplete,
}

#[derive(Debug)]
pub struct Decoder {
    /// Offset in the buffer where the command being parsed starts.
    cmd_start: usize,
    /// Parse position relative to `cmd_start`.
    pos: usize,
    /// Arguments still expected by the multibulk being parsed; 0 when
    /// between commands.
    remaining_args: usize,
    /// Length of the bulk whose `$` header was read, if any.
    pending_bulk: Option<usize>,
    args: Vec<Range<usize>>,
    source: ArgSource,
    scratch: Vec<u8>,
    /// `proto-max-bulk-len`.
    pub max_bulk_len: usize,
    /// Enforce Redis's smaller limits for connections that have not
    /// authenticated yet.
    pub unauthenticated: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_PROTO_MAX_BULK_LEN)
    }
}

impl Decoder {
    pub fn new(max_bulk_len: usize) -> Self {
        Decoder {
            cmd_start: 0,
            pos: 0,
            remaining_args: 0,
            pending_bulk: None,
            args: Vec::with_capacity(8),
            source: ArgSource::Buffer,
            scratch: Vec::new(),
            max_bulk_len,
            unauthenticated: false,
        }
    }

    /// Argument ranges of the last decoded command.
    #[inline]
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// What the last command's argument ranges index: `buf` (the buffer
    /// given to `decode`) from the command's `start`, or the scratch
    /// buffer for an inline command.
    #[inline]
    pub fn arg_base<'a>(&'a self, buf: &'a [u8], start: usize) -> &'a [u8] {
        match self.source {
            ArgSource::Buffer => &buf[start..],
            ArgSource::Scratch => &self.scratch,
        }
    }

    /// Offset of the first byte that must be kept: everything before it
    /// belongs to commands already returned.
    #[inline]
    pub fn keep_from(&self) -> usize {
        self.cmd_start
    }

    /// Informs the decoder that the caller dropped the first `n` bytes of
    /// the buffer (n <= keep_from()).
    #[inline]
    pub fn consumed(&mut self, n: usize) {
        debug_assert!(n <= self.cmd_start);
        self.cmd_start -= n;
    }

    /// Whether the decoder is in the middle of a command.
    pub fn is_mid_command(&self) -> bool {
        self.remaining_args > 0 || self.pos > 0
    }

    /// Parses the next command from `buf[keep_from()..]`.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, ProtocolError> {
        let cmd = &buf[self.cmd_start..];
        if cmd.is_empty() {
            return Ok(Decoded::Incomplete);
        }
        if self.remaining_args == 0 && self.pos == 0 {
            self.args.clear();
            if cmd[0] != b'*' {
                return self.decode_inline(cmd);
            }
            self.source = ArgSource::Buffer;
            // Header `*<count>\r\n`.
            let Some(cr) = memchr(b'\r', cmd) else {
                if cmd.len() > PROTO_INLINE_MAX_SIZE {
                    return Err(ProtocolError::TooBigMultibulkCount);
                }
                return Ok(Decoded::Incomplete);
            };
            if cr + 2 > cmd.len() {
                return Ok(Decoded::Incomplete);
            }
            let count = match parse_i64(&cmd[1..cr]) {
                Some(n) if n <= i32::MAX as i64 => n,
                _ => return Err(ProtocolError::InvalidMultibulkLength),
            };
            if count > 10 && self.unauthenticated {
                return Err(ProtocolError::UnauthenticatedMultibulkLength);
            }
            let header_len = cr + 2;
            if count <= 0 {
                self.cmd_start += header_len;
                return Ok(Decoded::Skip { len: header_len });
            }
            self.remaining_args = count as usize;
            self.args
                .reserve(self.remaining_args.min(MAX_ARGV_PREALLOC));
            self.pos = header_len;
        }
        while self.remaining_args > 0 {
            let bulk_len = match self.pending_bulk {
                Some(n) => n,
                None => {
                    let rest = &cmd[self.pos..];
                    let Some(cr) = memchr(b'\r', rest) else {
                        if rest.len() > PROTO_INLINE_MAX_SIZE {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(Decoded::Incomplete);
                    };
                    if cr + 2 > rest.len() {
                        return Ok(Decoded::Incomplete);
                    }
                    if rest[0] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(rest[0]));
                    }
                    let n = match parse_i64(&rest[1..cr]) {
                        Some(n) if n >= 0 && (n as u64) <= self.max_bulk_len as u64 => n as usize,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if n > 16384 && self.unauthenticated {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    self.pos += cr + 2;
                    self.pending_bulk = Some(n);
                    n
                }
            };
            // Like Redis, the two bytes after the payload are skipped
            // unchecked.
            if cmd.len() - self.pos < bulk_len + 2 {
                return Ok(Decoded::Incomplete);
            }
            self.args.push(self.pos..self.pos + bulk_len);
            self.pos += bulk_len + 2;
            self.pending_bulk = None;
            self.remaining_args -= 1;
        }
        let start = self.cmd_start;
        let len = self.pos;
        self.cmd_start += len;
        self.pos = 0;
        Ok(Decoded::Command { start, len })
    }

    /// Size hint for the read buffer: the bytes still missing from a bulk
    /// whose header was read, so one large read can fetch it whole.
    pub fn bulk_bytes_missing(&self, buf_len: usize) -> usize {
        match self.pending_bulk {
            Some(n) => (self.cmd_start + self.pos + n + 2).saturating_sub(buf_len),
            None => 0,
        }
    }

    fn decode_inline(&mut self, cmd: &[u8]) -> Result<Decoded, ProtocolError> {
        let Some(nl) = memchr(b'\n', cmd) else {
            if cmd.len() > PROTO_INLINE_MAX_SIZE {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Decoded::Incomplete);
        };
        let line_end = if nl > 0 && cmd[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = &cmd[..line_end];
        self.source = ArgSource::Scratch;
        self.scratch.clear();
        if !split_args(line, &mut self.scratch, &mut self.args) {
            return Err(ProtocolError::UnbalancedQuotes);
        }
        let len = nl + 1;
        self.cmd_start += len;
        if self.args.is_empty() {
            return Ok(Decoded::Skip { len });
        }
        Ok(Decoded::Command {
            start: self.cmd_start - len,
            len,
        })
    }
}

/// Finds a line terminator the way Redis does, with `strchr` on its
/// NUL-terminated query buffer: a NUL before the terminator hides it, so
/// such a line is never complete (until it outgrows the line limit).
#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter()
        .position(|&b| b == needle || b == 0)
        .filter(|&i| hay[i] == needle)
}

/// Strict integer parsing as Redis's `string2ll`: optional leading '-',
/// no '+', no spaces, no leading zeros, must fit in i64.
#[inline]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line into arguments with Redis's `sdssplitargs` rules:
/// whitespace separates; "double quotes" allow \n \r \t \b \a \\ \" and
/// \xHH escapes; 'single quotes' allow only \'; a closing quote must be
/// followed by whitespace or the end. Returns false on unbalanced quotes.
pub fn split_args(line: &[u8], out: &mut Vec<u8>, args: &mut Vec<Range<usize>>) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    out.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    out.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => out.push(c),
                }
            }
            i += 1;
        }
        args.push(start..out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &[u8], d: &mut Decoder) -> Vec<Vec<Vec<u8>>> {
        let mut cmds = Vec::new();
        loop {
            match d.decode(buf).unwrap() {
                Decoded::Command { start, .. } => {
                    let base = d.arg_base(buf, start);
                    cmds.push(d.args().iter().map(|r| base[r.clone()].to_vec()).collect());
                }
                Decoded::Skip { .. } => {}
                Decoded::Incomplete => return cmds,
            }
        }
    }

    /// Feeds `input` one byte at a time, discarding consumed bytes as the
    /// connection does, and returns the decoded commands.
    fn feed_bytewise(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut d = Decoder::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut cmds = Vec::new();
        for &b in input {
            buf.push(b);
            loop {
                match d.decode(&buf)? {
                    Decoded::Command { start, .. } => {
                        let base = d.arg_base(&buf, start);
                        cmds.push(d.args().iter().map(|r| base[r.clone()].to_vec()).collect());
                    }
                    Decoded::Skip { .. } => {}
                    Decoded::Incomplete => break,
                }
            }
            let keep = d.keep_from();
            buf.drain(..keep);
            d.consumed(keep);
        }
        Ok(cmds)
    }

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_whole() {
        let mut d = Decoder::default();
        let cmds = collect(
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
            &mut d,
        );
        assert_eq!(cmds, vec![v(&["GET", "k"]), v(&["PING"])]);
    }

    #[test]
    fn multibulk_one_byte_at_a_time() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n";
        let cmds = feed_bytewise(input).unwrap();
        assert_eq!(cmds, vec![v(&["SET", "key", "va\r\nl"]), v(&["PING"])]);
    }

    #[test]
    fn inline_one_byte_at_a_time() {
        let cmds = feed_bytewise(b"PING\r\nset \"a b\" 'c d'\nECHO \"\\x41\\n\"\r\n\r\n").unwrap();
        assert_eq!(
            cmds,
            vec![v(&["PING"]), v(&["set", "a b", "c d"]), v(&["ECHO", "A\n"])]
        );
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        let cmds = feed_bytewise(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![v(&["PING"])]);
    }

    #[test]
    fn binary_and_empty_args() {
        let cmds = feed_bytewise(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$3\r\n\0\r\n\r\n").unwrap();
        assert_eq!(
            cmds,
            vec![vec![b"SET".to_vec(), vec![], b"\0\r\n".to_vec()]]
        );
    }

    #[test]
    fn matches_redis_protocol_crate_encoding() {
        // The redis-protocol crate encodes the request; we must decode
        // exactly what it wrote, whatever the read boundaries.
        use bytes::{Bytes, BytesMut};
        use redis_protocol::resp2::{encode::extend_encode, types::BytesFrame};
        let args: Vec<Bytes> = (0..50)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; i * 7]))
            .collect();
        let frame = BytesFrame::Array(args.iter().cloned().map(BytesFrame::BulkString).collect());
        let mut buf = BytesMut::new();
        extend_encode(&mut buf, &frame, false).unwrap();
        let cmds = feed_bytewise(&buf).unwrap();
        assert_eq!(cmds.len(), 1);
        let expected: Vec<Vec<u8>> = args.iter().map(|b| b.to_vec()).collect();
        assert_eq!(cmds[0], expected);
    }

    #[test]
    fn large_command_is_parsed_once_across_reads() {
        // Each decode call only looks at new bytes: parse positions advance
        // monotonically, so the work is linear in the input.
        let mut input = b"*20001\r\n$4\r\nMSET\r\n".to_vec();
        for i in 0..10000 {
            let k = format!("key:{i}");
            let val = format!("val:{i}");
            input.extend_from_slice(
                format!("${}\r\n{}\r\n${}\r\n{}\r\n", k.len(), k, val.len(), val).as_bytes(),
            );
        }
        let mut d = Decoder::default();
        let mut got = None;
        for end in (4096..input.len() + 4096).step_by(4096) {
            let end = end.min(input.len());
            if let Decoded::Command { .. } = d.decode(&input[..end]).unwrap() {
                got = Some(d.args().len());
            }
        }
        assert_eq!(got, Some(20001));
    }

    #[test]
    fn protocol_errors() {
        let err = |input: &[u8]| Decoder::default().decode(input).unwrap_err();
        assert_eq!(err(b"*abc\r\n"), ProtocolError::InvalidMultibulkLength);
        assert_eq!(
            err(b"*3000000000\r\n"),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(err(b"*1\r\nx\r\n"), ProtocolError::ExpectedDollar(b'x'));
        assert_eq!(err(b"*1\r\n$-5\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(err(b"*1\r\n$abc\r\n"), ProtocolError::InvalidBulkLength);
        assert_eq!(
            err(b"*1\r\n$600000000\r\n"),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(err(b"\"unbalanced\r\n"), ProtocolError::UnbalancedQuotes);
        assert_eq!(err(b"set \"a\"b\r\n"), ProtocolError::UnbalancedQuotes);
        let long = vec![b'*'; PROTO_INLINE_MAX_SIZE + 2];
        assert_eq!(err(&long), ProtocolError::TooBigMultibulkCount);
        let long = vec![b'a'; PROTO_INLINE_MAX_SIZE + 2];
        assert_eq!(err(&long), ProtocolError::TooBigInline);
        let mut long = b"*1\r\n$".to_vec();
        long.extend(vec![b'1'; PROTO_INLINE_MAX_SIZE + 2]);
        assert_eq!(err(&long), ProtocolError::TooBigBulkCount);
        assert_eq!(
            ProtocolError::ExpectedDollar(b'x').message(),
            "ERR Protocol error: expected '$', got 'x'"
        );
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"01"[..],
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"-0",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nul_hides_the_line_end_as_in_redis() {
        let mut d = Decoder::new(DEFAULT_PROTO_MAX_BULK_LEN);
        assert_eq!(d.decode(b"PI\0NG\r\n").unwrap(), Decoded::Incomplete);
        let mut d = Decoder::new(DEFAULT_PROTO_MAX_BULK_LEN);
        assert_eq!(d.decode(b"*1\0\r\n").unwrap(), Decoded::Incomplete);
        let mut long = b"P\0\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', PROTO_INLINE_MAX_SIZE));
        let mut d = Decoder::new(DEFAULT_PROTO_MAX_BULK_LEN);
        assert_eq!(d.decode(&long), Err(ProtocolError::TooBigInline));
    }
}

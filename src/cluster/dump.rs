//! DUMP / RESTORE payloads in Redis's format: one RDB-encoded value, the
//! RDB version (2 bytes, little-endian) and a CRC64 (Jones polynomial,
//! as Redis's crc64.c) of everything before it (8 bytes, little-endian).
//!
//! We write the plain RDB types (string, list, set, zset2, hash), which
//! every Redis version since 4 loads, and read those plus int- and
//! LZF-encoded strings (what Redis itself writes for strings). Redis's
//! compact encodings of small collections (listpack, quicklist, intset)
//! are not read yet: RESTORE answers "Bad data format" for them.
//!
//! Kept apart from full RDB files (src/rdb.rs, replication) on purpose;
//! the two value codecs are meant to be unified.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::cmd::{Args, Ctx};
use crate::store::{Entry, Value, ValueRef, lru_clock};
use crate::util::parse_i64;

pub const RDB_VERSION: u16 = 10;

const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET2: u8 = 5;

static CRC64_TABLE: std::sync::LazyLock<[u64; 256]> = std::sync::LazyLock::new(|| {
    // Reflected form of Jones' polynomial 0xad93d23594c935a9.
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut crc = i as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
        *slot = crc;
    }
    t
});

pub fn crc64(data: &[u8]) -> u64 {
    let t = &*CRC64_TABLE;
    data.iter().fold(0u64, |crc, &b| {
        t[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8)
    })
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A string, int-encoded when it is the canonical text of a small
/// integer (as Redis does), else length-prefixed.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = parse_i64(s)
        && v.to_string().as_bytes() == s
    {
        if let Ok(v) = i8::try_from(v) {
            out.push(0xc0);
            out.push(v as u8);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xc1);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xc2);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    put_len(out, s.len());
    out.extend_from_slice(s);
}

/// The DUMP payload of a value.
pub fn dump(value: &ValueRef) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        ValueRef::Str(s) => {
            out.push(T_STRING);
            put_str(&mut out, s);
        }
        ValueRef::List(l) => {
            out.push(T_LIST);
            put_len(&mut out, l.len());
            for e in l.iter() {
                put_str(&mut out, e);
            }
        }
        ValueRef::Set(s) => {
            out.push(T_SET);
            put_len(&mut out, s.len());
            for e in s.iter() {
                put_str(&mut out, e);
            }
        }
        ValueRef::ZSet(z) => {
            out.push(T_ZSET2);
            put_len(&mut out, z.len());
            for (m, score) in z.iter() {
                put_str(&mut out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        ValueRef::Hash(h) => {
            out.push(T_HASH);
            put_len(&mut out, h.len());
            for (k, v) in h.iter() {
                put_str(&mut out, k);
                put_str(&mut out, v);
            }
        }
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Redis's verifyDumpPayload: a known RDB version and a matching CRC.
pub fn verify(payload: &[u8]) -> bool {
    if payload.len() < 10 {
        return false;
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return false;
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    crc64(&payload[..body.len() + 2]) == u64::from_le_bytes(crc)
}

struct Reader<'a>(&'a [u8]);

/// Collections are capped while loading so a hostile length cannot make
/// us reserve unbounded memory up front.
const PREALLOC_CAP: usize = 1024;

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    /// Length, or `Err(encoding)` for the special string encodings.
    fn len(&mut self) -> Option<Result<usize, u8>> {
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => Ok((b & 0x3f) as usize),
            1 => Ok((((b & 0x3f) as usize) << 8) | self.byte()? as usize),
            2 if b == 0x80 => {
                let v = self.take(4)?;
                Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
            }
            2 if b == 0x81 => {
                let v = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(v);
                Ok(usize::try_from(u64::from_be_bytes(a)).ok()?)
            }
            3 => Err(b & 0x3f),
            _ => return None,
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        self.len()?.ok()
    }

    fn string(&mut self) -> Option<Bytes> {
        match self.len()? {
            Ok(n) => Some(Bytes::copy_from_slice(self.take(n)?)),
            Err(0) => Some(Bytes::from((self.byte()? as i8).to_string())),
            Err(1) => {
                let v = self.take(2)?;
                Some(Bytes::from(i16::from_le_bytes([v[0], v[1]]).to_string()))
            }
            Err(2) => {
                let v = self.take(4)?;
                Some(Bytes::from(
                    i32::from_le_bytes([v[0], v[1], v[2], v[3]]).to_string(),
                ))
            }
            Err(3) => {
                let clen = self.plain_len()?;
                let len = self.plain_len()?;
                let data = self.take(clen)?;
                lzf_decompress(data, len).map(Bytes::from)
            }
            Err(_) => None,
        }
    }

    fn double_text(&mut self) -> Option<f64> {
        let n = self.byte()?;
        match n {
            253 => Some(f64::NAN),
            254 => Some(f64::INFINITY),
            255 => Some(f64::NEG_INFINITY),
            n => std::str::from_utf8(self.take(n as usize)?)
                .ok()?
                .parse()
                .ok(),
        }
    }

    fn double_bin(&mut self) -> Option<f64> {
        let v = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(v);
        Some(f64::from_le_bytes(a))
    }
}

/// LZF (liblzf) decompression, as Redis's lzf_d.c; `None` on corrupt
/// input or a size mismatch.
pub fn lzf_decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    // The claimed size is only trusted as far as the data backs it.
    let mut out = Vec::with_capacity(out_len.min(1 << 20));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n)?);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
        if out.len() > out_len {
            return None;
        }
    }
    (out.len() == out_len).then_some(out)
}

/// Decodes a verified payload's value.
pub fn load(payload: &[u8]) -> Option<Value> {
    let body = &payload[..payload.len().checked_sub(10)?];
    let mut r = Reader(body);
    let t = r.byte()?;
    let v = match t {
        T_STRING => Value::Str(r.string()?),
        T_LIST => {
            let n = r.plain_len()?;
            let mut l = VecDeque::with_capacity(n.min(PREALLOC_CAP));
            for _ in 0..n {
                l.push_back(r.string()?);
            }
            Value::List(Box::new(l))
        }
        T_SET => {
            let n = r.plain_len()?;
            let mut s = HashSet::with_capacity_and_hasher(n.min(PREALLOC_CAP), Default::default());
            for _ in 0..n {
                s.insert(r.string()?);
            }
            Value::Set(Box::new(s))
        }
        T_ZSET | T_ZSET2 => {
            let n = r.plain_len()?;
            let mut z = HashMap::with_capacity_and_hasher(n.min(PREALLOC_CAP), Default::default());
            for _ in 0..n {
                let m = r.string()?;
                let score = if t == T_ZSET2 {
                    r.double_bin()?
                } else {
                    r.double_text()?
                };
                z.insert(m, score);
            }
            Value::ZSet(Box::new(z))
        }
        T_HASH => {
            let n = r.plain_len()?;
            let mut h = HashMap::with_capacity_and_hasher(n.min(PREALLOC_CAP), Default::default());
            for _ in 0..n {
                let k = r.string()?;
                let v = r.string()?;
                h.insert(k, v);
            }
            Value::Hash(Box::new(h))
        }
        _ => return None,
    };
    r.0.is_empty().then_some(v)
}

pub fn dump_cmd(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(args.get(1));
    match db.get(args.get(1), now) {
        Some(e) => reply.bulk(&dump(&e.value)),
        None => reply.null(),
    }
}

/// RESTORE and RESTORE-ASKING (routing treats the latter as ASKING).
pub fn restore(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let (mut replace, mut absttl) = (false, false);
    let mut idle: Option<i64> = None;
    let mut freq: Option<i64> = None;
    let mut i = 4;
    while i < args.len() {
        let a = args.get(i);
        let more = i + 1 < args.len();
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if a.eq_ignore_ascii_case(b"absttl") {
            absttl = true;
        } else if a.eq_ignore_ascii_case(b"idletime") && more && freq.is_none() {
            i += 1;
            let Some(v) = parse_i64(args.get(i)) else {
                return ctx.not_integer();
            };
            if v < 0 {
                return ctx.error("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle = Some(v);
        } else if a.eq_ignore_ascii_case(b"freq") && more && idle.is_none() {
            i += 1;
            let Some(v) = parse_i64(args.get(i)) else {
                return ctx.not_integer();
            };
            if !(0..=255).contains(&v) {
                return ctx.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
        } else {
            return ctx.syntax_error();
        }
        i += 1;
    }
    let now = ctx.now;
    if !replace && ctx.db(key).contains(key, now) {
        return ctx.error("BUSYKEY Target key name already exists.");
    }
    let Some(ttl) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    if ttl < 0 {
        return ctx.error("ERR Invalid TTL value, must be >= 0");
    }
    let payload = args.get(3);
    if !verify(payload) {
        return ctx.error("ERR DUMP payload version or checksum are wrong");
    }
    let Some(value) = load(payload) else {
        return ctx.error("ERR Bad data format");
    };
    let expire_at = match ttl {
        0 => 0,
        t if absttl => t as u64,
        t => now.saturating_add(t as u64),
    };
    let db = ctx.db(key);
    let existed = db.delete(key, now);
    if expire_at != 0 && expire_at < now {
        // Already expired: like Redis, the key is just gone.
        if existed {
            ctx.dirty += 1;
        }
        return ctx.reply.ok();
    }
    let mut entry = Entry::new(value, expire_at, now);
    if let Some(idle) = idle {
        entry.access = lru_clock(now.saturating_sub(idle as u64 * 1000));
    }
    if let Some(f) = freq {
        entry.freq = f as u8;
    }
    db.insert(key, entry);
    ctx.dirty += 1;
    ctx.reply.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn reads_redis_payloads() {
        // DUMP of "12345" from Redis 7.0.
        let p = b"\x00\xc1\x39\x30\x0a\x00\x9d\x94\xea\x27\x93\xfc\x08\xb9";
        assert!(verify(p));
        assert!(matches!(load(p), Some(Value::Str(s)) if &s[..] == b"12345"));
        assert_eq!(dump(&ValueRef::Str(b"12345")), p.to_vec());
    }

    #[test]
    fn lzf_roundtrip_literal_and_backref() {
        // "aaaaaaaaaa": literal 'a', then a back-reference of length 9.
        let input = [0x00, b'a', 0xe0, 0x00, 0x00];
        assert_eq!(
            lzf_decompress(&input, 10).as_deref(),
            Some(&b"aaaaaaaaaa"[..])
        );
        assert_eq!(lzf_decompress(&input, 11), None);
    }
}

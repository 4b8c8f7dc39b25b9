//! Redis RDB files, version 10 as Redis 7.0 writes them: the snapshot
//! format of SAVE/BGSAVE, of the dump loaded at start and of a full
//! resync.
//!
//! The writer emits plain encodings (strings, int-encoded strings, and
//! the generic list/set/hash/zset2 types), which every Redis since 2.x
//! loads. The reader also takes what Redis 7.0 writes for small values:
//! LZF-compressed strings, intsets, listpacks and quicklist 2.
//!
//! The value codec also serves DUMP/RESTORE (`write_value`, `read_value`;
//! the payload framing is in src/cluster/dump.rs).
//!
//! A file is written in pieces (header, one piece per shard, trailer) so a
//! snapshot can be produced shard by shard; the CRC64 is carried along by
//! whoever concatenates the pieces (`Crc64`).

use bytes::Bytes;

use crate::store::{BuildHasher, Db, Entry, EntryRef, Shard, Value, ValueRef};

pub const RDB_VERSION: u32 = 10;

const OP_FUNCTION2: u8 = 245;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_SET_LISTPACK: u8 = 20;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

// ------------------------------------------------------------------ CRC64

/// CRC-64/Jones, reflected, as Redis's crc64.c (poly 0xad93d23594c935a9,
/// init 0, no final xor).
///
/// Every byte of a snapshot passes through here, on the worker that
/// serves the replica: crc-fast folds 16 bytes at a time with carry-less
/// multiplication where the CPU has it (PCLMULQDQ, PMULL). The slicing-by-8
/// table it replaced took about 15% of a full resync's CPU on the primary.
pub struct Crc64(crc_fast::Digest);

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn value(&self) -> u64 {
        self.0.finalize()
    }
}

pub fn crc64(data: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.update(data);
    c.value()
}

// ----------------------------------------------------------------- writer

fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A string, int-encoded when it is the canonical text of an integer that
/// fits 32 bits (Redis's rdbTryIntegerEncoding).
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty()
        && s.len() <= 11
        && let Some(v) = crate::util::parse_i64(s)
        && canonical_int(s, v)
    {
        if let Ok(v) = i8::try_from(v) {
            out.push(0xC0 | ENC_INT8);
            out.push(v as u8);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xC0 | ENC_INT16);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xC0 | ENC_INT32);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Whether printing `v` gives back exactly `s` (no "+1", "01", "-0").
fn canonical_int(s: &[u8], v: i64) -> bool {
    let mut buf = itoa::Buffer::new();
    buf.format(v).as_bytes() == s
}

fn write_aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(OP_AUX);
    write_string(out, key.as_bytes());
    write_string(out, value);
}

/// What the header's aux fields record about the writer.
pub struct HeaderInfo<'a> {
    pub ctime_secs: u64,
    pub used_mem: u64,
    /// Replication ID and offset the snapshot corresponds to (a full
    /// resync), if any.
    pub repl: Option<(&'a str, u64)>,
    /// Keys and keys with an expiry in each database at the snapshot's
    /// point (`db_sizes`), written as RESIZEDB so a loader can size its
    /// tables before the keys arrive.
    pub db_sizes: &'a [(u64, u64)],
}

/// Adds `shard`'s keys and keys with an expiry to `sizes`, per database
/// (`HeaderInfo::db_sizes` is the sum over every shard).
pub fn add_db_sizes(sizes: &mut Vec<(u64, u64)>, shard: &Shard) {
    sizes.resize(sizes.len().max(shard.dbs.len()), (0, 0));
    for (size, db) in sizes.iter_mut().zip(&shard.dbs) {
        size.0 += db.len() as u64;
        size.1 += db.expires_len() as u64;
    }
}

/// Magic, version and aux fields, as Redis 7.0's rdbSaveInfoAuxFields.
pub fn write_header(out: &mut Vec<u8>, info: &HeaderInfo) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    write_aux(out, "redis-ver", crate::REDIS_VERSION.as_bytes());
    write_aux(out, "redis-bits", b"64");
    write_aux(out, "ctime", info.ctime_secs.to_string().as_bytes());
    write_aux(out, "used-mem", info.used_mem.to_string().as_bytes());
    if let Some((id, offset)) = info.repl {
        write_aux(out, "repl-stream-db", b"0");
        write_aux(out, "repl-id", id.as_bytes());
        write_aux(out, "repl-offset", offset.to_string().as_bytes());
    }
    write_aux(out, "aof-base", b"0");
    // Each database's size once, up front: the keys follow shard by
    // shard, under SELECTDB alone (Redis's loader takes RESIZEDB as a
    // sizing hint for the database selected, with or without keys after
    // it).
    for (index, &(keys, expires)) in info.db_sizes.iter().enumerate() {
        if keys > 0 {
            write_select(out, index);
            out.push(OP_RESIZEDB);
            write_len(out, keys);
            write_len(out, expires);
        }
    }
}

/// One key with its expiry.
pub fn write_entry(out: &mut Vec<u8>, key: &[u8], e: &EntryRef) {
    if e.expire_at != 0 {
        out.push(OP_EXPIRETIME_MS);
        out.extend_from_slice(&e.expire_at.to_le_bytes());
    }
    out.push(object_type(e.value));
    write_string(out, key);
    write_object(out, e.value);
}

/// A value with its type byte and no key: the body of a DUMP payload
/// (Redis's rdbSaveObjectType + rdbSaveObject).
pub fn write_value(out: &mut Vec<u8>, value: ValueRef) {
    out.push(object_type(value));
    write_object(out, value);
}

/// The RDB type `write_object` encodes a value as.
fn object_type(value: ValueRef) -> u8 {
    match value {
        ValueRef::Str(_) => TYPE_STRING,
        ValueRef::List(_) => TYPE_LIST,
        ValueRef::Set(_) => TYPE_SET,
        ValueRef::Hash(_) => TYPE_HASH,
        ValueRef::ZSet(_) => TYPE_ZSET_2,
    }
}

fn write_object(out: &mut Vec<u8>, value: ValueRef) {
    match value {
        ValueRef::Str(s) => write_string(out, s),
        ValueRef::List(l) => {
            write_len(out, l.len() as u64);
            for item in l.iter() {
                write_string(out, item);
            }
        }
        ValueRef::Set(s) => {
            write_len(out, s.len() as u64);
            for m in s.iter() {
                write_string(out, m);
            }
        }
        ValueRef::Hash(h) => {
            write_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                write_string(out, f);
                write_string(out, v);
            }
        }
        ValueRef::ZSet(z) => {
            write_len(out, z.len() as u64);
            for (m, score) in z.iter() {
                write_string(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }
}

/// Switches the database the following keys belong to.
pub fn write_select(out: &mut Vec<u8>, index: usize) {
    out.push(OP_SELECTDB);
    write_len(out, index as u64);
}

/// Every live key of one database, under SELECTDB (the header gave the
/// database's size). Redis accepts a database's keys spread over several
/// SELECTDB sections, which is what a shard-by-shard snapshot produces.
pub fn write_db(out: &mut Vec<u8>, index: usize, db: &Db, now_ms: u64) {
    if db.is_empty() {
        return;
    }
    write_select(out, index);
    for (k, e) in db.iter(now_ms) {
        write_entry(out, k, &e);
    }
}

/// Every database of a shard.
pub fn write_shard(out: &mut Vec<u8>, shard: &Shard, now_ms: u64) {
    for (i, db) in shard.dbs.iter().enumerate() {
        write_db(out, i, db, now_ms);
    }
}

/// The EOF opcode and the checksum of everything before it (`crc` has
/// seen every earlier byte; the opcode is added here).
pub fn write_trailer(out: &mut Vec<u8>, crc: &mut Crc64) {
    out.push(OP_EOF);
    crc.update(&[OP_EOF]);
    out.extend_from_slice(&crc.value().to_le_bytes());
}

// ----------------------------------------------------------------- reader

#[derive(Debug)]
pub struct RdbError(pub String);

impl std::fmt::Display for RdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, RdbError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(RdbError(msg.into()))
}

/// Aux fields a loader may care about.
#[derive(Debug, Default)]
pub struct LoadInfo {
    pub repl_id: Option<String>,
    pub repl_offset: Option<u64>,
    pub keys: u64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return err("Unexpected EOF reading RDB file");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn len_or_enc(&mut self) -> Result<Len> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain((b & 0x3f) as u64),
            1 => Len::Plain((((b & 0x3f) as u64) << 8) | self.u8()? as u64),
            2 => match b {
                0x80 => {
                    let s = self.take(4)?;
                    Len::Plain(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as u64)
                }
                0x81 => {
                    let s = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    Len::Plain(u64::from_be_bytes(a))
                }
                _ => return err(format!("Unknown length encoding {b} in rdbLoadLen()")),
            },
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => err("unexpected encoded length"),
        }
    }

    /// A length used to size something: bounded by the bytes left, so a
    /// corrupt file cannot make us allocate without limit.
    fn count(&mut self) -> Result<usize> {
        let n = self.len()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return err("length exceeds the file");
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<Bytes> {
        match self.len_or_enc()? {
            Len::Plain(n) => {
                if n > (self.buf.len() - self.pos) as u64 {
                    return err("Unexpected EOF reading RDB file");
                }
                Ok(Bytes::copy_from_slice(self.take(n as usize)?))
            }
            Len::Encoded(ENC_INT8) => Ok(int_bytes(self.u8()? as i8 as i64)),
            Len::Encoded(ENC_INT16) => {
                let s = self.take(2)?;
                Ok(int_bytes(i16::from_le_bytes([s[0], s[1]]) as i64))
            }
            Len::Encoded(ENC_INT32) => {
                let s = self.take(4)?;
                Ok(int_bytes(
                    i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                ))
            }
            Len::Encoded(ENC_LZF) => {
                let clen = self.count()?;
                let ulen = self.len()?;
                if ulen > 1 << 32 {
                    return err("LZF string too long");
                }
                let data = self.take(clen)?;
                lzf_decompress(data, ulen as usize).map(Bytes::from)
            }
            Len::Encoded(e) => err(format!("Unknown RDB string encoding type {e}")),
        }
    }

    fn f64_bin(&mut self) -> Result<f64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(f64::from_le_bytes(a))
    }

    /// The old text-encoded double of RDB_TYPE_ZSET.
    fn f64_text(&mut self) -> Result<f64> {
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RdbError("bad double value".into()))
            }
        }
    }
}

fn int_bytes(v: i64) -> Bytes {
    let mut buf = itoa::Buffer::new();
    Bytes::copy_from_slice(buf.format(v).as_bytes())
}

/// LZF as liblzf's lzf_decompress, with every reference bounds-checked.
fn lzf_decompress(input: &[u8], ulen: usize) -> Result<Vec<u8>> {
    // The announced length is only trusted as far as the input can
    // plausibly expand (a back reference yields at most 264 bytes from 2
    // or 3): the buffer grows as bytes are produced.
    let mut out = Vec::with_capacity(ulen.min(input.len().saturating_mul(132) + 64));
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if ip + n > input.len() || out.len() + n > ulen {
                return err("Invalid LZF compressed string");
            }
            out.extend_from_slice(&input[ip..ip + n]);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&b) = input.get(ip) else {
                    return err("Invalid LZF compressed string");
                };
                len += b as usize;
                ip += 1;
            }
            let Some(&b) = input.get(ip) else {
                return err("Invalid LZF compressed string");
            };
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + b as usize + 1;
            len += 2;
            if back > out.len() || out.len() + len > ulen {
                return err("Invalid LZF compressed string");
            }
            let start = out.len() - back;
            // Overlapping copies repeat bytes, so copy one at a time.
            for i in 0..len {
                let c = out[start + i];
                out.push(c);
            }
        }
    }
    if out.len() != ulen {
        return err("Invalid LZF compressed string");
    }
    Ok(out)
}

/// The elements of a listpack (integers as their decimal text).
fn listpack_entries(lp: &[u8]) -> Result<Vec<Bytes>> {
    let bad = || RdbError("Listpack integrity check failed".into());
    if lp.len() < 7 {
        return Err(bad());
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut p = 6;
    loop {
        let b = *lp.get(p).ok_or_else(bad)?;
        if b == 0xFF {
            break;
        }
        let get = |i: usize| lp.get(p + i).copied().ok_or_else(bad);
        let (item, entry_len) = if b & 0x80 == 0 {
            (int_bytes((b & 0x7f) as i64), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3f) as usize;
            let s = lp.get(p + 1..p + 1 + n).ok_or_else(bad)?;
            (Bytes::copy_from_slice(s), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            let raw = (((b & 0x1f) as u16) << 8) | get(1)? as u16;
            // Sign-extend 13 bits.
            let v = ((raw << 3) as i16 >> 3) as i64;
            (int_bytes(v), 2)
        } else if b & 0xF0 == 0xE0 {
            let n = (((b & 0x0f) as usize) << 8) | get(1)? as usize;
            let s = lp.get(p + 2..p + 2 + n).ok_or_else(bad)?;
            (Bytes::copy_from_slice(s), 2 + n)
        } else {
            match b {
                0xF0 => {
                    let n = u32::from_le_bytes([get(1)?, get(2)?, get(3)?, get(4)?]) as usize;
                    let s = lp.get(p + 5..p + 5 + n).ok_or_else(bad)?;
                    (Bytes::copy_from_slice(s), 5 + n)
                }
                0xF1 => (int_bytes(i16::from_le_bytes([get(1)?, get(2)?]) as i64), 3),
                0xF2 => {
                    let v = i32::from_le_bytes([0, get(1)?, get(2)?, get(3)?]) >> 8;
                    (int_bytes(v as i64), 4)
                }
                0xF3 => (
                    int_bytes(i32::from_le_bytes([get(1)?, get(2)?, get(3)?, get(4)?]) as i64),
                    5,
                ),
                0xF4 => {
                    let mut a = [0u8; 8];
                    for (i, x) in a.iter_mut().enumerate() {
                        *x = get(1 + i)?;
                    }
                    (int_bytes(i64::from_le_bytes(a)), 9)
                }
                _ => return Err(bad()),
            }
        };
        let backlen = match entry_len {
            0..=127 => 1,
            128..=16383 => 2,
            16384..=2_097_151 => 3,
            2_097_152..=268_435_455 => 4,
            _ => 5,
        };
        p += entry_len + backlen;
        out.push(item);
    }
    Ok(out)
}

fn intset_entries(is: &[u8]) -> Result<Vec<Bytes>> {
    let bad = || RdbError("Intset integrity check failed".into());
    if is.len() < 8 {
        return Err(bad());
    }
    let width = u32::from_le_bytes([is[0], is[1], is[2], is[3]]) as usize;
    let n = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || is.len() != 8 + width * n {
        return Err(bad());
    }
    Ok(is[8..]
        .chunks_exact(width)
        .map(|c| {
            let v = match width {
                2 => i16::from_le_bytes([c[0], c[1]]) as i64,
                4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            };
            int_bytes(v)
        })
        .collect())
}

fn parse_score(s: &[u8]) -> Result<f64> {
    crate::util::parse_f64(s).ok_or_else(|| RdbError("bad zset score".into()))
}

fn pairs_to_hash(items: Vec<Bytes>) -> Result<Value> {
    if !items.len().is_multiple_of(2) {
        return err("odd hash listpack");
    }
    let mut h = std::collections::HashMap::with_capacity_and_hasher(
        items.len() / 2,
        BuildHasher::default(),
    );
    let mut it = items.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        h.insert(f, v);
    }
    Ok(Value::Hash(Box::new(h)))
}

/// Collections are sized up front only this far: a length is bounded by
/// the bytes left, but an element takes one byte there and dozens in
/// memory, so a hostile length would still reserve far more than it sent.
const PREALLOC_CAP: usize = 1024;

fn read_object(r: &mut Reader, ty: u8) -> Result<Value> {
    use std::collections::{HashMap, HashSet, VecDeque};
    Ok(match ty {
        TYPE_STRING => Value::Str(r.string()?),
        TYPE_LIST => {
            let n = r.count()?;
            let mut l = VecDeque::with_capacity(n.min(PREALLOC_CAP));
            for _ in 0..n {
                l.push_back(r.string()?);
            }
            Value::List(Box::new(l))
        }
        TYPE_SET => {
            let n = r.count()?;
            let mut s =
                HashSet::with_capacity_and_hasher(n.min(PREALLOC_CAP), BuildHasher::default());
            for _ in 0..n {
                s.insert(r.string()?);
            }
            Value::Set(Box::new(s))
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = r.count()?;
            let mut z =
                HashMap::with_capacity_and_hasher(n.min(PREALLOC_CAP), BuildHasher::default());
            for _ in 0..n {
                let m = r.string()?;
                let score = if ty == TYPE_ZSET {
                    r.f64_text()?
                } else {
                    r.f64_bin()?
                };
                z.insert(m, score);
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_HASH => {
            let n = r.count()?;
            let mut h =
                HashMap::with_capacity_and_hasher(n.min(PREALLOC_CAP), BuildHasher::default());
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                h.insert(f, v);
            }
            Value::Hash(Box::new(h))
        }
        TYPE_SET_INTSET | TYPE_SET_LISTPACK => {
            let blob = r.string()?;
            let items = if ty == TYPE_SET_INTSET {
                intset_entries(&blob)?
            } else {
                listpack_entries(&blob)?
            };
            Value::Set(Box::new(items.into_iter().collect()))
        }
        TYPE_HASH_LISTPACK => pairs_to_hash(listpack_entries(&r.string()?)?)?,
        TYPE_ZSET_LISTPACK => {
            let items = listpack_entries(&r.string()?)?;
            if items.len() % 2 != 0 {
                return err("odd zset listpack");
            }
            let mut z = HashMap::with_capacity_and_hasher(items.len() / 2, BuildHasher::default());
            for pair in items.chunks_exact(2) {
                z.insert(pair[0].clone(), parse_score(&pair[1])?);
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_LIST_QUICKLIST_2 => {
            let nodes = r.count()?;
            let mut l = VecDeque::new();
            for _ in 0..nodes {
                let container = r.len()?;
                let blob = r.string()?;
                match container {
                    1 => l.push_back(blob),
                    2 => l.extend(listpack_entries(&blob)?),
                    _ => return err("Quicklist integrity check failed"),
                }
            }
            Value::List(Box::new(l))
        }
        other => return err(format!("Unsupported RDB object type {other}")),
    })
}

/// A value as `write_value` writes it (type byte, then the value) that
/// must fill `data` exactly: the body of a DUMP payload. Every encoding
/// the file reader takes is accepted, so RESTORE loads what Redis 7.0's
/// DUMP produces (listpacks, intsets, quicklists, LZF strings).
pub fn read_value(data: &[u8]) -> Result<Value> {
    let mut r = Reader { buf: data, pos: 0 };
    let ty = r.u8()?;
    let value = read_object(&mut r, ty)?;
    if r.pos != data.len() {
        return err("trailing bytes after the value");
    }
    if is_empty_collection(&value) {
        return err("empty key");
    }
    Ok(value)
}

/// Redis never stores an empty collection: RESTORE refuses one (as Redis's
/// rdbLoadObject does) and a file load skips it.
fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Str(_) => false,
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
    }
}

/// What a load finds, in file order.
pub enum Loaded {
    /// RESIZEDB: how many keys (and keys with an expiry) database `db`
    /// holds, a hint to size its tables before they arrive. The counts of
    /// all databases together are bounded by what the image could hold (a
    /// key takes at least 3 bytes), so forged counts cannot ask for more
    /// memory than a constant times the image's size.
    Sized {
        db: usize,
        keys: usize,
        expires: usize,
    },
    Key {
        db: usize,
        key: Bytes,
        entry: Entry,
    },
}

/// Parses a whole RDB image and hands what it holds to `sink`. `now_ms`
/// is the clock given to new entries (their LRU time).
pub fn load(data: &[u8], now_ms: u64, mut sink: impl FnMut(Loaded)) -> Result<LoadInfo> {
    let mut r = Reader { buf: data, pos: 0 };
    let magic = r.take(9)?;
    if &magic[..5] != b"REDIS" {
        return err("Wrong signature trying to load DB from file");
    }
    let version: u32 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| RdbError("Wrong signature trying to load DB from file".into()))?;
    if !(1..=RDB_VERSION).contains(&version) {
        return err(format!("Can't handle RDB format version {version}"));
    }
    let mut info = LoadInfo::default();
    // RESIZEDB counts, over all databases, are capped at the keys the
    // image could hold (a key takes at least 3 bytes).
    let mut hint_budget = data.len() / 3;
    let mut db = 0usize;
    let mut expire_at = 0u64;
    loop {
        let op = r.u8()?;
        match op {
            OP_EOF => break,
            OP_SELECTDB => db = r.len()? as usize,
            OP_RESIZEDB => {
                let keys = (r.len()? as usize).min(hint_budget);
                let expires = (r.len()? as usize).min(keys);
                hint_budget -= keys;
                sink(Loaded::Sized { db, keys, expires });
            }
            OP_EXPIRETIME_MS => {
                let s = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                expire_at = u64::from_le_bytes(a);
            }
            OP_EXPIRETIME => {
                let s = r.take(4)?;
                expire_at = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64 * 1000;
            }
            OP_IDLE => {
                r.len()?;
            }
            OP_FREQ => {
                r.u8()?;
            }
            OP_AUX => {
                let k = r.string()?;
                let v = r.string()?;
                match &k[..] {
                    b"repl-id" => info.repl_id = Some(String::from_utf8_lossy(&v).into_owned()),
                    b"repl-offset" => {
                        info.repl_offset = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())
                    }
                    _ => {}
                }
            }
            OP_MODULE_AUX | OP_FUNCTION2 => {
                return err(format!(
                    "Unsupported RDB opcode {op} (modules or functions)"
                ));
            }
            ty => {
                let key = r.string()?;
                let value = read_object(&mut r, ty)?;
                let expire_at = std::mem::take(&mut expire_at);
                if is_empty_collection(&value) {
                    continue;
                }
                let mut e = Entry::new(value, 0, now_ms);
                e.expire_at = expire_at;
                info.keys += 1;
                sink(Loaded::Key { db, key, entry: e });
            }
        }
    }
    if version >= 5 {
        let end = r.pos;
        let s = r.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        let expected = u64::from_le_bytes(a);
        // Redis writes 0 when rdbchecksum is off.
        if expected != 0 && expected != crc64(&data[..end]) {
            return err("Wrong RDB checksum. Aborting now.");
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis_test_vector() {
        // From Redis's crc64.c self test.
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        let text = b"This is a test of the emergency broadcast system.";
        let mut c = Crc64::new();
        c.update(&text[..7]);
        c.update(&text[7..]);
        assert_eq!(c.value(), crc64(text));
    }

    #[test]
    fn lengths_and_ints_roundtrip() {
        let mut out = Vec::new();
        for n in [
            0u64,
            63,
            64,
            16383,
            16384,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
        ] {
            write_len(&mut out, n);
        }
        for s in [
            "12",
            "-129",
            "40000",
            "2147483648",
            "007",
            "-0",
            "hello",
            "",
        ] {
            write_string(&mut out, s.as_bytes());
        }
        let mut r = Reader { buf: &out, pos: 0 };
        for n in [
            0u64,
            63,
            64,
            16383,
            16384,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
        ] {
            assert_eq!(r.len().unwrap(), n);
        }
        for s in [
            "12",
            "-129",
            "40000",
            "2147483648",
            "007",
            "-0",
            "hello",
            "",
        ] {
            assert_eq!(&r.string().unwrap()[..], s.as_bytes());
        }
        assert_eq!(r.pos, out.len());
    }

    #[test]
    fn every_type_roundtrips_with_expiry() {
        let mut shard = Shard::new(2, 1);
        let now = 1_000_000;
        let mut e = Entry::new(Value::Str(Bytes::from_static(b"v")), 0, now);
        e.expire_at = now + 5000;
        shard.dbs[0].insert(b"s", e);
        shard.dbs[1].insert(
            b"n",
            Entry::new(Value::Str(Bytes::from_static(b"-7")), 0, now),
        );
        let list = Value::List(Box::new(
            ["a", "b", "a"].iter().map(|s| Bytes::from(*s)).collect(),
        ));
        shard.dbs[0].insert(b"l", Entry::new(list, 0, now));
        let mut h = std::collections::HashMap::default();
        h.insert(Bytes::from("f"), Bytes::from("1"));
        shard.dbs[0].insert(b"h", Entry::new(Value::Hash(Box::new(h)), 0, now));
        let set = Value::Set(Box::new(
            ["x", "y"].iter().map(|s| Bytes::from(*s)).collect(),
        ));
        shard.dbs[0].insert(b"t", Entry::new(set, 0, now));
        let mut z = std::collections::HashMap::default();
        z.insert(Bytes::from("m"), 1.5);
        shard.dbs[0].insert(b"z", Entry::new(Value::ZSet(Box::new(z)), 0, now));

        let mut out = Vec::new();
        write_header(
            &mut out,
            &HeaderInfo {
                ctime_secs: 1,
                used_mem: 2,
                repl: Some(("abc", 7)),
                db_sizes: &[],
            },
        );
        write_shard(&mut out, &shard, now);
        let mut crc = Crc64::new();
        crc.update(&out);
        write_trailer(&mut out, &mut crc);

        let mut got = Vec::new();
        let info = load(&out, now, |item| {
            if let Loaded::Key { db, key, entry } = item {
                got.push((db, key, entry));
            }
        })
        .unwrap();
        assert_eq!(info.repl_id.as_deref(), Some("abc"));
        assert_eq!(info.repl_offset, Some(7));
        assert_eq!(got.len(), 6);
        let find = |k: &str| got.iter().find(|(_, key, _)| key == k.as_bytes()).unwrap();
        assert_eq!(find("s").2.expire_at, now + 5000);
        assert!(matches!(&find("n").2.value, Value::Str(s) if s == "-7"));
        assert_eq!(find("n").0, 1);
        assert!(matches!(&find("l").2.value, Value::List(l) if l.len() == 3 && l[2] == "a"));
        assert!(matches!(&find("z").2.value, Value::ZSet(z) if z[&Bytes::from("m")] == 1.5));

        // A flipped byte fails the checksum.
        let mut bad = out.clone();
        let i = bad.len() - 12;
        bad[i] ^= 1;
        assert!(load(&bad, now, |_| {}).is_err());
        // Truncation is an error, not a panic.
        for cut in 0..out.len() {
            let _ = load(&out[..cut], now, |_| {});
        }
    }

    #[test]
    fn header_gives_each_database_size_once_and_forged_sizes_are_bounded() {
        let mut shards = vec![Shard::new(3, 1), Shard::new(3, 2)];
        for (i, shard) in shards.iter_mut().enumerate() {
            for k in 0..5u64 {
                let key = format!("k{i}-{k}");
                let expire = if k < 2 { 10_000 } else { 0 };
                let mut e = Entry::new(Value::Str(Bytes::from("v")), 0, 1);
                e.expire_at = expire;
                shard.dbs[2].insert(key.as_bytes(), e);
            }
        }
        let mut sizes = Vec::new();
        for shard in &shards {
            add_db_sizes(&mut sizes, shard);
        }
        assert_eq!(sizes, vec![(0, 0), (0, 0), (10, 4)]);
        let mut out = Vec::new();
        let info = HeaderInfo {
            ctime_secs: 1,
            used_mem: 2,
            repl: None,
            db_sizes: &sizes,
        };
        write_header(&mut out, &info);
        for shard in &shards {
            write_shard(&mut out, shard, 1);
        }
        let mut crc = Crc64::new();
        crc.update(&out);
        write_trailer(&mut out, &mut crc);
        let mut sized = Vec::new();
        let mut keys = 0;
        load(&out, 1, |item| match item {
            Loaded::Sized {
                db,
                keys: n,
                expires,
            } => {
                assert_eq!(keys, 0, "a size after keys");
                sized.push((db, n, expires));
            }
            Loaded::Key { db, .. } => {
                assert_eq!(db, 2);
                keys += 1;
            }
        })
        .unwrap();
        // Once, before the keys, with the totals of both shards.
        assert_eq!(sized, vec![(2, 10, 4)]);
        assert_eq!(keys, 10);

        // Forged RESIZEDBs ask, together, for no more than the image
        // could hold.
        let mut forged = Vec::new();
        write_header(
            &mut forged,
            &HeaderInfo {
                db_sizes: &[],
                ..info
            },
        );
        for db in 0..16 {
            write_select(&mut forged, db);
            forged.push(OP_RESIZEDB);
            write_len(&mut forged, 1 << 40);
            write_len(&mut forged, 1 << 41);
        }
        let mut crc = Crc64::new();
        crc.update(&forged);
        write_trailer(&mut forged, &mut crc);
        let mut total = 0;
        load(&forged, 1, |item| {
            if let Loaded::Sized { keys, expires, .. } = item {
                assert!(expires <= keys);
                total += keys;
            }
        })
        .unwrap();
        assert!(total > 0 && total <= forged.len() / 3, "{total}");
    }

    #[test]
    fn empty_collections_are_refused_or_skipped() {
        let empty = Value::List(Box::default());
        let mut body = Vec::new();
        write_value(&mut body, empty.as_ref());
        assert!(read_value(&body).is_err());
        let mut one = Vec::new();
        write_value(&mut one, ValueRef::Str(b"x"));
        assert!(matches!(read_value(&one), Ok(Value::Str(s)) if s == "x"));

        let mut shard = Shard::new(1, 1);
        shard.dbs[0].insert(b"e", Entry::new(empty, 0, 1));
        shard.dbs[0].insert(b"s", Entry::new(Value::Str(Bytes::from("v")), 0, 1));
        let mut out = Vec::new();
        let info = HeaderInfo {
            ctime_secs: 1,
            used_mem: 2,
            repl: None,
            db_sizes: &[],
        };
        write_header(&mut out, &info);
        write_shard(&mut out, &shard, 1);
        let mut crc = Crc64::new();
        crc.update(&out);
        write_trailer(&mut out, &mut crc);
        let mut keys = Vec::new();
        load(&out, 1, |item| {
            if let Loaded::Key { key, .. } = item {
                keys.push(key);
            }
        })
        .unwrap();
        assert_eq!(keys, vec![Bytes::from("s")]);
    }

    #[test]
    fn lzf_backreferences() {
        // "abcabcabcabc": 3 literals then a back reference of length 9.
        let input = [2u8, b'a', b'b', b'c', (7 << 5), 0, 2];
        // len 7 + extra 0 + 2 = 9, offset 2+1 = 3.
        assert_eq!(lzf_decompress(&input, 12).unwrap(), b"abcabcabcabc");
        assert!(lzf_decompress(&input, 11).is_err());
        assert!(lzf_decompress(&[(1 << 5), 9], 4).is_err());
        // "aaaaaaaaaa": literal 'a', then a back reference of length 9 that
        // overlaps the bytes it produces.
        let input = [0x00, b'a', 0xe0, 0x00, 0x00];
        assert_eq!(lzf_decompress(&input, 10).unwrap(), b"aaaaaaaaaa");
        assert!(lzf_decompress(&input, 11).is_err());
    }

    #[test]
    fn listpack_and_intset_decode() {
        // A listpack with "ab", 5, -100 (13-bit), 1000 (13-bit).
        let mut lp = vec![0u8; 6];
        lp.extend_from_slice(&[0x82, b'a', b'b', 3]);
        lp.extend_from_slice(&[5, 1]);
        let v: i16 = -100;
        let raw = (v as u16) & 0x1fff;
        lp.extend_from_slice(&[0xC0 | (raw >> 8) as u8, raw as u8, 2]);
        lp.extend_from_slice(&[0xF1, 0x10, 0x27, 3]); // 10000 as int16
        lp.push(0xFF);
        let total = lp.len() as u32;
        lp[..4].copy_from_slice(&total.to_le_bytes());
        lp[4..6].copy_from_slice(&4u16.to_le_bytes());
        let items = listpack_entries(&lp).unwrap();
        let items: Vec<&[u8]> = items.iter().map(|b| &b[..]).collect();
        assert_eq!(items, vec![&b"ab"[..], b"5", b"-100", b"10000"]);

        let mut is = Vec::new();
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&(-3i16).to_le_bytes());
        is.extend_from_slice(&7i16.to_le_bytes());
        let items = intset_entries(&is).unwrap();
        assert_eq!(items, vec![Bytes::from("-3"), Bytes::from("7")]);
    }
}

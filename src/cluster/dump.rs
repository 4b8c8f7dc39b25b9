//! DUMP / RESTORE payloads in Redis's format: one RDB-encoded value, the
//! RDB version (2 bytes, little-endian) and a CRC64 of everything before
//! it (8 bytes, little-endian), as Redis's createDumpPayload.
//!
//! The value codec, the CRC64 and LZF are the RDB file's (src/rdb.rs):
//! DUMP writes the plain RDB types, which every Redis since 4 loads, and
//! RESTORE takes every encoding an RDB file may hold, including what
//! Redis 7.0 writes for small values (listpack, quicklist, intset, LZF).

use crate::cmd::{Args, Ctx};
use crate::rdb;
use crate::store::{Entry, Value, ValueRef, lru_clock};
use crate::util::parse_i64;

/// The version a payload carries, and the newest one RESTORE accepts.
const PAYLOAD_VERSION: u16 = rdb::RDB_VERSION as u16;

/// The DUMP payload of a value.
pub fn dump(value: &ValueRef) -> Vec<u8> {
    let mut out = Vec::new();
    rdb::write_value(&mut out, *value);
    out.extend_from_slice(&PAYLOAD_VERSION.to_le_bytes());
    let crc = rdb::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Redis's verifyDumpPayload: a known RDB version and a matching CRC.
pub fn verify(payload: &[u8]) -> bool {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return false;
    };
    let footer = &payload[body_len..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > PAYLOAD_VERSION {
        return false;
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    rdb::crc64(&payload[..body_len + 2]) == u64::from_le_bytes(crc)
}

/// Decodes a verified payload's value.
pub fn load(payload: &[u8]) -> Option<Value> {
    let body = &payload[..payload.len().checked_sub(10)?];
    rdb::read_value(body).ok()
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
    fn reads_and_writes_redis_string_payloads() {
        // DUMP of "12345" from Redis 7.0.
        let p = b"\x00\xc1\x39\x30\x0a\x00\x9d\x94\xea\x27\x93\xfc\x08\xb9";
        assert!(verify(p));
        assert!(matches!(load(p), Some(Value::Str(s)) if &s[..] == b"12345"));
        assert_eq!(dump(&ValueRef::Str(b"12345")), p.to_vec());
    }

    #[test]
    fn refuses_short_newer_or_corrupt_payloads() {
        let p = dump(&ValueRef::Str(b"v"));
        assert!(!verify(&p[..p.len() - 1]));
        assert!(!verify(&[0u8; 9]));
        let mut newer = p[..p.len() - 8].to_vec();
        newer[p.len() - 10] += 1;
        let crc = rdb::crc64(&newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert!(!verify(&newer));
        // A verified payload whose value has trailing bytes is no value.
        let mut trailing = vec![0u8, 1, b'v', b'x'];
        trailing.extend_from_slice(&PAYLOAD_VERSION.to_le_bytes());
        let crc = rdb::crc64(&trailing);
        trailing.extend_from_slice(&crc.to_le_bytes());
        assert!(verify(&trailing));
        assert!(load(&trailing).is_none());
    }
}

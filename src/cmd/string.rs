//! String commands (Redis's t_string.c).

use super::{Args, Ctx};
use crate::store::{EntryRef, ValueMut, ValueRef};
use crate::util::{eq_ic, parse_f64, parse_i64};

const NX: u32 = 1;
const XX: u32 = 1 << 1;
const GET: u32 = 1 << 2;
const KEEPTTL: u32 = 1 << 3;
const PERSIST: u32 = 1 << 4;
const EX: u32 = 1 << 5;
const PX: u32 = 1 << 6;
const EXAT: u32 = 1 << 7;
const PXAT: u32 = 1 << 8;
const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;

#[derive(PartialEq, Eq, Clone, Copy)]
enum CmdKind {
    Set,
    GetEx,
}

/// Parses SET / GETEX options as Redis's parseExtendedStringArgumentsOrReply.
/// Returns the flags and the expire argument index.
fn parse_options(args: &Args, from: usize, kind: CmdKind) -> Option<(u32, Option<usize>)> {
    let mut flags = 0u32;
    let mut expire = None;
    let mut j = from;
    while j < args.len() {
        let opt = args.get(j);
        let has_next = j + 1 < args.len();
        if eq_ic(opt, "nx") && flags & XX == 0 && kind == CmdKind::Set {
            flags |= NX;
        } else if eq_ic(opt, "xx") && flags & NX == 0 && kind == CmdKind::Set {
            flags |= XX;
        } else if eq_ic(opt, "get") && kind == CmdKind::Set {
            flags |= GET;
        } else if eq_ic(opt, "keepttl")
            && flags & (PERSIST | ANY_EXPIRE) == 0
            && kind == CmdKind::Set
        {
            flags |= KEEPTTL;
        } else if eq_ic(opt, "persist")
            && kind == CmdKind::GetEx
            && flags & (ANY_EXPIRE | KEEPTTL) == 0
        {
            flags |= PERSIST;
        } else if has_next && flags & (KEEPTTL | PERSIST) == 0 {
            let which = if eq_ic(opt, "ex") {
                EX
            } else if eq_ic(opt, "px") {
                PX
            } else if eq_ic(opt, "exat") {
                EXAT
            } else if eq_ic(opt, "pxat") {
                PXAT
            } else {
                return None;
            };
            if flags & ANY_EXPIRE & !which != 0 {
                return None;
            }
            flags |= which;
            expire = Some(j + 1);
            j += 1;
        } else {
            return None;
        }
        j += 1;
    }
    Some((flags, expire))
}

/// Converts an expire argument to absolute Unix ms, with Redis's errors.
/// `None` means the error reply was written.
fn expire_ms(ctx: &mut Ctx, arg: &[u8], flags: u32, cmd: &str) -> Option<u64> {
    let Some(v) = parse_i64(arg) else {
        ctx.not_integer();
        return None;
    };
    let seconds = flags & (EX | EXAT) != 0;
    let invalid = |ctx: &mut Ctx| ctx.error(&format!("ERR invalid expire time in '{cmd}' command"));
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        invalid(ctx);
        return None;
    }
    let mut ms = if seconds { v * 1000 } else { v };
    if flags & (EX | PX) != 0 {
        match ms.checked_add(ctx.now as i64) {
            Some(m) => ms = m,
            None => {
                invalid(ctx);
                return None;
            }
        }
    }
    Some(ms as u64)
}

/// Writes the GET-style reply for `key`: the value, null, or WRONGTYPE.
/// Returns false after a WRONGTYPE error.
fn reply_get(ctx: &mut Ctx, key: &[u8]) -> bool {
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.null(),
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => reply.bulk(v),
        Some(_) => {
            ctx.wrong_type();
            return false;
        }
    }
    true
}

pub fn get(ctx: &mut Ctx, args: &Args) {
    reply_get(ctx, args.get(1));
}

/// The shared core of SET, SETNX, SETEX and PSETEX.
fn set_generic(
    ctx: &mut Ctx,
    key: &[u8],
    value: &[u8],
    flags: u32,
    expire_at: u64,
    ok: &[u8],
    abort: Option<&[u8]>,
) {
    if flags & GET != 0 && !reply_get(ctx, key) {
        return;
    }
    let now = ctx.now;
    let db = ctx.db(key);
    let existing_ttl = db.get(key, now).map(|e| e.expire_at);
    let found = existing_ttl.is_some();
    if (flags & NX != 0 && found) || (flags & XX != 0 && !found) {
        if flags & GET == 0 {
            match abort {
                Some(a) => ctx.reply.raw(a),
                None => ctx.reply.null(),
            }
        }
        return;
    }
    let ttl = if flags & ANY_EXPIRE != 0 {
        expire_at
    } else if flags & KEEPTTL != 0 {
        existing_ttl.unwrap_or(0)
    } else {
        0
    };
    db.insert_str(key, value, ttl, now);
    ctx.dirty += 1;
    if flags & GET == 0 {
        ctx.reply.raw(ok);
    }
}

pub fn set(ctx: &mut Ctx, args: &Args) {
    let Some((flags, expire)) = parse_options(args, 3, CmdKind::Set) else {
        return ctx.syntax_error();
    };
    let mut at = 0;
    if let Some(i) = expire {
        match expire_ms(ctx, args.get(i), flags, "set") {
            Some(ms) => at = ms,
            None => return,
        }
    }
    set_generic(ctx, args.get(1), args.get(2), flags, at, b"+OK\r\n", None);
}

pub fn setnx(ctx: &mut Ctx, args: &Args) {
    set_generic(
        ctx,
        args.get(1),
        args.get(2),
        NX,
        0,
        b":1\r\n",
        Some(b":0\r\n"),
    );
}

fn setex_generic(ctx: &mut Ctx, args: &Args, unit: u32, name: &str) {
    let Some(at) = expire_ms(ctx, args.get(2), unit, name) else {
        return;
    };
    set_generic(ctx, args.get(1), args.get(3), unit, at, b"+OK\r\n", None);
}

pub fn setex(ctx: &mut Ctx, args: &Args) {
    setex_generic(ctx, args, EX, "setex");
}

pub fn psetex(ctx: &mut Ctx, args: &Args) {
    setex_generic(ctx, args, PX, "psetex");
}

pub fn getset(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    if !reply_get(ctx, key) {
        return;
    }
    let now = ctx.now;
    ctx.db(key).insert_str(key, args.get(2), 0, now);
    ctx.dirty += 1;
}

pub fn getdel(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    if !reply_get(ctx, key) {
        return;
    }
    if ctx.db(key).remove(key).is_some() {
        ctx.dirty += 1;
    }
}

pub fn getex(ctx: &mut Ctx, args: &Args) {
    let Some((flags, expire)) = parse_options(args, 2, CmdKind::GetEx) else {
        return ctx.syntax_error();
    };
    // Redis 7.0 checks, in order: option syntax, the key (nil or
    // WRONGTYPE), then the expire value.
    let key = args.get(1);
    let now = ctx.now;
    match ctx.db(key).get_read(key, now) {
        None => return ctx.reply.null(),
        Some(EntryRef {
            value: ValueRef::Str(_),
            ..
        }) => {}
        Some(_) => return ctx.wrong_type(),
    }
    let mut at = 0;
    if let Some(i) = expire {
        match expire_ms(ctx, args.get(i), flags, "getex") {
            Some(ms) => at = ms,
            None => return,
        }
    }
    let (db, reply) = ctx.db_reply(key);
    if let Some(EntryRef {
        value: ValueRef::Str(v),
        ..
    }) = db.get(key, now)
    {
        reply.bulk(v);
    }
    if flags & (EXAT | PXAT) != 0 && at <= now {
        db.remove(key);
        ctx.dirty += 1;
    } else if expire.is_some() {
        db.set_expire(key, at);
        ctx.dirty += 1;
    } else if flags & PERSIST != 0 && db.get(key, now).is_some_and(|e| e.expire_at != 0) {
        db.set_expire(key, 0);
        ctx.dirty += 1;
    }
}

pub fn mget(ctx: &mut Ctx, args: &Args) {
    ctx.reply.array(args.len() - 1);
    let now = ctx.now;
    for key in args.iter().skip(1) {
        let (db, reply) = ctx.db_reply(key);
        match db.get_read(key, now) {
            Some(EntryRef {
                value: ValueRef::Str(v),
                ..
            }) => reply.bulk(v),
            _ => reply.null(),
        }
    }
}

fn arity_error(ctx: &mut Ctx, name: &str) {
    ctx.error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ));
}

pub fn mset(ctx: &mut Ctx, args: &Args) {
    if args.len().is_multiple_of(2) {
        return arity_error(ctx, "mset");
    }
    let now = ctx.now;
    for i in (1..args.len()).step_by(2) {
        let key = args.get(i);
        ctx.db(key).insert_str(key, args.get(i + 1), 0, now);
    }
    ctx.dirty += (args.len() / 2) as u64;
    ctx.reply.ok();
}

pub fn msetnx(ctx: &mut Ctx, args: &Args) {
    if args.len().is_multiple_of(2) {
        return arity_error(ctx, "msetnx");
    }
    let now = ctx.now;
    for i in (1..args.len()).step_by(2) {
        let key = args.get(i);
        if ctx.db(key).contains(key, now) {
            return ctx.reply.int(0);
        }
    }
    for i in (1..args.len()).step_by(2) {
        let key = args.get(i);
        ctx.db(key).insert_str(key, args.get(i + 1), 0, now);
    }
    ctx.dirty += (args.len() / 2) as u64;
    ctx.reply.int(1);
}

/// Redis refuses to grow a string past proto-max-bulk-len.
fn check_string_length(ctx: &mut Ctx, total: u64) -> bool {
    let max = ctx
        .srv
        .config
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed) as u64;
    if total > max {
        ctx.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    true
}

pub fn append(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let add = args.get(2);
    let now = ctx.now;
    let current_len = match ctx.db(key).get(key, now) {
        None => None,
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => Some(v.len()),
        Some(_) => return ctx.wrong_type(),
    };
    let new_len = match current_len {
        None => {
            ctx.db(key).insert_str(key, add, 0, now);
            add.len()
        }
        Some(len) => {
            if !check_string_length(ctx, (len + add.len()) as u64) {
                return;
            }
            if let Some(mut e) = ctx.db(key).get_mut(key, now)
                && let ValueMut::Str(v) = e.value_mut()
            {
                let mut buf = Vec::with_capacity(len + add.len());
                buf.extend_from_slice(v);
                buf.extend_from_slice(add);
                e.set_str(&buf, true);
            }
            len + add.len()
        }
    };
    ctx.dirty += 1;
    ctx.reply.int(new_len as i64);
}

pub fn strlen(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.int(0),
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => reply.int(v.len() as i64),
        Some(_) => ctx.wrong_type(),
    }
}

pub fn getrange(ctx: &mut Ctx, args: &Args) {
    let (Some(mut start), Some(mut end)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
        return ctx.not_integer();
    };
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    let v = match db.get_read(key, now) {
        None => return reply.bulk(b""),
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => v,
        Some(_) => return ctx.wrong_type(),
    };
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return reply.bulk(b"");
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        reply.bulk(b"");
    } else {
        reply.bulk(&v[start as usize..=end as usize]);
    }
}

pub fn setrange(ctx: &mut Ctx, args: &Args) {
    let Some(offset) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    if offset < 0 {
        return ctx.error("ERR offset is out of range");
    }
    let offset = offset as u64;
    let key = args.get(1);
    let value = args.get(3);
    let now = ctx.now;
    let current_len = match ctx.db(key).get(key, now) {
        None => None,
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => Some(v.len()),
        Some(_) => return ctx.wrong_type(),
    };
    if value.is_empty() {
        return ctx.reply.int(current_len.unwrap_or(0) as i64);
    }
    if !check_string_length(ctx, offset + value.len() as u64) {
        return;
    }
    let offset = offset as usize;
    let new_len;
    if let Some(mut e) = ctx.db(key).get_mut(key, now) {
        let ValueMut::Str(v) = e.value_mut() else {
            return;
        };
        let len = v.len().max(offset + value.len());
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(v);
        buf.resize(len, 0);
        buf[offset..offset + value.len()].copy_from_slice(value);
        new_len = buf.len();
        e.set_str(&buf, true);
    } else {
        let mut buf = vec![0u8; offset + value.len()];
        buf[offset..].copy_from_slice(value);
        new_len = buf.len();
        ctx.db(key).insert_str(key, &buf, 0, now);
    }
    ctx.dirty += 1;
    ctx.reply.int(new_len as i64);
}

/// The shared core of INCR, DECR, INCRBY and DECRBY. Keeps the key's TTL.
fn incr_by(ctx: &mut Ctx, key: &[u8], by: i64) {
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    let current = match db.get(key, now) {
        None => None,
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => match parse_i64(v) {
            Some(n) => Some(n),
            None => return ctx.not_integer(),
        },
        Some(_) => return ctx.wrong_type(),
    };
    let old = current.unwrap_or(0);
    let Some(new) = old.checked_add(by) else {
        return ctx.error("ERR increment or decrement would overflow");
    };
    let mut buf = itoa::Buffer::new();
    let text = buf.format(new).as_bytes();
    if let Some(mut e) = db.get_mut(key, now) {
        e.set_str(text, false);
    } else {
        db.insert_str(key, text, 0, now);
    }
    reply.int(new);
    ctx.dirty += 1;
}

pub fn incr(ctx: &mut Ctx, args: &Args) {
    incr_by(ctx, args.get(1), 1);
}

pub fn decr(ctx: &mut Ctx, args: &Args) {
    incr_by(ctx, args.get(1), -1);
}

pub fn incrby(ctx: &mut Ctx, args: &Args) {
    let Some(by) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    incr_by(ctx, args.get(1), by);
}

pub fn decrby(ctx: &mut Ctx, args: &Args) {
    let Some(by) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    if by == i64::MIN {
        return ctx.error("ERR decrement would overflow");
    }
    incr_by(ctx, args.get(1), -by);
}

/// Formats like Redis's human-friendly long double output (`%.17Lf`,
/// trailing zeros trimmed, never an exponent). Redis adds in 80-bit long
/// double, so `0.1 + 0.2` prints `0.3`; in f64 the sum carries binary
/// noise past the 15th significant digit, so we round to 15 significant
/// digits, which is what the long double result shows for such inputs.
/// Integral values print exactly.
pub fn format_human_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (14 - exp).clamp(0, 17) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

pub fn incrbyfloat(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let current = match ctx.db(key).get(key, now) {
        None => Some(0.0),
        Some(EntryRef {
            value: ValueRef::Str(v),
            ..
        }) => parse_f64(v),
        Some(_) => return ctx.wrong_type(),
    };
    let (Some(current), Some(incr)) = (current, parse_f64(args.get(2))) else {
        return ctx.error("ERR value is not a valid float");
    };
    let new = current + incr;
    if new.is_nan() || new.is_infinite() {
        return ctx.error("ERR increment would produce NaN or Infinity");
    }
    let text = format_human_float(new);
    let (db, reply) = ctx.db_reply(key);
    reply.bulk(text.as_bytes());
    if let Some(mut e) = db.get_mut(key, now) {
        e.set_str(text.as_bytes(), false);
    } else {
        db.insert_str(key, text.as_bytes(), 0, now);
    }
    ctx.dirty += 1;
}

#[cfg(test)]
mod tests {
    use super::format_human_float as f;

    #[test]
    fn human_floats() {
        assert_eq!(f(10.5 + 0.1), "10.6");
        assert_eq!(f(5.0e3), "5000");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(1e-20), "0");
        assert_eq!(f(-1e-20), "0");
        assert_eq!(f(0.1 + 0.2), "0.3");
        assert_eq!(f(1e20), "100000000000000000000");
        assert_eq!(f(-1e-7), "-0.0000001");
    }
}

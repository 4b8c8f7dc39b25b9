//! Small helpers shared by command families: argument parsing with Redis's
//! error texts, glob matching, clocks.

use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::protocol::decode::parse_i64;

/// Unix time in ms at a `mono_ns` reading, from one wall-clock
/// reading taken at the first call: commands that already read the
/// monotonic clock (to time themselves) get the wall clock for free.
/// A later step of the system clock is not followed, as with a monotonic
/// clock; TTLs are relative in practice.
#[inline]
pub fn unix_ms_at(mono_ns: u64) -> u64 {
    use std::sync::OnceLock;
    static BASE: OnceLock<(u64, u64)> = OnceLock::new();
    let (base_ns, base_ms) = *BASE.get_or_init(|| (self::mono_ns(), now_ms()));
    base_ms + mono_ns.saturating_sub(base_ns) / 1_000_000
}

/// CLOCK_MONOTONIC in nanoseconds, as a plain integer. The dispatcher
/// reads it once per command (to time it and to derive its wall clock);
/// integer arithmetic on it costs a fraction of std's `Instant`, whose
/// subtraction normalises and checks two timespecs (callgrind showed the
/// clock handling at ~180 instructions per GET before).
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Microseconds elapsed since a `mono_ns` reading.
#[inline]
pub fn micros_since(start_ns: u64) -> u64 {
    mono_ns().saturating_sub(start_ns) / 1000
}

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[inline]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Parses a float as Redis's `string2ld`/`strtold` would accept it for
/// INCRBYFLOAT: no spaces, not empty, "inf"/"nan" rejected by the callers
/// that need a finite value.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5120 {
        return None;
    }
    if s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let st = std::str::from_utf8(s).ok()?;
    // Rust accepts "infinity", "inf", "nan" case-insensitively like strtold.
    let v: f64 = st.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    // strtold reports overflow (ERANGE) for a finite literal too large to
    // represent; only an explicit "inf" may yield infinity.
    let unsigned = st.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if v.is_infinite() && !unsigned.starts_with("inf") {
        return None;
    }
    Some(v)
}

/// ASCII case-insensitive equality.
#[inline]
pub fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Glob-style matching with Redis's `stringmatchlen` rules: `*`, `?`,
/// `[...]` with ranges and `^` negation, and `\` escapes.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    glob_inner(pattern, string, nocase, 0)
}

fn glob_inner(mut p: &[u8], mut s: &[u8], nocase: bool, depth: u32) -> bool {
    // Redis caps recursion to avoid stack exhaustion on hostile patterns.
    if depth > 1000 {
        return false;
    }
    let fold = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..s.len() {
                    if glob_inner(&p[1..], &s[i..], nocase, depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = !p.is_empty() && p[0] == b'^';
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        // Unterminated class: Redis treats the end as `]`.
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if fold(p[0]) == fold(s[0]) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut lo, mut hi) = (fold(p[0]), fold(p[2]));
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let c = fold(s[0]);
                        if c >= lo && c <= hi {
                            matched = true;
                        }
                        p = &p[2..];
                    } else if fold(p[0]) == fold(s[0]) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Pattern ended inside the class.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if fold(p[0]) != fold(s[0]) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if fold(c) != fold(s[0]) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while !p.is_empty() && p[0] == b'*' {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// Formats a byte count as Redis's `bytesToHuman` (e.g. `1.00M`).
pub fn bytes_to_human(n: u64) -> String {
    let n = n as f64;
    const UNITS: [(&str, f64); 5] = [
        ("K", 1024.0),
        ("M", 1024.0 * 1024.0),
        ("G", 1024.0 * 1024.0 * 1024.0),
        ("T", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("P", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ];
    if n < 1024.0 {
        return format!("{}B", n as u64);
    }
    let mut unit = UNITS[0];
    for u in UNITS {
        if n >= u.1 {
            unit = u;
        }
    }
    format!("{:.2}{}", n / unit.1, unit.0)
}

/// Parses a memory size as redis.conf does: plain bytes or a number with
/// k/kb/m/mb/g/gb (k = 1000, kb = 1024), case-insensitive.
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, mul)| lower.strip_suffix(suf).map(|n| (n.to_string(), *mul)))
    .unwrap_or((lower.clone(), 1));
    let v: u64 = num.parse().ok()?;
    v.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(!glob_match(b"a\\*b", b"axb", false));
        assert!(glob_match(b"key:*:x", b"key:12:x", false));
        assert!(!glob_match(b"key:*:x", b"key:12:y", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(glob_match(b"a*", b"a", false));
        assert!(!glob_match(b"", b"a", false));
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100mb"), Some(100 << 20));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("12345"), Some(12345));
        assert_eq!(parse_memory("x"), None);
        assert_eq!(bytes_to_human(1024 * 1024), "1.00M");
        assert_eq!(bytes_to_human(100), "100B");
    }
}

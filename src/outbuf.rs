//! Client output buffer limits (Redis's `client-output-buffer-limit`).
//!
//! Each client class (normal, replica, pubsub) has a hard limit, a soft
//! limit and a soft-limit duration: a client whose unsent output reaches
//! the hard limit, or stays at or above the soft limit for longer than the
//! duration, is disconnected (Redis's checkClientOutputBufferLimits). A
//! limit of 0 is no limit.
//!
//! The limits live in atomics so a connection reads them without a lock;
//! the per-connection soft-limit clock is `LimitClock`. Anything that
//! queues output for a peer (client connections, replica links) asks
//! `OutputLimits::check` after queuing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::util::parse_memory;

/// Redis's client classes for output limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    Normal = 0,
    Replica = 1,
    Pubsub = 2,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [
        ClientClass::Normal,
        ClientClass::Replica,
        ClientClass::Pubsub,
    ];

    /// The name CONFIG GET prints (Redis still says `slave`).
    fn config_name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }

    fn parse(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "slave" | "replica" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::Pubsub),
            _ => None,
        }
    }
}

/// One class's limits, in bytes and seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl ClassLimit {
    /// Smallest non-zero limit: output below it never needs a closer
    /// look (`usize::MAX` when the class is unlimited).
    #[inline]
    pub fn threshold(&self) -> usize {
        let nz = |v: u64| if v == 0 { u64::MAX } else { v };
        nz(self.hard)
            .min(nz(self.soft))
            .try_into()
            .unwrap_or(usize::MAX)
    }
}

/// Redis's default: normal unlimited, replica 256mb 64mb 60, pubsub 32mb
/// 8mb 60.
pub const DEFAULT: &str = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";

#[derive(Default)]
struct AtomicLimit {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_seconds: AtomicU64,
}

/// The live limits of every class.
#[derive(Default)]
pub struct OutputLimits {
    classes: [AtomicLimit; 3],
}

/// Result of checking a client's pending output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Over a limit: disconnect without sending what is pending.
    Disconnect,
}

/// When the client went over its soft limit (0: it is not over it).
#[derive(Clone, Copy, Debug, Default)]
pub struct LimitClock {
    soft_since_ms: u64,
}

impl LimitClock {
    /// Milliseconds until the soft limit's grace period ends, if the
    /// client is over its soft limit now.
    pub fn soft_deadline_ms(&self, limit: &ClassLimit) -> Option<u64> {
        (self.soft_since_ms != 0).then(|| self.soft_since_ms + limit.soft_seconds * 1000)
    }
}

impl OutputLimits {
    #[inline]
    pub fn get(&self, class: ClientClass) -> ClassLimit {
        let a = &self.classes[class as usize];
        ClassLimit {
            hard: a.hard.load(Relaxed),
            soft: a.soft.load(Relaxed),
            soft_seconds: a.soft_seconds.load(Relaxed),
        }
    }

    /// Applies a canonical configuration string (see `canonicalize`).
    pub fn apply(&self, canonical: &str) {
        if let Ok(parsed) = parse(canonical) {
            for (class, l) in parsed {
                let a = &self.classes[class as usize];
                a.hard.store(l.hard, Relaxed);
                a.soft.store(l.soft, Relaxed);
                a.soft_seconds.store(l.soft_seconds, Relaxed);
            }
        }
    }
}

/// Redis's checkClientOutputBufferLimits: `pending` bytes are queued for
/// a client of limits `limit`; `clock` is that client's soft-limit clock.
pub fn check(limit: &ClassLimit, pending: usize, clock: &mut LimitClock, now_ms: u64) -> Verdict {
    let pending = pending as u64;
    if limit.hard != 0 && pending >= limit.hard {
        return Verdict::Disconnect;
    }
    if limit.soft != 0 && pending >= limit.soft {
        if clock.soft_since_ms == 0 {
            // Redis starts the clock and tolerates the first crossing.
            clock.soft_since_ms = now_ms.max(1);
            return Verdict::Ok;
        }
        if now_ms.saturating_sub(clock.soft_since_ms) > limit.soft_seconds * 1000 {
            return Verdict::Disconnect;
        }
        return Verdict::Ok;
    }
    clock.soft_since_ms = 0;
    Verdict::Ok
}

const ERR_ARGS: &str = "Wrong number of arguments in buffer limit configuration.";
const ERR_CLASS: &str = "Invalid client class specified in buffer limit configuration.";
const ERR_VALUES: &str =
    "Error in hard, soft or soft_seconds setting in buffer limit configuration.";

fn parse(value: &str) -> Result<Vec<(ClientClass, ClassLimit)>, &'static str> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err(ERR_ARGS);
    }
    let mut out = Vec::new();
    for chunk in words.chunks(4) {
        let class = ClientClass::parse(chunk[0]).ok_or(ERR_CLASS)?;
        let hard = parse_memory(chunk[1]).ok_or(ERR_VALUES)?;
        let soft = parse_memory(chunk[2]).ok_or(ERR_VALUES)?;
        let soft_seconds: u64 = chunk[3].parse().map_err(|_| ERR_VALUES)?;
        out.push((
            class,
            ClassLimit {
                hard,
                soft,
                soft_seconds,
            },
        ));
    }
    Ok(out)
}

/// Merges `value` (any number of `class hard soft seconds` groups) into
/// the `current` canonical string and returns the new canonical string,
/// or Redis's reason for refusing it.
pub fn canonicalize(value: &str, current: &str) -> Result<String, String> {
    let mut limits = [ClassLimit::default(); 3];
    for (class, l) in parse(current).map_err(str::to_string)? {
        limits[class as usize] = l;
    }
    for (class, l) in parse(value).map_err(str::to_string)? {
        limits[class as usize] = l;
    }
    Ok(ClientClass::ALL
        .iter()
        .map(|c| {
            let l = limits[*c as usize];
            format!(
                "{} {} {} {}",
                c.config_name(),
                l.hard,
                l.soft,
                l.soft_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_merges_classes() {
        assert_eq!(canonicalize("", DEFAULT).unwrap(), DEFAULT);
        assert_eq!(
            canonicalize("replica 1 2 3 pubsub 4k 5mb 6", DEFAULT).unwrap(),
            "normal 0 0 0 slave 1 2 3 pubsub 4000 5242880 6"
        );
        assert_eq!(canonicalize("normal 1 2", DEFAULT).unwrap_err(), ERR_ARGS);
        assert_eq!(canonicalize("foo 1 2 3", DEFAULT).unwrap_err(), ERR_CLASS);
        assert_eq!(
            canonicalize("normal 1 2 -3", DEFAULT).unwrap_err(),
            ERR_VALUES
        );
    }

    #[test]
    fn hard_disconnects_at_once_soft_after_its_grace() {
        let limit = ClassLimit {
            hard: 100,
            soft: 50,
            soft_seconds: 2,
        };
        let mut clock = LimitClock::default();
        assert_eq!(check(&limit, 100, &mut clock, 1000), Verdict::Disconnect);
        assert_eq!(check(&limit, 60, &mut clock, 1000), Verdict::Ok);
        assert_eq!(check(&limit, 60, &mut clock, 3000), Verdict::Ok);
        assert_eq!(check(&limit, 60, &mut clock, 3001), Verdict::Disconnect);
        // Dropping below the soft limit resets the clock.
        assert_eq!(check(&limit, 10, &mut clock, 3002), Verdict::Ok);
        assert_eq!(check(&limit, 60, &mut clock, 9000), Verdict::Ok);
        let unlimited = ClassLimit::default();
        assert_eq!(unlimited.threshold(), usize::MAX);
        assert_eq!(limit.threshold(), 50);
    }
}

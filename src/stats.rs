//! Server statistics. Counters that every command bumps live per worker
//! thread (one writer each, so a bump is a plain load and store, not a
//! locked instruction); INFO sums them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::cmd::table::TABLE;

#[inline]
pub fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
}

/// Counters owned by one worker thread.
pub struct WorkerStats {
    pub commands: AtomicU64,
    pub net_input: AtomicU64,
    pub net_output: AtomicU64,
    pub error_replies: AtomicU64,
    /// INFO errorstats: error replies by code.
    pub error_codes: ErrorCodes,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub cmd: Vec<CmdStat>,
}

/// Error replies counted by their code (`ERR`, `WRONGTYPE`, `MOVED`...),
/// Redis's server.errors. Locked only when an error reply is written and
/// by INFO, so the mutex, one per worker, is never contended on the
/// command path. The codes are the first words of the server's own
/// messages (there are no scripts to raise arbitrary ones), so the map
/// stays small.
#[derive(Default)]
pub struct ErrorCodes(Mutex<HashMap<Box<[u8]>, u64>>);

impl ErrorCodes {
    /// Counts one error reply. Its code is what precedes the first space
    /// within the message's first 31 bytes, else `ERR`: Redis's
    /// afterErrorReply, which searches the 32 bytes of "-" + message.
    pub fn count(&self, msg: &[u8]) {
        let head = &msg[..msg.len().min(31)];
        let code = match head.iter().position(|&b| b == b' ') {
            Some(end) => &msg[..end],
            None => b"ERR",
        };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                map.insert(code.into(), 1);
            }
        }
    }

    /// Adds this worker's counts to `into`.
    pub fn add_to(&self, into: &mut HashMap<Box<[u8]>, u64>) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (code, n) in map.iter() {
            *into.entry(code.clone()).or_default() += n;
        }
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            commands: AtomicU64::new(0),
            net_input: AtomicU64::new(0),
            net_output: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            error_codes: ErrorCodes::default(),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            cmd: (0..TABLE.entries.len())
                .map(|_| CmdStat::default())
                .collect(),
        }
    }
}

impl WorkerStats {
    pub fn reset(&self) {
        for c in [
            &self.commands,
            &self.net_input,
            &self.net_output,
            &self.error_replies,
            &self.reads,
            &self.writes,
        ] {
            c.store(0, Relaxed);
        }
        self.error_codes.clear();
        for s in &self.cmd {
            s.calls.store(0, Relaxed);
            s.usec.store(0, Relaxed);
            s.rejected.store(0, Relaxed);
            s.failed.store(0, Relaxed);
        }
    }
}

/// Instantaneous rates as Redis computes them: samples of a running total
/// taken every 100 ms, averaged over the last 16 samples.
#[derive(Default)]
pub struct RateSampler {
    last_total: u64,
    last_ms: u64,
    samples: [u64; 16],
    idx: usize,
}

impl RateSampler {
    pub fn sample(&mut self, total: u64, now_ms: u64) {
        if self.last_ms != 0 && now_ms > self.last_ms {
            let per_sec = total.saturating_sub(self.last_total) * 1000 / (now_ms - self.last_ms);
            self.samples[self.idx % 16] = per_sec;
            self.idx += 1;
        }
        self.last_total = total;
        self.last_ms = now_ms;
    }

    pub fn rate(&self) -> u64 {
        self.samples.iter().sum::<u64>() / 16
    }
}

/// Rates for INFO, updated by the cron.
#[derive(Default)]
pub struct Rates {
    pub ops: RateSampler,
    pub input: RateSampler,
    pub output: RateSampler,
}

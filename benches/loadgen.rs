//! Open-loop load generator with latency percentiles, for whole-server
//! runs (scripts/latency.sh). redis-benchmark is closed-loop: each client
//! waits for its reply before sending again, so a slow reply delays the
//! requests behind it and hides their waiting time ("coordinated
//! omission"). Here every connection sends on a fixed schedule and each
//! latency is measured from the moment the request was *due*, as wrk2 does,
//! so percentiles at a given offered load are comparable between servers.
//!
//!   cargo bench --bench loadgen -- --port 6379 --rate 50000 --seconds 10 \
//!       --conns 50 --command get --keyspace 1000000
//!
//! Prints one line of `key=value` fields (rate, completed, errors, p50_us,
//! p99_us, p999_us, max_us) that the script parses.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Log-linear histogram: values below 128 ns are exact; above, each power
/// of two is split into 64 buckets (relative error under 1.6%).
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 * SUB as usize * 2],
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        let magnitude = 63 - v.leading_zeros(); // >= SUB_BITS + 1
        let shift = magnitude - SUB_BITS;
        let sub = (v >> shift) & (SUB - 1);
        (2 * SUB + (shift as u64 - 1) * SUB + sub) as usize
    }

    /// The upper edge of a bucket, so reported percentiles never
    /// understate.
    fn value_at(index: usize) -> u64 {
        let i = index as u64;
        if i < 2 * SUB {
            return i;
        }
        let shift = (i - 2 * SUB) / SUB + 1;
        let sub = (i - 2 * SUB) % SUB;
        ((SUB + sub + 1) << shift) - 1
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn percentile(&self, p: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_at(i).min(self.max);
            }
        }
        self.max
    }
}

struct Options {
    host: String,
    port: u16,
    rate: f64,
    seconds: f64,
    conns: usize,
    command: String,
    keyspace: u64,
    value_size: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 6379,
        rate: 10_000.0,
        seconds: 10.0,
        conns: 50,
        command: "get".into(),
        keyspace: 1_000_000,
        value_size: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue; // added by `cargo bench`
        }
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        match flag.as_str() {
            "--host" => o.host = value()?,
            "--port" => o.port = value()?.parse().map_err(|e| bad(&e))?,
            "--rate" => o.rate = value()?.parse().map_err(|e| bad(&e))?,
            "--seconds" => o.seconds = value()?.parse().map_err(|e| bad(&e))?,
            "--conns" => o.conns = value()?.parse().map_err(|e| bad(&e))?,
            "--command" => o.command = value()?.to_ascii_lowercase(),
            "--keyspace" => o.keyspace = value()?.parse().map_err(|e| bad(&e))?,
            "--value-size" => o.value_size = value()?.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.rate <= 0.0 || o.seconds <= 0.0 || o.conns == 0 || o.keyspace == 0 {
        return Err("rate, seconds, conns and keyspace must be positive".into());
    }
    if o.command != "get" && o.command != "set" {
        return Err("--command must be get or set".into());
    }
    Ok(o)
}

/// Reads one RESP reply of the shapes GET/SET return; true if it was an
/// error reply.
fn read_reply(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    filled: &mut usize,
) -> std::io::Result<bool> {
    loop {
        if let Some((len, is_error)) = complete_reply(&buf[..*filled]) {
            buf.copy_within(len..*filled, 0);
            *filled -= len;
            return Ok(is_error);
        }
        if *filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[*filled..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        *filled += n;
    }
}

fn complete_reply(b: &[u8]) -> Option<(usize, bool)> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    match b.first()? {
        b'$' => {
            let len: i64 = std::str::from_utf8(&b[1..line_end]).ok()?.parse().ok()?;
            if len < 0 {
                return Some((line_end + 2, false));
            }
            let total = line_end + 2 + len as usize + 2;
            (b.len() >= total).then_some((total, false))
        }
        b'-' => Some((line_end + 2, true)),
        _ => Some((line_end + 2, false)),
    }
}

fn encode(command: &str, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if command == "get" {
        out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
    } else {
        out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    }
    out.extend_from_slice(format!("${}\r\n", key.len()).as_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
    if command == "set" {
        out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

struct ConnResult {
    hist: Histogram,
    completed: u64,
    errors: u64,
}

fn run_connection(o: &Options, index: usize, start: Instant) -> std::io::Result<ConnResult> {
    let mut stream = TcpStream::connect((o.host.as_str(), o.port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let interval = Duration::from_secs_f64(o.conns as f64 / o.rate);
    // Spread the connections' schedules over one interval so they do not
    // all fire at once.
    let offset = interval.mul_f64(index as f64 / o.conns as f64);
    let end = start + Duration::from_secs_f64(o.seconds);
    let value = vec![b'x'; o.value_size];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut result = ConnResult {
        hist: Histogram::new(),
        completed: 0,
        errors: 0,
    };
    let (mut out, mut buf, mut filled) = (Vec::with_capacity(64), vec![0u8; 4096], 0usize);
    let mut due = start + offset;
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = format!("key:{:012}", seed % o.keyspace);
        encode(&o.command, key.as_bytes(), &value, &mut out);
        stream.write_all(&out)?;
        if read_reply(&mut stream, &mut buf, &mut filled)? {
            result.errors += 1;
        }
        result.hist.record(due.elapsed().as_nanos() as u64);
        result.completed += 1;
        due += interval;
    }
    Ok(result)
}

fn main() {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now() + Duration::from_millis(200);
    let results: Vec<std::io::Result<ConnResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.conns)
            .map(|i| {
                let o = &o;
                s.spawn(move || run_connection(o, i, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("connection thread panicked"))
            .collect()
    });
    let mut hist = Histogram::new();
    let (mut completed, mut errors) = (0, 0);
    for r in results {
        match r {
            Ok(r) => {
                hist.merge(&r.hist);
                completed += r.completed;
                errors += r.errors;
            }
            Err(e) => {
                eprintln!("loadgen: connection failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "rate={:.0} completed={} errors={} achieved={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        o.rate,
        completed,
        errors,
        completed as f64 / o.seconds,
        us(hist.percentile(50.0)),
        us(hist.percentile(99.0)),
        us(hist.percentile(99.9)),
        us(hist.max),
    );
}

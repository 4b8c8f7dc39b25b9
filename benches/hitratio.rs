//! Hit ratio of a server's maxmemory eviction, measured by replaying a
//! deterministic Zipf trace as a cache-aside client, next to the hit ratio
//! an exact LRU of the same capacity gets on the same trace.
//!
//! ```text
//! cargo bench --bench hitratio -- --port 6379 --calibrate-port 6379
//! cargo bench --bench hitratio -- --server redis:6379:allkeys-lru,allkeys-lfu \
//!     --server ferrocache:7000:allkeys-lru --calibrate-port 6379 --requests 1000000
//! ```
//!
//! Every server in one run gets the same maxmemory, so the table also shows
//! how many keys each one manages to hold in that budget (average DBSIZE).
//! Only std is used: raw RESP2 over a `TcpStream` is the cheapest client,
//! and a server under test needs nothing but GET, SET, DBSIZE, FLUSHALL,
//! INFO and CONFIG SET.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::time::Instant;

type Res<T> = Result<T, String>;

const USAGE: &str = "\
usage: cargo bench --bench hitratio -- [options]

servers (at least one):
  --port P               a server on --host:P (repeatable; --port2 P, --port3 P... also work)
  --label NAME           label of the N-th --port, in order (default: port-P)
  --server NAME:P[:POL,POL...]
                         a labelled server with its own policy list
  --policies POL,POL     policies for servers given without their own list
                         (repeatable, alias --policy; default allkeys-lru)
  --host H               default 127.0.0.1

trace:
  --requests N           Zipf requests per trace (default 3000000)
  --keys N               distinct Zipf keys (default 1000000)
  --alpha A              Zipf exponent (default 0.99)
  --seed S               PRNG seed (default 42)
  --traces T,T           zipf and/or zipf+scan (default both)
  --scan-every N         Zipf requests between two scans (default 250000)
  --scan-len N           fresh keys per scan (default 100000)

replay:
  --capacity C           exact-LRU capacity in keys, and the calibration size (default 100000)
  --value-size B         bytes per value (default 100)
  --maxmemory BYTES      maxmemory for every server (accepts 64mb, 1gb...);
                         default: calibrated on --calibrate-port
  --calibrate-port P     Redis server used to calibrate maxmemory (default: the first server)
  --batch N              GETs per pipeline (default 64)
  --warmup PCT           leading percentage of each trace replayed but not counted (default 10)
  --sample-every N       measured requests between DBSIZE samples (default 100000)

  --self-check           check the exact LRU and the Zipf sampler, then exit
";

#[derive(Clone, Debug)]
struct Server {
    label: String,
    port: u16,
    policies: Option<Vec<String>>,
}

#[derive(Debug)]
struct Opts {
    host: String,
    servers: Vec<Server>,
    requests: usize,
    keys: usize,
    alpha: f64,
    seed: u64,
    traces: Vec<String>,
    scan_every: usize,
    scan_len: usize,
    capacity: usize,
    value_size: usize,
    maxmemory: Option<u64>,
    calibrate_port: Option<u16>,
    batch: usize,
    warmup_pct: f64,
    sample_every: usize,
}

fn parse_count(name: &str, v: &str) -> Res<usize> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: expected a non-negative integer, got '{v}'"))
}

/// Redis's memory units: k/m/g are powers of 1000, kb/mb/gb of 1024.
fn parse_bytes(name: &str, v: &str) -> Res<u64> {
    let s = v.to_ascii_lowercase().replace('_', "");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("{name}: unknown unit in '{v}'")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{name}: expected bytes, got '{v}'"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("{name}: '{v}' is too large"))
}

fn parse_port(name: &str, v: &str) -> Res<u16> {
    v.parse()
        .map_err(|_| format!("{name}: expected a port, got '{v}'"))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        servers: Vec::new(),
        requests: 3_000_000,
        keys: 1_000_000,
        alpha: 0.99,
        seed: 42,
        traces: vec!["zipf".into(), "zipf+scan".into()],
        scan_every: 250_000,
        scan_len: 100_000,
        capacity: 100_000,
        value_size: 100,
        maxmemory: None,
        calibrate_port: None,
        batch: 64,
        warmup_pct: 10.0,
        sample_every: 100_000,
    };
    let mut ports: Vec<u16> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut policies: Option<Vec<String>> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // cargo bench appends --bench to the arguments of harness = false targets.
        if arg == "--bench" {
            continue;
        }
        if arg == "-h" || arg == "--help" {
            print!("{USAGE}");
            exit(0);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--host" => o.host = value()?,
            "--label" => labels.push(value()?),
            "--server" => {
                let v = value()?;
                let mut parts = v.splitn(3, ':');
                let label = parts.next().unwrap_or_default().to_string();
                let port = parts
                    .next()
                    .ok_or_else(|| format!("--server: expected NAME:PORT[:POLICIES], got '{v}'"))?;
                if label.is_empty() {
                    return Err(format!("--server: empty name in '{v}'"));
                }
                o.servers.push(Server {
                    label,
                    port: parse_port("--server", port)?,
                    policies: parts.next().map(split_list),
                });
            }
            "--policies" | "--policy" => policies
                .get_or_insert_with(Vec::new)
                .extend(split_list(&value()?)),
            "--requests" => o.requests = parse_count(&name, &value()?)?,
            "--keys" => o.keys = parse_count(&name, &value()?)?,
            "--alpha" => {
                let v = value()?;
                o.alpha = v
                    .parse()
                    .map_err(|_| format!("--alpha: expected a number, got '{v}'"))?;
            }
            "--seed" => {
                let v = value()?;
                o.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: expected an integer, got '{v}'"))?;
            }
            "--traces" | "--trace" => o.traces = split_list(&value()?),
            "--scan-every" => o.scan_every = parse_count(&name, &value()?)?,
            "--scan-len" => o.scan_len = parse_count(&name, &value()?)?,
            "--capacity" => o.capacity = parse_count(&name, &value()?)?,
            "--value-size" => o.value_size = parse_count(&name, &value()?)?,
            "--maxmemory" => o.maxmemory = Some(parse_bytes(&name, &value()?)?),
            "--calibrate-port" => o.calibrate_port = Some(parse_port(&name, &value()?)?),
            "--batch" => o.batch = parse_count(&name, &value()?)?,
            "--warmup" => {
                let v = value()?;
                o.warmup_pct = v
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("--warmup: expected a percentage, got '{v}'"))?;
            }
            "--sample-every" => o.sample_every = parse_count(&name, &value()?)?,
            n if n.starts_with("--port") && n[6..].chars().all(|c| c.is_ascii_digit()) => {
                ports.push(parse_port(n, &value()?)?)
            }
            _ => return Err(format!("unknown argument '{arg}' (try --help)")),
        }
    }
    if labels.len() > ports.len() {
        return Err("more --label than --port".into());
    }
    for (i, port) in ports.iter().enumerate() {
        o.servers.push(Server {
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("port-{port}")),
            port: *port,
            policies: None,
        });
    }
    let policies = policies.unwrap_or_else(|| vec!["allkeys-lru".into()]);
    for s in &mut o.servers {
        s.policies.get_or_insert_with(|| policies.clone());
    }
    if o.servers.is_empty() {
        return Err("give at least one --port or --server (try --help)".into());
    }
    for t in &o.traces {
        if t != "zipf" && t != "zipf+scan" {
            return Err(format!("--traces: unknown trace '{t}' (zipf, zipf+scan)"));
        }
    }
    if o.traces.is_empty() {
        return Err("--traces: no trace selected".into());
    }
    if o.traces.iter().any(|t| t == "zipf+scan") && (o.scan_every == 0 || o.scan_len == 0) {
        return Err("zipf+scan needs --scan-every and --scan-len above 0".into());
    }
    if o.traces.iter().any(|t| t == "zipf+scan") && o.requests <= o.scan_every {
        // Otherwise zipf+scan would silently be the zipf trace again.
        return Err(format!(
            "zipf+scan: --requests ({}) must exceed --scan-every ({}) for the trace to contain a scan",
            o.requests, o.scan_every
        ));
    }
    if o.keys == 0 || o.requests == 0 || o.batch == 0 || o.capacity == 0 || o.sample_every == 0 {
        return Err("--keys, --requests, --batch, --capacity, --sample-every must be > 0".into());
    }
    if !(0.0..100.0).contains(&o.warmup_pct) {
        return Err("--warmup must be in [0, 100)".into());
    }
    if o.alpha.is_nan() || o.alpha <= 0.0 {
        return Err("--alpha must be > 0".into());
    }
    Ok(o)
}

/// xoshiro256** seeded through splitmix64: fast, and the same seed gives
/// the same trace on every machine.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf over ranks 0..n (rank 0 the most popular, P(r) ~ 1/(r+1)^alpha):
/// an exact CDF table, sampled by binary search (20 probes for 1M ranks).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += (k as f64).powf(-alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        // u < 1 always, so forcing the last entry to 1 keeps every sample in range.
        *cdf.last_mut().expect("n > 0") = 1.0;
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c <= u) as u32
    }
}

/// Access ids: 0..keys are Zipf ranks; keys + e * scan_len + i is key i of scan e.
struct Trace {
    name: String,
    ids: Vec<u32>,
    /// One past the largest id.
    id_space: usize,
    scans: usize,
}

impl Trace {
    fn is_scan(&self, keys: usize, id: u32) -> bool {
        id as usize >= keys
    }
}

fn build_traces(o: &Opts) -> Res<Vec<Trace>> {
    let zipf = Zipf::new(o.keys, o.alpha);
    let mut rng = Rng::new(o.seed);
    let base: Vec<u32> = (0..o.requests).map(|_| zipf.sample(&mut rng)).collect();
    let mut out = Vec::new();
    for name in &o.traces {
        if name == "zipf" {
            out.push(Trace {
                name: name.clone(),
                ids: base.clone(),
                id_space: o.keys,
                scans: 0,
            });
            continue;
        }
        // The same Zipf sequence, with a scan block before request
        // scan_every, 2*scan_every, ...: the two traces differ only by the scans.
        let scans = (o.requests - 1) / o.scan_every;
        let id_space = o.keys + scans * o.scan_len;
        if id_space > u32::MAX as usize {
            return Err("trace too large: keys + scans * scan-len must fit in 32 bits".into());
        }
        let mut ids = Vec::with_capacity(o.requests + scans * o.scan_len);
        let mut epoch = 0usize;
        for (j, &r) in base.iter().enumerate() {
            if j > 0 && j % o.scan_every == 0 {
                let first = o.keys + epoch * o.scan_len;
                ids.extend((first..first + o.scan_len).map(|id| id as u32));
                epoch += 1;
            }
            ids.push(r);
        }
        out.push(Trace {
            name: name.clone(),
            ids,
            id_space,
            scans,
        });
    }
    Ok(out)
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn push_padded(buf: &mut Vec<u8>, mut n: usize, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    buf.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    buf.extend_from_slice(&tmp[i..]);
}

/// Fixed-width key names, so every key costs the server the same and the
/// calibration keys are representative: `key:0000042` and `s003:000042`
/// (both 11 bytes with the defaults).
struct KeyNames {
    keys: usize,
    scan_len: usize,
    zipf_width: usize,
    epoch_width: usize,
    scan_width: usize,
}

impl KeyNames {
    fn new(o: &Opts, max_scans: usize) -> KeyNames {
        KeyNames {
            keys: o.keys,
            scan_len: o.scan_len.max(1),
            zipf_width: digits(o.keys - 1).max(7),
            epoch_width: digits(max_scans).max(3),
            scan_width: digits(o.scan_len.max(1) - 1).max(6),
        }
    }

    fn key(&self, buf: &mut Vec<u8>, id: u32) {
        let id = id as usize;
        if id < self.keys {
            buf.extend_from_slice(b"key:");
            push_padded(buf, id, self.zipf_width);
        } else {
            let s = id - self.keys;
            buf.push(b's');
            push_padded(buf, s / self.scan_len, self.epoch_width);
            buf.push(b':');
            push_padded(buf, s % self.scan_len, self.scan_width);
        }
    }

    fn zipf_len(&self) -> usize {
        4 + self.zipf_width
    }

    fn scan_len_bytes(&self) -> usize {
        2 + self.epoch_width + self.scan_width
    }

    /// `$<len>\r\n<key>\r\n`
    fn bulk(&self, buf: &mut Vec<u8>, id: u32) {
        let len = if (id as usize) < self.keys {
            self.zipf_len()
        } else {
            self.scan_len_bytes()
        };
        buf.push(b'$');
        push_padded(buf, len, 0);
        buf.extend_from_slice(b"\r\n");
        self.key(buf, id);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Exact LRU over dense ids: an intrusive doubly linked list in two arrays
/// (index `n` is the sentinel; next of the sentinel is the most recent).
struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    present: Vec<bool>,
    len: usize,
    cap: usize,
}

impl Lru {
    fn new(n: usize, cap: usize) -> Lru {
        let s = n as u32;
        Lru {
            prev: vec![s; n + 1],
            next: vec![s; n + 1],
            present: vec![false; n],
            len: 0,
            cap,
        }
    }

    fn sentinel(&self) -> u32 {
        self.present.len() as u32
    }

    fn unlink(&mut self, id: u32) {
        let (p, n) = (self.prev[id as usize], self.next[id as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn push_front(&mut self, id: u32) {
        let s = self.sentinel();
        let first = self.next[s as usize];
        self.next[id as usize] = first;
        self.prev[id as usize] = s;
        self.prev[first as usize] = id;
        self.next[s as usize] = id;
    }

    /// A GET: true on a hit, which also makes the key the most recent.
    fn get(&mut self, id: u32) -> bool {
        if self.present[id as usize] {
            self.unlink(id);
            self.push_front(id);
            true
        } else {
            false
        }
    }

    /// A SET of an absent key: inserted as the most recent, evicting the least recent when full.
    fn insert(&mut self, id: u32) {
        if self.present[id as usize] {
            self.get(id);
            return;
        }
        if self.len == self.cap {
            let victim = self.prev[self.sentinel() as usize];
            self.unlink(victim);
            self.present[victim as usize] = false;
            self.len -= 1;
        }
        self.present[id as usize] = true;
        self.push_front(id);
        self.len += 1;
    }
}

/// Exact-LRU hits over the measured part of the trace. With `batch`, the
/// replay's own order: a batch's GETs first, then the SETs of its misses.
fn simulate_lru(t: &Trace, cap: usize, warm_end: usize, batch: Option<usize>) -> u64 {
    let mut lru = Lru::new(t.id_space, cap);
    let mut hits = 0u64;
    match batch {
        None => {
            for (i, &id) in t.ids.iter().enumerate() {
                if lru.get(id) {
                    hits += (i >= warm_end) as u64;
                } else {
                    lru.insert(id);
                }
            }
        }
        Some(b) => {
            let mut misses = Vec::with_capacity(b);
            for (c, chunk) in t.ids.chunks(b).enumerate() {
                misses.clear();
                for (j, &id) in chunk.iter().enumerate() {
                    if lru.get(id) {
                        hits += (c * b + j >= warm_end) as u64;
                    } else if !misses.contains(&id) {
                        misses.push(id);
                    }
                }
                for &id in &misses {
                    lru.insert(id);
                }
            }
        }
    }
    hits
}

#[derive(Debug)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    /// Read and dropped: no caller needs an array's elements.
    Array,
}

struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    scratch: Vec<u8>,
    addr: String,
}

fn encode(buf: &mut Vec<u8>, args: &[&[u8]]) {
    buf.push(b'*');
    push_padded(buf, args.len(), 0);
    buf.extend_from_slice(b"\r\n");
    for a in args {
        buf.push(b'$');
        push_padded(buf, a.len(), 0);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

fn parse_int(line: &[u8]) -> Res<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad integer in reply: {:?}", String::from_utf8_lossy(line)))
}

impl Conn {
    fn connect(host: &str, port: u16) -> Res<Conn> {
        let addr = format!("{host}:{port}");
        let stream = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let reader =
            BufReader::with_capacity(1 << 16, stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Conn {
            stream,
            reader,
            line: Vec::new(),
            scratch: Vec::new(),
            addr,
        })
    }

    fn io<T>(&self, r: io::Result<T>) -> Res<T> {
        r.map_err(|e| format!("{}: {e}", self.addr))
    }

    fn send(&mut self, buf: &[u8]) -> Res<()> {
        let r = self.stream.write_all(buf);
        self.io(r)
    }

    /// The next line without its CRLF, in `self.line`.
    fn read_line(&mut self) -> Res<()> {
        self.line.clear();
        let r = self.reader.read_until(b'\n', &mut self.line);
        let n = self.io(r)?;
        if n == 0 {
            return Err(format!("{}: connection closed by the server", self.addr));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(format!("{}: reply line without CRLF", self.addr));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    fn read_reply(&mut self) -> Res<Reply> {
        self.read_line()?;
        let (kind, rest) = match self.line.split_first() {
            Some((k, r)) => (*k, r),
            None => return Err(format!("{}: empty reply line", self.addr)),
        };
        let text = || String::from_utf8_lossy(rest).into_owned();
        Ok(match kind {
            b'+' => Reply::Status(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Int(parse_int(rest)?),
            b'$' => {
                let n = parse_int(rest)?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut data = vec![0; n as usize + 2];
                    let r = self.reader.read_exact(&mut data);
                    self.io(r)?;
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            }
            b'*' => {
                let n = parse_int(rest)?;
                if n < 0 {
                    Reply::Array
                } else {
                    for _ in 0..n {
                        self.read_reply()?;
                    }
                    Reply::Array
                }
            }
            other => {
                return Err(format!(
                    "{}: unexpected reply type '{}'",
                    self.addr, other as char
                ));
            }
        })
    }

    fn command(&mut self, args: &[&[u8]]) -> Res<Reply> {
        let mut buf = Vec::new();
        encode(&mut buf, args);
        self.send(&buf)?;
        self.read_reply()
    }

    /// A command that must answer +OK.
    fn ok(&mut self, args: &[&[u8]]) -> Res<()> {
        match self.command(args)? {
            Reply::Status(s) if s == "OK" => Ok(()),
            other => Err(format!("{}: {} answered {other:?}", self.addr, show(args))),
        }
    }

    fn int(&mut self, args: &[&[u8]]) -> Res<i64> {
        match self.command(args)? {
            Reply::Int(n) => Ok(n),
            other => Err(format!("{}: {} answered {other:?}", self.addr, show(args))),
        }
    }

    /// A numeric field of INFO <section>, or None when the server does not report it.
    fn info_field(&mut self, section: &str, field: &str) -> Res<Option<u64>> {
        let body = match self.command(&[b"INFO", section.as_bytes()])? {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(format!("{}: INFO {section} answered {other:?}", self.addr)),
        };
        Ok(body.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        }))
    }

    /// GET reply: Ok(true) on a hit of the expected length, Ok(false) on nil.
    fn read_get(&mut self, value_size: usize) -> Res<bool> {
        self.read_line()?;
        match self.line.first() {
            Some(b'$') if &self.line[1..] == b"-1" => Ok(false),
            Some(b'$') => {
                let n = parse_int(&self.line[1..])?;
                if n != value_size as i64 {
                    return Err(format!(
                        "{}: GET returned {n} bytes, expected {value_size}",
                        self.addr
                    ));
                }
                self.scratch.resize(n as usize + 2, 0);
                let r = self.reader.read_exact(&mut self.scratch);
                self.io(r)?;
                Ok(true)
            }
            _ => Err(format!(
                "{}: GET answered {:?}",
                self.addr,
                String::from_utf8_lossy(&self.line)
            )),
        }
    }

    /// SET reply: Ok(None) for +OK, Ok(Some(error)) for an error reply
    /// (an OOM error is a result, not a failure of the tool).
    fn read_set(&mut self) -> Res<Option<String>> {
        self.read_line()?;
        match self.line.first() {
            Some(b'+') if &self.line[1..] == b"OK" => Ok(None),
            Some(b'-') => Ok(Some(String::from_utf8_lossy(&self.line[1..]).into_owned())),
            _ => Err(format!(
                "{}: SET answered {:?}",
                self.addr,
                String::from_utf8_lossy(&self.line)
            )),
        }
    }
}

fn show(args: &[&[u8]]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `$<n>\r\n<value>\r\n`, the tail of every SET.
fn value_bulk(size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size + 16);
    v.push(b'$');
    push_padded(&mut v, size, 0);
    v.extend_from_slice(b"\r\n");
    v.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\r\n");
    v
}

fn push_get(buf: &mut Vec<u8>, names: &KeyNames, id: u32) {
    buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
    names.bulk(buf, id);
}

fn push_set(buf: &mut Vec<u8>, names: &KeyNames, id: u32, value: &[u8]) {
    buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    names.bulk(buf, id);
    buf.extend_from_slice(value);
}

struct Calibration {
    port: u16,
    before: u64,
    after: u64,
    per_key: f64,
    maxmemory: u64,
}

/// Loads `capacity` Zipf keys (the hottest ranks, the ones a good cache
/// holds) into a Redis without a memory limit and derives the budget that
/// holds that many keys.
fn calibrate(o: &Opts, names: &KeyNames, port: u16) -> Res<Calibration> {
    let mut c = Conn::connect(&o.host, port)?;
    c.ok(&[b"CONFIG", b"SET", b"maxmemory", b"0"])?;
    c.ok(&[b"FLUSHALL"])?;
    let used = |c: &mut Conn| -> Res<u64> {
        c.info_field("memory", "used_memory")?
            .ok_or_else(|| format!("{}: INFO memory has no used_memory", c.addr))
    };
    let before = used(&mut c)?;
    let value = value_bulk(o.value_size);
    let n = o.capacity.min(o.keys);
    let mut buf = Vec::new();
    for chunk in (0..n as u32).collect::<Vec<_>>().chunks(1000) {
        buf.clear();
        for &id in chunk {
            push_set(&mut buf, names, id, &value);
        }
        c.send(&buf)?;
        for _ in chunk {
            if let Some(e) = c.read_set()? {
                return Err(format!("calibration SET failed: {e}"));
            }
        }
    }
    let dbsize = c.int(&[b"DBSIZE"])?;
    if dbsize != n as i64 {
        return Err(format!(
            "calibration: DBSIZE {dbsize} after loading {n} keys"
        ));
    }
    let after = used(&mut c)?;
    c.ok(&[b"FLUSHALL"])?;
    let per_key = after.saturating_sub(before) as f64 / n as f64;
    Ok(Calibration {
        port,
        before,
        after,
        per_key,
        maxmemory: before + (o.capacity as f64 * per_key).round() as u64,
    })
}

struct RunResult {
    gets: u64,
    hits: u64,
    repeat_misses: u64,
    set_errors: u64,
    first_set_error: Option<String>,
    dbsize_samples: Vec<i64>,
    evicted: Option<u64>,
    seconds: f64,
}

enum Outcome {
    Done(RunResult),
    Skipped(String),
}

fn replay(
    o: &Opts,
    names: &KeyNames,
    port: u16,
    policy: &str,
    maxmemory: u64,
    t: &Trace,
    warm_end: usize,
) -> Res<Outcome> {
    let mut c = Conn::connect(&o.host, port)?;
    c.ok(&[b"FLUSHALL"])?;
    match c.command(&[b"CONFIG", b"SET", b"maxmemory-policy", policy.as_bytes()])? {
        Reply::Status(s) if s == "OK" => {}
        Reply::Error(e) => return Ok(Outcome::Skipped(e)),
        other => return Err(format!("CONFIG SET maxmemory-policy answered {other:?}")),
    }
    c.ok(&[
        b"CONFIG",
        b"SET",
        b"maxmemory",
        maxmemory.to_string().as_bytes(),
    ])?;
    let evicted_before = c.info_field("stats", "evicted_keys")?;

    let value = value_bulk(o.value_size);
    let mut r = RunResult {
        gets: 0,
        hits: 0,
        repeat_misses: 0,
        set_errors: 0,
        first_set_error: None,
        dbsize_samples: Vec::new(),
        evicted: None,
        seconds: 0.0,
    };
    let mut buf = Vec::with_capacity(o.batch * (o.value_size + 64));
    let mut pending: Vec<u32> = Vec::with_capacity(o.batch);
    let mut misses: Vec<u32> = Vec::with_capacity(o.batch);
    let mut next_sample = warm_end + o.sample_every;
    let start = Instant::now();
    let mut pos = 0;
    loop {
        let end = (pos + o.batch).min(t.ids.len());
        let sample = pos >= next_sample || end == pos;
        // The previous batch's SETs travel with this batch's GETs: the
        // server sees them first, as a sequential client would have sent them.
        buf.clear();
        for &id in &pending {
            push_set(&mut buf, names, id, &value);
        }
        if sample {
            encode(&mut buf, &[b"DBSIZE"]);
        }
        for &id in &t.ids[pos..end] {
            push_get(&mut buf, names, id);
        }
        c.send(&buf)?;
        for _ in 0..pending.len() {
            if let Some(e) = c.read_set()? {
                r.set_errors += 1;
                r.first_set_error.get_or_insert(e);
            }
        }
        if sample && pos >= warm_end {
            match c.read_reply()? {
                Reply::Int(n) => r.dbsize_samples.push(n),
                other => return Err(format!("DBSIZE answered {other:?}")),
            }
            next_sample += o.sample_every;
        } else if sample {
            c.read_reply()?;
        }
        if end == pos {
            break;
        }
        misses.clear();
        for (i, &id) in (pos..end).zip(&t.ids[pos..end]) {
            let hit = c.read_get(o.value_size)?;
            let measured = i >= warm_end;
            if measured {
                r.gets += 1;
                r.hits += hit as u64;
            }
            if !hit {
                if misses.contains(&id) {
                    r.repeat_misses += measured as u64;
                } else {
                    misses.push(id);
                }
            }
        }
        std::mem::swap(&mut pending, &mut misses);
        pos = end;
    }
    r.seconds = start.elapsed().as_secs_f64();
    let evicted_after = c.info_field("stats", "evicted_keys")?;
    r.evicted = evicted_before
        .zip(evicted_after)
        .map(|(b, a)| a.saturating_sub(b));
    // Leave the server as found: no data, no memory limit.
    c.ok(&[b"FLUSHALL"])?;
    c.ok(&[b"CONFIG", b"SET", b"maxmemory", b"0"])?;
    Ok(Outcome::Done(r))
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// 1234567 -> "1,234,567"
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn run(o: &Opts) -> Res<()> {
    let t0 = Instant::now();
    let traces = build_traces(o)?;
    let max_scans = traces.iter().map(|t| t.scans).max().unwrap_or(0);
    let names = KeyNames::new(o, max_scans);
    eprintln!(
        "traces generated in {:.2}s: {}",
        t0.elapsed().as_secs_f64(),
        traces
            .iter()
            .map(|t| format!("{} = {} accesses", t.name, group(t.ids.len() as u64)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    struct Reference {
        warm_end: usize,
        measured: usize,
        lru: u64,
        lru_batched: u64,
    }
    let refs: Vec<Reference> = traces
        .iter()
        .map(|t| {
            let warm_end = (t.ids.len() as f64 * o.warmup_pct / 100.0) as usize;
            Reference {
                warm_end,
                measured: t.ids.len() - warm_end,
                lru: simulate_lru(t, o.capacity, warm_end, None),
                lru_batched: simulate_lru(t, o.capacity, warm_end, Some(o.batch)),
            }
        })
        .collect();
    eprintln!(
        "exact LRU simulated in {:.2}s total",
        t0.elapsed().as_secs_f64()
    );

    let calibration = match o.maxmemory {
        Some(_) => None,
        None => {
            let port = o.calibrate_port.unwrap_or(o.servers[0].port);
            let c = calibrate(o, &names, port)?;
            eprintln!(
                "calibrated on {}:{port}: used_memory {} before, {} after {} keys, {:.1} bytes/key, maxmemory {}",
                o.host,
                c.before,
                c.after,
                o.capacity.min(o.keys),
                c.per_key,
                c.maxmemory
            );
            Some(c)
        }
    };
    let maxmemory = o
        .maxmemory
        .unwrap_or_else(|| calibration.as_ref().expect("calibrated").maxmemory);

    let mut rows = String::new();
    let mut skipped = Vec::new();
    let mut set_error_notes = Vec::new();
    for (t, rf) in traces.iter().zip(&refs) {
        let lru = pct(rf.lru, rf.measured as u64);
        for s in &o.servers {
            for policy in s.policies.as_deref().unwrap_or_default() {
                eprint!("{} {} {} ... ", s.label, policy, t.name);
                match replay(o, &names, s.port, policy, maxmemory, t, rf.warm_end).map_err(|e| {
                    format!(
                        "{} ({}:{}) {policy} {}: {e}",
                        s.label, o.host, s.port, t.name
                    )
                })? {
                    Outcome::Skipped(e) => {
                        // The wording scripts and readers look for.
                        let line = format!("skipped: {policy} not supported by {} ({e})", s.label);
                        eprintln!("{line}");
                        if !skipped.contains(&line) {
                            skipped.push(line);
                        }
                    }
                    Outcome::Done(r) => {
                        let hit = pct(r.hits, r.gets);
                        let avg_db = if r.dbsize_samples.is_empty() {
                            "-".to_string()
                        } else {
                            let sum: i64 = r.dbsize_samples.iter().sum();
                            group((sum as f64 / r.dbsize_samples.len() as f64).round() as u64)
                        };
                        eprintln!(
                            "hit {hit:.2}% in {:.1}s ({:.0} GETs/s)",
                            r.seconds,
                            t.ids.len() as f64 / r.seconds
                        );
                        let _ = writeln!(
                            rows,
                            "| {} | {policy} | {} | {hit:.2} | {lru:.2} | {:+.2} | {avg_db} | {} | {} | {} | {:.1} |",
                            s.label,
                            t.name,
                            hit - lru,
                            r.dbsize_samples
                                .last()
                                .map_or("-".to_string(), |&n| group(n as u64)),
                            r.evicted.map_or("-".to_string(), group),
                            group(r.repeat_misses),
                            r.seconds,
                        );
                        if r.set_errors > 0 {
                            set_error_notes.push(format!(
                                "{} {policy} {}: {} SETs failed, first: {}",
                                s.label,
                                t.name,
                                group(r.set_errors),
                                r.first_set_error.unwrap_or_default()
                            ));
                        }
                    }
                }
            }
        }
    }

    println!();
    println!(
        "- keys: {} with Zipf alpha {} (PRNG seed {}); {} Zipf requests per trace",
        group(o.keys as u64),
        o.alpha,
        o.seed,
        group(o.requests as u64)
    );
    for (t, rf) in traces.iter().zip(&refs) {
        let mut line = format!(
            "- trace {}: {} accesses, first {} ({}%) replayed as warm-up and not counted, {} measured",
            t.name,
            group(t.ids.len() as u64),
            group(rf.warm_end as u64),
            o.warmup_pct,
            group(rf.measured as u64)
        );
        if t.scans > 0 {
            let scan_measured = t.ids[rf.warm_end..]
                .iter()
                .filter(|&&id| t.is_scan(o.keys, id))
                .count();
            let _ = write!(
                line,
                "; a one-pass scan of {} fresh keys (never accessed again) after every {} Zipf requests ({} scans); \
                 {:.1}% of the measured GETs are scan GETs, which miss under any policy",
                group(o.scan_len as u64),
                group(o.scan_every as u64),
                t.scans,
                pct(scan_measured as u64, rf.measured as u64)
            );
        }
        println!("{line}");
    }
    println!(
        "- key names: {} bytes (`key:{}`, scan keys `s{}:{}`); values: {} bytes",
        names.zipf_len(),
        "0".repeat(names.zipf_width),
        "0".repeat(names.epoch_width),
        "0".repeat(names.scan_width),
        o.value_size
    );
    println!(
        "- client: cache-aside (GET; on a nil reply SET key value), one connection, pipelined in batches of {} GETs; \
         the SETs for a batch's misses go out ahead of the next batch, so a key that misses twice within one batch \
         misses both times where a sequential client would hit the second time (column \"same-batch misses\")",
        o.batch
    );
    for (t, rf) in traces.iter().zip(&refs) {
        println!(
            "- exact LRU, capacity {} keys, {}: {:.2}% replayed sequentially (the reference column), \
             {:.2}% replayed with the client's batching",
            group(o.capacity as u64),
            t.name,
            pct(rf.lru, rf.measured as u64),
            pct(rf.lru_batched, rf.measured as u64)
        );
    }
    match &calibration {
        Some(c) => println!(
            "- maxmemory: {} bytes for every server, calibrated on Redis at {}:{}: used_memory {} after FLUSHALL, \
             {} after SET of {} keys = {:.1} bytes/key; maxmemory = before + {} x bytes/key",
            group(maxmemory),
            o.host,
            c.port,
            group(c.before),
            group(c.after),
            group(o.capacity.min(o.keys) as u64),
            c.per_key,
            group(o.capacity as u64)
        ),
        None => println!(
            "- maxmemory: {} bytes for every server (given)",
            group(maxmemory)
        ),
    }
    println!(
        "- per run: FLUSHALL, CONFIG SET maxmemory-policy, CONFIG SET maxmemory; avg DBSIZE: sampled every {} measured accesses, end DBSIZE: the last sample, at the end of the trace; \
         evicted: INFO stats evicted_keys delta over the run (- when not reported); time: whole replay incl. warm-up",
        group(o.sample_every as u64)
    );
    println!();
    println!(
        "| server | policy | trace | hit % | exact LRU hit % | Δ points | avg DBSIZE | end DBSIZE | evicted | same-batch misses | time s |"
    );
    println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    print!("{rows}");
    if !skipped.is_empty() {
        println!();
        for line in &skipped {
            println!("- {line}");
        }
    }
    for n in &set_error_notes {
        println!();
        println!("SET errors: {n}");
    }
    eprintln!("total {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// `--self-check`: the exact LRU against a naive one on a small trace, and
/// the Zipf sampler's frequencies against the distribution it samples.
fn self_check() -> Res<()> {
    let mut rng = Rng::new(7);
    let (n, cap) = (500usize, 60usize);
    let zipf = Zipf::new(n, 0.8);
    let mut lru = Lru::new(n, cap);
    let mut naive: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
    for step in 0..200_000 {
        let id = zipf.sample(&mut rng);
        let hit = lru.get(id);
        let naive_hit = match naive.iter().position(|&x| x == id) {
            Some(p) => {
                naive.remove(p);
                naive.push_front(id);
                true
            }
            None => false,
        };
        if hit != naive_hit {
            return Err(format!("LRU disagrees with the naive LRU at step {step}"));
        }
        if !hit {
            lru.insert(id);
            naive.push_front(id);
            naive.truncate(cap);
        }
    }

    let (keys, alpha, samples) = (1_000_000usize, 0.99, 4_000_000usize);
    let zipf = Zipf::new(keys, alpha);
    let h: f64 = (1..=keys).map(|k| (k as f64).powf(-alpha)).sum();
    let mut counts = [0u64; 4];
    let mut top_decile = 0u64;
    for _ in 0..samples {
        let r = zipf.sample(&mut rng) as usize;
        if r < counts.len() {
            counts[r] += 1;
        }
        top_decile += (r < keys / 10) as u64;
    }
    let mut checks: Vec<(String, f64, f64)> = counts
        .iter()
        .enumerate()
        .map(|(r, &c)| {
            (
                format!("P(rank {r})"),
                c as f64 / samples as f64,
                ((r + 1) as f64).powf(-alpha) / h,
            )
        })
        .collect();
    let decile: f64 = (1..=keys / 10)
        .map(|k| (k as f64).powf(-alpha))
        .sum::<f64>()
        / h;
    checks.push((
        "P(rank < keys/10)".into(),
        top_decile as f64 / samples as f64,
        decile,
    ));
    for (what, got, want) in checks {
        println!("{what}: sampled {got:.5}, exact {want:.5}");
        // Several standard errors of a binomial proportion over 4M samples.
        if (got - want).abs() > 5.0 * (want * (1.0 - want) / samples as f64).sqrt() {
            return Err(format!("Zipf sampler off for {what}"));
        }
    }
    println!("self-check passed");
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--self-check") {
        if let Err(e) = self_check() {
            eprintln!("hitratio: {e}");
            exit(1);
        }
        return;
    }
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hitratio: {e}");
            exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("hitratio: {e}");
        exit(1);
    }
}

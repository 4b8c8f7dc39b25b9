//! The server: shared state, listeners, worker threads, the cron, and
//! shutdown.
//!
//! Threading: `shards` worker threads each run a single-threaded tokio
//! runtime; the acceptor (on the main thread's runtime, with the cron and
//! signal handling) hands each new connection to a worker round-robin, and
//! the connection stays on that worker for life. Any worker can execute
//! any command: it locks the shard(s) the command's keys hash to (see
//! `cmd`). No global lock exists on the request path.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::client::ClientHandle;
use crate::config::Config;
use crate::stats::{Rates, WorkerStats};
use crate::store::{Shard, slot::key_slot};
use crate::util::now_ms;

/// Keeps each shard's mutex on its own cache lines so threads working on
/// different shards do not bounce one line between cores.
#[repr(align(128))]
struct Padded<T>(T);

pub struct Store {
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl Store {
    pub fn new(nshards: usize, databases: usize) -> Self {
        let seed = now_ms() ^ (std::process::id() as u64) << 32;
        Store {
            shards: (0..nshards)
                .map(|i| {
                    Padded(Mutex::new(Shard::new(
                        databases,
                        seed.wrapping_add(i as u64 * 0x9E37_79B9),
                    )))
                })
                .collect(),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> usize {
        key_slot(key) as usize % self.shards.len()
    }

    /// Locks one shard. A panic while a shard was held cannot leave it
    /// half-updated in a way later commands could not read, so poisoning
    /// is ignored rather than taking the shard down.
    #[inline]
    pub fn lock(&self, idx: usize) -> MutexGuard<'_, Shard> {
        self.shards[idx].0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks one shard if no one holds it (poisoning ignored, as `lock`).
    #[inline]
    pub fn try_lock(&self, idx: usize) -> Option<MutexGuard<'_, Shard>> {
        match self.shards[idx].0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

pub struct Server {
    pub config: Config,
    pub store: Store,
    pub clients: DashMap<u64, Arc<ClientHandle>>,
    next_client_id: AtomicU64,
    pub workers: Vec<Arc<WorkerStats>>,
    pub rates: Mutex<Rates>,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Writes since start (Redis's `dirty`, shown as
    /// rdb_changes_since_last_save).
    pub dirty: AtomicU64,
    pub active_expire_enabled: AtomicBool,
    pub started: Instant,
    pub started_unix_ms: u64,
    pub run_id: String,
    pub port: u16,
    pub config_file: Option<String>,
    pub executable: String,
    pub shutting_down: AtomicBool,
    pub shutdown_notify: Notify,
    pub expired_stale_perc: AtomicU64,
    pub expire_cycle_ms: AtomicU64,
    pub peak_memory: AtomicUsize,
    /// Cluster mode state; `None` when cluster-enabled is no, which is
    /// all the dispatcher checks.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// TLS, when a tls-* setting asks for it (see `tls::setup`).
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// MIGRATE's connections to its targets, kept for reuse.
    pub migrate_sockets: crate::cluster::migrate::SocketCache,
}

impl Server {
    pub fn new(config: Config, config_file: Option<String>) -> Server {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let nshards = match config.get_int("shards") {
            n if n > 0 => n as usize,
            _ => cores,
        };
        // One core is left to the kernel's network processing, the
        // clients and the server's own background threads (main runtime,
        // snapshot, cluster bus), as Redis advises for its io-threads:
        // on this project's 2-core machine one worker beat two at P=1 and
        // P=16 in the same run (docs/benchmarks.md, "Worker threads").
        let nthreads = match config.get_int("threads") {
            n if n > 0 => n as usize,
            _ => cores.saturating_sub(1).max(1),
        };
        let databases = config.get_int("databases").max(1) as usize;
        let port = config.get_int("port") as u16;
        Server {
            store: Store::new(nshards, databases),
            clients: DashMap::new(),
            next_client_id: AtomicU64::new(1),
            workers: (0..nthreads)
                .map(|_| Arc::new(WorkerStats::default()))
                .collect(),
            rates: Mutex::new(Rates::default()),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            dirty: AtomicU64::new(0),
            active_expire_enabled: AtomicBool::new(true),
            started: Instant::now(),
            started_unix_ms: now_ms(),
            run_id: random_hex(40),
            port,
            config_file,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            shutting_down: AtomicBool::new(false),
            shutdown_notify: Notify::new(),
            expired_stale_perc: AtomicU64::new(0),
            expire_cycle_ms: AtomicU64::new(0),
            peak_memory: AtomicUsize::new(0),
            cluster: None,
            tls: None,
            migrate_sockets: Default::default(),
            config,
        }
    }

    pub fn databases(&self) -> usize {
        self.config.get_int("databases").max(1) as usize
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Relaxed)
    }

    /// Starts a graceful shutdown (SHUTDOWN, SIGTERM, SIGINT).
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
        self.shutdown_notify.notify_one();
    }

    /// Disconnects a client now, as Redis's CLIENT KILL frees the client
    /// before replying: the socket is shut down while the registry entry
    /// is still held (its task closes the descriptor only after
    /// deregistering, so a reused descriptor cannot be hit), then the
    /// entry is removed so the client is gone for every later command.
    pub fn kill_client(&self, id: u64) -> bool {
        let Some(entry) = self.clients.get(&id) else {
            return false;
        };
        entry.kill();
        drop(entry);
        self.clients.remove(&id).is_some()
    }

    pub fn dataset_memory(&self) -> usize {
        crate::eviction::dataset_memory()
    }

    /// `used_memory` (see `eviction::used_memory`).
    pub fn used_memory(&self) -> usize {
        crate::eviction::used_memory()
    }

    /// Re-measures every shard's dataset and keeps the peak.
    pub fn measure_memory(&self) -> crate::memory::AllocatorStats {
        for idx in 0..self.store.len() {
            let shard = self.store.lock(idx);
            shard.refresh_mem();
        }
        self.peak_memory.fetch_max(self.used_memory(), Relaxed);
        crate::memory::allocator_stats()
    }

    /// Sum of a per-worker counter.
    pub fn sum_workers(&self, f: impl Fn(&WorkerStats) -> u64) -> u64 {
        self.workers.iter().map(|w| f(w)).sum()
    }
}

/// Random hex digits. Each call must differ from the others (replication
/// IDs, the end mark of a diskless transfer that must not occur in it),
/// even within one millisecond: a call counter and the nanosecond clock
/// go into the seed.
pub fn random_hex(n: usize) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let calls = CALLS.fetch_add(1, Relaxed);
    let mut rng = crate::store::Rng::new(
        nanos
            ^ ((std::process::id() as u64) << 20)
            ^ calls.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ 0x5DEECE66D,
    );
    // Discard the first outputs, which depend on the seed's low bits.
    for _ in 0..4 {
        rng.next_u64();
    }
    (0..n)
        .map(|_| char::from_digit((rng.next_u64() % 16) as u32, 16).unwrap_or('0'))
        .collect()
}

/// The addresses of the `bind` setting, each with whether it is optional:
/// a `-` prefix, as in redis.conf (`bind 127.0.0.1 -::1`). An optional
/// address that does not parse is skipped; any other is an error. The
/// client port and the cluster bus port bind the same list.
pub fn bind_addresses(bind: &str) -> std::io::Result<Vec<(IpAddr, bool)>> {
    let mut out = Vec::new();
    for spec in bind.split_whitespace() {
        let (optional, host) = match spec.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, spec),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        match host.parse() {
            Ok(ip) => out.push((ip, optional)),
            Err(_) if optional => {}
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("invalid bind address '{host}'"),
                ));
            }
        }
    }
    Ok(out)
}

/// Binds every address of the `bind` setting.
fn bind_all(bind: &str, port: u16, backlog: u32) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for (ip, optional) in bind_addresses(bind)? {
        let addr = SocketAddr::new(ip, port);
        let result = (|| {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.set_reuseaddr(true)?;
            if ip.is_ipv6() {
                set_v6_only(&sock);
            }
            sock.bind(addr)?;
            sock.listen(backlog)
        })();
        match result {
            Ok(l) => out.push(l),
            Err(e) if optional => warn!("skipping optional bind address {addr}: {e}"),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not bind {addr}: {e}"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        ));
    }
    Ok(out)
}

/// An IPv6 listener must not also claim the IPv4 port, or `bind * ::`
/// would collide with itself.
fn set_v6_only(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Runs the server until shutdown. Returns the process exit code.
pub fn run(srv: Arc<Server>) -> std::io::Result<()> {
    let main_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let backlog = srv.config.get_int("tcp-backlog").clamp(1, u32::MAX as i64) as u32;
    let bind = srv.config.get("bind").unwrap_or_default();
    let tls = srv.tls.as_ref().and_then(|t| t.clients.clone());
    if srv.port == 0 && tls.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "Configured to not listen anywhere, exiting.",
        ));
    }
    // Port 0 means no plain TCP listener, as in Redis (TLS only).
    let mut listeners: Vec<(TcpListener, bool)> = Vec::new();
    if srv.port != 0 {
        let plain = main_rt.block_on(async { bind_all(&bind, srv.port, backlog) })?;
        listeners.extend(plain.into_iter().map(|l| (l, false)));
    }
    if tls.is_some() {
        let tls_port = srv.config.get_int("tls-port") as u16;
        let tls_listeners = main_rt.block_on(async { bind_all(&bind, tls_port, backlog) })?;
        listeners.extend(tls_listeners.into_iter().map(|l| (l, true)));
    }
    let bus_listeners = match &srv.cluster {
        Some(cl) => crate::cluster::bus::bind(&srv, cl)?,
        None => Vec::new(),
    };
    crate::replication::init(&srv);
    crate::persistence::load_at_start(&srv).map_err(std::io::Error::other)?;

    // Workers.
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for (i, stats) in srv.workers.iter().enumerate() {
        // Each new connection, and whether it came in on the TLS port.
        let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, bool)>();
        senders.push(tx);
        let srv = srv.clone();
        let stats = stats.clone();
        let tls = tls.clone();
        let t = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                crate::flush::install();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .on_thread_park(crate::flush::before_sleep)
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("worker {i}: cannot build runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    while let Some((std_stream, is_tls)) = rx.recv().await {
                        match tokio::net::TcpStream::from_std(std_stream) {
                            Ok(stream) => match (&tls, is_tls) {
                                (Some(acceptor), true) => {
                                    tokio::spawn(crate::connection::serve_tls(
                                        srv.clone(),
                                        stream,
                                        acceptor.clone(),
                                        stats.clone(),
                                    ));
                                }
                                _ => {
                                    tokio::spawn(crate::connection::serve(
                                        srv.clone(),
                                        stream,
                                        stats.clone(),
                                    ));
                                }
                            },
                            Err(e) => warn!("cannot register connection: {e}"),
                        }
                    }
                    // Shutdown: let connections finish what they were
                    // writing; `stop_reading` already made them exit.
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while !srv.clients.is_empty() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            })?;
        threads.push(t);
    }

    // Everything allocated so far (tables, runtimes, buffers of the
    // listeners) is the fixed part of used_memory.
    crate::eviction::set_baseline(crate::memory::allocator_stats().allocated);
    for (l, is_tls) in &listeners {
        if let Ok(addr) = l.local_addr() {
            let kind = if *is_tls { "tls" } else { "tcp" };
            info!("Ready to accept connections {kind} on {addr}");
        }
    }
    info!(
        "ferrocache {} started, pid={}, shards={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        srv.store.len()
    );

    main_rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let senders = Arc::new(senders);
        for (listener, is_tls) in listeners {
            let srv = srv.clone();
            let next = next.clone();
            let senders = senders.clone();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = match listener.accept().await {
                        Ok(s) => s,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    if srv.shutting_down.load(Relaxed) {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    {
                        use std::os::fd::AsRawFd;
                        crate::limits::set_keepalive(
                            stream.as_raw_fd(),
                            srv.config.tcp_keepalive.load(Relaxed),
                        );
                    }
                    let Ok(std_stream) = stream.into_std() else {
                        continue;
                    };
                    let w = next.fetch_add(1, Relaxed) % senders.len();
                    let _ = senders[w].send((std_stream, is_tls));
                }
            });
        }
        tokio::spawn(crate::expire::cron(srv.clone()));
        if srv.cluster.is_some() {
            tokio::spawn(crate::cluster::bus::run(srv.clone(), bus_listeners));
        }
        tokio::spawn(crate::replication::cron(srv.clone()));
        if let Some(master) = srv.config.get("replicaof").filter(|m| !m.is_empty()) {
            let mut words = master.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|p| p.parse::<u16>().ok()),
            ) {
                (Some(host), Some(port)) => {
                    crate::replication::replica::set_master(&srv, host, port);
                }
                _ => warn!("ignoring invalid replicaof '{master}'"),
            }
        }

        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = sigterm => info!("Received SIGTERM scheduling shutdown..."),
            _ = tokio::signal::ctrl_c() => info!("Received SIGINT scheduling shutdown..."),
            _ = srv.shutdown_notify.notified() => info!("User requested shutdown..."),
        }
        srv.shutting_down.store(true, Relaxed);
        for c in srv.clients.iter() {
            c.stop_reading();
        }
    });
    drop(main_rt);
    // Dropping the senders ends each worker's accept loop; workers then
    // wait (bounded) for their connections to finish.
    for t in threads {
        let _ = t.join();
    }
    info!("ferrocache is now ready to exit, bye bye...");
    Ok(())
}

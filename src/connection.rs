//! One client connection: read, decode every complete command in the
//! buffer, execute each, and write all their replies with one write.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::client::{ClientHandle, ClientState};
use crate::cmd::Args;
use crate::cmd::dispatch::execute;
use crate::outbuf::{ClassLimit, ClientClass, LimitClock, Verdict};
use crate::protocol::{Decoded, Decoder, Reply};
use crate::replication::Pending;
use crate::server::Server;
use crate::stats::{WorkerStats, bump};
use crate::util::now_ms;

const READ_CHUNK: usize = 16 * 1024;
/// Replies are flushed mid-batch past this size, so a long pipeline of
/// large replies does not pile up in memory.
const FLUSH_THRESHOLD: usize = 1 << 20;
/// Largest single reservation for a big bulk argument: the buffer grows
/// as its bytes arrive instead of trusting the announced length.
const MAX_RESERVE: usize = 4 << 20;

pub async fn serve(srv: Arc<Server>, stream: TcpStream, stats: Arc<WorkerStats>) {
    let (Ok(addr), Ok(laddr)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let fd = stream.as_raw_fd();
    serve_stream(srv, stream, fd, addr, laddr, stats).await;
}

/// A connection on the TLS port: the handshake (bounded in time, so a
/// silent peer cannot hold a task forever), then the same loop as plain
/// TCP over the encrypted stream.
pub async fn serve_tls(
    srv: Arc<Server>,
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    stats: Arc<WorkerStats>,
) {
    let (Ok(addr), Ok(laddr)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let fd = stream.as_raw_fd();
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!("Error accepting a client connection: {e} (addr={addr} laddr={laddr})");
            return;
        }
        Err(_) => return,
    };
    serve_stream(srv, tls, fd, addr, laddr, stats).await;
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's byte stream: plain TCP or TLS.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin {
    /// Writes may sit in the stream's own buffer until flushed.
    const BUFFERED: bool;
    /// A TLS session.
    const TLS: bool;

    /// Writes what the stream takes at once, without waiting or arming
    /// anything; `None` when it would block (or cannot tell without a
    /// poll: the caller then awaits a write).
    fn try_write_now(&mut self, buf: &[u8]) -> Option<std::io::Result<usize>>;
}

impl ClientStream for TcpStream {
    const BUFFERED: bool = false;
    const TLS: bool = false;

    #[inline]
    fn try_write_now(&mut self, buf: &[u8]) -> Option<std::io::Result<usize>> {
        match self.try_write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            r => Some(r),
        }
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    const BUFFERED: bool = true;
    const TLS: bool = true;

    fn try_write_now(&mut self, _buf: &[u8]) -> Option<std::io::Result<usize>> {
        None
    }
}

async fn serve_stream<S: ClientStream>(
    srv: Arc<Server>,
    mut stream: S,
    fd: i32,
    addr: std::net::SocketAddr,
    laddr: std::net::SocketAddr,
    stats: Arc<WorkerStats>,
) {
    if srv.clients.len() >= srv.config.maxclients.load(Relaxed) {
        srv.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        let _ = stream.flush().await;
        return;
    }
    if protected_mode_denies(&srv, addr.ip()) {
        srv.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream.write_all(PROTECTED_MODE_DENIED).await;
        let _ = stream.flush().await;
        return;
    }
    let id = srv.next_client_id();
    let handle = Arc::new(ClientHandle::new(id, addr, laddr, fd));
    srv.clients.insert(id, handle.clone());
    srv.total_connections.fetch_add(1, Relaxed);
    let authenticated = crate::acl::default_is_open();
    let mut state = ClientState::new(handle, authenticated);
    state.tls = S::TLS;

    run(&srv, &mut stream, &mut state, &stats).await;

    // Deregister before the socket closes (when `stream` drops), so a
    // concurrent CLIENT KILL never shuts down a reused descriptor.
    srv.clients.remove(&id);
    drop(stream);
    debug!("client {id} closed");
}

/// Redis 7.0's text, typo included.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode (Redis's clientAcceptHandler): while it is on and the
/// default user needs no password, only loopback clients may connect,
/// whatever addresses the server listens on. "Loopback" is Redis's test:
/// the peer is exactly 127.0.0.1 or ::1 (a peer at 127.0.0.2 is denied by
/// Redis 7.0 too).
fn protected_mode_denies(srv: &Server, ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let local = match ip.to_canonical() {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    srv.config.protected_mode.load(Relaxed) && !local && crate::acl::default_user().nopass
}

async fn run<S: ClientStream>(
    srv: &Arc<Server>,
    stream: &mut S,
    state: &mut ClientState,
    stats: &WorkerStats,
) {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = Decoder::new(srv.config.proto_max_bulk_len.load(Relaxed));
    decoder.unauthenticated = !state.authenticated;
    let mut buffers = BufferAccount::new(rbuf.capacity() + wbuf.capacity());
    let mut clock = LimitClock::default();
    // Set after a command that had to wait (WAIT): the commands behind it
    // are already in the buffer.
    let mut resume = false;
    loop {
        if std::mem::take(&mut resume) {
            // Fall through to decoding what is buffered.
        } else if !read_more(srv, stream, &mut rbuf, &decoder, stats, state.id).await {
            return;
        }
        // A manual cluster failover pauses clients while the replica
        // catches up with our final offset.
        if srv.cluster.is_some() && crate::cluster::failover::clients_paused() {
            crate::cluster::failover::wait_while_paused().await;
        }
        // Read once per batch: CONFIG SET applies from the next batch.
        let limit = srv.config.output_limits.get(ClientClass::Normal);
        let limit_threshold = limit.threshold();
        // The read may have grown the buffer: count it before the commands
        // it carries decide whether to evict.
        buffers.update(rbuf.capacity() + wbuf.capacity());

        let mut close = false;
        loop {
            match decoder.decode(&rbuf) {
                Ok(Decoded::Command { start, .. }) => {
                    let args = Args::new(decoder.arg_base(&rbuf, start), decoder.args());
                    execute(srv, state, &args, &mut wbuf, stats);
                    if state.close_after_reply {
                        close = true;
                        break;
                    }
                    if wbuf.len() >= limit_threshold
                        && over_output_limit(state.id, &limit, wbuf.len(), &mut clock)
                    {
                        return;
                    }
                    if state.pending.is_some() {
                        break;
                    }
                    if wbuf.len() >= FLUSH_THRESHOLD
                        && write_out(srv, stream, &mut wbuf, stats, &limit, &mut clock, state.id)
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Ok(Decoded::Skip { .. }) => {}
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    debug!("client {}: protocol error: {:?}", state.id, e);
                    Reply::counted(&mut wbuf, state.resp3, &stats.error_codes).error(&e.message());
                    bump(&stats.error_replies, 1);
                    close = true;
                    break;
                }
            }
        }
        // AUTH may have changed which protocol limits apply.
        decoder.unauthenticated = !state.authenticated;
        let keep = decoder.keep_from();
        rbuf.advance(keep);
        decoder.consumed(keep);
        state.handle.qbuf.store(rbuf.len(), Relaxed);

        buffers.update(rbuf.capacity() + wbuf.capacity());
        if !wbuf.is_empty() {
            crate::flush::round_end().await;
        }
        if !wbuf.is_empty()
            && write_out(srv, stream, &mut wbuf, stats, &limit, &mut clock, state.id)
                .await
                .is_err()
        {
            return;
        }
        if close {
            return;
        }
        match state.pending.take() {
            None => {}
            Some(Pending::Sync(psync)) => {
                // The connection becomes a replica link for good (over
                // TCP or TLS alike).
                let rest = std::mem::take(&mut rbuf);
                crate::replication::primary::serve_replica(srv, stream, state, psync, rest).await;
                return;
            }
            Some(Pending::Wait {
                numreplicas,
                timeout_ms,
                target,
            }) => {
                let acked =
                    crate::replication::wait_for_acks(numreplicas, timeout_ms, target).await;
                Reply::new(&mut wbuf, state.resp3).int(acked as i64);
                resume = true;
                continue;
            }
        }
        if rbuf.len() > srv.config.query_buffer_limit.load(Relaxed) {
            tracing::warn!(
                "closing client {} that reached max query buffer length (qbuf={})",
                state.id,
                rbuf.len()
            );
            return;
        }
    }
}

/// Reads what the socket has; false when the client is gone (or idle
/// past `timeout`).
async fn read_more<S: ClientStream>(
    srv: &Server,
    stream: &mut S,
    rbuf: &mut BytesMut,
    decoder: &Decoder,
    stats: &WorkerStats,
    id: u64,
) -> bool {
    let want = decoder
        .bulk_bytes_missing(rbuf.len())
        .clamp(READ_CHUNK, MAX_RESERVE);
    if rbuf.capacity() - rbuf.len() < want {
        rbuf.reserve(want);
    }
    let idle = srv.config.timeout_secs.load(Relaxed);
    let read = if idle == 0 {
        stream.read_buf(rbuf).await
    } else {
        read_or_idle(stream, rbuf, idle, id).await
    };
    let n = match read {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    bump(&stats.net_input, n as u64);
    bump(&stats.reads, 1);
    true
}

/// Reports this connection's buffer capacity to used_memory, and takes
/// it back when the connection ends.
struct BufferAccount(usize);

impl BufferAccount {
    fn new(bytes: usize) -> Self {
        crate::eviction::client_buffers_changed(0, bytes);
        BufferAccount(bytes)
    }

    /// `BytesMut::capacity` shrinks as consumed bytes are skipped although
    /// the allocation does not, so only growth is taken into account.
    #[inline]
    fn update(&mut self, bytes: usize) {
        if bytes > self.0 {
            crate::eviction::client_buffers_changed(self.0, bytes);
            self.0 = bytes;
        }
    }
}

impl Drop for BufferAccount {
    fn drop(&mut self) {
        crate::eviction::client_buffers_changed(self.0, 0);
    }
}

/// Reads what the client sent, closing a client silent for `idle`
/// seconds (Redis's `timeout`; Redis checks in its cron, we arm a timer
/// only when the setting is on).
async fn read_or_idle<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    idle: u64,
    id: u64,
) -> std::io::Result<usize> {
    match tokio::time::timeout(Duration::from_secs(idle), stream.read_buf(rbuf)).await {
        Ok(r) => r,
        Err(_) => {
            debug!("Closing idle client {id}");
            Ok(0)
        }
    }
}

/// Checks pending output against the client's class limits; logs as
/// Redis does when the client must go.
fn over_output_limit(id: u64, limit: &ClassLimit, pending: usize, clock: &mut LimitClock) -> bool {
    if crate::outbuf::check(limit, pending, clock, now_ms()) == Verdict::Ok {
        return false;
    }
    tracing::warn!(
        "Client id={id} scheduled to be closed ASAP for overcoming of output buffer limits."
    );
    true
}

/// Writes the pending replies. A client that does not read fills its
/// socket: the task then waits here (it reads and executes nothing more,
/// so its output cannot grow) until the client reads, its soft output
/// limit's grace period ends, or it stays idle past `timeout`.
async fn write_out<S: ClientStream>(
    srv: &Server,
    stream: &mut S,
    wbuf: &mut BytesMut,
    stats: &WorkerStats,
    limit: &ClassLimit,
    clock: &mut LimitClock,
    id: u64,
) -> std::io::Result<()> {
    let closed = || std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
    let mut pos = 0;
    // When the client last took bytes, counted from the first time the
    // socket was full (the common case reads no clock at all).
    let mut last_progress: Option<Instant> = None;
    while pos < wbuf.len() {
        match stream.try_write_now(&wbuf[pos..]) {
            Some(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Some(Ok(n)) => {
                pos += n;
                last_progress = None;
                continue;
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let last_progress_at = *last_progress.get_or_insert_with(Instant::now);
        if over_output_limit(id, limit, wbuf.len() - pos, clock) {
            return Err(closed());
        }
        let idle = srv.config.timeout_secs.load(Relaxed);
        let idle_deadline = (idle != 0).then(|| last_progress_at + Duration::from_secs(idle));
        let soft_deadline = clock.soft_deadline_ms(limit).map(|at| {
            // One millisecond past the grace period, when `check` fails it.
            Instant::now() + Duration::from_millis(at.saturating_sub(now_ms()) + 1)
        });
        let deadline = match (idle_deadline, soft_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let written = match deadline {
            None => Some(stream.write(&wbuf[pos..]).await),
            Some(at) => tokio::time::timeout_at(at.into(), stream.write(&wbuf[pos..]))
                .await
                .ok(),
        };
        match written {
            Some(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Some(Ok(n)) => {
                pos += n;
                last_progress = Some(Instant::now());
            }
            Some(Err(e)) => return Err(e),
            None if idle_deadline.is_some_and(|d| Instant::now() >= d) => {
                debug!("Closing idle client {id}");
                return Err(closed());
            }
            // The soft limit's grace ended: the next round's check decides.
            None => {}
        }
    }
    // TLS buffers records: push them out, within the idle timeout like
    // any other wait on the client.
    if S::BUFFERED {
        flush_within_idle(srv, stream).await.map_err(|_| closed())?;
    }
    bump(&stats.net_output, wbuf.len() as u64);
    bump(&stats.writes, 1);
    wbuf.clear();
    // Everything went out: the client is under any soft limit again.
    *clock = LimitClock::default();
    Ok(())
}

async fn flush_within_idle<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
) -> std::io::Result<()> {
    match srv.config.timeout_secs.load(Relaxed) {
        0 => stream.flush().await,
        idle => tokio::time::timeout(Duration::from_secs(idle), stream.flush())
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
    }
}

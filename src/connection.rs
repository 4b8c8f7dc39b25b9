//! One client connection: read, decode every complete command in the
//! buffer, execute each, and write all their replies with one write.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::client::{ClientHandle, ClientState};
use crate::cmd::Args;
use crate::cmd::dispatch::execute;
use crate::protocol::{Decoded, Decoder, Reply};
use crate::replication::Pending;
use crate::server::Server;
use crate::stats::{WorkerStats, bump};

const READ_CHUNK: usize = 16 * 1024;
/// Replies are flushed mid-batch past this size, so a long pipeline of
/// large replies does not pile up in memory.
const FLUSH_THRESHOLD: usize = 1 << 20;
/// Largest single reservation for a big bulk argument: the buffer grows
/// as its bytes arrive instead of trusting the announced length.
const MAX_RESERVE: usize = 4 << 20;

pub async fn serve(srv: Arc<Server>, mut stream: TcpStream, stats: Arc<WorkerStats>) {
    let (Ok(addr), Ok(laddr)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    if srv.clients.len() >= srv.config.maxclients.load(Relaxed) {
        srv.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let id = srv.next_client_id();
    let handle = Arc::new(ClientHandle::new(id, addr, laddr, stream.as_raw_fd()));
    srv.clients.insert(id, handle.clone());
    srv.total_connections.fetch_add(1, Relaxed);
    let authenticated = !srv.config.requirepass_set.load(Relaxed);
    let mut state = ClientState::new(handle, authenticated);

    run(&srv, &mut stream, &mut state, &stats).await;

    // Deregister before the socket closes (when `stream` drops), so a
    // concurrent CLIENT KILL never shuts down a reused descriptor.
    srv.clients.remove(&id);
    drop(stream);
    debug!("client {id} closed");
}

async fn run(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    state: &mut ClientState,
    stats: &WorkerStats,
) {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut decoder = Decoder::new(srv.config.proto_max_bulk_len.load(Relaxed));
    decoder.unauthenticated = !state.authenticated;
    let mut buffers = BufferAccount::new(rbuf.capacity() + wbuf.capacity());
    // Set after a command that had to wait (WAIT): the commands behind it
    // are already in the buffer.
    let mut resume = false;
    loop {
        if std::mem::take(&mut resume) {
            // Fall through to decoding what is buffered.
        } else if !read_more(stream, &mut rbuf, &decoder, stats).await {
            return;
        }
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
                    if state.pending.is_some() {
                        break;
                    }
                    if wbuf.len() >= FLUSH_THRESHOLD
                        && write_out(stream, &mut wbuf, stats).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Decoded::Skip { .. }) => {}
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    debug!("client {}: protocol error: {:?}", state.id, e);
                    Reply::new(&mut wbuf, state.resp3).error(&e.message());
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
        if !wbuf.is_empty() && write_out(stream, &mut wbuf, stats).await.is_err() {
            return;
        }
        if close {
            return;
        }
        match state.pending.take() {
            None => {}
            Some(Pending::Sync(psync)) => {
                // The connection becomes a replica link for good.
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

/// Reads what the socket has; false when the client is gone.
async fn read_more(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    decoder: &Decoder,
    stats: &WorkerStats,
) -> bool {
    let want = decoder
        .bulk_bytes_missing(rbuf.len())
        .clamp(READ_CHUNK, MAX_RESERVE);
    if rbuf.capacity() - rbuf.len() < want {
        rbuf.reserve(want);
    }
    let n = match stream.read_buf(rbuf).await {
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

async fn write_out(
    stream: &mut TcpStream,
    wbuf: &mut BytesMut,
    stats: &WorkerStats,
) -> std::io::Result<()> {
    stream.write_all(wbuf).await?;
    bump(&stats.net_output, wbuf.len() as u64);
    bump(&stats.writes, 1);
    wbuf.clear();
    Ok(())
}

//! The replica side: REPLICAOF starts a link task that connects to the
//! primary, performs Redis's handshake (PING, AUTH, REPLCONF
//! listening-port, REPLCONF capa eof capa psync2, PSYNC), loads the
//! snapshot of a full resync, then applies the stream as the master
//! client (replies dropped), acknowledging its offset every second. On a
//! lost link it reconnects and asks to continue where it stopped.
//!
//! The bytes applied are appended verbatim to this server's own feed, so
//! its offset is the primary's and its own replicas (chained) receive the
//! same stream.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::feed;
use crate::client::{ClientHandle, ClientState};
use crate::cmd::Args;
use crate::protocol::{Decoded, Decoder, encode_command};
use crate::server::Server;
use crate::util::{eq_ic, now_ms};

/// The primary this server replicates, if any.
pub struct MasterConfig {
    pub host: String,
    pub port: u16,
    task: Option<tokio::task::AbortHandle>,
}

static MASTER: Mutex<Option<MasterConfig>> = Mutex::new(None);
pub static LINK_UP: AtomicBool = AtomicBool::new(false);
pub static SYNC_IN_PROGRESS: AtomicBool = AtomicBool::new(false);
/// Unix ms of the last byte received from the primary.
pub static LAST_IO_MS: AtomicU64 = AtomicU64::new(0);
/// When the link went down (Unix ms), for master_link_down_since_seconds.
pub static DOWN_SINCE_MS: AtomicU64 = AtomicU64::new(0);

pub fn master() -> Option<(String, u16)> {
    MASTER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|m| (m.host.clone(), m.port))
}

/// REPLICAOF host port. Returns false if already replicating that
/// primary.
pub fn set_master(srv: &Arc<Server>, host: &str, port: u16) -> bool {
    let mut m = MASTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cur) = m.as_ref()
        && cur.host == host
        && cur.port == port
    {
        return false;
    }
    if let Some(old) = m.take()
        && let Some(t) = old.task
    {
        t.abort();
    }
    crate::store::set_replica_mode(true);
    LINK_UP.store(false, Relaxed);
    DOWN_SINCE_MS.store(now_ms(), Relaxed);
    let task = tokio::spawn(link_loop(srv.clone(), host.to_string(), port));
    *m = Some(MasterConfig {
        host: host.to_string(),
        port,
        task: Some(task.abort_handle()),
    });
    info!("Connecting to MASTER {host}:{port}");
    true
}

/// REPLICAOF NO ONE: become a primary, keeping the data, with a new
/// replication ID; the old one stays valid up to here (PSYNC2).
pub fn unset_master() {
    let mut m = MASTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(old) = m.take() else {
        return;
    };
    if let Some(t) = old.task {
        t.abort();
    }
    crate::store::set_replica_mode(false);
    LINK_UP.store(false, Relaxed);
    SYNC_IN_PROGRESS.store(false, Relaxed);
    let mut f = feed();
    f.shift_replid();
    // Replicas must learn the new ID; they continue partially.
    f.disconnect_replicas();
    info!("MASTER MODE enabled");
}

async fn link_loop(srv: Arc<Server>, host: String, port: u16) {
    loop {
        match sync_and_stream(&srv, &host, port).await {
            Ok(()) => {}
            Err(e) => warn!("replication link with {host}:{port}: {e}"),
        }
        if LINK_UP.swap(false, Relaxed) {
            DOWN_SINCE_MS.store(now_ms(), Relaxed);
        }
        SYNC_IN_PROGRESS.store(false, Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Buffered reads from the primary, over TCP or TLS (tls-replication).
struct Conn {
    link: crate::tls::Dialed,
    buf: BytesMut,
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl Conn {
    async fn fill(&mut self) -> Result<(), String> {
        self.buf.reserve(64 * 1024);
        match tokio::time::timeout(TIMEOUT, self.link.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) => Err("connection closed by primary".into()),
            Ok(Ok(n)) => {
                LAST_IO_MS.store(now_ms(), Relaxed);
                super::NET_REPL_IN.fetch_add(n as u64, Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout reading from primary".into()),
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                return Ok(String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string());
            }
            if self.buf.len() > 64 * 1024 {
                return Err("line too long from primary".into());
            }
            self.fill().await?;
        }
    }

    async fn command(&mut self, parts: &[&[u8]]) -> Result<String, String> {
        let mut out = Vec::new();
        encode_command(&mut out, parts);
        send(&mut self.link.stream, &out).await?;
        self.line().await
    }
}

async fn sync_and_stream(srv: &Arc<Server>, host: &str, port: u16) -> Result<(), String> {
    let tls = srv.tls.as_deref().filter(|t| t.replication);
    let link = crate::tls::dial(tls, host, port, Duration::from_secs(5)).await?;
    let mut c = Conn {
        link,
        buf: BytesMut::new(),
    };
    info!("MASTER <-> REPLICA sync started");
    let pong = c.command(&[b"PING"]).await?;
    if pong.starts_with('-')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{pong}'"));
    }
    let pass = srv.config.get("masterauth").unwrap_or_default();
    if !pass.is_empty() {
        let user = srv.config.get("masteruser").unwrap_or_default();
        let r = if user.is_empty() {
            c.command(&[b"AUTH", pass.as_bytes()]).await?
        } else {
            c.command(&[b"AUTH", user.as_bytes(), pass.as_bytes()])
                .await?
        };
        if r.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {r}"));
        }
    }
    // With tls-replication the primary should reach us on our TLS port
    // (Redis announces it the same way).
    let tls_port = srv.config.get_int("tls-port");
    let my_port = match tls {
        Some(_) if tls_port != 0 => tls_port.to_string(),
        _ => srv.port.to_string(),
    };
    c.command(&[b"REPLCONF", b"listening-port", my_port.as_bytes()])
        .await?;
    c.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;

    let (replid, offset) = {
        let f = feed();
        (f.replid.clone(), f.offset)
    };
    let mut psync = if offset > 0 {
        c.command(&[
            b"PSYNC",
            replid.as_bytes(),
            (offset + 1).to_string().as_bytes(),
        ])
        .await?
    } else {
        c.command(&[b"PSYNC", b"?", b"-1"]).await?
    };
    // A primary that delays its snapshot (Redis's repl-diskless-sync-delay)
    // sends a newline a second meanwhile to keep the link alive; Redis's
    // replica skips them, and so do we.
    while psync.is_empty() {
        psync = c.line().await?;
    }
    if let Some(rest) = psync.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let (Some(id), Some(off)) = (it.next(), it.next().and_then(|o| o.parse::<u64>().ok()))
        else {
            return Err(format!("bad FULLRESYNC reply '{psync}'"));
        };
        SYNC_IN_PROGRESS.store(true, Relaxed);
        info!("Full resync from master: {id}:{off}");
        let data = read_snapshot(&mut c).await?;
        load_snapshot(srv, &data)?;
        {
            let mut f = feed();
            f.reset_to(id, off);
            // Our replicas followed another history: they must resync.
            f.disconnect_replicas();
        }
        SYNC_IN_PROGRESS.store(false, Relaxed);
        info!("MASTER <-> REPLICA sync: Finished with success");
    } else if let Some(rest) = psync.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let mut f = feed();
        f.activate();
        if !new_id.is_empty() && new_id != f.replid {
            // The primary changed history (it was promoted): keep ours
            // valid for our own replicas up to here.
            f.replid2 = std::mem::replace(&mut f.replid, new_id.to_string());
            f.second_offset = f.offset as i64 + 1;
            f.disconnect_replicas();
        }
        info!("Successful partial resynchronization with master.");
    } else {
        return Err(format!("unexpected reply to PSYNC: '{psync}'"));
    }
    LINK_UP.store(true, Relaxed);
    apply_stream(srv, c).await
}

/// Reads the RDB payload: `$<len>` or `$EOF:<mark>` (diskless), possibly
/// preceded by newlines the primary sends while preparing it.
async fn read_snapshot(c: &mut Conn) -> Result<Vec<u8>, String> {
    let header = loop {
        let line = c.line().await?;
        if !line.is_empty() {
            break line;
        }
    };
    if let Some(mark) = header.strip_prefix("$EOF:") {
        let mark = mark.as_bytes().to_vec();
        if mark.len() != 40 {
            return Err("bad EOF mark".into());
        }
        // The stream may follow the mark in the same read: search for it
        // in what arrived since the last look, and hand back what follows.
        // A slice-by-slice comparison at every offset was 17% of a
        // replica's CPU in a full sync of 1M keys.
        let finder = memchr::memmem::Finder::new(&mark);
        let mut data = Vec::new();
        loop {
            let from = data.len().saturating_sub(mark.len() - 1);
            data.extend_from_slice(&c.buf);
            c.buf.clear();
            if let Some(pos) = finder.find(&data[from..]) {
                let end = from + pos;
                c.buf.extend_from_slice(&data[end + mark.len()..]);
                data.truncate(end);
                return Ok(data);
            }
            c.fill().await?;
        }
    }
    let len: usize = header
        .strip_prefix('$')
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| format!("bad bulk header from primary: '{header}'"))?;
    // Grows as bytes arrive rather than trusting the announced size.
    let mut data = Vec::with_capacity(len.min(64 << 20));
    while data.len() < len {
        if c.buf.is_empty() {
            c.fill().await?;
        }
        let n = (len - data.len()).min(c.buf.len());
        data.extend_from_slice(&c.buf[..n]);
        c.buf.advance(n);
    }
    Ok(data)
}

/// Replaces the dataset with the snapshot (expired keys kept: the
/// primary's DELs will remove them).
pub fn load_snapshot(srv: &Server, data: &[u8]) -> Result<(), String> {
    let mut locked = crate::cmd::Locked::all(srv);
    crate::persistence::replace_with_image(srv, &mut locked, data, now_ms())
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Applies the replication stream until the link fails.
async fn apply_stream(srv: &Arc<Server>, mut c: Conn) -> Result<(), String> {
    let handle = Arc::new(ClientHandle::new(
        srv.next_client_id(),
        c.link.peer,
        c.link.local,
        c.link.fd,
    ));
    let mut state = ClientState::new(handle, true);
    state.is_master = true;
    let stats = srv.workers[0].clone();
    let mut decoder = Decoder::new(srv.config.proto_max_bulk_len.load(Relaxed));
    let mut out = BytesMut::new();
    let mut ack_timer = tokio::time::interval(Duration::from_secs(1));
    let mut rbuf = std::mem::take(&mut c.buf);
    loop {
        let mut ack_now = false;
        loop {
            match decoder.decode(&rbuf) {
                Ok(Decoded::Command { start, len }) => {
                    let args = Args::new(decoder.arg_base(&rbuf, start), decoder.args());
                    let applying = super::apply_guard();
                    if args.len() >= 2 && eq_ic(args.get(0), "replconf") {
                        // GETACK answers with the offset before itself.
                        ack_now |= eq_ic(args.get(1), "getack");
                    } else {
                        crate::cmd::dispatch::execute(srv, &mut state, &args, &mut out, &stats);
                        out.clear();
                    }
                    feed().append_raw(&rbuf[start..start + len]);
                    drop(applying);
                    if ack_now {
                        break;
                    }
                }
                Ok(Decoded::Skip { len }) => {
                    // Empty commands count in the offset; as newlines
                    // they are empty commands for our replicas too.
                    feed().append_raw(&vec![b'\n'; len]);
                }
                Ok(Decoded::Incomplete) => break,
                Err(e) => return Err(format!("protocol error from primary: {}", e.message())),
            }
        }
        let keep = decoder.keep_from();
        rbuf.advance(keep);
        decoder.consumed(keep);
        if ack_now {
            send_ack(&mut c.link.stream).await?;
            continue;
        }
        rbuf.reserve(64 * 1024);
        tokio::select! {
            r = c.link.stream.read_buf(&mut rbuf) => match r {
                Ok(0) => return Err("connection lost".into()),
                Ok(n) => {
                    LAST_IO_MS.store(now_ms(), Relaxed);
                    super::NET_REPL_IN.fetch_add(n as u64, Relaxed);
                }
                Err(e) => return Err(e.to_string()),
            },
            _ = ack_timer.tick() => send_ack(&mut c.link.stream).await?,
        }
        if LAST_IO_MS.load(Relaxed) + TIMEOUT.as_millis() as u64 <= now_ms() {
            return Err("MASTER timeout: no data nor PING received...".into());
        }
    }
}

async fn send_ack(stream: &mut Box<dyn crate::tls::Stream>) -> Result<(), String> {
    let off = feed().offset.to_string();
    let mut out = Vec::new();
    encode_command(&mut out, &[b"REPLCONF", b"ACK", off.as_bytes()]);
    send(stream, &out).await
}

/// Writes and flushes (a TLS stream may hold written bytes until then).
async fn send(stream: &mut Box<dyn crate::tls::Stream>, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

//! The primary's side of a replica connection: after PSYNC (or SYNC) the
//! connection stops being a normal client. It gets `+CONTINUE` and the
//! stream from its offset when the backlog still holds it, otherwise
//! `+FULLRESYNC`, a snapshot in RDB format sent diskless, then the stream
//! from the snapshot's point. Its REPLCONF ACKs are read meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use super::{ReplicaLink, SYNC_FULL, SYNC_PARTIAL_ERR, SYNC_PARTIAL_OK, feed, snapshot};
use crate::client::ClientState;
use crate::cmd::Args;
use crate::protocol::{Decoded, Decoder};
use crate::rdb;
use crate::server::Server;
use crate::util::{eq_ic, now_ms, parse_i64};

/// Most stream bytes handed to the socket in one write.
const CHUNK: usize = 256 * 1024;

/// A replica's connection: plain TCP or TLS.
pub trait ReplicaStream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> ReplicaStream for T {}

pub async fn serve_replica<S: ReplicaStream>(
    srv: &Arc<Server>,
    stream: &mut S,
    state: &mut ClientState,
    psync: Option<(String, i64)>,
    rbuf: BytesMut,
) {
    let ip = state.handle.addr.ip().to_string();
    let port = if state.repl_listening_port != 0 {
        state.repl_listening_port
    } else {
        state.handle.addr.port()
    };
    let capa_eof = state.repl_capa_eof;
    let rdb_only = state.repl_rdb_only;
    state.handle.is_replica.store(true, Relaxed);
    let link;
    let mut header = Vec::new();
    let mut full_resync = false;
    {
        let mut f = feed();
        match &psync {
            // An rdb-only connection wants a snapshot, never a backlog.
            Some((id, from)) if !rdb_only && f.can_continue(id, *from) => {
                let cursor = *from as u64 - 1;
                link = Arc::new(ReplicaLink::new(state.id, ip.clone(), port, cursor));
                link.online.store(true, Relaxed);
                f.replicas.push(link.clone());
                SYNC_PARTIAL_OK.fetch_add(1, Relaxed);
                header = if state.repl_capa_psync2 {
                    format!("+CONTINUE {}\r\n", f.replid).into_bytes()
                } else {
                    b"+CONTINUE\r\n".to_vec()
                };
                info!(
                    "Partial resynchronization request from {ip}:{port} accepted. Sending {} bytes of backlog starting from offset {from}.",
                    f.offset + 1 - *from as u64
                );
            }
            _ => {
                if let Some((id, _)) = &psync
                    && id != "?"
                {
                    SYNC_PARTIAL_ERR.fetch_add(1, Relaxed);
                }
                link = Arc::new(ReplicaLink::new(state.id, ip.clone(), port, 0));
                full_resync = true;
            }
        }
    }
    if full_resync {
        info!("Replica {ip}:{port} asks for synchronization; starting a full resync");
        let started = snapshot::start_when_free(srv, now_ms(), snapshot::Walker::Consumer, || {
            let mut f = feed();
            f.activate();
            link.cursor.store(f.offset, Relaxed);
            f.replicas.push(link.clone());
        })
        .await;
        let Some((job, images)) = started else {
            return;
        };
        let mut pieces = snapshot::Pieces::new(srv, job, images);
        SYNC_FULL.fetch_add(1, Relaxed);
        let (replid, offset) = {
            let f = feed();
            (f.replid.clone(), link.cursor.load(Relaxed))
        };
        if psync.is_some() {
            header = format!("+FULLRESYNC {replid} {offset}\r\n").into_bytes();
        }
        let sent = send_snapshot(
            stream,
            header,
            &mut pieces,
            &replid,
            offset,
            capa_eof,
            srv.used_memory() as u64,
        )
        .await;
        drop(pieces);
        if sent.is_err() {
            feed().remove_replica(&link);
            return;
        }
        if rdb_only {
            // As Redis: the snapshot alone, then the connection closes.
            // Streaming on would also hide the end mark from redis-cli
            // --rdb, which looks for it at the end of what it last read.
            feed().remove_replica(&link);
            info!("Snapshot sent to rdb-only client {ip}:{port}; closing the connection");
            return;
        }
        link.online.store(true, Relaxed);
        info!("Synchronization with replica {ip}:{port} succeeded");
    } else if send(stream, &header).await.is_err() {
        feed().remove_replica(&link);
        return;
    }
    link.last_ack_ms.store(now_ms(), Relaxed);
    stream_to(stream, &link, rbuf, srv).await;
    feed().remove_replica(&link);
}

#[allow(clippy::too_many_arguments)]
async fn send_snapshot<S: ReplicaStream>(
    stream: &mut S,
    mut out: Vec<u8>,
    pieces: &mut snapshot::Pieces,
    replid: &str,
    offset: u64,
    capa_eof: bool,
    used_mem: u64,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    rdb::write_header(
        &mut head,
        &rdb::HeaderInfo {
            ctime_secs: now_ms() / 1000,
            used_mem,
            repl: Some((replid, offset)),
            db_sizes: pieces.db_sizes(),
        },
    );
    let mut crc = rdb::Crc64::new();
    crc.update(&head);
    if capa_eof {
        // Diskless with an end mark: the size is not known in advance.
        let mark = crate::server::random_hex(40);
        out.extend_from_slice(format!("$EOF:{mark}\r\n").as_bytes());
        out.extend_from_slice(&head);
        send(stream, &out).await?;
        super::NET_REPL_OUT.fetch_add(out.len() as u64, Relaxed);
        while let Some(img) = pieces.next().await {
            crc.update(&img);
            send(stream, &img).await?;
            super::NET_REPL_OUT.fetch_add(img.len() as u64, Relaxed);
        }
        let mut tail = Vec::new();
        rdb::write_trailer(&mut tail, &mut crc);
        tail.extend_from_slice(mark.as_bytes());
        send(stream, &tail).await?;
        super::NET_REPL_OUT.fetch_add(tail.len() as u64, Relaxed);
    } else {
        // The length comes first: build the whole file.
        let mut body = head;
        while let Some(img) = pieces.next().await {
            crc.update(&img);
            body.extend_from_slice(&img);
        }
        rdb::write_trailer(&mut body, &mut crc);
        out.extend_from_slice(format!("${}\r\n", body.len()).as_bytes());
        send(stream, &out).await?;
        super::NET_REPL_OUT.fetch_add(out.len() as u64, Relaxed);
        send(stream, &body).await?;
        super::NET_REPL_OUT.fetch_add(body.len() as u64, Relaxed);
    }
    Ok(())
}

/// Sends the stream from the link's cursor on, and reads the replica's
/// acknowledgements, until either side fails or the link is cut.
/// Writes and flushes (TLS holds written bytes until then).
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn stream_to<S: ReplicaStream>(
    stream: &mut S,
    link: &Arc<ReplicaLink>,
    mut rbuf: BytesMut,
    srv: &Server,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reader = async {
        let mut decoder = Decoder::new(srv.config.proto_max_bulk_len.load(Relaxed));
        loop {
            loop {
                match decoder.decode(&rbuf) {
                    Ok(Decoded::Command { start, .. }) => {
                        let args = Args::new(decoder.arg_base(&rbuf, start), decoder.args());
                        if args.len() >= 3
                            && eq_ic(args.get(0), "replconf")
                            && eq_ic(args.get(1), "ack")
                            && let Some(off) = parse_i64(args.get(2))
                        {
                            link.ack.store(off.max(0) as u64, Relaxed);
                            link.last_ack_ms.store(now_ms(), Relaxed);
                        }
                    }
                    Ok(Decoded::Skip { .. }) => {}
                    Ok(Decoded::Incomplete) => break,
                    Err(_) => return,
                }
            }
            let keep = decoder.keep_from();
            rbuf.advance(keep);
            decoder.consumed(keep);
            if rbuf.len() > 1 << 20 {
                return;
            }
            match rd.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let writer = async {
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let woken = link.wake.notified();
            if link.dead.load(Relaxed) {
                return;
            }
            chunk.clear();
            let cursor = link.cursor.load(Relaxed);
            if feed().read_from(cursor, CHUNK, &mut chunk).is_none() {
                warn!("replica {} fell out of the backlog", link.client_id);
                return;
            }
            if chunk.is_empty() {
                // Wake at least once a second to notice a cut link.
                let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
                continue;
            }
            if send(&mut wr, &chunk).await.is_err() {
                return;
            }
            super::NET_REPL_OUT.fetch_add(chunk.len() as u64, Relaxed);
            link.cursor.store(cursor + chunk.len() as u64, Relaxed);
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

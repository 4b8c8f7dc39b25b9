//! The cluster bus: nodes talk over TCP (TLS with tls-cluster, see
//! `crate::tls`) on the cluster port with our own
//! compact encoding of Redis Cluster's messages (PING, PONG, MEET, FAIL)
//! and run Redis Cluster's algorithms on them: gossip of the node table,
//! slot ownership settled by config epoch, PFAIL after node-timeout
//! without a PONG, FAIL when a majority of slot-serving primaries report
//! it. Every link starts with a mutual challenge-response over the shared
//! secret (`cluster-bus-secret`, else `masterauth`), HMAC-SHA1 of both
//! nonces, so only nodes that know the secret can join. Over TLS the
//! challenge still runs inside the session: TLS proves a peer holds a
//! certificate from our CA (client certificates included), the secret
//! that it is one of this cluster's nodes.
//!
//! Tasks (all on the main thread's runtime, never holding the state
//! mutex across an await): one listener, one task per inbound link, one
//! task per known node for its outbound link, and a 100 ms cron.
//! Outbound links send PING / MEET / FAIL; inbound links answer PONG.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Cluster, Node, SLOTS, State, nf};
use crate::server::Server;
use crate::util::now_ms;

pub const PING: u8 = 0;
pub const PONG: u8 = 1;
pub const MEET: u8 = 2;
pub const FAIL: u8 = 3;
/// A replica asks primaries for their vote (Redis's
/// FAILOVER_AUTH_REQUEST); `about_epoch` is its primary's config epoch,
/// `slots` its primary's slots.
pub const AUTH_REQUEST: u8 = 5;
/// A primary's vote (FAILOVER_AUTH_ACK).
pub const AUTH_ACK: u8 = 6;
/// "Node `about_id` owns `slots` at config epoch `about_epoch`": sent to
/// a node that claims slots someone else owns with a higher epoch.
pub const UPDATE: u8 = 7;
/// A replica asks its primary for a manual failover (CLUSTER FAILOVER).
pub const MFSTART: u8 = 8;

/// `mflags`: the sender (a primary) has paused its clients for a manual
/// failover; its `repl_offset` is final.
pub const MF_PAUSED: u8 = 1;
/// An AUTH_REQUEST for a manual failover: vote even though the primary
/// is not failing.
pub const MF_FORCEACK: u8 = 2;

/// Version 2 added the plain port (`pport`) to the header and gossip.
const MAGIC: &[u8; 8] = b"FCBUS02\n";
/// No legitimate message comes near this (a 1,000-node gossip section is
/// ~100 KiB); anything larger is a broken or hostile peer.
const MAX_FRAME: usize = 4 << 20;

// ------------------------------------------------------------ messages

pub struct Gossip {
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
}

pub struct Msg {
    pub kind: u8,
    pub id: String,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub flags: u16,
    pub primary: String,
    pub ip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    pub shard_id: String,
    pub slots: Vec<u8>,
    pub gossip: Vec<Gossip>,
    /// The node a FAIL or UPDATE is about.
    pub about_id: String,
    pub about_epoch: u64,
    /// The sender's replication offset (processed, for a replica).
    pub repl_offset: u64,
    pub mflags: u8,
}

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        self.u16(b.len() as u16);
        self.0.extend_from_slice(b);
    }
}

struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl Msg {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(2200 + self.gossip.len() * 80));
        e.0.extend_from_slice(&[0; 4]);
        e.u8(self.kind);
        e.str(&self.id);
        e.u64(self.current_epoch);
        e.u64(self.config_epoch);
        e.u16(self.flags);
        e.str(&self.primary);
        e.str(&self.ip);
        e.u16(self.port);
        e.u16(self.pport);
        e.u16(self.cport);
        e.str(&self.hostname);
        e.str(&self.shard_id);
        e.0.extend_from_slice(&self.slots);
        e.u16(self.gossip.len() as u16);
        for g in &self.gossip {
            e.str(&g.id);
            e.str(&g.ip);
            e.u16(g.port);
            e.u16(g.pport);
            e.u16(g.cport);
            e.u16(g.flags);
        }
        e.str(&self.about_id);
        e.u64(self.about_epoch);
        e.u64(self.repl_offset);
        e.u8(self.mflags);
        let len = (e.0.len() - 4) as u32;
        e.0[..4].copy_from_slice(&len.to_be_bytes());
        e.0
    }

    pub fn decode(body: &[u8]) -> Option<Msg> {
        let mut d = Dec(body);
        let kind = d.u8()?;
        let id = d.str()?;
        let current_epoch = d.u64()?;
        let config_epoch = d.u64()?;
        let flags = d.u16()?;
        let primary = d.str()?;
        let ip = d.str()?;
        let port = d.u16()?;
        let pport = d.u16()?;
        let cport = d.u16()?;
        let hostname = d.str()?;
        let shard_id = d.str()?;
        let slots = d.take(SLOTS / 8)?.to_vec();
        let n = d.u16()? as usize;
        let mut gossip = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            gossip.push(Gossip {
                id: d.str()?,
                ip: d.str()?,
                port: d.u16()?,
                pport: d.u16()?,
                cport: d.u16()?,
                flags: d.u16()?,
            });
        }
        let about_id = d.str()?;
        let about_epoch = d.u64()?;
        let repl_offset = d.u64()?;
        let mflags = d.u8()?;
        if kind > MFSTART || kind == 4 || !super::valid_id(&id) {
            return None;
        }
        Some(Msg {
            kind,
            id,
            current_epoch,
            config_epoch,
            flags,
            primary,
            ip,
            port,
            pport,
            cport,
            hostname,
            shard_id,
            slots,
            gossip,
            about_id,
            about_epoch,
            repl_offset,
            mflags,
        })
    }
}

/// What a message says beyond the header every message carries.
#[derive(Default, Clone)]
pub struct Extra<'a> {
    pub about_id: &'a str,
    pub about_epoch: u64,
    /// Slots to send instead of ours (UPDATE).
    pub slots: Option<Vec<u8>>,
    pub mflags: u8,
}

/// A message from us, with our view of every other node as gossip.
pub fn build(st: &mut State, kind: u8, to: Option<u16>, about_id: &str) -> Vec<u8> {
    build_with(
        st,
        kind,
        to,
        Extra {
            about_id,
            ..Extra::default()
        },
    )
}

pub fn build_with(st: &mut State, kind: u8, to: Option<u16>, extra: Extra) -> Vec<u8> {
    let me = st.myself();
    let gossip = if !matches!(kind, PING | PONG | MEET) {
        Vec::new()
    } else {
        st.known_nodes()
            .filter(|(i, n)| {
                *i != 0 && Some(*i) != to && n.flags & (nf::HANDSHAKE | nf::NOADDR) == 0
            })
            .map(|(_, n)| Gossip {
                id: n.id.clone(),
                ip: n.ip.clone(),
                port: n.port,
                pport: n.pport,
                cport: n.cport,
                flags: n.flags,
            })
            .collect()
    };
    // A replica advertises its primary's slots, as in Redis (an election
    // request names the slots it wants to take over).
    let slot_owner = match me.primary.as_deref().and_then(|p| st.lookup(p)) {
        Some(p) if me.flags & nf::SLAVE != 0 => p,
        _ => 0,
    };
    let slots = extra.slots.unwrap_or_else(|| st.bitmap_of(slot_owner));
    let me = st.myself();
    let msg = Msg {
        kind,
        id: me.id.clone(),
        current_epoch: st.current_epoch,
        config_epoch: me.config_epoch,
        flags: me.flags & !nf::MYSELF,
        primary: me.primary.clone().unwrap_or_default(),
        ip: me.ip.clone(),
        port: me.port,
        pport: me.pport,
        cport: me.cport,
        hostname: me.hostname.clone(),
        shard_id: me.shard_id.clone(),
        slots,
        gossip,
        about_id: extra.about_id.to_string(),
        about_epoch: extra.about_epoch,
        repl_offset: crate::replication::feed().offset,
        mflags: extra.mflags,
    };
    st.sent[kind as usize] += 1;
    msg.encode()
}

// ------------------------------------------------------ authentication

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

fn secret(srv: &Server) -> Vec<u8> {
    let s = srv.config.get("cluster-bus-secret").unwrap_or_default();
    if !s.is_empty() {
        return s.into_bytes();
    }
    srv.config
        .get("masterauth")
        .unwrap_or_default()
        .into_bytes()
}

/// Constant-time comparison, so a peer cannot probe the MAC by timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Connector side: magic + nonce_c; expects nonce_s + MAC_s; sends MAC_c.
async fn auth_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
) -> std::io::Result<()> {
    let mut nc = [0u8; 16];
    super::fill_random(&mut nc);
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&nc);
    send(s, &hello).await?;
    let mut resp = [0u8; 36];
    s.read_exact(&mut resp).await?;
    let (ns, mac_s) = resp.split_at(16);
    if !same(mac_s, &hmac_sha1(key, &[b"acceptor", &nc, ns])) {
        return Err(std::io::Error::other("bus peer failed authentication"));
    }
    send(s, &hmac_sha1(key, &[b"connector", ns, &nc])).await
}

async fn auth_accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
) -> std::io::Result<()> {
    let mut hello = [0u8; 24];
    s.read_exact(&mut hello).await?;
    if &hello[..8] != MAGIC {
        return Err(std::io::Error::other("not a cluster bus peer"));
    }
    let nc = &hello[8..];
    let mut ns = [0u8; 16];
    super::fill_random(&mut ns);
    let mut resp = ns.to_vec();
    resp.extend_from_slice(&hmac_sha1(key, &[b"acceptor", nc, &ns]));
    send(s, &resp).await?;
    let mut mac_c = [0u8; 20];
    s.read_exact(&mut mac_c).await?;
    if !same(&mac_c, &hmac_sha1(key, &[b"connector", &ns, nc])) {
        return Err(std::io::Error::other("bus peer failed authentication"));
    }
    Ok(())
}

/// Writes and flushes: a TLS stream holds written bytes until flushed.
async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

/// Next complete frame in `buf`, if any; `Err` for an oversized one.
fn next_frame(buf: &mut BytesMut) -> Result<Option<BytesMut>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(());
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len)))
}

// ------------------------------------------------------------- links

struct LinkSlot {
    generation: u64,
    tx: mpsc::Sender<Vec<u8>>,
    last_ping: u64,
}

pub struct Bus {
    links: Mutex<HashMap<u16, LinkSlot>>,
}

impl Bus {
    /// Queues a frame on our outbound link to node `idx` (dropped if the
    /// link is down or its queue full, as a lost packet would be).
    pub fn send(&self, idx: u16, frame: Vec<u8>) {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = links.get(&idx) {
            let _ = l.tx.try_send(frame);
        }
    }

    /// Sends a message to every node we have a link to.
    pub fn broadcast(&self, st: &mut State, kind: u8, extra: &Extra) {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        for (&idx, l) in links.iter() {
            if st.node(idx).is_some_and(|n| n.flags & nf::HANDSHAKE == 0) {
                let _ =
                    l.tx.try_send(build_with(st, kind, Some(idx), extra.clone()));
            }
        }
    }

    fn broadcast_fail(&self, st: &mut State, ids: &[String]) {
        for id in ids {
            let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            for l in links.values() {
                let _ = l.tx.try_send(build(st, FAIL, None, id));
            }
        }
    }
}

fn node_timeout(srv: &Server) -> u64 {
    srv.config.get_int("cluster-node-timeout").max(1) as u64
}

/// Binds the cluster port (before serving, so a taken port fails start).
pub fn bind(srv: &Server, cl: &Cluster) -> std::io::Result<Vec<std::net::TcpListener>> {
    let bind = srv.config.get("bind").unwrap_or_default();
    let mut out = Vec::new();
    for (ip, optional) in crate::server::bind_addresses(&bind)? {
        match std::net::TcpListener::bind((ip, cl.cport)) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                out.push(l);
            }
            Err(e) if optional => debug!("skipping optional cluster bus address {ip}: {e}"),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not bind cluster bus port {ip}:{}: {e}", cl.cport),
                ));
            }
        }
    }
    Ok(out)
}

/// Runs the bus until the process exits.
pub async fn run(srv: Arc<Server>, listeners: Vec<std::net::TcpListener>) {
    let bus = Arc::new(Bus {
        links: Mutex::new(HashMap::new()),
    });
    if let Some(cl) = srv.cluster.as_ref() {
        let _ = cl.bus.set(bus.clone());
        // nodes.conf says we are a replica: replicate our primary again.
        super::failover::resume_replication(cl, &cl.lock());
    }
    for l in listeners {
        let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
            continue;
        };
        let srv = srv.clone();
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(inbound(srv.clone(), bus.clone(), stream));
                    }
                    Err(e) => {
                        warn!("cluster bus accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        cron(&srv, &bus);
    }
}

fn cron(srv: &Arc<Server>, bus: &Arc<Bus>) {
    let Some(cl) = srv.cluster.as_ref() else {
        return;
    };
    let now = now_ms();
    let timeout = node_timeout(srv);
    let ping_every = (timeout / 4).clamp(100, 1000);
    let mut st = cl.lock();
    cl.apply_announce(&mut st, &srv.config);
    st.blacklist.retain(|_, until| *until > now);
    let force = std::mem::take(&mut st.force_ping);
    let mut fails = Vec::new();
    let ids: Vec<(u16, u64)> = st
        .known_nodes()
        .filter(|(i, _)| *i != 0)
        .map(|(i, n)| (i, n.generation))
        .collect();
    let mut links = bus.links.lock().unwrap_or_else(|e| e.into_inner());
    links.retain(|idx, l| ids.contains(&(*idx, l.generation)));
    for (idx, generation) in ids {
        let Some(n) = st.node(idx) else { continue };
        if n.flags & nf::HANDSHAKE != 0 && now.saturating_sub(n.created) > timeout.max(1000) {
            info!("Handshake with node {} timed out.", n.id);
            st.remove_node(idx);
            continue;
        }
        let slot = links.entry(idx).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(outbound(srv.clone(), bus.clone(), idx, generation, rx));
            LinkSlot {
                generation,
                tx,
                last_ping: 0,
            }
        });
        let Some(n) = st.node(idx) else { continue };
        if n.link && n.ping_sent == 0 && (force || now.saturating_sub(slot.last_ping) >= ping_every)
        {
            let frame = build(&mut st, PING, Some(idx), "");
            if slot.tx.try_send(frame).is_ok() {
                slot.last_ping = now;
                if let Some(n) = st.node_mut(idx) {
                    n.ping_sent = now;
                }
            }
        }
        let Some(n) = st.node_mut(idx) else { continue };
        if n.ping_sent != 0
            && now.saturating_sub(n.ping_sent) > timeout
            && n.flags & (nf::PFAIL | nf::FAIL | nf::HANDSHAKE) == 0
        {
            n.flags |= nf::PFAIL;
            debug!("*** NODE {} possibly failing", n.id);
        }
        if let Some(id) = st.mark_failing_if_needed(idx, timeout) {
            fails.push(id);
        }
    }
    drop(links);
    if !fails.is_empty() {
        bus.broadcast_fail(&mut st, &fails);
    }
    let no_failover = srv.config.get("cluster-replica-no-failover").as_deref() == Some("yes");
    let me = st.myself_mut();
    // Redis flags only a replica (clusterUpdateMyselfFlags).
    let no_failover = no_failover && me.flags & nf::SLAVE != 0;
    if (me.flags & nf::NOFAILOVER != 0) != no_failover {
        me.flags ^= nf::NOFAILOVER;
        st.dirty = true;
        st.force_ping = true;
    }
    st.election.validity_factor =
        srv.config.get_int("cluster-replica-validity-factor").max(0) as u64;
    super::failover::cron(cl, &mut st, bus, timeout, now);
    cl.update_state(&mut st, &srv.config);
    cl.save_logged(&mut st);
}

async fn outbound(
    srv: Arc<Server>,
    bus: Arc<Bus>,
    idx: u16,
    generation: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let Some(cl) = srv.cluster.clone() else {
        return;
    };
    loop {
        let target = {
            let mut st = cl.lock();
            let Some(n) = st.node_mut(idx).filter(|n| n.generation == generation) else {
                return;
            };
            n.link = false;
            if n.ping_sent == 0 {
                // A node we cannot even reach counts as not answering
                // our PING (Redis sets ping_sent when creating a link).
                n.ping_sent = now_ms();
            }
            (!n.ip.is_empty() && n.cport != 0).then(|| (n.ip.clone(), n.cport))
        };
        let Some((ip, cport)) = target else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let timeout = Duration::from_millis(node_timeout(&srv).clamp(100, 5000));
        let tls = srv.tls.as_deref().filter(|t| t.cluster);
        let dialed = match crate::tls::dial(tls, &ip, cport, timeout).await {
            Ok(d) => d,
            Err(e @ crate::tls::DialError::Tls(_)) => {
                // Reachable but refusing us (certificates): as for a
                // failed challenge, say so and retry slowly.
                warn!("cluster bus link to {ip}:{cport}: {e}");
                tokio::time::sleep(Duration::from_millis(1000)).await;
                continue;
            }
            Err(crate::tls::DialError::Connect(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut stream = dialed.stream;
        match tokio::time::timeout(timeout, auth_connect(&mut stream, &secret(&srv))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!("cluster bus link to {ip}:{cport}: {e}");
                tokio::time::sleep(Duration::from_millis(1000)).await;
                continue;
            }
            Err(_) => continue,
        }
        let local_ip = Some(dialed.local.ip());
        let peer_ip = Some(dialed.peer.ip());
        let first = {
            let mut st = cl.lock();
            let Some(n) = st.node_mut(idx).filter(|n| n.generation == generation) else {
                return;
            };
            n.link = true;
            n.link_created = now_ms();
            let kind = if n.flags & nf::MEET != 0 { MEET } else { PING };
            build(&mut st, kind, Some(idx), "")
        };
        if send(&mut stream, &first).await.is_err() {
            continue;
        }
        let mut buf = BytesMut::with_capacity(8192);
        let gone = loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(f) => if send(&mut stream, &f).await.is_err() { break false },
                    None => break true,
                },
                r = stream.read_buf(&mut buf) => {
                    if !matches!(r, Ok(n) if n > 0) { break false; }
                    let mut bad = false;
                    loop {
                        match next_frame(&mut buf) {
                            Ok(Some(body)) => match Msg::decode(&body) {
                                Some(msg) => {
                                    let _ = process(&srv, &cl, &bus, msg, peer_ip, local_ip, Some(idx));
                                }
                                None => { bad = true; break; }
                            },
                            Ok(None) => break,
                            Err(()) => { bad = true; break; }
                        }
                    }
                    if bad { break false; }
                }
            }
        };
        if gone {
            return;
        }
        if let Some(n) = cl
            .lock()
            .node_mut(idx)
            .filter(|n| n.generation == generation)
        {
            n.link = false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inbound(srv: Arc<Server>, bus: Arc<Bus>, tcp: TcpStream) {
    let Some(cl) = srv.cluster.clone() else {
        return;
    };
    let (Ok(peer), Ok(local)) = (tcp.peer_addr(), tcp.local_addr()) else {
        return;
    };
    let timeout = Duration::from_millis(node_timeout(&srv).clamp(100, 5000));
    let mut stream: Box<dyn crate::tls::Stream> =
        match srv.tls.as_ref().and_then(|t| t.bus.as_ref()) {
            None => Box::new(tcp),
            Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    warn!("Error accepting cluster node connection from {peer}: {e}");
                    return;
                }
                Err(_) => return,
            },
        };
    match tokio::time::timeout(timeout, auth_accept(&mut stream, &secret(&srv))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            warn!("cluster bus connection from {peer} refused: {e}");
            return;
        }
        Err(_) => return,
    }
    let local_ip = Some(local.ip());
    let peer_ip = Some(peer.ip());
    let mut buf = BytesMut::with_capacity(8192);
    let mut sender: Option<(u16, u64)> = None;
    'conn: loop {
        match stream.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        loop {
            let body = match next_frame(&mut buf) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(()) => break 'conn,
            };
            let Some(msg) = Msg::decode(&body) else {
                break 'conn;
            };
            let id = msg.id.clone();
            let reply = process(&srv, &cl, &bus, msg, peer_ip, local_ip, None);
            if sender.is_none() {
                let mut st = cl.lock();
                if let Some(i) = st.lookup(&id)
                    && let Some(n) = st.node_mut(i)
                {
                    n.inbound_link_created = now_ms();
                    sender = Some((i, n.generation));
                }
            }
            if let Some(r) = reply
                && send(&mut stream, &r).await.is_err()
            {
                break 'conn;
            }
        }
    }
    if let Some((i, g)) = sender
        && let Some(n) = cl.lock().node_mut(i).filter(|n| n.generation == g)
    {
        n.inbound_link_created = 0;
    }
}

// ------------------------------------------------------------ processing

/// Handles one message; returns the PONG to send back for PING / MEET.
/// `link` is the node our outbound link was opened to (PONGs arrive
/// there).
fn process(
    srv: &Server,
    cl: &Cluster,
    bus: &Bus,
    msg: Msg,
    peer_ip: Option<IpAddr>,
    local_ip: Option<IpAddr>,
    link: Option<u16>,
) -> Option<Vec<u8>> {
    let now = now_ms();
    let timeout = node_timeout(srv);
    let mut st = cl.lock();
    st.received[msg.kind as usize] += 1;
    if st.myself().id == msg.id {
        // Connected to ourselves (a MEET with our own address).
        if let Some(l) = link
            && st.node(l).is_some_and(|n| n.flags & nf::HANDSHAKE != 0)
        {
            st.remove_node(l);
        }
        return None;
    }
    if msg.current_epoch > st.current_epoch {
        st.current_epoch = msg.current_epoch;
        st.dirty = true;
    }
    let announced = !srv
        .config
        .get("cluster-announce-ip")
        .unwrap_or_default()
        .is_empty();
    // Learn our own address from how peers reach us (Redis does so on
    // MEET, and on any PING while we know none).
    if link.is_none()
        && !announced
        && (msg.kind == MEET || (msg.kind == PING && st.myself().ip.is_empty()))
        && let Some(ip) = local_ip
    {
        let ip = ip.to_string();
        if st.myself().ip != ip {
            st.myself_mut().ip = ip;
            st.dirty = true;
        }
    }
    let sender_ip = if msg.ip.is_empty() {
        peer_ip.map(|i| i.to_string()).unwrap_or_default()
    } else {
        msg.ip.clone()
    };
    let mut sender = st.lookup(&msg.id);
    let mut lost = Vec::new();
    if msg.kind == MEET && sender.is_none() && !st.blacklist.contains_key(&msg.id) {
        sender = st.add_node(Node {
            id: msg.id.clone(),
            shard_id: msg.shard_id.clone(),
            ip: sender_ip.clone(),
            port: msg.port,
            pport: msg.pport,
            cport: msg.cport,
            flags: msg.flags & (nf::MASTER | nf::SLAVE),
            ..Node::default()
        });
    }
    if msg.kind == PONG
        && let Some(l) = link
    {
        let handshake = st.node(l).is_some_and(|n| n.flags & nf::HANDSHAKE != 0);
        if handshake {
            match sender {
                Some(s) if s != l => st.remove_node(l),
                _ => {
                    st.rename_node(l, &msg.id);
                    if let Some(n) = st.node_mut(l) {
                        n.flags = msg.flags & (nf::MASTER | nf::SLAVE);
                    }
                    sender = Some(l);
                }
            }
        } else if sender.is_none() && st.node(l).is_some() {
            // The node behind this address has a new identity
            // (CLUSTER RESET HARD): follow it. (A link whose node was
            // just forgotten, by CLUSTER RESET or FORGET, teaches nothing.)
            st.rename_node(l, &msg.id);
            sender = Some(l);
        }
        let serves = st.slot_count(l) > 0;
        if sender == Some(l)
            && let Some(n) = st.node_mut(l)
        {
            n.pong_received = now;
            n.ping_sent = 0;
            n.flags &= !(nf::PFAIL | nf::MEET);
            clear_failure_if_needed(n, serves, timeout, now);
        }
    }
    if let Some(s) = sender {
        let sender_id = msg.id.clone();
        let mut slots_changed = false;
        let mut moved = false;
        if let Some(n) = st.node_mut(s) {
            n.data_received = now;
            if n.ip != sender_ip || n.port != msg.port || n.cport != msg.cport {
                n.ip = sender_ip;
                n.port = msg.port;
                n.cport = msg.cport;
                moved = true;
            }
            if n.pport != msg.pport {
                n.pport = msg.pport;
                st.dirty = true;
            }
        }
        if moved {
            // A new generation makes the cron replace the outbound link,
            // which then connects to the new address.
            let generation = st.next_generation;
            st.next_generation += 1;
            if let Some(n) = st.node_mut(s) {
                n.generation = generation;
                n.link = false;
            }
            st.dirty = true;
        }
        if let Some(n) = st.node_mut(s) {
            n.hostname = msg.hostname.clone();
            if super::valid_id(&msg.shard_id) {
                n.shard_id = msg.shard_id.clone();
            }
            let n = st.node_mut(s)?;
            if msg.config_epoch != n.config_epoch {
                n.config_epoch = msg.config_epoch;
                st.dirty = true;
            }
        }
        update_role(&mut st, s, &msg);
        if moved && super::failover::my_primary(&st) == Some(s) {
            super::failover::resume_replication(cl, &st);
        }
        if msg.flags & nf::MASTER != 0 && matches!(msg.kind, PING | PONG | MEET) {
            let epoch = msg.config_epoch;
            let up = update_slots(&mut st, s, &msg.slots, epoch, &mut lost);
            slots_changed = up.changed;
            if up.emptied_ours {
                // Our shard's slots all went to the sender (it won a
                // failover): follow it. Our keys stay: they are the
                // history the new primary continues from (Redis deletes
                // the keys of lost slots only when not demoted).
                super::failover::set_my_primary(cl, &mut st, s);
                lost.clear();
            }
            if let Some(newer) = up.newer_owner {
                // The sender claims slots someone owns with a newer
                // config: tell it (Redis's UPDATE message).
                let frame = update_about(&mut st, newer, s);
                bus.send(s, frame);
            }
        }
        if msg.kind == UPDATE
            && let Some(about) = st.lookup(&msg.about_id)
            && about != 0
            && st
                .node(about)
                .is_some_and(|n| n.config_epoch < msg.about_epoch)
        {
            if let Some(n) = st.node_mut(about) {
                n.config_epoch = msg.about_epoch;
                if n.flags & nf::SLAVE != 0 {
                    n.flags = (n.flags & !nf::SLAVE) | nf::MASTER;
                    n.primary = None;
                }
            }
            st.dirty = true;
            let up = update_slots(&mut st, about, &msg.slots, msg.about_epoch, &mut lost);
            slots_changed |= up.changed;
            if up.emptied_ours {
                super::failover::set_my_primary(cl, &mut st, about);
                lost.clear();
            }
        }
        super::failover::on_message(cl, &mut st, bus, s, &msg, timeout, now);
        st.handle_epoch_collision(s);
        let sender_primary = st.node(s).is_some_and(|n| n.is_primary());
        let mut fails = Vec::new();
        let my_id = st.myself().id.clone();
        for g in &msg.gossip {
            if g.id == my_id {
                continue;
            }
            match st.lookup(&g.id) {
                Some(gi) => {
                    if sender_primary && let Some(n) = st.node_mut(gi) {
                        if g.flags & (nf::PFAIL | nf::FAIL) != 0 {
                            match n.fail_reports.iter_mut().find(|(r, _)| *r == sender_id) {
                                Some(r) => r.1 = now,
                                None => n.fail_reports.push((sender_id.clone(), now)),
                            }
                        } else {
                            n.fail_reports.retain(|(r, _)| *r != sender_id);
                        }
                    }
                    if let Some(id) = st.mark_failing_if_needed(gi, timeout) {
                        fails.push(id);
                    }
                }
                None => {
                    if !st.blacklist.contains_key(&g.id)
                        && g.flags & nf::NOADDR == 0
                        && !g.ip.is_empty()
                        && g.cport != 0
                        && super::valid_id(&g.id)
                    {
                        st.add_node(Node {
                            id: g.id.clone(),
                            shard_id: super::random_id(),
                            ip: g.ip.clone(),
                            port: g.port,
                            pport: g.pport,
                            cport: g.cport,
                            flags: g.flags & (nf::MASTER | nf::SLAVE),
                            ..Node::default()
                        });
                    }
                }
            }
        }
        if msg.kind == FAIL
            && let Some(f) = st.lookup(&msg.about_id)
            && f != 0
            && let Some(n) = st.node_mut(f)
            && n.flags & nf::FAIL == 0
        {
            info!("FAIL message received from {sender_id} about {}", n.id);
            n.flags = (n.flags & !nf::PFAIL) | nf::FAIL;
            n.fail_time = now;
            st.dirty = true;
        }
        if !fails.is_empty() {
            bus.broadcast_fail(&mut st, &fails);
        }
        if slots_changed {
            st.force_ping = true;
        }
    }
    let reply = matches!(msg.kind, PING | MEET).then(|| build(&mut st, PONG, sender, ""));
    cl.update_state(&mut st, &srv.config);
    cl.save_logged(&mut st);
    // Shard locks are taken only with the cluster mutex released.
    drop(st);
    let deleted: usize = lost
        .iter()
        .map(|&slot| super::commands::delete_keys_in_slot(srv, slot))
        .sum();
    if deleted > 0 {
        warn!(
            "Deleted {deleted} keys of {} slots now served by another node",
            lost.len()
        );
    }
    reply
}

/// What `update_slots` did.
struct SlotUpdate {
    changed: bool,
    /// The slots of our shard (ours, or our primary's) were taken and
    /// none is left: the caller makes us a replica of the new owner.
    emptied_ours: bool,
    /// A slot the sender claims is owned by this node with a newer
    /// config epoch.
    newer_owner: Option<u16>,
}

/// Redis's clusterUpdateSlotsConfigWith: a primary's claim on a slot wins
/// over the current owner's when its config epoch is higher. Slots we are
/// importing are left alone (the migration decides them).
///
/// The slots we lost are added to `lost` (the caller deletes their keys,
/// as Redis does with its "dirty slots").
fn update_slots(
    st: &mut State,
    sender: u16,
    bitmap: &[u8],
    epoch: u64,
    lost: &mut Vec<u16>,
) -> SlotUpdate {
    let mut up = SlotUpdate {
        changed: false,
        emptied_ours: false,
        newer_owner: None,
    };
    if bitmap.len() != SLOTS / 8 {
        return up;
    }
    let ours = super::failover::my_primary(st).unwrap_or(0);
    let mut taken_from_ours = false;
    let lost_before = lost.len();
    for slot in 0..SLOTS {
        if bitmap[slot / 8] & (1 << (slot % 8)) == 0 {
            continue;
        }
        let owner = st.table.owner(slot);
        if owner == Some(sender) || st.importing_from[slot] != 0 {
            continue;
        }
        let owner_epoch = owner.and_then(|o| st.node(o)).map(|o| o.config_epoch);
        match owner_epoch {
            Some(e) if e > epoch => {
                up.newer_owner = up.newer_owner.or(owner);
                continue;
            }
            Some(e) if e == epoch => continue,
            _ => {}
        }
        if owner == Some(0) {
            st.migrating_to[slot] = 0;
            lost.push(slot as u16);
        }
        taken_from_ours |= owner == Some(ours);
        st.set_owner(slot, Some(sender));
        st.sync_slot(slot);
        up.changed = true;
    }
    up.emptied_ours = taken_from_ours && sender != ours && sender != 0 && st.slot_count(ours) == 0;
    if lost.len() > lost_before {
        warn!(
            "{} of our slots taken over by node {} with a higher config epoch ({epoch})",
            lost.len() - lost_before,
            st.node(sender).map_or("?", |n| n.id.as_str())
        );
    }
    up
}

/// An UPDATE telling `to` that node `about` owns its slots at its epoch.
fn update_about(st: &mut State, about: u16, to: u16) -> Vec<u8> {
    let (id, epoch) = st
        .node(about)
        .map(|n| (n.id.clone(), n.config_epoch))
        .unwrap_or_default();
    let extra = Extra {
        about_id: &id,
        about_epoch: epoch,
        slots: Some(st.bitmap_of(about)),
        mflags: 0,
    };
    build_with(st, UPDATE, Some(to), extra)
}

/// The sender's role as it states it: a primary that became a replica
/// loses its slots (Redis's clusterDelNodeSlots), a replica that became
/// a primary forgets its primary, a replica may change primaries.
fn update_role(st: &mut State, s: u16, msg: &Msg) {
    let role = msg.flags & (nf::MASTER | nf::SLAVE);
    let Some(n) = st.node_mut(s) else { return };
    if role == 0 {
        return;
    }
    let was_primary = n.flags & nf::MASTER != 0;
    let mut dirty = false;
    if (n.flags ^ msg.flags) & nf::NOFAILOVER != 0 {
        n.flags ^= nf::NOFAILOVER;
        dirty = true;
    }
    if n.flags & (nf::MASTER | nf::SLAVE) != role {
        n.flags = (n.flags & !(nf::MASTER | nf::SLAVE)) | role;
        dirty = true;
    }
    let primary = (role == nf::SLAVE && super::valid_id(&msg.primary)).then(|| msg.primary.clone());
    if role == nf::MASTER && n.primary.is_some() {
        n.primary = None;
        dirty = true;
    } else if primary.is_some() && n.primary != primary {
        n.primary = primary;
        dirty = true;
    }
    if was_primary && role == nf::SLAVE {
        for slot in st.slots_of(s) {
            st.set_owner(slot as usize, None);
        }
    }
    if dirty {
        st.dirty = true;
    }
}

/// Redis's clearNodeFailureIfNeeded: a FAIL node that talks again is
/// cleared at once if it serves no slots, else after twice node-timeout
/// (when no failover took its slots).
fn clear_failure_if_needed(n: &mut Node, serves_slots: bool, timeout: u64, now: u64) {
    if n.flags & nf::FAIL == 0 {
        return;
    }
    if !n.is_primary() || !serves_slots || now.saturating_sub(n.fail_time) > timeout * 2 {
        info!("Clear FAIL state for node {}: it is reachable again.", n.id);
        n.flags &= !nf::FAIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Msg {
        Msg {
            kind: PING,
            id: "a".repeat(40),
            current_epoch: 7,
            config_epoch: 3,
            flags: nf::MASTER,
            primary: String::new(),
            ip: "10.0.0.1".into(),
            port: 7000,
            pport: 6000,
            cport: 17000,
            hostname: "h".into(),
            shard_id: "b".repeat(40),
            slots: {
                let mut v = vec![0u8; SLOTS / 8];
                v[0] = 0b101;
                v
            },
            gossip: vec![Gossip {
                id: "c".repeat(40),
                ip: "10.0.0.2".into(),
                port: 7001,
                pport: 0,
                cport: 17001,
                flags: nf::MASTER | nf::PFAIL,
            }],
            about_id: String::new(),
            about_epoch: 0,
            repl_offset: 9,
            mflags: 0,
        }
    }

    #[test]
    fn messages_roundtrip_and_garbage_is_refused() {
        let frame = sample().encode();
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        let m = Msg::decode(&frame[4..]).expect("decodes");
        assert_eq!((m.kind, m.current_epoch, m.config_epoch), (PING, 7, 3));
        assert_eq!((m.port, m.pport, m.cport), (7000, 6000, 17000));
        assert_eq!(m.ip, "10.0.0.1");
        assert_eq!(m.slots[0], 0b101);
        assert_eq!(m.gossip.len(), 1);
        assert_eq!(m.gossip[0].flags, nf::MASTER | nf::PFAIL);
        // Every truncation and a few corruptions decode to None, never
        // panic.
        for cut in 0..frame.len() - 4 {
            assert!(Msg::decode(&frame[4..4 + cut]).is_none(), "cut at {cut}");
        }
        let mut bad = frame[4..].to_vec();
        bad[0] = 9;
        assert!(Msg::decode(&bad).is_none());
        let mut rng = crate::store::Rng::new(42);
        for _ in 0..2000 {
            let n = rng.below(3000);
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let _ = Msg::decode(&junk);
        }
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(next_frame(&mut buf).is_err());
        let mut buf = BytesMut::from(&sample().encode()[..]);
        assert!(matches!(next_frame(&mut buf), Ok(Some(_))));
        assert!(buf.is_empty());
    }

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        let mac = hmac_sha1(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}

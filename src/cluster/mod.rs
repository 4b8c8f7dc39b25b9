//! Redis Cluster mode: the node table, slot ownership, epochs and failure
//! state (this file), request routing (`routing.rs`), the CLUSTER command
//! family (`commands.rs`), the node-to-node bus (`bus.rs`), nodes.conf
//! (`nodes_conf.rs`), DUMP/RESTORE payloads (`dump.rs`) and MIGRATE
//! (`migrate.rs`). See docs/cluster.md for the design.
//!
//! Concurrency: everything lives in `State` behind one mutex that only
//! cluster commands and the bus take. The one thing every keyed command
//! needs, "who serves slot S and is it open", is mirrored into
//! `SlotTable`, one atomic word per slot, written under the mutex and
//! read without it, so routing costs one atomic load per command.
//!
//! Lock order: a shard lock is never held while taking the cluster mutex
//! (routing checks key presence and looks up redirect addresses one after
//! the other; handlers that count or delete a slot's keys release the
//! mutex first). The bus's link table is only taken under the mutex.

pub mod bus;
pub mod commands;
pub mod dump;
pub mod failover;
pub mod migrate;
pub mod nodes_conf;
pub mod routing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Config;
use crate::util::now_ms;

pub const SLOTS: usize = 16384;

/// Node flags, with Redis's names (see `flag_names`).
pub mod nf {
    pub const MYSELF: u16 = 1 << 0;
    pub const MASTER: u16 = 1 << 1;
    pub const SLAVE: u16 = 1 << 2;
    pub const PFAIL: u16 = 1 << 3;
    pub const FAIL: u16 = 1 << 4;
    pub const HANDSHAKE: u16 = 1 << 5;
    pub const NOADDR: u16 = 1 << 6;
    pub const MEET: u16 = 1 << 7;
    pub const NOFAILOVER: u16 = 1 << 9;
}

/// Per-slot routing word: owner node index + 1 in the low 16 bits (0:
/// unassigned) and whether the slot is migrating or importing here.
pub struct SlotTable {
    words: Box<[AtomicU32]>,
}

pub const SLOT_MIGRATING: u32 = 1 << 16;
pub const SLOT_IMPORTING: u32 = 1 << 17;
pub const OWNER_MASK: u32 = 0xFFFF;
/// Myself is always node index 0, so "served here" is owner field 1.
pub const MYSELF_OWNER: u32 = 1;

impl SlotTable {
    fn new() -> Self {
        SlotTable {
            words: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    pub fn word(&self, slot: u16) -> u32 {
        self.words[slot as usize].load(Relaxed)
    }

    /// Owner node index, if the slot is assigned.
    #[inline]
    pub fn owner(&self, slot: usize) -> Option<u16> {
        match self.words[slot].load(Relaxed) & OWNER_MASK {
            0 => None,
            n => Some(n as u16 - 1),
        }
    }

    fn store(&self, slot: usize, word: u32) {
        self.words[slot].store(word, Relaxed);
    }
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    pub id: String,
    pub shard_id: String,
    pub ip: String,
    /// The client port it announces: its tls-port in a tls-cluster.
    pub port: u16,
    /// Its plain TCP port in a tls-cluster (Redis's pport; 0 if none),
    /// shown to clients that are not on TLS.
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    pub flags: u16,
    /// Id of the primary, for replicas.
    pub primary: Option<String>,
    /// Replication offset it last told us (ranks replicas in elections).
    pub repl_offset: u64,
    /// For a primary: when we last voted for one of its replicas (Redis's
    /// voted_time; no second vote for the same primary within 2 x
    /// node-timeout).
    pub voted_time: u64,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub data_received: u64,
    pub config_epoch: u64,
    /// Our outbound link to it is up.
    pub link: bool,
    pub link_created: u64,
    pub inbound_link_created: u64,
    /// (reporting primary's id, when reported): it sees this node as
    /// PFAIL or FAIL.
    pub fail_reports: Vec<(String, u64)>,
    pub fail_time: u64,
    pub created: u64,
    /// Bumped when the node is replaced or forgotten, so a link task
    /// for an old incarnation stops.
    pub generation: u64,
}

impl Node {
    pub fn is_primary(&self) -> bool {
        self.flags & nf::MASTER != 0
    }

    pub fn failing(&self) -> bool {
        self.flags & (nf::PFAIL | nf::FAIL) != 0
    }

    pub fn flag_names(&self) -> String {
        const NAMES: &[(u16, &str)] = &[
            (nf::MYSELF, "myself"),
            (nf::MASTER, "master"),
            (nf::SLAVE, "slave"),
            (nf::PFAIL, "fail?"),
            (nf::FAIL, "fail"),
            (nf::HANDSHAKE, "handshake"),
            (nf::NOADDR, "noaddr"),
            (nf::NOFAILOVER, "nofailover"),
        ];
        let v: Vec<&str> = NAMES
            .iter()
            .filter(|(f, _)| self.flags & f != 0)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "noflags".into()
        } else {
            v.join(",")
        }
    }
}

/// Message counters by type, as CLUSTER INFO reports them.
/// Indexed by the bus message type (`bus::PING`...), Redis's names.
pub const MSG_TYPES: &[&str] = &[
    "ping", "pong", "meet", "fail", "publish", "auth-req", "auth-ack", "update", "mfstart",
];

pub struct State {
    pub table: Arc<SlotTable>,
    /// Indexed by node index; index 0 is myself. Forgotten nodes leave a
    /// hole so indices in the slot table never change meaning.
    pub nodes: Vec<Option<Node>>,
    pub by_id: HashMap<String, u16>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// Per slot: node index + 1 of the migration target / import source.
    pub migrating_to: Vec<u16>,
    pub importing_from: Vec<u16>,
    /// Forgotten ids, not re-added from gossip until the time (ms) passes.
    pub blacklist: HashMap<String, u64>,
    pub sent: [u64; 9],
    pub received: [u64; 9],
    pub ok: bool,
    pub size: usize,
    /// The node table changed: nodes.conf must be rewritten.
    pub dirty: bool,
    /// Slot ownership changed: ping every node now rather than at the
    /// next interval, so the cluster converges quickly.
    pub force_ping: bool,
    pub next_generation: u64,
    /// Replica election and manual failover progress (`failover.rs`).
    pub election: failover::Election,
}

pub struct Cluster {
    pub table: Arc<SlotTable>,
    pub state_ok: AtomicBool,
    /// Index + 1 of our primary when we are a replica (READONLY reads);
    /// 0 while we are a primary.
    pub my_primary: AtomicU32,
    pub inner: Mutex<State>,
    pub path: PathBuf,
    /// The ports we announce unless cluster-announce-* say otherwise
    /// (Redis's deriveAnnouncedPorts): with tls-cluster the client port
    /// is the tls-port and the plain one is `pport`.
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    /// tls-cluster: bus links are TLS and clients see TLS ports.
    pub tls: bool,
    /// Keeps the flock on nodes.conf for the process's life.
    _lock: std::fs::File,
    pub started_ms: AtomicU64,
    /// The bus, once running (CLUSTER FAILOVER sends through it).
    pub bus: std::sync::OnceLock<Arc<bus::Bus>>,
}

pub fn random_id() -> String {
    let mut buf = [0u8; 20];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom")
        && f.read_exact(buf).is_ok()
    {
        return;
    }
    let mut rng = crate::store::Rng::new(now_ms() ^ ((std::process::id() as u64) << 32));
    for b in buf.iter_mut() {
        *b = rng.next_u64() as u8;
    }
}

pub fn valid_id(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|c| c.is_ascii_hexdigit())
}

impl Cluster {
    /// Loads nodes.conf (or creates it with a fresh identity), locking it
    /// so two servers cannot share one file.
    pub fn open(config: &Config) -> Result<Cluster, String> {
        let tls = config.get("tls-cluster").as_deref() == Some("yes");
        let plain = config.get_int("port") as u16;
        let (port, pport) = if tls {
            (config.get_int("tls-port") as u16, plain)
        } else {
            (plain, 0)
        };
        let cport = match config.get_int("cluster-port") {
            0 => port.checked_add(10000).ok_or_else(|| {
                "Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less.".to_string()
            })?,
            p => p as u16,
        };
        let path = PathBuf::from(
            config
                .get("cluster-config-file")
                .unwrap_or_else(|| "nodes.conf".into()),
        );
        let lock = nodes_conf::lock_file(&path)?;
        let mut st = State::empty();
        let table = st.table.clone();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.trim().is_empty() {
            st.add_node(Node {
                id: random_id(),
                shard_id: random_id(),
                flags: nf::MYSELF | nf::MASTER,
                ..Node::default()
            });
            st.dirty = true;
        } else {
            nodes_conf::load(&mut st, &text).map_err(|e| {
                format!(
                    "Unrecoverable error: corrupted cluster config file \"{}\": {e}",
                    path.display()
                )
            })?;
        }
        {
            let me = st.myself_mut();
            me.port = port;
            me.pport = pport;
            me.cport = cport;
        }
        let cl = Cluster {
            table,
            state_ok: AtomicBool::new(false),
            my_primary: AtomicU32::new(0),
            inner: Mutex::new(st),
            path,
            port,
            pport,
            cport,
            tls,
            _lock: lock,
            started_ms: AtomicU64::new(now_ms()),
            bus: std::sync::OnceLock::new(),
        };
        {
            let mut st = cl.lock();
            cl.apply_announce(&mut st, config);
            st.dirty = true;
            cl.save(&mut st)
                .map_err(|e| format!("Can't save cluster config: {e}"))?;
        }
        Ok(cl)
    }

    /// The port to show a client for node `n` (CLUSTER SLOTS / NODES /
    /// SHARDS, MOVED / ASK): in a tls-cluster a client that is not on TLS
    /// gets the node's plain port when it has one, as in Redis.
    pub fn client_port(&self, n: &Node, client_tls: bool) -> u16 {
        if self.uses_pport(client_tls) && n.pport != 0 {
            n.pport
        } else {
            n.port
        }
    }

    /// Whether plain ports are what this client should see.
    pub fn uses_pport(&self, client_tls: bool) -> bool {
        self.tls && !client_tls
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// cluster-announce-* override what we learn about ourselves. Run at
    /// start and by the bus cron, so CONFIG SET takes effect within a
    /// tick.
    pub fn apply_announce(&self, st: &mut State, config: &Config) {
        let ip = config.get("cluster-announce-ip").unwrap_or_default();
        let aport = config.get_int("cluster-announce-port") as u16;
        let atls = config.get_int("cluster-announce-tls-port") as u16;
        let abus = config.get_int("cluster-announce-bus-port");
        let (port, pport) = if self.tls && atls > 0 {
            (atls, aport)
        } else if aport > 0 {
            (aport, self.pport)
        } else {
            (self.port, self.pport)
        };
        let cport = if abus > 0 { abus as u16 } else { self.cport };
        let me = st.myself_mut();
        let changed = (!ip.is_empty() && me.ip != ip)
            || me.port != port
            || me.pport != pport
            || me.cport != cport;
        if !ip.is_empty() {
            me.ip = ip;
        }
        me.port = port;
        me.pport = pport;
        me.cport = cport;
        if changed {
            st.dirty = true;
            st.force_ping = true;
        }
    }

    /// Rewrites nodes.conf if the node table changed.
    pub fn save(&self, st: &mut State) -> std::io::Result<()> {
        if !st.dirty {
            return Ok(());
        }
        st.dirty = false;
        nodes_conf::save(&self.path, st)
    }

    /// Saves, logging instead of failing (callers are mid-protocol).
    pub fn save_logged(&self, st: &mut State) {
        if let Err(e) = self.save(st) {
            tracing::warn!("could not write {}: {e}", self.path.display());
        }
    }

    /// Recomputes cluster_state and mirrors it for routing.
    pub fn update_state(&self, st: &mut State, config: &Config) {
        st.update_state(config.get("cluster-require-full-coverage").as_deref() != Some("no"));
        self.state_ok.store(st.ok, Relaxed);
    }
}

impl State {
    /// No nodes, no slots, epoch 0.
    pub fn empty() -> State {
        State {
            table: Arc::new(SlotTable::new()),
            nodes: Vec::new(),
            by_id: HashMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            migrating_to: vec![0; SLOTS],
            importing_from: vec![0; SLOTS],
            blacklist: HashMap::new(),
            sent: [0; 9],
            received: [0; 9],
            ok: false,
            size: 1,
            dirty: false,
            force_ping: false,
            next_generation: 1,
            election: failover::Election::default(),
        }
    }

    pub fn myself(&self) -> &Node {
        self.nodes[0].as_ref().expect("myself is node 0")
    }

    pub fn myself_mut(&mut self) -> &mut Node {
        self.nodes[0].as_mut().expect("myself is node 0")
    }

    pub fn node(&self, idx: u16) -> Option<&Node> {
        self.nodes.get(idx as usize).and_then(|n| n.as_ref())
    }

    pub fn node_mut(&mut self, idx: u16) -> Option<&mut Node> {
        self.nodes.get_mut(idx as usize).and_then(|n| n.as_mut())
    }

    pub fn lookup(&self, id: &str) -> Option<u16> {
        self.by_id.get(id).copied()
    }

    /// Looks a node up by id for a command, as Redis's clusterLookupNode.
    pub fn lookup_bytes(&self, id: &[u8]) -> Option<u16> {
        std::str::from_utf8(id).ok().and_then(|s| self.lookup(s))
    }

    pub fn known_nodes(&self) -> impl Iterator<Item = (u16, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i as u16, n)))
    }

    /// Adds a node; `None` when the table is full (65,535 indices).
    pub fn add_node(&mut self, mut node: Node) -> Option<u16> {
        if self.nodes.len() >= OWNER_MASK as usize - 1 {
            return None;
        }
        let idx = self.nodes.len() as u16;
        node.generation = self.next_generation;
        self.next_generation += 1;
        if node.created == 0 {
            node.created = now_ms();
        }
        self.by_id.insert(node.id.clone(), idx);
        self.nodes.push(Some(node));
        self.dirty = true;
        Some(idx)
    }

    /// Forgets a node: its slots become unassigned, open slots to or from
    /// it are closed, failure reports it sent are dropped.
    pub fn remove_node(&mut self, idx: u16) {
        if idx == 0 {
            return;
        }
        let Some(node) = self.nodes.get_mut(idx as usize).and_then(|n| n.take()) else {
            return;
        };
        self.by_id.remove(&node.id);
        for slot in 0..SLOTS {
            if self.table.owner(slot) == Some(idx) {
                self.set_owner(slot, None);
            }
            if self.migrating_to[slot] == idx + 1 || self.importing_from[slot] == idx + 1 {
                if self.migrating_to[slot] == idx + 1 {
                    self.migrating_to[slot] = 0;
                }
                if self.importing_from[slot] == idx + 1 {
                    self.importing_from[slot] = 0;
                }
                self.sync_slot(slot);
            }
        }
        for n in self.nodes.iter_mut().flatten() {
            n.fail_reports.retain(|(r, _)| *r != node.id);
        }
        self.dirty = true;
    }

    pub fn rename_node(&mut self, idx: u16, new_id: &str) {
        if let Some(n) = self.node_mut(idx) {
            let old = std::mem::replace(&mut n.id, new_id.to_string());
            self.by_id.remove(&old);
            self.by_id.insert(new_id.to_string(), idx);
            self.dirty = true;
        }
    }

    pub fn set_owner(&mut self, slot: usize, owner: Option<u16>) {
        let w = self.table.word(slot as u16) & !OWNER_MASK;
        let o = owner.map_or(0, |i| i as u32 + 1);
        self.table.store(slot, w | o);
        self.dirty = true;
    }

    /// Writes the open-slot bits of the routing word from the maps.
    pub fn sync_slot(&mut self, slot: usize) {
        let mut w = self.table.word(slot as u16) & OWNER_MASK;
        if self.migrating_to[slot] != 0 {
            w |= SLOT_MIGRATING;
        }
        if self.importing_from[slot] != 0 {
            w |= SLOT_IMPORTING;
        }
        self.table.store(slot, w);
        self.dirty = true;
    }

    pub fn slots_of(&self, idx: u16) -> Vec<u16> {
        (0..SLOTS as u16)
            .filter(|&s| self.table.owner(s as usize) == Some(idx))
            .collect()
    }

    /// Slots served, per node index, in one pass over the table.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for s in 0..SLOTS {
            if let Some(o) = self.table.owner(s) {
                counts[o as usize] += 1;
            }
        }
        counts
    }

    /// Each node's slot ranges, in one pass over the table.
    pub fn ranges_by_node(&self) -> Vec<Vec<(u16, u16)>> {
        let mut out: Vec<Vec<(u16, u16)>> = vec![Vec::new(); self.nodes.len()];
        for s in 0..SLOTS as u16 {
            if let Some(o) = self.table.owner(s as usize) {
                let r = &mut out[o as usize];
                match r.last_mut() {
                    Some((_, end)) if *end + 1 == s => *end = s,
                    _ => r.push((s, s)),
                }
            }
        }
        out
    }

    pub fn slot_count(&self, idx: u16) -> usize {
        (0..SLOTS)
            .filter(|&s| self.table.owner(s) == Some(idx))
            .count()
    }

    /// Slot bitmap of a node, as gossiped.
    pub fn bitmap_of(&self, idx: u16) -> Vec<u8> {
        let mut bm = vec![0u8; SLOTS / 8];
        for s in 0..SLOTS {
            if self.table.owner(s) == Some(idx) {
                bm[s / 8] |= 1 << (s % 8);
            }
        }
        bm
    }

    pub fn max_config_epoch(&self) -> u64 {
        self.known_nodes()
            .map(|(_, n)| n.config_epoch)
            .max()
            .unwrap_or(0)
    }

    /// Redis's clusterUpdateState: ok when every slot is served by a node
    /// not in FAIL (if full coverage is required) and we can see a
    /// majority of the slot-serving primaries.
    pub fn update_state(&mut self, require_full_coverage: bool) {
        let mut ok = true;
        if require_full_coverage {
            for s in 0..SLOTS {
                match self.table.owner(s).and_then(|i| self.node(i)) {
                    Some(n) if n.flags & nf::FAIL == 0 => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        let mut size = 0;
        let mut reachable = 0;
        let counts = self.slot_counts();
        for (idx, n) in self.known_nodes() {
            if n.is_primary() && counts[idx as usize] > 0 {
                size += 1;
                if !n.failing() {
                    reachable += 1;
                }
            }
        }
        self.size = size;
        if reachable < size / 2 + 1 {
            ok = false;
        }
        self.ok = ok;
    }

    /// Primaries serving at least one slot (Redis's cluster->size).
    pub fn quorum(&self) -> usize {
        self.size / 2 + 1
    }

    /// Redis's markNodeAsFailingIfNeeded: PFAIL becomes FAIL once a
    /// majority of primaries (counting ourselves) report it. Returns the
    /// id to broadcast a FAIL for.
    pub fn mark_failing_if_needed(&mut self, idx: u16, node_timeout: u64) -> Option<String> {
        let now = now_ms();
        let quorum = self.quorum();
        let me_primary = self.myself().is_primary();
        let node = self.node_mut(idx)?;
        if node.flags & nf::PFAIL == 0 || node.flags & nf::FAIL != 0 {
            return None;
        }
        node.fail_reports
            .retain(|(_, t)| now.saturating_sub(*t) <= node_timeout * 2);
        let failures = node.fail_reports.len() + me_primary as usize;
        if failures < quorum {
            return None;
        }
        node.flags &= !nf::PFAIL;
        node.flags |= nf::FAIL;
        node.fail_time = now;
        let id = node.id.clone();
        tracing::info!("Marking node {id} as failing (quorum reached).");
        self.dirty = true;
        Some(id)
    }

    /// Redis's clusterHandleConfigEpochCollision: of two primaries with
    /// the same config epoch, the one with the smaller id takes a new one.
    pub fn handle_epoch_collision(&mut self, sender: u16) {
        let Some(s) = self.node(sender) else { return };
        let me = self.myself();
        if s.config_epoch != me.config_epoch || !s.is_primary() || !me.is_primary() {
            return;
        }
        if s.id.as_str() <= me.id.as_str() {
            return;
        }
        self.current_epoch += 1;
        let e = self.current_epoch;
        self.myself_mut().config_epoch = e;
        self.dirty = true;
        tracing::info!(
            "WARNING: configEpoch collision with node {}. configEpoch set to {e}",
            s_id(self, sender)
        );
    }

    /// Takes a fresh config epoch without agreement (Redis's
    /// clusterBumpConfigEpochWithoutConsensus): used when a slot is
    /// assigned to us by SETSLOT NODE after importing, so our claim wins.
    pub fn bump_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_config_epoch();
        let me = self.myself();
        if me.config_epoch == 0 || me.config_epoch != max {
            self.current_epoch += 1;
            let e = self.current_epoch;
            self.myself_mut().config_epoch = e;
            self.dirty = true;
            true
        } else {
            false
        }
    }
}

/// An empty node table, for unit tests.
#[cfg(test)]
pub fn test_state() -> State {
    State::empty()
}

fn s_id(st: &State, idx: u16) -> String {
    st.node(idx).map(|n| n.id.clone()).unwrap_or_default()
}

/// "a-b c" slot ranges, as CLUSTER NODES prints them.
pub fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

//! Replicas and failover, as Redis Cluster does them: becoming a replica
//! of a primary (CLUSTER REPLICATE, or losing every slot to a higher
//! epoch), the replica election after its primary is FAIL (ranked delay,
//! FAILOVER_AUTH_REQUEST, one vote per primary per epoch, majority of
//! slot-serving primaries), promotion (new config epoch, the slots, and
//! REPLICAOF NO ONE keeping the PSYNC2 history), and CLUSTER FAILOVER
//! (coordinated, FORCE, TAKEOVER). See docs/cluster.md, "Replicas and
//! failover".
//!
//! Everything here runs under the cluster mutex, from the bus (cron and
//! message processing) or a CLUSTER command. The replication module is
//! called from here (its locks are taken after the cluster mutex, never
//! the other way round).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tracing::{info, warn};

use super::bus::{self, Bus, Extra, Msg};
use super::{Cluster, SLOTS, State, nf};
use crate::replication::replica;
use crate::util::now_ms;

/// How long a manual failover may take (Redis's CLUSTER_MF_TIMEOUT).
pub const MF_TIMEOUT: u64 = 5000;
/// A primary reports its final offset this long after pausing its
/// clients, so a batch of commands that began just before the pause has
/// finished (and is counted in the offset) by then.
const MF_PAUSE_GRACE: u64 = 50;

/// Redis's cluster->failover_auth_* and mf_* fields.
#[derive(Default, Debug)]
pub struct Election {
    /// When the election starts (or started); 0: never scheduled.
    pub auth_time: u64,
    pub auth_count: usize,
    pub auth_sent: bool,
    pub auth_rank: usize,
    pub auth_epoch: u64,
    /// Manual failover deadline, on both sides; 0: none in progress.
    pub mf_end: u64,
    /// Primary side: the replica that asked, and when we paused.
    pub mf_replica: Option<u16>,
    pub mf_paused_at: u64,
    /// Replica side: the primary's offset once it paused, and whether we
    /// reached it (or FORCE skipped it).
    pub mf_primary_offset: Option<u64>,
    pub mf_can_start: bool,
    /// cluster-replica-validity-factor (0: any data age may fail over),
    /// refreshed by the cron.
    pub validity_factor: u64,
}

/// Unix ms until which client commands wait (manual failover, primary
/// side); 0: not paused. Checked by every connection before it runs what
/// it read.
static CLIENTS_PAUSED_UNTIL: AtomicU64 = AtomicU64::new(0);

#[inline]
pub fn clients_paused() -> bool {
    let until = CLIENTS_PAUSED_UNTIL.load(Relaxed);
    until != 0 && now_ms() < until
}

/// Parks a connection while clients are paused (bounded by the pause's
/// end, at most 2 x MF_TIMEOUT).
pub async fn wait_while_paused() {
    while clients_paused() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Ends a manual failover on either side (and unpauses clients).
pub fn reset_manual(st: &mut State) {
    let e = &mut st.election;
    e.mf_end = 0;
    e.mf_replica = None;
    e.mf_paused_at = 0;
    e.mf_primary_offset = None;
    e.mf_can_start = false;
    CLIENTS_PAUSED_UNTIL.store(0, Relaxed);
}

/// Index of our primary, when we are a replica that knows it.
pub fn my_primary(st: &State) -> Option<u16> {
    let me = st.myself();
    if me.flags & nf::SLAVE == 0 {
        return None;
    }
    me.primary.as_deref().and_then(|p| st.lookup(p))
}

/// Redis's clusterSetPrimary: become a replica of node `idx`, replicating
/// it through the replication module (which resyncs, partially if our
/// history allows).
pub fn set_my_primary(cl: &Cluster, st: &mut State, idx: u16) {
    let Some(n) = st.node(idx) else { return };
    let (id, ip, port) = (n.id.clone(), n.ip.clone(), n.port);
    for s in 0..SLOTS {
        if st.migrating_to[s] != 0 || st.importing_from[s] != 0 {
            st.migrating_to[s] = 0;
            st.importing_from[s] = 0;
            st.sync_slot(s);
        }
    }
    let me = st.myself_mut();
    me.flags = (me.flags & !nf::MASTER) | nf::SLAVE;
    me.primary = Some(id.clone());
    cl.my_primary.store(idx as u32 + 1, Relaxed);
    reset_manual(st);
    st.dirty = true;
    st.force_ping = true;
    info!("Configured as replica of {id} ({ip}:{port})");
    start_replication(&ip, port);
}

fn start_replication(ip: &str, port: u16) {
    if ip.is_empty() || port == 0 {
        warn!("primary address unknown yet: replication starts when it is learned");
        return;
    }
    if let Some(srv) = crate::replication::server() {
        replica::set_master(&srv, ip, port);
    }
}

/// At start (nodes.conf says we are a replica) and when our primary's
/// address changes: (re)connect replication to it.
pub fn resume_replication(cl: &Cluster, st: &State) {
    if let Some(p) = my_primary(st) {
        cl.my_primary.store(p as u32 + 1, Relaxed);
        if let Some(n) = st.node(p) {
            start_replication(&n.ip, n.port);
        }
    }
}

/// Redis's clusterFailoverReplaceYourPrimary: we become a primary, take
/// our old primary's slots, stop replicating (the replication ID moves
/// to replid2, so our former siblings and the old primary can continue
/// partially), and tell everyone at once.
pub fn replace_my_primary(cl: &Cluster, st: &mut State, bus: &Bus) {
    let Some(old) = my_primary(st) else { return };
    let me = st.myself_mut();
    me.flags = (me.flags & !nf::SLAVE) | nf::MASTER;
    me.primary = None;
    cl.my_primary.store(0, Relaxed);
    for s in st.slots_of(old) {
        st.set_owner(s as usize, Some(0));
    }
    replica::unset_master();
    reset_manual(st);
    st.election.auth_time = 0;
    st.dirty = true;
    info!(
        "Failover: now a primary with config epoch {}",
        st.myself().config_epoch
    );
    bus.broadcast(st, bus::PONG, &Extra::default());
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER] once its checks passed.
pub fn start_manual(cl: &Cluster, st: &mut State, bus: &Bus, force: bool, takeover: bool) {
    reset_manual(st);
    st.election.mf_end = now_ms() + MF_TIMEOUT;
    if takeover {
        // No agreement: a fresh epoch of our own wins the slots.
        info!("Taking over the primary (CLUSTER FAILOVER TAKEOVER).");
        st.bump_epoch_without_consensus();
        replace_my_primary(cl, st, bus);
    } else if force {
        info!("Forced failover user request accepted.");
        st.election.mf_can_start = true;
    } else if let Some(p) = my_primary(st) {
        info!("Manual failover user request accepted.");
        let frame = bus::build(st, bus::MFSTART, Some(p), "");
        bus.send(p, frame);
    }
}

/// Redis's clusterSendFailoverAuthIfNeeded: a primary serving slots
/// votes for `sender`'s promotion at most once per epoch, never twice
/// for replicas of the same primary within 2 x node-timeout, and only if
/// no slot it claims is owned with a newer config than its primary's.
fn vote(st: &mut State, sender: u16, msg: &Msg, timeout: u64, now: u64) -> bool {
    let me = st.myself();
    if !me.is_primary() || st.slot_count(0) == 0 {
        return false;
    }
    let requester = st.node(sender).map(|n| n.id.clone()).unwrap_or_default();
    if msg.current_epoch < st.current_epoch {
        info!("Failover auth denied to {requester}: reqEpoch < curEpoch");
        return false;
    }
    if st.last_vote_epoch == st.current_epoch {
        info!("Failover auth denied to {requester}: already voted for epoch");
        return false;
    }
    if msg.flags & nf::MASTER != 0 {
        return false;
    }
    let Some(primary) = st.lookup(&msg.primary) else {
        info!("Failover auth denied to {requester}: its primary is unknown");
        return false;
    };
    let force = msg.mflags & bus::MF_FORCEACK != 0;
    let Some(p) = st.node(primary) else {
        return false;
    };
    if p.flags & nf::FAIL == 0 && !force {
        info!("Failover auth denied to {requester}: its primary is not failing");
        return false;
    }
    if now.saturating_sub(p.voted_time) < timeout * 2 {
        info!(
            "Failover auth denied to {requester}: voted for a replica of the same primary recently"
        );
        return false;
    }
    for s in 0..SLOTS {
        if msg.slots[s / 8] & (1 << (s % 8)) == 0 {
            continue;
        }
        if let Some(o) = st.table.owner(s).and_then(|o| st.node(o))
            && o.config_epoch > msg.about_epoch
        {
            info!("Failover auth denied to {requester}: slot {s} has a newer configuration");
            return false;
        }
    }
    st.last_vote_epoch = st.current_epoch;
    if let Some(p) = st.node_mut(primary) {
        p.voted_time = now;
    }
    st.dirty = true;
    info!(
        "Failover auth granted to {requester} for epoch {}",
        st.current_epoch
    );
    true
}

/// The failover part of processing a message from a known `sender`.
pub fn on_message(
    cl: &Cluster,
    st: &mut State,
    bus: &Bus,
    sender: u16,
    msg: &Msg,
    timeout: u64,
    now: u64,
) {
    if let Some(n) = st.node_mut(sender) {
        n.repl_offset = msg.repl_offset;
    }
    match msg.kind {
        bus::AUTH_REQUEST if vote(st, sender, msg, timeout, now) => {
            cl.save_logged(st);
            let frame = bus::build(st, bus::AUTH_ACK, Some(sender), "");
            bus.send(sender, frame);
        }
        bus::AUTH_ACK => {
            let serves = st
                .node(sender)
                .is_some_and(|n| n.is_primary() && st.slot_count(sender) > 0);
            let e = &mut st.election;
            if serves && e.auth_sent && msg.current_epoch >= e.auth_epoch {
                e.auth_count += 1;
                if e.auth_count >= st.quorum() {
                    // Won: promote now rather than at the next tick (Redis
                    // does it before sleeping).
                    let offset = crate::replication::feed().offset;
                    handle_replica_failover(cl, st, bus, timeout, now, offset);
                }
            }
        }
        bus::MFSTART => {
            let my_id = st.myself().id.clone();
            let from_my_replica = st
                .node(sender)
                .is_some_and(|n| n.primary.as_deref() == Some(my_id.as_str()));
            if st.myself().is_primary() && from_my_replica {
                reset_manual(st);
                let e = &mut st.election;
                e.mf_end = now + MF_TIMEOUT;
                e.mf_replica = Some(sender);
                e.mf_paused_at = now;
                CLIENTS_PAUSED_UNTIL.store(now + 2 * MF_TIMEOUT, Relaxed);
                info!("Manual failover requested by replica {}", msg.id);
            }
        }
        _ => {}
    }
    if msg.mflags & bus::MF_PAUSED != 0
        && my_primary(st) == Some(sender)
        && st.election.mf_end != 0
        && st.election.mf_primary_offset.is_none()
    {
        st.election.mf_primary_offset = Some(msg.repl_offset);
        info!(
            "Received replication offset for paused primary manual failover: {}",
            msg.repl_offset
        );
    }
}

/// Called by the bus cron (every 100 ms) under the cluster mutex.
pub fn cron(cl: &Cluster, st: &mut State, bus: &Bus, timeout: u64, now: u64) {
    let my_offset = crate::replication::feed().offset;
    st.myself_mut().repl_offset = my_offset;
    let e = &st.election;
    if e.mf_end != 0 && now > e.mf_end {
        warn!("Manual failover timed out.");
        reset_manual(st);
    }
    if st.myself().is_primary() {
        // Primary side of a manual failover: keep telling the replica our
        // (final) offset.
        if let Some(r) = st.election.mf_replica
            && now >= st.election.mf_paused_at + MF_PAUSE_GRACE
        {
            let extra = Extra {
                mflags: bus::MF_PAUSED,
                ..Extra::default()
            };
            let frame = bus::build_with(st, bus::PING, Some(r), extra);
            bus.send(r, frame);
        }
        return;
    }
    let e = &mut st.election;
    if e.mf_end != 0 && !e.mf_can_start && e.mf_primary_offset.is_some_and(|o| my_offset >= o) {
        e.mf_can_start = true;
        info!("All primary replication stream processed, manual failover can start.");
    }
    handle_replica_failover(cl, st, bus, timeout, now, my_offset);
}

/// How many replicas of our primary have a better (higher) offset.
fn rank(st: &State, primary_id: &str, my_offset: u64) -> usize {
    st.known_nodes()
        .filter(|(i, n)| {
            *i != 0
                && n.flags & (nf::SLAVE | nf::NOFAILOVER) == nf::SLAVE
                && n.primary.as_deref() == Some(primary_id)
                && n.repl_offset > my_offset
        })
        .count()
}

/// Redis's clusterHandleReplicaFailover.
fn handle_replica_failover(
    cl: &Cluster,
    st: &mut State,
    bus: &Bus,
    timeout: u64,
    now: u64,
    my_offset: u64,
) {
    let manual = st.election.mf_end != 0 && st.election.mf_can_start;
    let Some(p) = my_primary(st) else { return };
    let Some(primary) = st.node(p) else { return };
    let primary_id = primary.id.clone();
    let primary_failed = primary.flags & nf::FAIL != 0;
    let no_failover = st.myself().flags & nf::NOFAILOVER != 0;
    if (!manual && (!primary_failed || no_failover)) || st.slot_count(p) == 0 {
        return;
    }
    // Data too old to be trusted (Redis: repl-ping-replica-period, 10 s,
    // + node-timeout x cluster-replica-validity-factor).
    let factor = st.election.validity_factor;
    if !manual && factor > 0 && !replica::LINK_UP.load(Relaxed) {
        let age = now
            .saturating_sub(replica::DOWN_SINCE_MS.load(Relaxed))
            .saturating_sub(timeout);
        if age > 10_000 + timeout * factor {
            return;
        }
    }
    let auth_timeout = (timeout * 2).max(2000);
    let auth_retry = auth_timeout * 2;
    let age = now.saturating_sub(st.election.auth_time);
    if st.election.auth_time == 0 || age > auth_retry {
        let r = rank(st, &primary_id, my_offset);
        let mut jitter = [0u8; 2];
        super::fill_random(&mut jitter);
        let e = &mut st.election;
        e.auth_count = 0;
        e.auth_sent = false;
        e.auth_rank = r;
        e.auth_time = now + 500 + (u16::from_le_bytes(jitter) % 500) as u64 + r as u64 * 1000;
        if manual {
            e.auth_time = now;
            e.auth_rank = 0;
        }
        info!(
            "Start of election delayed for {} milliseconds (rank #{}, offset {my_offset}).",
            e.auth_time - now,
            e.auth_rank
        );
        // Our siblings learn our offset for their own ranking.
        bus.broadcast(st, bus::PONG, &Extra::default());
        return;
    }
    if !st.election.auth_sent && !manual {
        let r = rank(st, &primary_id, my_offset);
        let e = &mut st.election;
        if r > e.auth_rank {
            e.auth_time += (r - e.auth_rank) as u64 * 1000;
            e.auth_rank = r;
        }
    }
    if now < st.election.auth_time {
        return;
    }
    if now - st.election.auth_time > auth_timeout {
        return;
    }
    if !st.election.auth_sent {
        st.current_epoch += 1;
        st.election.auth_epoch = st.current_epoch;
        st.election.auth_sent = true;
        st.dirty = true;
        info!(
            "Starting a failover election for epoch {}.",
            st.current_epoch
        );
        let extra = Extra {
            about_epoch: st.node(p).map_or(0, |n| n.config_epoch),
            mflags: if manual { bus::MF_FORCEACK } else { 0 },
            ..Extra::default()
        };
        bus.broadcast(st, bus::AUTH_REQUEST, &extra);
        cl.save_logged(st);
        return;
    }
    if st.election.auth_count >= st.quorum() {
        info!("Failover election won: I'm the new primary.");
        if st.myself().config_epoch < st.election.auth_epoch {
            let e = st.election.auth_epoch;
            st.myself_mut().config_epoch = e;
        }
        replace_my_primary(cl, st, bus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Node, test_state};

    /// Myself: a primary with slot 0 (epoch 1); P: a failed primary with
    /// slot 1 (epoch 2); R: P's replica asking for votes.
    fn setup() -> (State, Msg) {
        let mut st = test_state();
        let node = |id: char, flags: u16, epoch: u64| Node {
            id: id.to_string().repeat(40),
            flags,
            config_epoch: epoch,
            ..Node::default()
        };
        st.add_node(node('a', nf::MYSELF | nf::MASTER, 1));
        let p = st.add_node(node('b', nf::MASTER | nf::FAIL, 2)).unwrap();
        let mut r = node('c', nf::SLAVE, 0);
        r.primary = Some("b".repeat(40));
        st.add_node(r);
        st.set_owner(0, Some(0));
        st.set_owner(1, Some(p));
        st.current_epoch = 5;
        let mut slots = vec![0u8; SLOTS / 8];
        slots[0] = 0b10;
        let msg = Msg {
            kind: bus::AUTH_REQUEST,
            id: "c".repeat(40),
            current_epoch: 5,
            config_epoch: 0,
            flags: nf::SLAVE,
            primary: "b".repeat(40),
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            shard_id: String::new(),
            slots,
            gossip: Vec::new(),
            about_id: String::new(),
            about_epoch: 2,
            repl_offset: 0,
            mflags: 0,
        };
        (st, msg)
    }

    #[test]
    fn one_vote_per_epoch_and_per_primary_within_two_node_timeouts() {
        let (mut st, msg) = setup();
        assert!(vote(&mut st, 2, &msg, 1000, 100_000));
        assert_eq!(st.last_vote_epoch, 5);
        // Same epoch again: refused.
        assert!(!vote(&mut st, 2, &msg, 1000, 100_001));
        // Next epoch, but a replica of the same primary within 2 x
        // node-timeout: refused; after it: granted.
        st.current_epoch = 6;
        let msg6 = Msg {
            current_epoch: 6,
            ..msg
        };
        assert!(!vote(&mut st, 2, &msg6, 1000, 101_999));
        assert!(vote(&mut st, 2, &msg6, 1000, 102_001));
    }

    #[test]
    fn no_vote_for_a_live_primary_unless_forced_or_for_stale_requests() {
        let (mut st, msg) = setup();
        st.node_mut(1).unwrap().flags &= !nf::FAIL;
        assert!(!vote(&mut st, 2, &msg, 1000, 100_000));
        let forced = Msg {
            mflags: bus::MF_FORCEACK,
            ..msg
        };
        assert!(vote(&mut st, 2, &forced, 1000, 100_000));

        // An epoch older than ours.
        let (mut st, msg) = setup();
        st.current_epoch = 9;
        assert!(!vote(&mut st, 2, &msg, 1000, 100_000));

        // A claimed slot already owned with a newer config.
        let (mut st, msg) = setup();
        st.node_mut(1).unwrap().config_epoch = 7;
        assert!(!vote(&mut st, 2, &msg, 1000, 100_000));

        // A replica never votes.
        let (mut st, msg) = setup();
        st.myself_mut().flags = nf::MYSELF | nf::SLAVE;
        assert!(!vote(&mut st, 2, &msg, 1000, 100_000));
    }

    #[test]
    fn rank_counts_siblings_with_a_higher_offset() {
        let (mut st, _) = setup();
        let mut sib = Node {
            id: "d".repeat(40),
            flags: nf::SLAVE,
            primary: Some("b".repeat(40)),
            repl_offset: 500,
            ..Node::default()
        };
        st.add_node(sib.clone());
        sib.id = "e".repeat(40);
        sib.repl_offset = 100;
        st.add_node(sib);
        let b = "b".repeat(40);
        // c (offset 0) never counts; d (500) and e (100) by our offset.
        assert_eq!(rank(&st, &b, 200), 1);
        assert_eq!(rank(&st, &b, 50), 2);
        assert_eq!(rank(&st, &b, 1000), 0);
    }
}

//! CLUSTER subcommands, ASKING, READONLY and READWRITE, with Redis 7's
//! replies and error texts.

use std::sync::Arc;

use bytes::Bytes;

use super::nodes_conf::{Line, node_line, node_line_with};
use super::{Cluster, MSG_TYPES, Node, SLOTS, State, nf, random_id};
use crate::cmd::{Args, Ctx};
use crate::server::Server;
use crate::store::slot::key_slot;
use crate::util::{now_ms, parse_i64};

pub const DISABLED: &str = "ERR This instance has cluster support disabled";

fn cluster(ctx: &mut Ctx) -> Option<Arc<Cluster>> {
    match ctx.srv.cluster.as_ref() {
        Some(c) => Some(c.clone()),
        None => {
            ctx.error(DISABLED);
            None
        }
    }
}

/// After a change of the node table: recompute the state, persist, and
/// tell the other nodes soon.
fn changed(ctx: &Ctx, cl: &Cluster, st: &mut State) {
    st.dirty = true;
    st.force_ping = true;
    cl.update_state(st, &ctx.srv.config);
    cl.save_logged(st);
}

/// Keys of db 0 in one slot. The slot's keys live in one shard, which
/// is scanned: O(keys in the shard), with no per-key bookkeeping on the
/// write path (see docs/cluster.md).
pub fn keys_in_slot(srv: &Server, slot: u16, max: usize) -> Vec<Bytes> {
    let shard = srv.store.lock(slot as usize % srv.store.len());
    let now = now_ms();
    shard.dbs[0]
        .iter(now)
        .filter(|(k, _)| key_slot(k) == slot)
        .take(max)
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect()
}

pub fn count_keys_in_slot(srv: &Server, slot: u16) -> usize {
    let shard = srv.store.lock(slot as usize % srv.store.len());
    let now = now_ms();
    shard.dbs[0]
        .iter(now)
        .filter(|(k, _)| key_slot(k) == slot)
        .count()
}

/// Deletes the keys of a slot we no longer serve; returns how many.
pub fn delete_keys_in_slot(srv: &Server, slot: u16) -> usize {
    let idx = slot as usize % srv.store.len();
    let mut shard = srv.store.lock(idx);
    let keys: Vec<Bytes> = shard.dbs[0]
        .iter(0)
        .filter(|(k, _)| key_slot(k) == slot)
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect();
    for k in &keys {
        shard.dbs[0].remove(k);
        shard.touch_watched(0, k);
    }
    shard.refresh_mem();
    keys.len()
}

fn db0_size(ctx: &Ctx) -> usize {
    (0..ctx.srv.store.len())
        .map(|i| ctx.srv.store.lock(i).dbs[0].len())
        .sum()
}

/// Redis's getSlotOrReply.
fn slot_arg(ctx: &mut Ctx, arg: &[u8]) -> Option<usize> {
    match parse_i64(arg) {
        Some(s) if (0..SLOTS as i64).contains(&s) => Some(s as usize),
        _ => {
            ctx.error("ERR Invalid or out of range slot");
            None
        }
    }
}

pub fn asking(ctx: &mut Ctx, _args: &Args) {
    if cluster(ctx).is_some() {
        ctx.client.asking = true;
        ctx.reply.ok();
    }
}

pub fn readonly(ctx: &mut Ctx, _args: &Args) {
    if cluster(ctx).is_some() {
        ctx.client.readonly = true;
        ctx.reply.ok();
    }
}

pub fn readwrite(ctx: &mut Ctx, _args: &Args) {
    if cluster(ctx).is_some() {
        ctx.client.readonly = false;
        ctx.reply.ok();
    }
}

pub fn info(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let (mut assigned, mut pfail, mut fail) = (0, 0, 0);
    for s in 0..SLOTS {
        if let Some(n) = st.table.owner(s).and_then(|o| st.node(o)) {
            assigned += 1;
            if n.flags & nf::FAIL != 0 {
                fail += 1;
            } else if n.flags & nf::PFAIL != 0 {
                pfail += 1;
            }
        }
    }
    let me = st.myself();
    let my_epoch = match me.primary.as_deref().and_then(|p| st.lookup(p)) {
        Some(p) => st.node(p).map_or(0, |n| n.config_epoch),
        None => me.config_epoch,
    };
    let mut s = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\n",
        if st.ok { "ok" } else { "fail" },
        assigned - pfail - fail,
        st.known_nodes().count(),
        st.size,
        st.current_epoch,
    );
    for (dir, counts) in [("sent", &st.sent), ("received", &st.received)] {
        for (i, name) in MSG_TYPES.iter().enumerate() {
            if counts[i] > 0 {
                s.push_str(&format!(
                    "cluster_stats_messages_{name}_{dir}:{}\r\n",
                    counts[i]
                ));
            }
        }
        s.push_str(&format!(
            "cluster_stats_messages_{dir}:{}\r\n",
            counts.iter().sum::<u64>()
        ));
    }
    s.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
    drop(st);
    ctx.reply.verbatim("txt", s.as_bytes());
}

pub fn myid(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let id = cl.lock().myself().id.clone();
    ctx.reply.bulk(id.as_bytes());
}

pub fn myshardid(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let id = cl.lock().myself().shard_id.clone();
    ctx.reply.bulk(id.as_bytes());
}

pub fn nodes(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let mut out = String::new();
    let by_node = st.ranges_by_node();
    for (idx, _) in st.known_nodes() {
        out.push_str(&node_line_with(
            &st,
            idx,
            Line::Client {
                pport: cl.uses_pport(ctx.client.tls),
            },
            &by_node[idx as usize],
        ));
        out.push('\n');
    }
    drop(st);
    ctx.reply.verbatim("txt", out.as_bytes());
}

fn node_entry(ctx: &mut Ctx, cl: &Cluster, n: &Node) {
    let port = cl.client_port(n, ctx.client.tls);
    ctx.reply.array(4);
    ctx.reply.bulk(n.ip.as_bytes());
    ctx.reply.int(port as i64);
    ctx.reply.bulk(n.id.as_bytes());
    if n.hostname.is_empty() {
        ctx.reply.map(0);
    } else {
        ctx.reply.map(1);
        ctx.reply.bulk(b"hostname");
        ctx.reply.bulk(n.hostname.as_bytes());
    }
}

pub fn slots(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let mut entries: Vec<(u16, u16, Node, Vec<Node>)> = Vec::new();
    let by_node = st.ranges_by_node();
    for (idx, n) in st.known_nodes() {
        if !n.is_primary() {
            continue;
        }
        let replicas: Vec<Node> = st
            .known_nodes()
            .filter(|(_, r)| r.primary.as_deref() == Some(&n.id) && r.flags & nf::FAIL == 0)
            .map(|(_, r)| r.clone())
            .collect();
        for &(a, b) in &by_node[idx as usize] {
            entries.push((a, b, n.clone(), replicas.clone()));
        }
    }
    drop(st);
    entries.sort_by_key(|e| e.0);
    ctx.reply.array(entries.len());
    for (a, b, n, reps) in entries {
        ctx.reply.array(3 + reps.len());
        ctx.reply.int(a as i64);
        ctx.reply.int(b as i64);
        node_entry(ctx, &cl, &n);
        for r in &reps {
            node_entry(ctx, &cl, r);
        }
    }
}

pub fn shards(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    // (slot ranges, primary then its replicas) per shard.
    type Shard = (Vec<(u16, u16)>, Vec<Node>);
    let mut shards: Vec<Shard> = Vec::new();
    let by_node = st.ranges_by_node();
    for (idx, n) in st.known_nodes() {
        if !n.is_primary() {
            continue;
        }
        let mut members = vec![n.clone()];
        members.extend(
            st.known_nodes()
                .filter(|(_, r)| r.primary.as_deref() == Some(&n.id))
                .map(|(_, r)| r.clone()),
        );
        shards.push((by_node[idx as usize].clone(), members));
    }
    drop(st);
    ctx.reply.array(shards.len());
    for (rs, members) in shards {
        ctx.reply.map(2);
        ctx.reply.bulk(b"slots");
        ctx.reply.array(rs.len() * 2);
        for (a, b) in rs {
            ctx.reply.int(a as i64);
            ctx.reply.int(b as i64);
        }
        ctx.reply.bulk(b"nodes");
        ctx.reply.array(members.len());
        for n in members {
            // In a tls-cluster "port" is the plain one (if any) and
            // "tls-port" the announced one, as Redis 7.0 shows them.
            let (port, tls_port) = if cl.tls {
                (n.pport, n.port)
            } else {
                (n.port, 0)
            };
            let fields = 6 + [port, tls_port].iter().filter(|p| **p != 0).count();
            ctx.reply.map(fields + usize::from(!n.hostname.is_empty()));
            ctx.reply.bulk(b"id");
            ctx.reply.bulk(n.id.as_bytes());
            for (name, p) in [(&b"port"[..], port), (b"tls-port", tls_port)] {
                if p != 0 {
                    ctx.reply.bulk(name);
                    ctx.reply.int(p as i64);
                }
            }
            ctx.reply.bulk(b"ip");
            ctx.reply.bulk(n.ip.as_bytes());
            ctx.reply.bulk(b"endpoint");
            ctx.reply.bulk(n.ip.as_bytes());
            if !n.hostname.is_empty() {
                ctx.reply.bulk(b"hostname");
                ctx.reply.bulk(n.hostname.as_bytes());
            }
            ctx.reply.bulk(b"role");
            ctx.reply.bulk(if n.is_primary() {
                b"master" as &[u8]
            } else {
                b"replica"
            });
            ctx.reply.bulk(b"replication-offset");
            ctx.reply.int(n.repl_offset as i64);
            ctx.reply.bulk(b"health");
            // Redis 7.0 reports FAIL as "fail"; PFAIL is still "online".
            let failed = n.flags & nf::FAIL != 0;
            ctx.reply
                .bulk(if failed { b"fail" as &[u8] } else { b"online" });
        }
    }
}

pub fn keyslot(ctx: &mut Ctx, args: &Args) {
    if cluster(ctx).is_some() {
        ctx.reply.int(key_slot(args.get(2)) as i64);
    }
}

pub fn countkeysinslot(ctx: &mut Ctx, args: &Args) {
    if cluster(ctx).is_none() {
        return;
    }
    let Some(slot) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    if !(0..SLOTS as i64).contains(&slot) {
        return ctx.error("ERR Invalid slot");
    }
    let n = count_keys_in_slot(ctx.srv, slot as u16);
    ctx.reply.int(n as i64);
}

pub fn getkeysinslot(ctx: &mut Ctx, args: &Args) {
    if cluster(ctx).is_none() {
        return;
    }
    let (Some(slot), Some(max)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
        return ctx.not_integer();
    };
    if !(0..SLOTS as i64).contains(&slot) || max < 0 {
        return ctx.error("ERR Invalid slot or number of keys");
    }
    let keys = keys_in_slot(ctx.srv, slot as u16, max as usize);
    ctx.reply.array(keys.len());
    for k in keys {
        ctx.reply.bulk(&k);
    }
}

/// ADDSLOTS / DELSLOTS and their RANGE forms: every slot is checked
/// before any is changed.
fn change_slots(ctx: &mut Ctx, args: &Args, del: bool, range: bool) {
    let Some(cl) = cluster(ctx) else { return };
    if range && args.len() % 2 == 1 {
        let sub = if del {
            "delslotsrange"
        } else {
            "addslotsrange"
        };
        return ctx.error(&format!(
            "ERR wrong number of arguments for 'cluster|{sub}' command"
        ));
    }
    let mut wanted = vec![0u8; SLOTS];
    let mut list = Vec::new();
    if range {
        for pair in (2..args.len()).step_by(2) {
            let Some(a) = slot_arg(ctx, args.get(pair)) else {
                return;
            };
            let Some(b) = slot_arg(ctx, args.get(pair + 1)) else {
                return;
            };
            if a > b {
                return ctx.error(&format!(
                    "ERR start slot number {a} is greater than end slot number {b}"
                ));
            }
            list.extend(a..=b);
        }
    } else {
        for i in 2..args.len() {
            let Some(s) = slot_arg(ctx, args.get(i)) else {
                return;
            };
            list.push(s);
        }
    }
    let mut st = cl.lock();
    for &s in &list {
        let owner = st.table.owner(s);
        if del && owner.is_none() {
            return ctx.error(&format!("ERR Slot {s} is already unassigned"));
        }
        if !del && owner.is_some() {
            return ctx.error(&format!("ERR Slot {s} is already busy"));
        }
        wanted[s] += 1;
        if wanted[s] == 2 {
            return ctx.error(&format!("ERR Slot {s} specified multiple times"));
        }
    }
    for s in list {
        if del {
            st.set_owner(s, None);
        } else {
            // Redis closes an import when the slot is assigned to us.
            st.importing_from[s] = 0;
            st.set_owner(s, Some(0));
            st.sync_slot(s);
        }
    }
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn addslots(ctx: &mut Ctx, args: &Args) {
    change_slots(ctx, args, false, false)
}
pub fn addslotsrange(ctx: &mut Ctx, args: &Args) {
    change_slots(ctx, args, false, true)
}
pub fn delslots(ctx: &mut Ctx, args: &Args) {
    change_slots(ctx, args, true, false)
}
pub fn delslotsrange(ctx: &mut Ctx, args: &Args) {
    change_slots(ctx, args, true, true)
}

pub fn flushslots(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    if db0_size(ctx) != 0 {
        return ctx.error("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.");
    }
    let mut st = cl.lock();
    for s in 0..SLOTS {
        if st.table.owner(s) == Some(0) {
            st.set_owner(s, None);
        }
    }
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn meet(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    if args.len() > 5 {
        return ctx.error("ERR wrong number of arguments for 'cluster|meet' command");
    }
    let ip_s = args.str(2).into_owned();
    let port_s = args.str(3).into_owned();
    let Some(port) = parse_i64(args.get(3)).filter(|p| (0..=65535).contains(p)) else {
        return ctx.error(&format!("ERR Invalid TCP base port specified: {port_s}"));
    };
    let cport = if args.len() == 5 {
        match parse_i64(args.get(4)).filter(|p| (0..=65535).contains(p)) {
            Some(p) => p,
            None => {
                return ctx.error(&format!(
                    "ERR Invalid TCP bus port specified: {}",
                    args.str(4)
                ));
            }
        }
    } else {
        port + 10000
    };
    let ip: std::net::IpAddr = match ip_s.parse() {
        Ok(ip) if port != 0 && cport != 0 && cport <= 65535 => ip,
        _ => {
            return ctx.error(&format!(
                "ERR Invalid node address specified: {ip_s}:{port_s}"
            ));
        }
    };
    let ip = ip.to_string();
    let mut st = cl.lock();
    let existing = st
        .known_nodes()
        .find(|(i, n)| *i != 0 && n.ip == ip && n.port == port as u16)
        .map(|(i, _)| i);
    match existing {
        Some(i) => {
            if let Some(n) = st.node_mut(i)
                && n.flags & nf::HANDSHAKE == 0
            {
                n.flags |= nf::MEET;
            }
        }
        None => {
            st.add_node(Node {
                id: random_id(),
                shard_id: random_id(),
                ip,
                port: port as u16,
                cport: cport as u16,
                flags: nf::HANDSHAKE | nf::MEET,
                ..Node::default()
            });
        }
    }
    drop(st);
    ctx.reply.ok();
}

pub fn forget(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let mut st = cl.lock();
    let Some(idx) = st.lookup_bytes(args.get(2)) else {
        return ctx.error(&format!("ERR Unknown node {}", args.str(2)));
    };
    if idx == 0 {
        return ctx.error("ERR I tried hard but I can't forget myself...");
    }
    let id = st.node(idx).map(|n| n.id.clone()).unwrap_or_default();
    if st.myself().primary.as_deref() == Some(id.as_str()) {
        return ctx.error("ERR Can't forget my master!");
    }
    st.remove_node(idx);
    st.blacklist.insert(id, now_ms() + 60_000);
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn setslot(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let Some(slot) = slot_arg(ctx, args.get(2)) else {
        return;
    };
    let action = args.str(3).to_ascii_lowercase();
    let argc = args.len();
    let bad = "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP";
    let node_arg = || args.str(4).into_owned();
    let mut st = cl.lock();
    if st.myself().flags & nf::SLAVE != 0 {
        return ctx.error("ERR Please use SETSLOT only with masters.");
    }
    match (action.as_str(), argc) {
        ("migrating", 5) => {
            if st.table.owner(slot) != Some(0) {
                return ctx.error(&format!("ERR I'm not the owner of hash slot {slot}"));
            }
            let Some(n) = st.lookup_bytes(args.get(4)) else {
                return ctx.error(&format!("ERR I don't know about node {}", node_arg()));
            };
            if st.node(n).is_some_and(|n| !n.is_primary()) {
                return ctx.error("ERR Target node is not a master");
            }
            st.migrating_to[slot] = n + 1;
            st.sync_slot(slot);
        }
        ("importing", 5) => {
            if st.table.owner(slot) == Some(0) {
                return ctx.error(&format!("ERR I'm already the owner of hash slot {slot}"));
            }
            let Some(n) = st.lookup_bytes(args.get(4)) else {
                return ctx.error(&format!("ERR I don't know about node {}", node_arg()));
            };
            if st.node(n).is_some_and(|n| !n.is_primary()) {
                return ctx.error("ERR Target node is not a master");
            }
            st.importing_from[slot] = n + 1;
            st.sync_slot(slot);
        }
        ("stable", 4) => {
            st.migrating_to[slot] = 0;
            st.importing_from[slot] = 0;
            st.sync_slot(slot);
        }
        ("node", 5) => {
            let Some(n) = st.lookup_bytes(args.get(4)) else {
                return ctx.error(&format!("ERR Unknown node {}", node_arg()));
            };
            if st.node(n).is_some_and(|n| !n.is_primary()) {
                return ctx.error("ERR Target node is not a master");
            }
            if st.table.owner(slot) == Some(0) && n != 0 {
                drop(st);
                let keys = count_keys_in_slot(ctx.srv, slot as u16);
                st = cl.lock();
                if keys > 0 {
                    return ctx.error(&format!(
                        "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    ));
                }
            }
            // Moving the slot away closes our side of the migration.
            if n != 0 && st.migrating_to[slot] != 0 {
                st.migrating_to[slot] = 0;
            }
            // Taking the slot after an import: a fresh config epoch makes
            // our claim win everywhere (Redis does this without agreement).
            if n == 0 && st.importing_from[slot] != 0 {
                if st.bump_epoch_without_consensus() {
                    tracing::info!("configEpoch updated after importing slot {slot}");
                }
                st.importing_from[slot] = 0;
            }
            st.set_owner(slot, Some(n));
            st.sync_slot(slot);
        }
        _ => return ctx.error(bad),
    }
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn set_config_epoch(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let Some(epoch) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    if epoch < 0 {
        return ctx.error(&format!("ERR Invalid config epoch specified: {epoch}"));
    }
    let mut st = cl.lock();
    if st.known_nodes().count() > 1 {
        return ctx.error(
            "ERR The user can assign a config epoch only when the node does not know any other node.",
        );
    }
    if st.myself().config_epoch != 0 {
        return ctx.error("ERR Node config epoch is already non-zero");
    }
    st.myself_mut().config_epoch = epoch as u64;
    if st.current_epoch < epoch as u64 {
        st.current_epoch = epoch as u64;
    }
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn bumpepoch(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let mut st = cl.lock();
    let bumped = st.bump_epoch_without_consensus();
    let epoch = st.myself().config_epoch;
    changed(ctx, &cl, &mut st);
    ctx.reply.simple(&format!(
        "{} {epoch}",
        if bumped { "BUMPED" } else { "STILL" }
    ));
}

pub fn reset(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let hard = match args.len() {
        2 => false,
        3 if args.get(2).eq_ignore_ascii_case(b"hard") => true,
        3 if args.get(2).eq_ignore_ascii_case(b"soft") => false,
        _ => return ctx.syntax_error(),
    };
    let primary = cl.lock().myself().is_primary();
    if primary && db0_size(ctx) != 0 {
        return ctx.error("ERR CLUSTER RESET can't be called with master nodes containing keys");
    }
    if !primary {
        // A replica stops replicating and empties itself, as Redis does.
        crate::replication::replica::unset_master();
        for idx in 0..ctx.srv.store.len() {
            let mut shard = ctx.srv.store.lock(idx);
            for db in shard.dbs.iter_mut() {
                db.clear();
            }
            shard.refresh_mem();
        }
    }
    let mut st = cl.lock();
    let others: Vec<u16> = st
        .known_nodes()
        .map(|(i, _)| i)
        .filter(|&i| i != 0)
        .collect();
    for i in others {
        st.remove_node(i);
    }
    for s in 0..SLOTS {
        st.migrating_to[s] = 0;
        st.importing_from[s] = 0;
        st.set_owner(s, None);
        st.sync_slot(s);
    }
    {
        let me = st.myself_mut();
        me.flags = nf::MYSELF | nf::MASTER;
        me.primary = None;
    }
    if hard {
        st.current_epoch = 0;
        st.last_vote_epoch = 0;
        let new_id = random_id();
        st.rename_node(0, &new_id);
        let me = st.myself_mut();
        me.config_epoch = 0;
        me.shard_id = random_id();
    }
    cl.my_primary.store(0, std::sync::atomic::Ordering::Relaxed);
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn count_failure_reports(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let timeout = ctx.srv.config.get_int("cluster-node-timeout").max(1) as u64;
    let st = cl.lock();
    let Some(n) = st.lookup_bytes(args.get(2)).and_then(|i| st.node(i)) else {
        return ctx.error(&format!("ERR Unknown node {}", args.str(2)));
    };
    let now = now_ms();
    let valid = n
        .fail_reports
        .iter()
        .filter(|(_, t)| now.saturating_sub(*t) <= timeout * 2)
        .count();
    drop(st);
    ctx.reply.int(valid as i64);
}

/// CLUSTER REPLICATE <node-id>: Redis's checks, then we become a replica
/// of that primary (`failover::set_my_primary`).
pub fn replicate(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let Some(idx) = st.lookup_bytes(args.get(2)) else {
        return ctx.error(&format!("ERR Unknown node {}", args.str(2)));
    };
    if idx == 0 {
        return ctx.error("ERR Can't replicate myself");
    }
    if st.node(idx).is_some_and(|n| !n.is_primary()) {
        return ctx.error("ERR I can only replicate a master, not a replica.");
    }
    let check_empty = st.myself().is_primary();
    let has_slots = check_empty && st.slot_count(0) > 0;
    drop(st);
    // The key count takes shard locks: never under the cluster mutex.
    if check_empty && (has_slots || db0_size(ctx) != 0) {
        return ctx.error("ERR To set a master the node must be empty and without assigned slots.");
    }
    let mut st = cl.lock();
    // Re-checked: the table may have changed while it was released.
    if st.node(idx).is_none_or(|n| !n.is_primary()) {
        return ctx.error(&format!("ERR Unknown node {}", args.str(2)));
    }
    super::failover::set_my_primary(&cl, &mut st, idx);
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn replicas(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let Some(idx) = st.lookup_bytes(args.get(2)) else {
        return ctx.error(&format!("ERR Unknown node {}", args.str(2)));
    };
    let Some(n) = st.node(idx) else { return };
    if !n.is_primary() {
        return ctx.error("ERR The specified node is not a master");
    }
    let id = n.id.clone();
    let lines: Vec<String> = st
        .known_nodes()
        .filter(|(_, r)| r.primary.as_deref() == Some(id.as_str()))
        .map(|(i, _)| {
            let pport = cl.uses_pport(ctx.client.tls);
            node_line(&st, i, Line::Client { pport })
        })
        .collect();
    drop(st);
    ctx.reply.array(lines.len());
    for l in lines {
        ctx.reply.bulk(l.as_bytes());
    }
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER], sent to a replica.
pub fn failover(ctx: &mut Ctx, args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let (mut force, mut takeover) = (false, false);
    match args.len() {
        2 => {}
        3 if args.get(2).eq_ignore_ascii_case(b"force") => force = true,
        3 if args.get(2).eq_ignore_ascii_case(b"takeover") => {
            force = true;
            takeover = true;
        }
        _ => return ctx.syntax_error(),
    }
    let Some(bus) = cl.bus.get().cloned() else {
        return ctx.error("ERR cluster bus not running");
    };
    let mut st = cl.lock();
    if st.myself().is_primary() {
        return ctx.error("ERR You should send CLUSTER FAILOVER to a replica");
    }
    let Some(p) = super::failover::my_primary(&st).and_then(|p| st.node(p)) else {
        return ctx.error("ERR I'm a replica but my master is unknown to me");
    };
    if !force && (p.flags & nf::FAIL != 0 || !p.link) {
        return ctx.error("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE");
    }
    super::failover::start_manual(&cl, &mut st, &bus, force, takeover);
    changed(ctx, &cl, &mut st);
    ctx.reply.ok();
}

pub fn saveconfig(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let mut st = cl.lock();
    st.dirty = true;
    match cl.save(&mut st) {
        Ok(()) => ctx.reply.ok(),
        Err(e) => ctx.error(&format!("ERR error saving the cluster node config: {e}")),
    }
}

pub fn links(ctx: &mut Ctx, _args: &Args) {
    let Some(cl) = cluster(ctx) else { return };
    let st = cl.lock();
    let mut out: Vec<(&'static str, String, u64)> = Vec::new();
    for (i, n) in st.known_nodes() {
        if i == 0 {
            continue;
        }
        if n.link {
            out.push(("to", n.id.clone(), n.link_created));
        }
        if n.inbound_link_created != 0 {
            out.push(("from", n.id.clone(), n.inbound_link_created));
        }
    }
    drop(st);
    ctx.reply.array(out.len());
    for (dir, id, created) in out {
        ctx.reply.map(6);
        ctx.reply.bulk(b"direction");
        ctx.reply.bulk(dir.as_bytes());
        ctx.reply.bulk(b"node");
        ctx.reply.bulk(id.as_bytes());
        ctx.reply.bulk(b"create-time");
        ctx.reply.int(created as i64);
        ctx.reply.bulk(b"events");
        ctx.reply.bulk(b"r");
        ctx.reply.bulk(b"send-buffer-allocated");
        ctx.reply.int(0);
        ctx.reply.bulk(b"send-buffer-used");
        ctx.reply.int(0);
    }
}

pub fn help(ctx: &mut Ctx, _args: &Args) {
    const LINES: &[&str] = &[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ADDSLOTS <slot> [<slot> ...]",
        "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
        "BUMPEPOCH",
        "COUNT-FAILURE-REPORTS <node-id>",
        "COUNTKEYSINSLOT <slot>",
        "DELSLOTS <slot> [<slot> ...]",
        "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
        "FAILOVER [FORCE|TAKEOVER]",
        "FORGET <node-id>",
        "FLUSHSLOTS",
        "GETKEYSINSLOT <slot> <count>",
        "INFO",
        "KEYSLOT <key>",
        "LINKS",
        "MEET <ip> <port> [<bus-port>]",
        "MYID",
        "MYSHARDID",
        "NODES",
        "REPLICATE <node-id>",
        "RESET [HARD|SOFT]",
        "SET-CONFIG-EPOCH <epoch>",
        "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
        "REPLICAS <node-id>",
        "SAVECONFIG",
        "SHARDS",
        "SLOTS",
        "HELP",
    ];
    ctx.reply.array(LINES.len());
    for l in LINES {
        ctx.reply.simple(l);
    }
}

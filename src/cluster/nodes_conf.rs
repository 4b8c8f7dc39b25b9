//! nodes.conf in Redis's format: one CLUSTER NODES line per node, then
//! `vars currentEpoch N lastVoteEpoch M`. Written (to a temporary file,
//! then renamed) on every change of the node table; read at start.
//!
//! Our one addition, in Redis 7.2's aux-field style, is the shard id:
//! `ip:port@cport[,hostname],shard-id=<40 hex>` in the file only.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::{Node, SLOTS, State, nf, ranges, valid_id};

/// Opens (creating) and flocks the config file, as Redis does, so two
/// servers cannot share one nodes.conf.
pub fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| {
            format!(
                "Can't open {} in order to acquire a lock: {e}",
                path.display()
            )
        })?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "Sorry, the cluster configuration file {} is already used by a different Redis Cluster node. Please make sure that different nodes use different cluster configuration files.",
            path.display()
        ));
    }
    Ok(f)
}

/// Who a node line is for.
#[derive(Clone, Copy, PartialEq)]
pub enum Line {
    /// nodes.conf: with the aux fields (hostname, shard-id).
    File,
    /// A client's CLUSTER NODES / REPLICAS; `pport`: show plain ports
    /// where nodes have them (`Cluster::uses_pport`).
    Client { pport: bool },
}

/// One node's CLUSTER NODES line (no newline).
pub fn node_line(st: &State, idx: u16, to: Line) -> String {
    node_line_with(st, idx, to, &ranges(&st.slots_of(idx)))
}

/// `node_line` with the node's slot ranges already computed (see
/// `State::ranges_by_node`, one pass for all nodes).
pub fn node_line_with(st: &State, idx: u16, to: Line, slot_ranges: &[(u16, u16)]) -> String {
    let Some(n) = st.node(idx) else {
        return String::new();
    };
    let in_file = to == Line::File;
    let port = match to {
        Line::Client { pport: true } if n.pport != 0 => n.pport,
        _ => n.port,
    };
    let mut s = format!("{} {}:{}@{}", n.id, n.ip, port, n.cport);
    if !n.hostname.is_empty() || in_file {
        s.push(',');
        s.push_str(&n.hostname);
    }
    if in_file {
        s.push_str(",shard-id=");
        s.push_str(&n.shard_id);
    }
    let primary = n.primary.as_deref().unwrap_or("-");
    // A replica shows its primary's config epoch (Redis's nodeEpoch).
    let epoch = match n.primary.as_deref().and_then(|p| st.lookup(p)) {
        Some(p) if n.flags & nf::SLAVE != 0 => {
            st.node(p).map_or(n.config_epoch, |p| p.config_epoch)
        }
        _ => n.config_epoch,
    };
    let connected = n.flags & nf::MYSELF != 0 || n.link;
    s.push_str(&format!(
        " {} {} {} {} {} {}",
        n.flag_names(),
        primary,
        n.ping_sent,
        n.pong_received,
        epoch,
        if connected {
            "connected"
        } else {
            "disconnected"
        }
    ));
    for &(a, b) in slot_ranges {
        if a == b {
            s.push_str(&format!(" {a}"));
        } else {
            s.push_str(&format!(" {a}-{b}"));
        }
    }
    if idx == 0 {
        for slot in 0..SLOTS {
            if let Some(t) = st.migrating_to[slot]
                .checked_sub(1)
                .and_then(|i| st.node(i))
            {
                s.push_str(&format!(" [{slot}->-{}]", t.id));
            }
            if let Some(t) = st.importing_from[slot]
                .checked_sub(1)
                .and_then(|i| st.node(i))
            {
                s.push_str(&format!(" [{slot}-<-{}]", t.id));
            }
        }
    }
    s
}

pub fn save(path: &Path, st: &State) -> std::io::Result<()> {
    let mut text = String::new();
    let by_node = st.ranges_by_node();
    for (idx, n) in st.known_nodes() {
        if n.flags & nf::HANDSHAKE != 0 {
            continue;
        }
        text.push_str(&node_line_with(st, idx, Line::File, &by_node[idx as usize]));
        text.push('\n');
    }
    text.push_str(&format!(
        "vars currentEpoch {} lastVoteEpoch {}\n",
        st.current_epoch, st.last_vote_epoch
    ));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    // Written whole and renamed into place, so a crash leaves the old or
    // the new file, never half of one. Not fsynced: resharding changes
    // the table several times per slot and an fsync each time costs more
    // than the move itself; a process crash loses nothing, a power loss
    // may lose the last changes (the cluster re-converges by gossip).
    std::fs::write(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

fn parse_flags(s: &str) -> u16 {
    let mut f = 0;
    for name in s.split(',') {
        f |= match name {
            "myself" => nf::MYSELF,
            "master" => nf::MASTER,
            "slave" => nf::SLAVE,
            "fail?" => nf::PFAIL,
            "fail" => nf::FAIL,
            "handshake" => nf::HANDSHAKE,
            "noaddr" => nf::NOADDR,
            "nofailover" => nf::NOFAILOVER,
            _ => 0,
        };
    }
    f
}

/// Loads the node table. Open slots refer to nodes by id, so they are
/// applied after every node is known.
pub fn load(st: &mut State, text: &str) -> Result<(), String> {
    let mut slot_claims: Vec<(String, String)> = Vec::new();
    let mut myself: Option<Node> = None;
    let mut others: Vec<Node> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f[0] == "vars" {
            for kv in f[1..].chunks(2) {
                if let [k, v] = kv {
                    let v: u64 = v.parse().map_err(|_| format!("bad vars value {v}"))?;
                    match *k {
                        "currentEpoch" => st.current_epoch = v,
                        "lastVoteEpoch" => st.last_vote_epoch = v,
                        _ => {}
                    }
                }
            }
            continue;
        }
        if f.len() < 8 || !valid_id(f[0]) {
            return Err(format!("bad line: {line}"));
        }
        let mut addr_parts = f[1].split(',');
        let addr = addr_parts.next().unwrap_or_default();
        let mut hostname = String::new();
        let mut shard_id = String::new();
        for (i, aux) in addr_parts.enumerate() {
            if let Some(v) = aux.strip_prefix("shard-id=") {
                shard_id = v.to_string();
            } else if i == 0 {
                hostname = aux.to_string();
            }
        }
        let (hostport, cport) = addr.split_once('@').unwrap_or((addr, "0"));
        let (ip, port) = hostport.rsplit_once(':').ok_or("bad address")?;
        let flags = parse_flags(f[2]);
        let node = Node {
            id: f[0].to_string(),
            shard_id: if valid_id(&shard_id) {
                shard_id
            } else {
                super::random_id()
            },
            ip: ip.to_string(),
            port: port.parse().map_err(|_| "bad port")?,
            cport: cport.parse().map_err(|_| "bad cluster port")?,
            hostname,
            flags: flags & !nf::HANDSHAKE,
            primary: (f[3] != "-").then(|| f[3].to_string()),
            config_epoch: f[6].parse().map_err(|_| "bad config epoch")?,
            ..Node::default()
        };
        for spec in &f[8..] {
            slot_claims.push((node.id.clone(), spec.to_string()));
        }
        if flags & nf::MYSELF != 0 {
            myself = Some(node);
        } else {
            others.push(node);
        }
    }
    let me = myself.ok_or("no myself line")?;
    st.add_node(me);
    for n in others {
        st.add_node(n);
    }
    for (id, spec) in slot_claims {
        let idx = st.lookup(&id).ok_or("unknown node")?;
        if let Some(open) = spec.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            // [slot->-id] migrating, [slot-<-id] importing.
            let (slot, dir, peer) = if let Some((s, p)) = open.split_once("->-") {
                (s, true, p)
            } else if let Some((s, p)) = open.split_once("-<-") {
                (s, false, p)
            } else {
                return Err(format!("bad open slot {spec}"));
            };
            let slot: usize = slot.parse().map_err(|_| "bad slot")?;
            let peer = st.lookup(peer).ok_or("unknown node in open slot")?;
            if slot >= SLOTS {
                return Err("bad slot".into());
            }
            if dir {
                st.migrating_to[slot] = peer + 1;
            } else {
                st.importing_from[slot] = peer + 1;
            }
            st.sync_slot(slot);
            continue;
        }
        let (a, b) = match spec.split_once('-') {
            Some((a, b)) => (a, b),
            None => (spec.as_str(), spec.as_str()),
        };
        let a: usize = a.parse().map_err(|_| "bad slot")?;
        let b: usize = b.parse().map_err(|_| "bad slot")?;
        if a > b || b >= SLOTS {
            return Err("bad slot range".into());
        }
        for s in a..=b {
            st.set_owner(s, Some(idx));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reads_redis_nodes_conf_and_save_keeps_it() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "{a} 127.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-99 200 [5->-{b}] [300-<-{b}]\n\
             {b} 127.0.0.1:7001@17001,host1 master,fail - 0 1700000000000 2 disconnected 100-199\n\
             vars currentEpoch 5 lastVoteEpoch 0\n"
        );
        let mut st = crate::cluster::test_state();
        load(&mut st, &text).expect("loads");
        assert_eq!(st.current_epoch, 5);
        assert_eq!(st.myself().id, a);
        assert_eq!(st.myself().config_epoch, 3);
        assert_eq!(st.table.owner(0), Some(0));
        assert_eq!(st.table.owner(150), Some(1));
        assert_eq!(st.table.owner(250), None);
        assert_eq!(st.migrating_to[5], 2);
        assert_eq!(st.importing_from[300], 2);
        assert_eq!(st.node(1).map(|n| n.hostname.as_str()), Some("host1"));
        let line = node_line(&st, 0, Line::Client { pport: false });
        assert_eq!(
            line,
            format!(
                "{a} 127.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-99 200 [5->-{b}] [300-<-{b}]"
            )
        );
        assert!(load(&mut crate::cluster::test_state(), "garbage\n").is_err());
        assert!(load(&mut crate::cluster::test_state(), "vars currentEpoch x\n").is_err());
    }
}

//! Request routing in cluster mode (Redis's getNodeByQuery): every keyed
//! command is checked against the slot table before it runs. The answer
//! is "serve it here" (with the one slot all its keys share, which is
//! also the shard to lock) or the redirection / error Redis would send.

use std::sync::atomic::Ordering::Relaxed;

use super::{Cluster, MYSELF_OWNER, OWNER_MASK, SLOT_IMPORTING, SLOT_MIGRATING};
use crate::client::ClientState;
use crate::cmd::table::{CommandSpec, Lookup, flag, lookup};
use crate::cmd::{Args, OwnedArgs};
use crate::server::Server;
use crate::store::slot::key_slot;

pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
pub const UNBOUND: &str = "CLUSTERDOWN Hash slot not served";
pub const DOWN: &str = "CLUSTERDOWN The cluster is down";
pub const DOWN_RO: &str = "CLUSTERDOWN The cluster is down and only accepts read commands";

/// The key arguments of a command, from the table's key positions.
pub fn keys_of<'a>(spec: &CommandSpec, args: &Args<'a>) -> impl Iterator<Item = &'a [u8]> {
    let args = *args;
    spec.key_positions(args.len()).map(move |i| args.get(i))
}

/// ASKING is good for the next command only (inside MULTI, until EXEC).
#[inline]
pub fn command_done(state: &mut ClientState, spec: &CommandSpec) {
    if state.asking && state.multi.is_none() && spec.name != "asking" {
        state.asking = false;
    }
}

struct Query<'k> {
    slot: Option<u16>,
    word: u32,
    first_key: &'k [u8],
    multiple_keys: bool,
    missing: usize,
    existing: usize,
    write: bool,
    asking_cmd: bool,
}

fn key_present(srv: &Server, slot: u16, key: &[u8]) -> bool {
    let mut shard = srv.store.lock(slot as usize % srv.store.len());
    shard.dbs[0].contains(key, crate::util::now_ms())
}

impl<'k> Query<'k> {
    fn add(
        &mut self,
        srv: &Server,
        cl: &Cluster,
        spec: &CommandSpec,
        args: &Args<'k>,
    ) -> Result<(), String> {
        self.write |= spec.flags & flag::WRITE != 0;
        self.asking_cmd |= spec.name == "restore-asking";
        for key in keys_of(spec, args) {
            let s = key_slot(key);
            match self.slot {
                None => {
                    let w = cl.table.word(s);
                    if w & OWNER_MASK == 0 {
                        return Err(UNBOUND.into());
                    }
                    self.slot = Some(s);
                    self.word = w;
                    self.first_key = key;
                }
                Some(prev) => {
                    if key != self.first_key {
                        if s != prev {
                            return Err(CROSSSLOT.into());
                        }
                        self.multiple_keys = true;
                    }
                }
            }
            if self.word & (SLOT_MIGRATING | SLOT_IMPORTING) != 0 {
                if key_present(srv, s, key) {
                    self.existing += 1;
                } else {
                    self.missing += 1;
                }
            }
        }
        Ok(())
    }
}

/// Routes a command (or, for EXEC, the queued transaction). `Ok(slot)`:
/// serve here; `Err`: the reply to send instead.
pub fn route(
    srv: &Server,
    cl: &Cluster,
    state: &mut ClientState,
    spec: &CommandSpec,
    args: &Args,
) -> Result<Option<u16>, String> {
    let asking = state.asking;
    command_done(state, spec);
    if spec.keys.0 == 0 && spec.name != "exec" {
        return Ok(None);
    }
    let mut q = Query {
        slot: None,
        word: 0,
        first_key: b"",
        multiple_keys: false,
        missing: 0,
        existing: 0,
        write: false,
        asking_cmd: false,
    };
    if spec.name == "exec" {
        let Some(queue) = state.multi.as_ref() else {
            return Ok(None);
        };
        for queued in queue.iter() {
            add_queued(srv, cl, &mut q, queued)?;
        }
    } else {
        q.add(srv, cl, spec, args)?;
    }
    let Some(slot) = q.slot else {
        return Ok(None);
    };
    if !cl.state_ok.load(Relaxed) {
        let reads_ok = srv.config.get("cluster-allow-reads-when-down").as_deref() == Some("yes");
        if !reads_ok {
            return Err(DOWN.into());
        }
        if q.write {
            return Err(DOWN_RO.into());
        }
    }
    let owner = q.word & OWNER_MASK;
    if owner == MYSELF_OWNER && q.word & SLOT_MIGRATING != 0 && q.missing > 0 {
        if q.existing > 0 {
            return Err(TRYAGAIN.into());
        }
        let target = cl.lock().migrating_to[slot as usize];
        return Err(format!("ASK {slot} {}", addr_of(cl, target, state.tls)));
    }
    if owner != MYSELF_OWNER && q.word & SLOT_IMPORTING != 0 && (asking || q.asking_cmd) {
        if q.multiple_keys && q.missing > 0 {
            return Err(TRYAGAIN.into());
        }
        return Ok(Some(slot));
    }
    if state.readonly && !q.write && owner == cl.my_primary.load(Relaxed) {
        return Ok(Some(slot));
    }
    if owner != MYSELF_OWNER {
        return Err(format!(
            "MOVED {slot} {}",
            addr_of(cl, owner as u16, state.tls)
        ));
    }
    Ok(Some(slot))
}

fn add_queued<'q>(
    srv: &Server,
    cl: &Cluster,
    q: &mut Query<'q>,
    queued: &'q OwnedArgs,
) -> Result<(), String> {
    let args = queued.args();
    if let Lookup::Found(r) = lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
        q.add(srv, cl, r.spec, &args)?;
    }
    Ok(())
}

/// "ip:port" of a node by its slot-table owner number (index + 1), the
/// port as this client should see it (`Cluster::client_port`).
fn addr_of(cl: &Cluster, owner: u16, client_tls: bool) -> String {
    let st = cl.lock();
    match owner.checked_sub(1).and_then(|i| st.node(i)) {
        Some(n) => format!("{}:{}", n.ip, cl.client_port(n, client_tls)),
        None => ":0".into(),
    }
}

//! Request routing in cluster mode (Redis's getNodeByQuery): every keyed
//! command is checked against the slot table before it runs. The answer
//! is "serve it here" (with the one slot all its keys share, which is
//! also the shard to lock) or the redirection / error Redis would send.

use std::sync::atomic::Ordering::Relaxed;

use super::{Cluster, MYSELF_OWNER, OWNER_MASK, SLOT_IMPORTING, SLOT_MIGRATING, State};
use crate::client::ClientState;
use crate::cmd::table::{CommandSpec, Lookup, flag, lookup};
use crate::cmd::{Args, Locked, OwnedArgs};
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
        cl: &Cluster,
        spec: &CommandSpec,
        args: &Args<'k>,
        present: &impl Fn(u16, &[u8]) -> bool,
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
                if present(s, key) {
                    self.existing += 1;
                } else {
                    self.missing += 1;
                }
            }
        }
        Ok(())
    }
}

/// A command that routing lets run here, in `slot`. What the decision
/// read (the slot's word, the client's flags) is kept for `confirm`.
#[derive(Clone, Copy)]
pub struct Here {
    pub slot: u16,
    word: u32,
    client: Client,
}

/// What routing looks at in the client: ASKING (for this command),
/// READONLY, and whether it came over TLS (the port a redirection names).
#[derive(Clone, Copy)]
struct Client {
    asking: bool,
    readonly: bool,
    tls: bool,
}

/// Routes a command (or, for EXEC, the queued transaction).
/// `Ok(Some(here))`: serve it here, then `confirm` once its shards are
/// locked; `Ok(None)`: it has no keys; `Err`: the reply to send instead.
pub fn route(
    srv: &Server,
    cl: &Cluster,
    state: &mut ClientState,
    spec: &CommandSpec,
    args: &Args,
) -> Result<Option<Here>, String> {
    let client = Client {
        asking: state.asking,
        readonly: state.readonly,
        tls: state.tls,
    };
    command_done(state, spec);
    let present = |slot: u16, key: &[u8]| key_present(srv, slot, key);
    let Some(q) = query(cl, spec, args, state.multi.as_deref(), present)? else {
        return Ok(None);
    };
    decide(srv, cl, client, &q)?;
    Ok(Some(Here {
        slot: q.slot.unwrap_or_default(),
        word: q.word,
        client,
    }))
}

/// Decides again, with the command's shards locked (they stay locked
/// while it runs), when the first decision depended on what another
/// thread may have changed since: whether keys of a slot being migrated
/// are here (MIGRATE moves them holding every shard) or the slot's state
/// (SETSLOT). Redis decides and runs in one step; without this a key
/// MIGRATEd in between was read as missing, or written here again after
/// it had moved. One atomic load when the slot is stable and unchanged.
/// `queue`: EXEC's queued commands.
pub fn confirm(
    srv: &Server,
    cl: &Cluster,
    spec: &CommandSpec,
    args: &Args,
    queue: Option<&[OwnedArgs]>,
    here: Here,
    locked: &Locked,
) -> Result<(), String> {
    let word = cl.table.word(here.slot);
    if word == here.word && word & (SLOT_MIGRATING | SLOT_IMPORTING) == 0 {
        return Ok(());
    }
    let now = crate::util::now_ms();
    // Keyed commands lock their keys' shard; were it not held, it is
    // locked just for the look, as `route` did.
    let present = |slot: u16, key: &[u8]| match locked.get(slot as usize % srv.store.len()) {
        Some(shard) => shard.dbs[0].peek(key).is_some_and(|e| !e.is_expired(now)),
        None => key_present(srv, slot, key),
    };
    match query(cl, spec, args, queue, present)? {
        Some(q) => decide(srv, cl, here.client, &q),
        None => Ok(()),
    }
}

/// The slot of the command's keys (of every command in `queue`, for
/// EXEC) and, if the slot is being migrated or imported, which keys are
/// `present`. None: no keys.
fn query<'q>(
    cl: &Cluster,
    spec: &CommandSpec,
    args: &Args<'q>,
    queue: Option<&'q [OwnedArgs]>,
    present: impl Fn(u16, &[u8]) -> bool,
) -> Result<Option<Query<'q>>, String> {
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
        let Some(queue) = queue else {
            return Ok(None);
        };
        for queued in queue.iter() {
            add_queued(cl, &mut q, queued, &present)?;
        }
    } else {
        q.add(cl, spec, args, &present)?;
    }
    Ok(q.slot.is_some().then_some(q))
}

/// Redis's getNodeByQuery once the keys are known: Ok to serve here, or
/// the redirection / error to reply.
fn decide(srv: &Server, cl: &Cluster, client: Client, q: &Query) -> Result<(), String> {
    let Some(slot) = q.slot else {
        return Ok(());
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
        return ask_for_missing(cl, slot, client.tls);
    }
    if owner != MYSELF_OWNER && q.word & SLOT_IMPORTING != 0 && (client.asking || q.asking_cmd) {
        if q.multiple_keys && q.missing > 0 {
            return Err(TRYAGAIN.into());
        }
        return Ok(());
    }
    if client.readonly && !q.write && owner == cl.my_primary.load(Relaxed) {
        return Ok(());
    }
    if owner != MYSELF_OWNER {
        return Err(format!(
            "MOVED {slot} {}",
            addr_of(cl, owner as u16, client.tls)
        ));
    }
    Ok(())
}

/// Keys missing from a slot we are migrating go to the target (ASK). The
/// slot's word was read without the lock and SETSLOT may have closed the
/// migration since, so the target is read under the lock together with
/// the slot's owner (SETSLOT changes both under it): closed to another
/// node, the client is sent there (MOVED); closed back to us, the
/// command is served here (and `confirm` checks again). Reading only
/// the target, a closed migration gave "ASK <slot> :0", which clients
/// cannot follow.
fn ask_for_missing(cl: &Cluster, slot: u16, client_tls: bool) -> Result<(), String> {
    let st = cl.lock();
    if let Some(addr) = node_addr(cl, &st, st.migrating_to[slot as usize], client_tls) {
        return Err(format!("ASK {slot} {addr}"));
    }
    let owner = (cl.table.word(slot) & OWNER_MASK) as u16;
    match node_addr(cl, &st, owner, client_tls) {
        Some(addr) if owner as u32 != MYSELF_OWNER => Err(format!("MOVED {slot} {addr}")),
        Some(_) => Ok(()),
        None => Err(UNBOUND.into()),
    }
}

fn add_queued<'q>(
    cl: &Cluster,
    q: &mut Query<'q>,
    queued: &'q OwnedArgs,
    present: &impl Fn(u16, &[u8]) -> bool,
) -> Result<(), String> {
    let args = queued.args();
    if let Lookup::Found(r) = lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
        q.add(cl, r.spec, &args, present)?;
    }
    Ok(())
}

/// "ip:port" of a node by its slot-table owner number (index + 1), the
/// port as this client should see it (`Cluster::client_port`).
fn addr_of(cl: &Cluster, owner: u16, client_tls: bool) -> String {
    node_addr(cl, &cl.lock(), owner, client_tls).unwrap_or_else(|| ":0".into())
}

/// `addr_of`, if the node is known.
fn node_addr(cl: &Cluster, st: &State, owner: u16, client_tls: bool) -> Option<String> {
    let n = st.node(owner.checked_sub(1)?)?;
    Some(format!("{}:{}", n.ip, cl.client_port(n, client_tls)))
}

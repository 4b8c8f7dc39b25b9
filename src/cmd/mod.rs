//! Command execution: the table, argument views, the execution context
//! and the dispatcher.
//!
//! The one command table (`table.rs`) decides, before any handler runs,
//! arity, flags, key positions and which shards to lock. Handlers write
//! their reply straight into the connection's output buffer.
//!
//! Locking: a command locks the shards its keys map to, in ascending shard
//! order, and holds them for its whole execution (commands never await).
//! One key, one lock; multi-key commands spanning shards are atomic, and
//! since every command takes its locks in the same order none can deadlock.

/// The collection at `key` for modification (`EntryMut`), created empty
/// if absent; `None`, after replying WRONGTYPE, if the key holds another
/// type. Shared by every collection family's write commands.
macro_rules! get_or_create {
    ($ctx:expr, $key:expr, $variant:ident) => {{
        let now = $ctx.now;
        let db = $ctx.db($key);
        if db.get($key, now).is_none() {
            db.insert(
                $key,
                $crate::store::Entry::new($crate::store::Value::$variant(Box::default()), 0, now),
            );
        }
        let is_type = matches!(
            db.get($key, now),
            Some($crate::store::EntryRef {
                value: $crate::store::ValueRef::$variant(_),
                ..
            })
        );
        if is_type {
            db.get_mut($key, now)
        } else {
            $ctx.wrong_type();
            None
        }
    }};
}

pub mod acl;
pub mod collections;
pub mod connection;
pub mod dispatch;
pub mod keyspace;
pub mod list;
pub mod multi;
pub mod replication;
pub mod server;
pub mod string;
pub mod table;

use std::ops::Range;
use std::sync::MutexGuard;

use crate::client::ClientState;
use crate::protocol::Reply;
use crate::server::Server;
use crate::store::{Db, Shard};

pub use table::{CommandSpec, lookup};

/// A command's arguments, viewed in place (no copies). `args.get(0)` is
/// the command name.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    base: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    #[inline]
    pub fn new(base: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { base, ranges }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.base[self.ranges[i].clone()]
    }

    /// The arguments from `i` on (ACL DRYRUN's inner command).
    pub fn slice_from(&self, i: usize) -> Args<'a> {
        Args {
            base: self.base,
            ranges: &self.ranges[i.min(self.ranges.len())..],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.ranges.iter().map(|r| &self.base[r.clone()])
    }

    /// Argument `i` as lossy UTF-8 (for error messages).
    pub fn str(&self, i: usize) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.get(i))
    }
}

/// An owned copy of a command's arguments (queued in MULTI, say).
#[derive(Clone, Debug, Default)]
pub struct OwnedArgs {
    data: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl OwnedArgs {
    pub fn from_args(args: &Args) -> Self {
        let mut data = Vec::with_capacity(args.ranges.iter().map(|r| r.len()).sum());
        let mut ranges = Vec::with_capacity(args.len());
        for a in args.iter() {
            let start = data.len();
            data.extend_from_slice(a);
            ranges.push(start..data.len());
        }
        OwnedArgs { data, ranges }
    }

    pub fn from_slices(parts: &[&[u8]]) -> Self {
        let mut o = OwnedArgs::default();
        for p in parts {
            let start = o.data.len();
            o.data.extend_from_slice(p);
            o.ranges.push(start..o.data.len());
        }
        o
    }

    pub fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.ranges)
    }
}

/// The shards a command holds while it runs.
pub enum Locked<'a> {
    None,
    One(usize, MutexGuard<'a, Shard>),
    /// Sorted by shard index.
    Many(Vec<(usize, MutexGuard<'a, Shard>)>),
}

impl<'a> Locked<'a> {
    /// Locks the given shard indices (sorted, deduplicated) in order.
    pub fn acquire(srv: &'a Server, shards: &[usize]) -> Locked<'a> {
        match shards {
            [] => Locked::None,
            [one] => Locked::One(*one, srv.store.lock(*one)),
            many => Locked::Many(many.iter().map(|&i| (i, srv.store.lock(i))).collect()),
        }
    }

    pub fn all(srv: &'a Server) -> Locked<'a> {
        let all: Vec<usize> = (0..srv.store.len()).collect();
        Self::acquire(srv, &all)
    }

    /// Every locked shard, in order.
    pub fn shards_mut(&mut self) -> impl Iterator<Item = &mut Shard> {
        let v: Vec<&mut Shard> = match self {
            Locked::None => Vec::new(),
            Locked::One(_, g) => vec![&mut **g],
            Locked::Many(v) => v.iter_mut().map(|(_, g)| &mut **g).collect(),
        };
        v.into_iter()
    }

    /// Each locked shard with its index.
    pub fn for_each_indexed(&self, mut f: impl FnMut(usize, &Shard)) {
        match self {
            Locked::None => {}
            Locked::One(i, g) => f(*i, g),
            Locked::Many(v) => v.iter().for_each(|(i, g)| f(*i, g)),
        }
    }

    /// A locked shard for modification (panics if not locked).
    pub fn shard_mut(&mut self, idx: usize) -> &mut Shard {
        self.shard(idx)
    }

    /// A locked shard, if it is one of ours.
    pub fn get(&self, idx: usize) -> Option<&Shard> {
        match self {
            Locked::One(i, g) if *i == idx => Some(g),
            Locked::Many(v) => v
                .binary_search_by_key(&idx, |(i, _)| *i)
                .ok()
                .map(|pos| &*v[pos].1),
            _ => None,
        }
    }

    #[inline]
    fn shard(&mut self, idx: usize) -> &mut Shard {
        match self {
            Locked::One(i, g) => {
                debug_assert_eq!(*i, idx, "key outside the locked shard");
                g
            }
            Locked::Many(v) => match v.binary_search_by_key(&idx, |(i, _)| *i) {
                Ok(pos) => &mut v[pos].1,
                Err(_) => panic!("command table invariant: shard {idx} not locked"),
            },
            Locked::None => panic!("command table invariant: no shard locked"),
        }
    }
}

/// Everything a handler works with. `'s` is the server's lifetime (and
/// so the shard locks'), `'a` the command's borrows, `'r` the output
/// buffer's.
pub struct Ctx<'a, 'r, 's> {
    pub srv: &'s Server,
    pub client: &'a mut ClientState,
    pub reply: &'a mut Reply<'r>,
    pub locked: Locked<'s>,
    /// Unix time in ms, fixed for the whole command (Redis's
    /// commandTimeSnapshot), so a command sees one consistent clock.
    pub now: u64,
    /// Changes made to the dataset; non-zero makes the dispatcher
    /// propagate the command.
    pub dirty: u64,
    /// For commands whose keys span several shards: each key argument's
    /// address with its shard, computed once when locking (sorted by
    /// address). Empty for single-shard commands.
    pub key_shards: KeyShards,
}

/// (address of a key argument, its shard), sorted by address.
pub type KeyShards = Vec<(usize, usize)>;

impl<'a, 'r, 's> Ctx<'a, 'r, 's> {
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.srv.store.shard_of(key)
    }

    /// The shard holding `key` (locked by the dispatcher).
    #[inline]
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let idx = self.shard_index(key);
        self.locked.shard(idx)
    }

    /// The shard of `key`, reusing what locking computed: the slot is
    /// hashed once per key per command.
    #[inline]
    fn shard_index(&self, key: &[u8]) -> usize {
        match &self.locked {
            // The dispatcher locked exactly this key's shard.
            Locked::One(i, _) if !cfg!(debug_assertions) => *i,
            _ => {
                let addr = key.as_ptr() as usize;
                match self.key_shards.binary_search_by_key(&addr, |(a, _)| *a) {
                    Ok(pos) => self.key_shards[pos].1,
                    Err(_) => self.srv.store.shard_of(key),
                }
            }
        }
    }

    /// The selected database's part of `key`'s shard.
    #[inline]
    pub fn db(&mut self, key: &[u8]) -> &mut Db {
        let db = self.client.db;
        &mut self.shard(key).dbs[db]
    }

    /// Database `db` (any index) in `key`'s shard.
    #[inline]
    pub fn db_at(&mut self, key: &[u8], db: usize) -> &mut Db {
        &mut self.shard(key).dbs[db]
    }

    /// The key's database and the reply writer at once (they are
    /// disjoint parts of the context).
    #[inline]
    pub fn db_reply(&mut self, key: &[u8]) -> (&mut Db, &mut Reply<'r>) {
        let idx = self.shard_index(key);
        let db = self.client.db;
        (&mut self.locked.shard(idx).dbs[db], &mut *self.reply)
    }

    #[inline]
    pub fn error(&mut self, msg: &str) {
        self.reply.error(msg);
    }

    pub fn wrong_type(&mut self) {
        self.reply
            .error("WRONGTYPE Operation against a key holding the wrong kind of value");
    }

    pub fn syntax_error(&mut self) {
        self.reply.error("ERR syntax error");
    }

    pub fn not_integer(&mut self) {
        self.reply
            .error("ERR value is not an integer or out of range");
    }
}

pub type Handler = for<'a, 'r, 's, 'x> fn(&mut Ctx<'a, 'r, 's>, &Args<'x>);

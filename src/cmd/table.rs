//! The command table: one entry per command (and per subcommand of the
//! container commands), with Redis 7's arity, flags and key positions. It
//! drives dispatch, shard locking, COMMAND's replies and commandstats.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{
    Handler, acl, collections as coll, connection as conn, keyspace as ks, list, multi,
    replication as repl, server as srv, string as st,
};
use crate::cluster::{commands as cl, dump, migrate};

pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const FAST: u32 = 1 << 7;
    pub const NO_AUTH: u32 = 1 << 8;
    pub const SENTINEL: u32 = 1 << 9;
    pub const NO_MULTI: u32 = 1 << 10;
    pub const ALLOW_BUSY: u32 = 1 << 11;
    pub const PROTECTED: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const SKIP_SLOWLOG: u32 = 1 << 14;
    pub const SKIP_MONITOR: u32 = 1 << 15;
    pub const NO_ASYNC_LOADING: u32 = 1 << 16;
    /// Internal, not shown by COMMAND: runs immediately inside MULTI
    /// instead of being queued (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const NOT_QUEUED: u32 = 1 << 31;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (SENTINEL, "sentinel"),
        (NO_MULTI, "no_multi"),
        (PROTECTED, "protected"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

use flag::*;

/// Which shards a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockSpec {
    /// No keyspace access.
    None,
    /// The shards of the keys at the key positions.
    Keys,
    /// Every shard (whole-keyspace commands).
    All,
}

pub struct CommandSpec {
    /// Lowercase name; subcommands use the bare subcommand name.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    /// First key, last key (negative counts from the end), step; 0,0,0 for
    /// keyless commands. As COMMAND reports them.
    pub keys: (i32, i32, i32),
    pub lock: LockSpec,
    pub handler: Option<Handler>,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// Positions of the key arguments in a command of `argc` arguments:
    /// `keys` with a negative last counted from the end and clamped to the
    /// arguments there are. Empty for keyless commands. Routing, locking,
    /// WATCH and snapshots all take a command's keys from here.
    #[inline]
    pub fn key_positions(&self, argc: usize) -> std::iter::StepBy<std::ops::RangeInclusive<usize>> {
        let (first, last, step) = self.keys;
        let argc = argc as i64;
        let (first, last) = (first as i64, last as i64);
        let last = if last < 0 {
            argc + last
        } else {
            last.min(argc - 1)
        };
        let range = if first <= 0 || first >= argc || last < first {
            #[allow(clippy::reversed_empty_ranges)]
            {
                1..=0
            }
        } else {
            first as usize..=last as usize
        };
        range.step_by(step.max(1) as usize)
    }
}

const NOKEYS: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);
const KEYS_ALL: (i32, i32, i32) = (1, -1, 1);

#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    lock: LockSpec,
    handler: Handler,
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        lock,
        handler: Some(handler),
        group,
        summary,
        since,
        subcommands: &[],
    }
}

const fn container(
    name: &'static str,
    flags: u32,
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    subcommands: &'static [CommandSpec],
) -> CommandSpec {
    CommandSpec {
        name,
        arity: -2,
        flags,
        keys: NOKEYS,
        lock: LockSpec::None,
        handler: None,
        group,
        summary,
        since,
        subcommands,
    }
}

use LockSpec::{All, Keys, None as NoLock};

const R: u32 = READONLY;
const W: u32 = WRITE;
const WD: u32 = WRITE | DENYOOM;
const WDF: u32 = WRITE | DENYOOM | FAST;
const RF: u32 = READONLY | FAST;
const WF: u32 = WRITE | FAST;
const CONN: u32 = NOSCRIPT | LOADING | STALE;

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // Strings (t_string.c)
    c("get", 2, RF, KEY1, Keys, st::get, "string", "1.0.0", "Returns the string value of a key."),
    c("set", -3, WD, KEY1, Keys, st::set, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    c("setnx", 3, WDF, KEY1, Keys, st::setnx, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    c("setex", 4, WD, KEY1, Keys, st::setex, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    c("psetex", 4, WD, KEY1, Keys, st::psetex, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    c("getset", 3, WDF, KEY1, Keys, st::getset, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    c("getdel", 2, WF, KEY1, Keys, st::getdel, "string", "6.2.0", "Returns the string value of a key after deleting the key."),
    c("getex", -2, WF, KEY1, Keys, st::getex, "string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
    c("mget", -2, RF, KEYS_ALL, Keys, st::mget, "string", "1.0.0", "Atomically returns the string values of one or more keys."),
    c("mset", -3, WD, (1, -1, 2), Keys, st::mset, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    c("msetnx", -3, WD, (1, -1, 2), Keys, st::msetnx, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    c("append", 3, WDF, KEY1, Keys, st::append, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    c("strlen", 2, RF, KEY1, Keys, st::strlen, "string", "2.2.0", "Returns the length of a string value."),
    c("getrange", 4, R, KEY1, Keys, st::getrange, "string", "2.4.0", "Returns a substring of the string stored at a key."),
    c("substr", 4, R, KEY1, Keys, st::getrange, "string", "1.0.0", "Returns a substring from a string value."),
    c("setrange", 4, WD, KEY1, Keys, st::setrange, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    c("incr", 2, WDF, KEY1, Keys, st::incr, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    c("decr", 2, WDF, KEY1, Keys, st::decr, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    c("incrby", 3, WDF, KEY1, Keys, st::incrby, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    c("decrby", 3, WDF, KEY1, Keys, st::decrby, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    c("incrbyfloat", 3, WDF, KEY1, Keys, st::incrbyfloat, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    // Keyspace (db.c, expire.c)
    c("del", -2, W, KEYS_ALL, Keys, ks::del, "generic", "1.0.0", "Deletes one or more keys."),
    c("unlink", -2, WF, KEYS_ALL, Keys, ks::del, "generic", "4.0.0", "Asynchronously deletes one or more keys."),
    c("exists", -2, RF, KEYS_ALL, Keys, ks::exists, "generic", "1.0.0", "Determines whether one or more keys exist."),
    c("touch", -2, RF, KEYS_ALL, Keys, ks::touch, "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    c("type", 2, RF, KEY1, Keys, ks::type_, "generic", "1.0.0", "Determines the type of value stored at a key."),
    c("keys", 2, R, NOKEYS, All, ks::keys, "generic", "1.0.0", "Returns all key names that match a pattern."),
    c("scan", -2, R, NOKEYS, All, ks::scan, "generic", "2.8.0", "Iterates over the key names in the database."),
    c("randomkey", 1, R, NOKEYS, All, ks::randomkey, "generic", "1.0.0", "Returns a random key name from the database."),
    c("rename", 3, W, (1, 2, 1), Keys, ks::rename, "generic", "1.0.0", "Renames a key and overwrites the destination."),
    c("renamenx", 3, WF, (1, 2, 1), Keys, ks::renamenx, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    c("copy", -3, WD, (1, 2, 1), Keys, ks::copy, "generic", "6.2.0", "Copies the value of a key to a new key."),
    c("move", 3, WF, KEY1, Keys, ks::move_, "generic", "1.0.0", "Moves a key to another database."),
    c("expire", -3, WF, KEY1, Keys, ks::expire, "generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    c("pexpire", -3, WF, KEY1, Keys, ks::pexpire, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    c("expireat", -3, WF, KEY1, Keys, ks::expireat, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."),
    c("pexpireat", -3, WF, KEY1, Keys, ks::pexpireat, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    c("ttl", 2, RF, KEY1, Keys, ks::ttl, "generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    c("pttl", 2, RF, KEY1, Keys, ks::pttl, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    c("expiretime", 2, RF, KEY1, Keys, ks::expiretime, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp."),
    c("pexpiretime", 2, RF, KEY1, Keys, ks::pexpiretime, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    c("persist", 2, WF, KEY1, Keys, ks::persist, "generic", "2.2.0", "Removes the expiration time of a key."),
    c("dbsize", 1, RF, NOKEYS, All, ks::dbsize, "server", "1.0.0", "Returns the number of keys in the database."),
    c("flushdb", -1, W, NOKEYS, All, ks::flushdb, "server", "1.0.0", "Remove all keys from the current database."),
    c("flushall", -1, W, NOKEYS, All, ks::flushall, "server", "1.0.0", "Removes all keys from all databases."),
    c("swapdb", 3, WF, NOKEYS, All, ks::swapdb, "server", "4.0.0", "Swaps two Redis databases."),
    c("select", 2, CONN | FAST, NOKEYS, NoLock, conn::select, "connection", "1.0.0", "Changes the selected database."),
    // Lists (t_list.c), minimal
    c("rpush", -3, WDF, KEY1, Keys, list::rpush, "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    c("lpush", -3, WDF, KEY1, Keys, list::lpush, "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    c("llen", 2, RF, KEY1, Keys, list::llen, "list", "1.0.0", "Returns the length of a list."),
    c("lrange", 4, R, KEY1, Keys, list::lrange, "list", "1.0.0", "Returns a range of elements from a list."),
    // Hashes, sets, sorted sets (minimal)
    c("hset", -4, WDF, KEY1, Keys, coll::hset, "hash", "2.0.0", "Creates or modifies the value of a field in a hash."),
    c("hget", 3, RF, KEY1, Keys, coll::hget, "hash", "2.0.0", "Returns the value of a field in a hash."),
    c("hgetall", 2, R, KEY1, Keys, coll::hgetall, "hash", "2.0.0", "Returns all fields and values in a hash."),
    c("sadd", -3, WDF, KEY1, Keys, coll::sadd, "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist."),
    c("smembers", 2, R, KEY1, Keys, coll::smembers, "set", "1.0.0", "Returns all members of a set."),
    c("scard", 2, RF, KEY1, Keys, coll::scard, "set", "1.0.0", "Returns the number of members in a set."),
    c("zadd", -4, WDF, KEY1, Keys, coll::zadd, "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    c("zscore", 3, RF, KEY1, Keys, coll::zscore, "sorted-set", "1.2.0", "Returns the score of a member in a sorted set."),
    // Connection
    c("ping", -1, FAST | SENTINEL, NOKEYS, NoLock, conn::ping, "connection", "1.0.0", "Returns the server's liveliness response."),
    c("echo", 2, FAST, NOKEYS, NoLock, conn::echo, "connection", "1.0.0", "Returns the given string."),
    c("hello", -1, CONN | FAST | NO_AUTH | SENTINEL | ALLOW_BUSY, NOKEYS, NoLock, conn::hello, "connection", "6.0.0", "Handshakes with the Redis server."),
    c("auth", -2, CONN | FAST | NO_AUTH | SENTINEL | ALLOW_BUSY, NOKEYS, NoLock, conn::auth, "connection", "1.0.0", "Authenticates the connection."),
    c("quit", -1, CONN | FAST | NO_AUTH | ALLOW_BUSY | NOT_QUEUED, NOKEYS, NoLock, conn::quit, "connection", "1.0.0", "Closes the connection."),
    c("reset", 1, CONN | FAST | NO_AUTH | ALLOW_BUSY | NOT_QUEUED, NOKEYS, NoLock, conn::reset, "connection", "6.2.0", "Resets the connection."),
    // Transactions (multi.c)
    c("multi", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED, NOKEYS, NoLock, multi::multi, "transactions", "1.2.0", "Starts a transaction."),
    c("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | NOT_QUEUED, NOKEYS, NoLock, multi::exec, "transactions", "1.2.0", "Executes all commands in a transaction."),
    c("discard", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED, NOKEYS, NoLock, multi::discard, "transactions", "2.0.0", "Discards a transaction."),
    c("watch", -2, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED, KEYS_ALL, Keys, multi::watch, "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction."),
    c("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, NOKEYS, NoLock, multi::unwatch, "transactions", "2.2.0", "Forgets about watched keys of a transaction."),
    container("client", SENTINEL, "connection", "2.4.0", "A container for client connection commands.", CLIENT_SUBCOMMANDS),
    container("acl", 0, "server", "6.0.0", "A container for Access List Control commands.", ACL_SUBCOMMANDS),
    // Server
    c("info", -1, LOADING | STALE | SENTINEL, NOKEYS, All, srv::info, "server", "1.0.0", "Returns information and statistics about the server."),
    container("config", 0, "server", "2.0.0", "A container for server configuration commands.", CONFIG_SUBCOMMANDS),
    CommandSpec {
        name: "command",
        arity: -1,
        flags: LOADING | STALE | SENTINEL,
        keys: NOKEYS,
        lock: NoLock,
        handler: Some(srv::command),
        group: "server",
        summary: "Returns detailed information about all commands.",
        since: "2.8.13",
        subcommands: COMMAND_SUBCOMMANDS,
    },
    c("time", 1, LOADING | STALE | FAST, NOKEYS, NoLock, srv::time, "server", "2.6.0", "Returns the server time."),
    c("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE | PROTECTED, NOKEYS, All, srv::debug, "server", "1.0.0", "A container for debugging commands."),
    container("object", 0, "generic", "2.2.3", "A container for object introspection commands.", OBJECT_SUBCOMMANDS),
    container("memory", 0, "server", "4.0.0", "A container for memory diagnostics commands.", MEMORY_SUBCOMMANDS),
    c("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | SENTINEL | ALLOW_BUSY, NOKEYS, NoLock, srv::shutdown, "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    c("lastsave", 1, LOADING | STALE | FAST, NOKEYS, NoLock, srv::lastsave, "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk."),
    // Cluster (cluster.c)
    container("cluster", 0, "cluster", "3.0.0", "A container for Redis Cluster commands.", CLUSTER_SUBCOMMANDS),
    c("asking", 1, FAST, NOKEYS, NoLock, cl::asking, "cluster", "3.0.0", "Signals that a cluster client is following an -ASK redirect."),
    c("readonly", 1, LOADING | STALE | FAST, NOKEYS, NoLock, cl::readonly, "cluster", "3.0.0", "Enables read-only queries for a connection to a Redis Cluster replica node."),
    c("readwrite", 1, LOADING | STALE | FAST, NOKEYS, NoLock, cl::readwrite, "cluster", "3.0.0", "Enables read-write queries for a connection to a Reids Cluster replica node."),
    c("dump", 2, R, KEY1, Keys, dump::dump_cmd, "generic", "2.6.0", "Returns a serialized representation of the value stored at a key."),
    c("restore", -4, WD, KEY1, Keys, dump::restore, "generic", "2.6.0", "Creates a key from the serialized representation of a value."),
    c("restore-asking", -4, WD, KEY1, Keys, dump::restore, "server", "3.0.0", "An internal command for migrating keys in a cluster."),
    // MIGRATE blocks like Redis's: every shard stays locked while the
    // keys travel, so none can change between DUMP and delete.
    c("migrate", -6, W, NOKEYS, All, migrate::migrate, "generic", "2.6.0", "Atomically transfers a key from one Redis instance to another."),
    // Persistence and replication (rdb.c, replication.c)
    c("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, NoLock, repl::save, "server", "1.0.0", "Synchronously saves the database(s) to disk."),
    c("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, NOKEYS, NoLock, repl::bgsave, "server", "1.0.0", "Asynchronously saves the database(s) to disk."),
    c("psync", -3, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, NoLock, repl::psync, "server", "2.8.0", "An internal command used in replication."),
    c("sync", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, NoLock, repl::sync, "server", "1.0.0", "An internal command used in replication."),
    c("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, NOKEYS, NoLock, repl::replconf, "server", "3.0.0", "An internal command for configuring the replication stream."),
    c("replicaof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, NOKEYS, NoLock, repl::replicaof, "server", "5.0.0", "Configures a server as replica of another, or promotes it to a master."),
    c("slaveof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, NOKEYS, NoLock, repl::replicaof, "server", "1.0.0", "Sets a Redis server as a replica of another, or promotes it to being a master."),
    c("role", 1, NOSCRIPT | LOADING | STALE | FAST | SENTINEL, NOKEYS, NoLock, repl::role, "server", "2.8.12", "Returns the replication role."),
    c("wait", 3, NOSCRIPT, NOKEYS, NoLock, repl::wait, "generic", "3.0.0", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
];

#[rustfmt::skip]
static CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    c("addslots", -3, ADM, NOKEYS, NoLock, cl::addslots, "cluster", "3.0.0", "Assigns new hash slots to a node."),
    c("addslotsrange", -4, ADM, NOKEYS, NoLock, cl::addslotsrange, "cluster", "7.0.0", "Assigns new hash slot ranges to a node."),
    c("bumpepoch", 2, ADM, NOKEYS, NoLock, cl::bumpepoch, "cluster", "3.0.0", "Advances the cluster config epoch."),
    c("count-failure-reports", 3, ADM, NOKEYS, NoLock, cl::count_failure_reports, "cluster", "3.0.0", "Returns the number of active failure reports active for a node."),
    c("countkeysinslot", 3, STALE, NOKEYS, NoLock, cl::countkeysinslot, "cluster", "3.0.0", "Returns the number of keys in a hash slot."),
    c("delslots", -3, ADM, NOKEYS, NoLock, cl::delslots, "cluster", "3.0.0", "Sets hash slots as unbound for a node."),
    c("delslotsrange", -4, ADM, NOKEYS, NoLock, cl::delslotsrange, "cluster", "7.0.0", "Sets hash slot ranges as unbound for a node."),
    c("failover", -2, ADM, NOKEYS, NoLock, cl::failover, "cluster", "3.0.0", "Forces a replica to perform a manual failover of its master."),
    c("flushslots", 2, ADM, NOKEYS, NoLock, cl::flushslots, "cluster", "3.0.0", "Deletes all slots information from a node."),
    c("forget", 3, ADM, NOKEYS, NoLock, cl::forget, "cluster", "3.0.0", "Removes a node from the nodes table."),
    c("getkeysinslot", 4, STALE, NOKEYS, NoLock, cl::getkeysinslot, "cluster", "3.0.0", "Returns the key names in a hash slot."),
    c("info", 2, STALE, NOKEYS, NoLock, cl::info, "cluster", "3.0.0", "Returns information about the state of a node."),
    c("keyslot", 3, STALE, NOKEYS, NoLock, cl::keyslot, "cluster", "3.0.0", "Returns the hash slot for a key."),
    c("links", 2, STALE, NOKEYS, NoLock, cl::links, "cluster", "7.0.0", "Returns a list of all TCP links to and from peer nodes."),
    c("meet", -4, ADM, NOKEYS, NoLock, cl::meet, "cluster", "3.0.0", "Forces a node to handshake with another node."),
    c("myid", 2, STALE, NOKEYS, NoLock, cl::myid, "cluster", "3.0.0", "Returns the ID of a node."),
    c("myshardid", 2, STALE, NOKEYS, NoLock, cl::myshardid, "cluster", "7.2.0", "Returns the shard ID of a node."),
    c("nodes", 2, STALE, NOKEYS, NoLock, cl::nodes, "cluster", "3.0.0", "Returns the cluster configuration for a node."),
    c("replicas", 3, ADM, NOKEYS, NoLock, cl::replicas, "cluster", "5.0.0", "Lists the replica nodes of a master node."),
    c("replicate", 3, ADM, NOKEYS, NoLock, cl::replicate, "cluster", "3.0.0", "Configure a node as replica of a master node."),
    c("reset", -2, ADM | NOSCRIPT, NOKEYS, NoLock, cl::reset, "cluster", "3.0.0", "Resets a node."),
    c("saveconfig", 2, ADM, NOKEYS, NoLock, cl::saveconfig, "cluster", "3.0.0", "Forces a node to save the cluster configuration to disk."),
    c("set-config-epoch", 3, ADM, NOKEYS, NoLock, cl::set_config_epoch, "cluster", "3.0.0", "Sets the configuration epoch for a new node."),
    c("setslot", -4, ADM, NOKEYS, NoLock, cl::setslot, "cluster", "3.0.0", "Binds a hash slot to a node."),
    c("shards", 2, STALE, NOKEYS, NoLock, cl::shards, "cluster", "7.0.0", "Returns the mapping of cluster slots to shards."),
    c("slaves", 3, ADM, NOKEYS, NoLock, cl::replicas, "cluster", "3.0.0", "Lists the replica nodes of a master node."),
    c("slots", 2, STALE, NOKEYS, NoLock, cl::slots, "cluster", "3.0.0", "Returns the mapping of cluster slots to nodes."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, cl::help, "cluster", "5.0.0", "Returns helpful text about the different subcommands."),
];

const ADM: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

#[rustfmt::skip]
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    c("id", 2, CONN, NOKEYS, NoLock, conn::client_id, "connection", "5.0.0", "Returns the unique client ID of the connection."),
    c("setname", 3, CONN, NOKEYS, NoLock, conn::client_setname, "connection", "2.6.9", "Sets the connection name."),
    c("getname", 2, CONN, NOKEYS, NoLock, conn::client_getname, "connection", "2.6.9", "Returns the name of the connection."),
    c("list", -2, ADM, NOKEYS, NoLock, conn::client_list, "connection", "2.4.0", "Lists open connections."),
    c("info", 2, CONN, NOKEYS, NoLock, conn::client_info, "connection", "6.2.0", "Returns information about the connection."),
    c("kill", -3, ADM, NOKEYS, NoLock, conn::client_kill, "connection", "2.4.0", "Terminates open connections."),
    c("setinfo", 4, CONN, NOKEYS, NoLock, conn::client_setinfo, "connection", "7.2.0", "Sets information specific to the client or connection."),
    c("reply", 3, CONN, NOKEYS, NoLock, conn::client_reply, "connection", "3.2.0", "Instructs the server whether to reply to commands."),
    c("no-evict", 3, ADM, NOKEYS, NoLock, conn::client_flag_ok, "connection", "7.0.0", "Sets the client eviction mode of the connection."),
    c("no-touch", 3, CONN, NOKEYS, NoLock, conn::client_flag_ok, "connection", "7.2.0", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, conn::client_help, "connection", "5.0.0", "Returns helpful text about the different subcommands."),
    // Sent on connect by redis-py 8; accepted so the handshake succeeds.
    c("maint_notifications", -2, CONN, NOKEYS, NoLock, conn::client_flag_ok, "connection", "8.0.0", "Accepted for client compatibility."),
];

#[rustfmt::skip]
static ACL_SUBCOMMANDS: &[CommandSpec] = &[
    c("cat", -2, CONN, NOKEYS, NoLock, acl::cat, "server", "6.0.0", "Lists the ACL categories, or the commands inside a category."),
    c("deluser", -3, ADM, NOKEYS, NoLock, acl::deluser, "server", "6.0.0", "Deletes ACL users, and terminates their connections."),
    c("dryrun", -4, ADM, NOKEYS, NoLock, acl::dryrun, "server", "7.0.0", "Simulates the execution of a command by a user, without executing the command."),
    c("genpass", -2, CONN, NOKEYS, NoLock, acl::genpass, "server", "6.0.0", "Generates a pseudorandom, secure password that can be used to identify ACL users."),
    c("getuser", 3, ADM, NOKEYS, NoLock, acl::getuser, "server", "6.0.0", "Lists the ACL rules of a user."),
    c("list", 2, ADM, NOKEYS, NoLock, acl::list, "server", "6.0.0", "Dumps the effective rules in ACL file format."),
    c("load", 2, ADM, NOKEYS, NoLock, acl::load, "server", "6.0.0", "Reloads the rules from the configured ACL file."),
    c("log", -2, ADM, NOKEYS, NoLock, acl::log, "server", "6.0.0", "Lists recent security events generated due to commands rejected by ACL rules."),
    c("save", 2, ADM, NOKEYS, NoLock, acl::save, "server", "6.0.0", "Saves the effective ACL rules in the configured ACL file."),
    c("setuser", -3, ADM, NOKEYS, NoLock, acl::setuser, "server", "6.0.0", "Creates and modifies an ACL user and its rules."),
    c("users", 2, ADM, NOKEYS, NoLock, acl::users, "server", "6.0.0", "Lists all ACL users."),
    c("whoami", 2, CONN, NOKEYS, NoLock, acl::whoami, "server", "6.0.0", "Returns the authenticated username of the current connection."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, acl::help, "server", "6.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    c("get", -3, ADM, NOKEYS, NoLock, srv::config_get, "server", "2.0.0", "Returns the effective values of configuration parameters."),
    c("set", -4, ADM, NOKEYS, NoLock, srv::config_set, "server", "2.0.0", "Sets configuration parameters in-flight."),
    c("resetstat", 2, ADM, NOKEYS, All, srv::config_resetstat, "server", "2.0.0", "Resets the server's statistics."),
    c("rewrite", 2, ADM, NOKEYS, NoLock, srv::config_rewrite, "server", "2.8.0", "Persists the effective configuration to file."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, srv::config_help, "server", "5.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    c("count", 2, LOADING | STALE, NOKEYS, NoLock, srv::command_count, "server", "2.8.13", "Returns a count of commands."),
    c("info", -2, LOADING | STALE, NOKEYS, NoLock, srv::command_info, "server", "2.8.13", "Returns information about one, multiple or all commands."),
    c("docs", -2, LOADING | STALE, NOKEYS, NoLock, srv::command_docs, "server", "7.0.0", "Returns documentary information about one, multiple or all commands."),
    c("list", -2, LOADING | STALE, NOKEYS, NoLock, srv::command_list, "server", "7.0.0", "Returns a list of command names."),
    c("getkeys", -3, LOADING | STALE, NOKEYS, NoLock, srv::command_getkeys, "server", "2.8.13", "Extracts the key names from an arbitrary command."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, srv::command_help, "server", "5.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    c("encoding", 3, R, (2, 2, 1), Keys, srv::object_encoding, "generic", "2.2.3", "Returns the internal encoding of a Redis object."),
    c("idletime", 3, R, (2, 2, 1), Keys, srv::object_idletime, "generic", "2.2.3", "Returns the time since the last access to a Redis object."),
    c("freq", 3, R, (2, 2, 1), Keys, srv::object_freq, "generic", "4.0.0", "Returns the logarithmic access frequency counter of a Redis object."),
    c("refcount", 3, R, (2, 2, 1), Keys, srv::object_refcount, "generic", "2.2.3", "Returns the reference count of a value of a key."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, srv::object_help, "generic", "6.2.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    c("usage", -3, R, (2, 2, 1), Keys, srv::memory_usage, "server", "4.0.0", "Estimates the memory usage of a key."),
    c("stats", 2, LOADING | STALE, NOKEYS, All, srv::memory_stats, "server", "4.0.0", "Returns details about memory usage."),
    c("purge", 2, 0, NOKEYS, NoLock, srv::memory_purge, "server", "4.0.0", "Asks the allocator to release memory."),
    c("help", 2, LOADING | STALE, NOKEYS, NoLock, srv::memory_help, "server", "4.0.0", "Returns helpful text about the different subcommands."),
];

/// A resolved command: its spec, its id (index into stats arrays) and its
/// full name as Redis prints it (`get`, `config|get`).
pub struct Resolved {
    pub spec: &'static CommandSpec,
    pub id: usize,
    pub full_name: String,
    /// ACL categories (`acl::categories` bits).
    pub categories: u32,
}

/// Names are looked up as bytes with a fixed-seed fast hash: the lookup
/// runs for every command, and SipHash plus UTF-8 validation of the name
/// cost more than the rest of a GET's dispatch.
type NameHasher = foldhash::fast::FixedState;

pub struct Table {
    by_name: HashMap<&'static [u8], usize, NameHasher>,
    pub entries: Vec<Resolved>,
    /// For containers: subcommand name → entry index.
    subs: HashMap<(usize, &'static [u8]), usize, NameHasher>,
}

pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut t = Table {
        by_name: HashMap::default(),
        entries: Vec::new(),
        subs: HashMap::default(),
    };
    for spec in COMMANDS {
        let id = t.entries.len();
        t.entries.push(Resolved {
            spec,
            id,
            full_name: spec.name.to_string(),
            categories: categories_of(spec, spec.name),
        });
        t.by_name.insert(spec.name.as_bytes(), id);
        for sub in spec.subcommands {
            let sid = t.entries.len();
            let full_name = format!("{}|{}", spec.name, sub.name);
            t.entries.push(Resolved {
                spec: sub,
                id: sid,
                categories: categories_of(sub, &full_name),
                full_name,
            });
            t.subs.insert((id, sub.name.as_bytes()), sid);
        }
    }
    t
});

/// Outcome of resolving argv[0] (and argv[1] for containers).
pub enum Lookup {
    Found(&'static Resolved),
    Unknown,
    /// Container found, subcommand not.
    UnknownSub(&'static Resolved),
}

fn lower<'b>(name: &[u8], buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    if name.len() > buf.len() {
        return None;
    }
    let b = &mut buf[..name.len()];
    b.copy_from_slice(name);
    b.make_ascii_lowercase();
    Some(b)
}

/// Finds a command by name, case-insensitively, without allocating.
#[inline]
pub fn lookup_name(name: &[u8]) -> Option<&'static Resolved> {
    let mut buf = [0u8; 32];
    let n = lower(name, &mut buf)?;
    let id = *TABLE.by_name.get(n)?;
    Some(&TABLE.entries[id])
}

pub fn lookup(argv0: &[u8], argv1: Option<&[u8]>) -> Lookup {
    let Some(top) = lookup_name(argv0) else {
        return Lookup::Unknown;
    };
    if top.spec.subcommands.is_empty() {
        return Lookup::Found(top);
    }
    let Some(sub) = argv1 else {
        // A container alone is an arity error, reported for the container;
        // COMMAND alone is valid.
        return Lookup::Found(top);
    };
    let mut buf = [0u8; 32];
    match lower(sub, &mut buf).and_then(|s| TABLE.subs.get(&(top.id, s)).copied()) {
        Some(id) => Lookup::Found(&TABLE.entries[id]),
        None if top.spec.handler.is_some() => Lookup::Found(top),
        None => Lookup::UnknownSub(top),
    }
}

/// A command's ACL categories: Redis's own for its commands, otherwise
/// derived from the flags and group.
fn categories_of(spec: &CommandSpec, full_name: &str) -> u32 {
    use crate::acl::categories as cat;
    if let Some(bits) = cat::of_command(full_name) {
        return bits;
    }
    let mut bits = 0;
    if spec.flags & WRITE != 0 {
        bits |= cat::WRITE;
    }
    if spec.flags & READONLY != 0 {
        bits |= cat::READ;
    }
    if spec.flags & ADMIN != 0 {
        bits |= cat::ADMIN | cat::DANGEROUS;
    }
    bits |= match spec.group {
        "string" => cat::STRING,
        "generic" => cat::KEYSPACE,
        "connection" => cat::CONNECTION,
        "list" => cat::LIST,
        "transactions" => cat::TRANSACTION,
        "hash" => cat::HASH,
        "set" => cat::SET,
        "sorted-set" => cat::SORTEDSET,
        _ => 0,
    };
    bits | if spec.flags & FAST != 0 {
        cat::FAST
    } else {
        cat::SLOW
    }
}

/// ACL categories as COMMAND INFO reports them (`@read`...), in Redis's
/// order.
pub fn acl_categories(resolved: &Resolved) -> Vec<String> {
    crate::acl::categories::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| resolved.categories & (1 << i) != 0)
        .map(|(_, n)| format!("@{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for r in &TABLE.entries {
            assert!(
                seen.insert(r.full_name.clone()),
                "duplicate {}",
                r.full_name
            );
            assert_eq!(r.full_name, r.full_name.to_lowercase());
            assert!(r.spec.name.len() <= 32);
        }
    }

    #[test]
    fn keyed_commands_lock_keys() {
        for r in &TABLE.entries {
            let has_keys = r.spec.keys.0 > 0;
            assert_eq!(has_keys, r.spec.lock == LockSpec::Keys, "{}", r.full_name);
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert!(matches!(lookup(b"GeT", None), Lookup::Found(r) if r.full_name == "get"));
        assert!(
            matches!(lookup(b"CONFIG", Some(b"GET")), Lookup::Found(r) if r.full_name == "config|get")
        );
        assert!(matches!(
            lookup(b"config", Some(b"nope")),
            Lookup::UnknownSub(_)
        ));
        assert!(matches!(lookup(b"nope", None), Lookup::Unknown));
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let spec = |name: &str| match lookup(name.as_bytes(), None) {
            Lookup::Found(r) => r.spec,
            _ => panic!("{name}"),
        };
        let positions = |name: &str, argc| spec(name).key_positions(argc).collect::<Vec<_>>();
        assert_eq!(positions("get", 2), vec![1]);
        assert_eq!(positions("del", 4), vec![1, 2, 3]);
        assert_eq!(positions("mset", 5), vec![1, 3]);
        assert_eq!(positions("ping", 1), Vec::<usize>::new());
        // Fewer arguments than the spec names: only those there are.
        assert_eq!(positions("get", 1), Vec::<usize>::new());
        assert_eq!(positions("del", 1), Vec::<usize>::new());
    }
}

//! Server commands: INFO, CONFIG, COMMAND, TIME, DEBUG, OBJECT, MEMORY,
//! SHUTDOWN, LASTSAVE.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::connection::help_reply;
use super::table::{COMMANDS, CommandSpec, LockSpec, TABLE, acl_categories, flag};
use super::{Args, Ctx};
use crate::store::ValueRef;
use crate::util::{bytes_to_human, eq_ic, now_us, parse_i64};

pub fn time(ctx: &mut Ctx, _args: &Args) {
    let us = now_us();
    ctx.reply.array(2);
    ctx.reply.bulk_int((us / 1_000_000) as i64);
    ctx.reply.bulk_int((us % 1_000_000) as i64);
}

pub fn lastsave(ctx: &mut Ctx, _args: &Args) {
    ctx.reply
        .int(crate::persistence::last_save_secs(ctx.srv) as i64);
}

pub fn shutdown(ctx: &mut Ctx, args: &Args) {
    let (mut save, mut nosave) = (false, false);
    for a in args.iter().skip(1) {
        if eq_ic(a, "save") {
            save = true;
        } else if eq_ic(a, "nosave") {
            nosave = true;
        } else if eq_ic(a, "abort") {
            return ctx.error("ERR No shutdown in progress.");
        } else if !(eq_ic(a, "now") || eq_ic(a, "force")) {
            return ctx.syntax_error();
        }
    }
    if save && nosave {
        return ctx.syntax_error();
    }
    if save && let Err(e) = crate::persistence::save(ctx.srv) {
        tracing::warn!("Error trying to save the DB, can't exit: {e}");
        return ctx.error("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    // Nothing to save (a cache with `save ''`): exit gracefully. The
    // client sees the connection close, as with Redis.
    ctx.client.close_after_reply = true;
    ctx.srv.request_shutdown();
}

// ---------------------------------------------------------------- INFO

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_EXTRA: &[&str] = &["commandstats", "latencystats"];

pub fn info(ctx: &mut Ctx, args: &Args) {
    let mut sections: Vec<String> = Vec::new();
    if args.len() == 1 {
        sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    for a in args.iter().skip(1) {
        let a = String::from_utf8_lossy(a).to_ascii_lowercase();
        match a.as_str() {
            "default" => sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
            "all" | "everything" => {
                sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
                sections.extend(ALL_EXTRA.iter().map(|s| s.to_string()));
            }
            other => sections.push(other.to_string()),
        }
    }
    let mut seen = std::collections::HashSet::new();
    sections.retain(|s| seen.insert(s.clone()));
    let mut out = String::new();
    for s in &sections {
        let body = info_section(ctx, s);
        if let Some(body) = body {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            out.push_str(&body);
        }
    }
    ctx.reply.verbatim("txt", out.as_bytes());
}

fn info_section(ctx: &mut Ctx, name: &str) -> Option<String> {
    let srv = ctx.srv;
    let mut o = String::new();
    let uptime = srv.started.elapsed().as_secs();
    match name {
        "server" => {
            o.push_str("# Server\r\n");
            let _ = write!(
                o,
                "redis_version:{}\r\nferrocache_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nshards:{}\r\nthreads:{}\r\n",
                crate::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                std::process::id(),
                srv.run_id,
                srv.port,
                now_us(),
                uptime,
                uptime / 86400,
                srv.config.hz.load(Relaxed),
                srv.config.hz.load(Relaxed),
                (ctx.now / 1000) & 0xFF_FFFF,
                srv.executable,
                srv.config_file.as_deref().unwrap_or(""),
                srv.store.len(),
                srv.workers.len(),
            );
        }
        "clients" => {
            o.push_str("# Clients\r\n");
            let _ = write!(
                o,
                "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                srv.clients.len(),
                srv.config.maxclients.load(Relaxed),
            );
        }
        "memory" => {
            let m = memory_report(ctx);
            let maxmemory = srv.config.maxmemory.load(Relaxed);
            o.push_str("# Memory\r\n");
            let _ = write!(
                o,
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:0\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_allocator:jemalloc-{}\r\nlazyfree_pending_objects:0\r\n",
                bytes_to_human(m.used as u64),
                bytes_to_human(m.rss as u64),
                bytes_to_human(m.peak as u64),
                m.used as f64 * 100.0 / m.peak.max(1) as f64,
                m.dataset as f64 * 100.0 / m.used.max(1) as f64,
                m.alloc.allocated,
                m.alloc.active,
                m.alloc.resident,
                total_system_memory(),
                bytes_to_human(total_system_memory()),
                bytes_to_human(maxmemory),
                srv.config.get("maxmemory-policy").unwrap_or_default(),
                m.alloc.active as f64 / m.alloc.allocated.max(1) as f64,
                m.alloc.active.saturating_sub(m.alloc.allocated),
                m.rss as f64 / m.used.max(1) as f64,
                m.rss as i64 - m.used as i64,
                crate::memory::jemalloc_version(),
                used = m.used,
                rss = m.rss,
                peak = m.peak,
                overhead = m.used - m.dataset,
                dataset = m.dataset,
            );
        }
        "persistence" => {
            o.push_str("# Persistence\r\n");
            let _ = write!(
                o,
                "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:ok\r\n",
                crate::persistence::changes_since_save(srv),
                crate::persistence::bgsave_in_progress() as u8,
                crate::persistence::last_save_secs(srv),
                if crate::persistence::last_bgsave_ok() {
                    "ok"
                } else {
                    "err"
                },
            );
        }
        "stats" => {
            let (mut hits, mut misses, mut expired, mut evicted) = (0, 0, 0, 0);
            for shard in ctx.locked.shards_mut() {
                for db in &shard.dbs {
                    hits += db.stats.hits;
                    misses += db.stats.misses;
                    expired += db.stats.expired;
                    evicted += db.stats.evicted;
                }
            }
            let (ops, inp, outp) = {
                let r = srv.rates.lock().unwrap_or_else(|e| e.into_inner());
                (r.ops.rate(), r.input.rate(), r.output.rate())
            };
            o.push_str("# Stats\r\n");
            let _ = write!(
                o,
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:{}\r\ntotal_net_repl_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{expired}\r\nexpired_stale_perc:{:.2}\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:{}\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\npubsub_channels:0\r\npubsub_patterns:0\r\npubsubshard_channels:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:0\r\ntracking_total_items:0\r\ntracking_total_prefixes:0\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\n",
                srv.total_connections.load(Relaxed),
                srv.sum_workers(|w| w.commands.load(Relaxed)),
                srv.sum_workers(|w| w.net_input.load(Relaxed)),
                srv.sum_workers(|w| w.net_output.load(Relaxed)),
                crate::replication::NET_REPL_IN.load(Relaxed),
                crate::replication::NET_REPL_OUT.load(Relaxed),
                inp as f64 / 1024.0,
                outp as f64 / 1024.0,
                srv.rejected_connections.load(Relaxed),
                crate::replication::SYNC_FULL.load(Relaxed),
                crate::replication::SYNC_PARTIAL_OK.load(Relaxed),
                crate::replication::SYNC_PARTIAL_ERR.load(Relaxed),
                srv.expired_stale_perc.load(Relaxed) as f64,
                srv.expire_cycle_ms.load(Relaxed),
                evicted,
                srv.sum_workers(|w| w.error_replies.load(Relaxed)),
                srv.sum_workers(|w| w.reads.load(Relaxed)),
                srv.sum_workers(|w| w.writes.load(Relaxed)),
            );
        }
        "replication" => super::replication::info_section(&mut o),
        "cpu" => {
            let (user, sys) = cpu_times();
            o.push_str("# CPU\r\n");
            let _ = write!(
                o,
                "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
            );
        }
        "modules" => o.push_str("# Modules\r\n"),
        "errorstats" => {
            o.push_str("# Errorstats\r\n");
            let mut codes = std::collections::HashMap::new();
            for w in &srv.workers {
                w.error_codes.add_to(&mut codes);
            }
            // Redis lists them in its rax's (byte) order.
            let mut codes: Vec<_> = codes.into_iter().collect();
            codes.sort_unstable();
            for (code, n) in codes {
                let _ = write!(
                    o,
                    "errorstat_{}:count={n}\r\n",
                    String::from_utf8_lossy(&code)
                );
            }
        }
        "cluster" => o.push_str(if ctx.srv.cluster.is_some() {
            "# Cluster\r\ncluster_enabled:1\r\n"
        } else {
            "# Cluster\r\ncluster_enabled:0\r\n"
        }),
        "keyspace" => {
            o.push_str("# Keyspace\r\n");
            let ndb = srv.databases();
            let now = ctx.now;
            let mut keys = vec![0usize; ndb];
            let mut expires = vec![0usize; ndb];
            let mut ttl = vec![(0u128, 0usize); ndb];
            for shard in ctx.locked.shards_mut() {
                for (i, db) in shard.dbs.iter().enumerate() {
                    keys[i] += db.len();
                    expires[i] += db.expires_len();
                    let (s, n) = db.ttl_sum(now);
                    ttl[i].0 += s;
                    ttl[i].1 += n;
                }
            }
            for i in 0..ndb {
                if keys[i] > 0 {
                    let avg = if ttl[i].1 > 0 {
                        ttl[i].0 / ttl[i].1 as u128
                    } else {
                        0
                    };
                    let _ = write!(
                        o,
                        "db{i}:keys={},expires={},avg_ttl={avg}\r\n",
                        keys[i], expires[i]
                    );
                }
            }
        }
        "commandstats" => {
            o.push_str("# Commandstats\r\n");
            for r in &TABLE.entries {
                let calls = srv.sum_workers(|w| w.cmd[r.id].calls.load(Relaxed));
                let rejected = srv.sum_workers(|w| w.cmd[r.id].rejected.load(Relaxed));
                if calls == 0 && rejected == 0 {
                    continue;
                }
                let usec = srv.sum_workers(|w| w.cmd[r.id].usec.load(Relaxed));
                let failed = srv.sum_workers(|w| w.cmd[r.id].failed.load(Relaxed));
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    o,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                    r.full_name
                );
            }
        }
        "latencystats" => o.push_str("# Latencystats\r\n"),
        _ => return None,
    }
    Some(o)
}

struct MemoryReport {
    used: usize,
    dataset: usize,
    rss: usize,
    peak: usize,
    keys: usize,
    alloc: crate::memory::AllocatorStats,
}

/// Measures memory from the shards this command holds (all of them: INFO
/// and MEMORY STATS lock every shard) and the allocator.
fn memory_report(ctx: &mut Ctx) -> MemoryReport {
    let srv = ctx.srv;
    let mut keys = 0;
    for shard in ctx.locked.shards_mut() {
        shard.refresh_mem();
        keys += shard.dbs.iter().map(|d| d.len()).sum::<usize>();
    }
    // used_memory is the figure eviction works with: the exact dataset
    // plus the overhead the cron measured from the allocator (at most
    // 100 ms ago); allocator_allocated shows the allocator's own figure.
    let alloc = crate::memory::allocator_stats();
    let dataset = srv.dataset_memory();
    let used = srv.used_memory();
    let peak = srv.peak_memory.fetch_max(used, Relaxed).max(used);
    MemoryReport {
        used,
        dataset,
        rss: crate::memory::rss_bytes(),
        peak,
        keys,
        alloc,
    }
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

// -------------------------------------------------------------- CONFIG

pub fn config_get(ctx: &mut Ctx, args: &Args) {
    let patterns: Vec<&[u8]> = args.iter().skip(2).collect();
    let pairs = ctx.srv.config.matching(&patterns);
    ctx.reply.map(pairs.len());
    for (name, value) in pairs {
        ctx.reply.bulk_str(name);
        ctx.reply.bulk_str(&value);
    }
}

pub fn config_set(ctx: &mut Ctx, args: &Args) {
    if !args.len().is_multiple_of(2) {
        return ctx.syntax_error();
    }
    let pairs: Vec<(String, String)> = (2..args.len())
        .step_by(2)
        .map(|i| (args.str(i).into_owned(), args.str(i + 1).into_owned()))
        .collect();
    match ctx.srv.config.set_many(&pairs) {
        Ok(()) => {
            if pairs
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("maxmemory"))
            {
                // Shrinking maxmemory evicts at once (bounded), as Redis's
                // CONFIG SET does before replying.
                ctx.srv.measure_memory();
                crate::eviction::evict_until_within(ctx.srv, std::time::Duration::from_secs(5));
            }
            ctx.reply.ok()
        }
        Err(e) => ctx.error(&e),
    }
}

pub fn config_resetstat(ctx: &mut Ctx, _args: &Args) {
    for w in &ctx.srv.workers {
        w.reset();
    }
    for shard in ctx.locked.shards_mut() {
        for db in shard.dbs.iter_mut() {
            db.stats = Default::default();
        }
    }
    ctx.srv.total_connections.store(0, Relaxed);
    ctx.srv.rejected_connections.store(0, Relaxed);
    ctx.srv.expire_cycle_ms.store(0, Relaxed);
    ctx.reply.ok();
}

pub fn config_rewrite(ctx: &mut Ctx, _args: &Args) {
    let Some(path) = ctx.srv.config_file.clone() else {
        return ctx.error("ERR The server is running without a config file");
    };
    let mut text = String::from("# Rewritten by ferrocache CONFIG REWRITE\n");
    for (name, value) in ctx.srv.config.matching(&[b"*"]) {
        let quoted = if value.is_empty() || value.contains(' ') {
            format!("\"{value}\"")
        } else {
            value
        };
        let _ = writeln!(text, "{name} {quoted}");
    }
    match std::fs::write(&path, text) {
        Ok(()) => ctx.reply.ok(),
        Err(e) => ctx.error(&format!("ERR Rewriting config file: {e}")),
    }
}

pub fn config_help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
}

// ------------------------------------------------------------- COMMAND

/// Whether a command reads and whether it writes its keys, from its key
/// spec flags (RO: read; RW: both; OW, RM: write), as ACL key patterns
/// see it.
pub fn key_access(spec: &CommandSpec) -> (bool, bool) {
    match key_spec_flags(spec).first().copied() {
        Some("RO") => (true, false),
        Some("RW") => (true, true),
        _ => (false, true),
    }
}

fn key_spec_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.flags & flag::WRITE != 0 {
        if matches!(spec.name, "set" | "mset" | "msetnx" | "setex" | "psetex") {
            &["OW", "UPDATE"]
        } else if matches!(spec.name, "del" | "unlink" | "getdel") {
            &["RM", "DELETE"]
        } else {
            &["RW", "UPDATE"]
        }
    } else {
        &["RO", "ACCESS"]
    }
}

fn write_command_info(ctx: &mut Ctx, spec: &CommandSpec, full_name: &str) {
    let r = &mut *ctx.reply;
    r.array(10);
    r.bulk_str(full_name);
    r.int(spec.arity as i64);
    let flags: Vec<&str> = flag::NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    r.set(flags.len());
    for f in flags {
        r.simple(f);
    }
    let (first, last, step) = spec.keys;
    r.int(first as i64);
    r.int(last as i64);
    r.int(step as i64);
    let cats = TABLE
        .entries
        .iter()
        .find(|e| e.full_name == full_name)
        .map(acl_categories)
        .unwrap_or_default();
    r.set(cats.len());
    for c in cats {
        r.simple(&c);
    }
    r.set(0); // tips
    if spec.lock == LockSpec::Keys && first > 0 {
        // One key spec: begin at `first`, then a range.
        let lastkey = if last < 0 { last } else { last - first };
        r.array(1);
        r.map(3);
        r.bulk_str("flags");
        let kf = key_spec_flags(spec);
        r.set(kf.len());
        for f in kf {
            r.simple(f);
        }
        r.bulk_str("begin_search");
        r.map(2);
        r.bulk_str("type");
        r.bulk_str("index");
        r.bulk_str("spec");
        r.map(1);
        r.bulk_str("index");
        r.int(first as i64);
        r.bulk_str("find_keys");
        r.map(2);
        r.bulk_str("type");
        r.bulk_str("range");
        r.bulk_str("spec");
        r.map(3);
        r.bulk_str("lastkey");
        r.int(lastkey as i64);
        r.bulk_str("keystep");
        r.int(step as i64);
        r.bulk_str("limit");
        r.int(0);
    } else {
        r.array(0);
    }
    let subs = spec.subcommands;
    ctx.reply.array(subs.len());
    for sub in subs {
        let name = format!("{}|{}", spec.name, sub.name);
        write_command_info(ctx, sub, &name);
    }
}

pub fn command(ctx: &mut Ctx, args: &Args) {
    if args.len() > 1 {
        return ctx.error(&format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            args.str(1)
        ));
    }
    ctx.reply.array(COMMANDS.len());
    for spec in COMMANDS {
        write_command_info(ctx, spec, spec.name);
    }
}

pub fn command_count(ctx: &mut Ctx, _args: &Args) {
    ctx.reply.int(COMMANDS.len() as i64);
}

/// Finds a command by the name COMMAND INFO/DOCS accept (`get`,
/// `config|get`).
fn find_by_full_name(name: &[u8]) -> Option<(&'static CommandSpec, String)> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    TABLE
        .entries
        .iter()
        .find(|r| r.full_name == name)
        .map(|r| (r.spec, r.full_name.clone()))
}

pub fn command_info(ctx: &mut Ctx, args: &Args) {
    if args.len() == 2 {
        ctx.reply.array(COMMANDS.len());
        for spec in COMMANDS {
            write_command_info(ctx, spec, spec.name);
        }
        return;
    }
    ctx.reply.array(args.len() - 2);
    for name in args.iter().skip(2) {
        match find_by_full_name(name) {
            Some((spec, full)) => write_command_info(ctx, spec, &full),
            // Redis 7.0 answers a null bulk string for unknown names.
            None => ctx.reply.null(),
        }
    }
}

fn write_command_docs(ctx: &mut Ctx, spec: &CommandSpec) {
    let r = &mut *ctx.reply;
    let has_subs = !spec.subcommands.is_empty();
    r.map(if has_subs { 5 } else { 4 });
    r.bulk_str("summary");
    r.bulk_str(spec.summary);
    r.bulk_str("since");
    r.bulk_str(spec.since);
    r.bulk_str("group");
    r.bulk_str(spec.group);
    r.bulk_str("complexity");
    r.bulk_str(complexity(spec));
    if has_subs {
        r.bulk_str("subcommands");
        r.map(spec.subcommands.len());
        for sub in spec.subcommands {
            ctx.reply.bulk_str(&format!("{}|{}", spec.name, sub.name));
            write_command_docs(ctx, sub);
        }
    }
}

/// Time complexity as the docs state it, coarsely: keyed fast commands are
/// O(1); the rest touch N keys, elements or clients.
fn complexity(spec: &CommandSpec) -> &'static str {
    if spec.flags & flag::FAST != 0 || spec.keys == (0, 0, 0) && spec.lock == LockSpec::None {
        "O(1)"
    } else {
        "O(N)"
    }
}

pub fn command_docs(ctx: &mut Ctx, args: &Args) {
    let specs: Vec<(&CommandSpec, String)> = if args.len() == 2 {
        COMMANDS.iter().map(|s| (s, s.name.to_string())).collect()
    } else {
        args.iter().skip(2).filter_map(find_by_full_name).collect()
    };
    ctx.reply.map(specs.len());
    for (spec, name) in specs {
        ctx.reply.bulk_str(&name);
        write_command_docs(ctx, spec);
    }
}

pub fn command_list(ctx: &mut Ctx, args: &Args) {
    let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
    if args.len() > 2 {
        if args.len() != 5 || !eq_ic(args.get(2), "filterby") {
            return ctx.syntax_error();
        }
        let value = args.str(4).to_ascii_lowercase();
        if eq_ic(args.get(3), "pattern") {
            names.retain(|n| crate::util::glob_match(value.as_bytes(), n.as_bytes(), true));
        } else if eq_ic(args.get(3), "aclcat") {
            let cat = format!("@{value}");
            names.retain(|n| {
                TABLE
                    .entries
                    .iter()
                    .find(|e| e.full_name == *n)
                    .is_some_and(|e| acl_categories(e).contains(&cat))
            });
        } else if eq_ic(args.get(3), "module") {
            names.clear();
        } else {
            return ctx.syntax_error();
        }
    }
    ctx.reply.array(names.len());
    for n in names {
        ctx.reply.bulk_str(n);
    }
}

pub fn command_getkeys(ctx: &mut Ctx, args: &Args) {
    let sub = args.len() > 3;
    let spec = match super::table::lookup(args.get(2), if sub { Some(args.get(3)) } else { None }) {
        super::table::Lookup::Found(r) => r.spec,
        _ => return ctx.error("ERR Invalid command specified"),
    };
    let argc = (args.len() - 2) as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        return ctx.error("ERR Invalid number of arguments specified for command");
    }
    let (first, last, step) = spec.keys;
    if first == 0 {
        return ctx.error("ERR The command has no key arguments");
    }
    let last = if last < 0 { argc + last } else { last };
    let keys: Vec<usize> = (first..=last)
        .step_by(step.max(1) as usize)
        .map(|i| i as usize + 2)
        .collect();
    ctx.reply.array(keys.len());
    for i in keys {
        ctx.reply.bulk(args.get(i));
    }
}

pub fn command_help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
        ],
    );
}

// ------------------------------------------------- DEBUG, OBJECT, MEMORY

pub fn debug(ctx: &mut Ctx, args: &Args) {
    let sub = args.get(1);
    if eq_ic(sub, "sleep") && args.len() == 3 {
        let secs: f64 = args.str(2).parse().unwrap_or(0.0);
        // Blocks the whole keyspace, as DEBUG SLEEP blocks Redis: test
        // suites use it exactly for that.
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
        ctx.reply.ok();
    } else if eq_ic(sub, "set-active-expire") && args.len() == 3 {
        let on = parse_i64(args.get(2)).unwrap_or(0) != 0;
        ctx.srv.active_expire_enabled.store(on, Relaxed);
        ctx.reply.ok();
    } else if eq_ic(sub, "object") && args.len() == 3 {
        let key = args.get(2);
        let now = ctx.now;
        let line = match ctx.db(key).lookup_read(key, now, false) {
            None => return ctx.error("ERR no such key"),
            Some(e) => format!(
                "Value at:0x{:012x} refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
                e.addr(),
                e.encoding(),
                e.value.mem_size().max(1),
                (e.access / 1000) & 0xFF_FFFF,
                crate::store::idle_ms(e.access, now) / 1000
            ),
        };
        ctx.reply.simple(&line);
    } else if eq_ic(sub, "reload") {
        let now = ctx.now;
        match crate::persistence::reload(ctx.srv, &mut ctx.locked, now) {
            Ok(()) => ctx.reply.ok(),
            Err(e) => ctx.error(&format!("ERR Error trying to load the RDB dump: {e}")),
        }
    } else if eq_ic(sub, "jmap") || eq_ic(sub, "quicklist-packed-threshold") {
        ctx.reply.ok();
    } else if eq_ic(sub, "help") {
        help_reply(
            ctx,
            "DEBUG",
            &[
                "OBJECT <key>",
                "    Show low level info about `key` and associated value.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not accessed.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ],
        );
    } else {
        ctx.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            args.str(1)
        ));
    }
}

fn lfu_policy(ctx: &Ctx) -> bool {
    ctx.srv
        .config
        .get("maxmemory-policy")
        .is_some_and(|p| p.ends_with("lfu"))
}

pub fn object_encoding(ctx: &mut Ctx, args: &Args) {
    let key = args.get(2);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.lookup_read(key, now, false) {
        Some(e) => reply.bulk_str(e.encoding()),
        None => reply.null(),
    }
}

pub fn object_idletime(ctx: &mut Ctx, args: &Args) {
    let key = args.get(2);
    let now = ctx.now;
    if !ctx.db(key).contains(key, now) {
        return ctx.reply.null();
    }
    if lfu_policy(ctx) {
        return ctx.error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let (db, reply) = ctx.db_reply(key);
    if let Some(e) = db.lookup_read(key, now, false) {
        reply.int((crate::store::idle_ms(e.access, now) / 1000) as i64);
    }
}

pub fn object_freq(ctx: &mut Ctx, args: &Args) {
    let key = args.get(2);
    let now = ctx.now;
    if !ctx.db(key).contains(key, now) {
        return ctx.reply.null();
    }
    if !lfu_policy(ctx) {
        return ctx.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let (db, reply) = ctx.db_reply(key);
    if let Some(e) = db.lookup_read(key, now, false) {
        reply.int(crate::eviction::lfu_decayed(&e, now) as i64);
    }
}

pub fn object_refcount(ctx: &mut Ctx, args: &Args) {
    let key = args.get(2);
    let now = ctx.now;
    let shared_ints = ctx.srv.config.maxmemory.load(Relaxed) == 0;
    let (db, reply) = ctx.db_reply(key);
    match db.lookup_read(key, now, false) {
        // Redis shares the objects for integers 0..9999 (refcount INT_MAX)
        // unless maxmemory is set.
        Some(e) => {
            let shared = shared_ints
                && matches!(e.value, ValueRef::Str(s) if parse_i64(s).is_some_and(|n| (0..10000).contains(&n)));
            reply.int(if shared { i32::MAX as i64 } else { 1 });
        }
        None => reply.null(),
    }
}

pub fn object_help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>.",
            "REFCOUNT <key>",
            "    Return the reference count of the object stored at <key>.",
        ],
    );
}

pub fn memory_usage(ctx: &mut Ctx, args: &Args) {
    let mut j = 3;
    while j < args.len() {
        if eq_ic(args.get(j), "samples") && j + 1 < args.len() {
            if parse_i64(args.get(j + 1)).is_none_or(|n| n < 0) {
                return ctx.not_integer();
            }
            j += 2;
        } else {
            return ctx.syntax_error();
        }
    }
    let key = args.get(2);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    let live = db.get(key, now).is_some();
    match db.key_mem(key).filter(|_| live) {
        Some(bytes) => reply.int(bytes as i64),
        None => reply.null(),
    }
}

pub fn memory_stats(ctx: &mut Ctx, _args: &Args) {
    let m = memory_report(ctx);
    let fields: Vec<(&str, f64, bool)> = vec![
        ("peak.allocated", m.peak as f64, true),
        ("total.allocated", m.used as f64, true),
        ("startup.allocated", 0.0, true),
        ("replication.backlog", 0.0, true),
        ("clients.slaves", 0.0, true),
        ("clients.normal", 0.0, true),
        ("aof.buffer", 0.0, true),
        ("overhead.total", (m.used - m.dataset) as f64, true),
        ("keys.count", m.keys as f64, true),
        (
            "keys.bytes-per-key",
            (m.used.checked_div(m.keys).unwrap_or(0)) as f64,
            true,
        ),
        ("dataset.bytes", m.dataset as f64, true),
        (
            "dataset.percentage",
            m.dataset as f64 * 100.0 / m.used.max(1) as f64,
            false,
        ),
        (
            "peak.percentage",
            m.used as f64 * 100.0 / m.peak.max(1) as f64,
            false,
        ),
        ("allocator.allocated", m.alloc.allocated as f64, true),
        ("allocator.active", m.alloc.active as f64, true),
        ("allocator.resident", m.alloc.resident as f64, true),
        (
            "allocator-fragmentation.ratio",
            m.alloc.active as f64 / m.alloc.allocated.max(1) as f64,
            false,
        ),
        (
            "allocator-fragmentation.bytes",
            m.alloc.active.saturating_sub(m.alloc.allocated) as f64,
            true,
        ),
        (
            "rss-overhead.ratio",
            m.rss as f64 / m.alloc.resident.max(1) as f64,
            false,
        ),
        (
            "rss-overhead.bytes",
            m.rss as f64 - m.alloc.resident as f64,
            true,
        ),
        ("fragmentation", m.rss as f64 / m.used.max(1) as f64, false),
        ("fragmentation.bytes", m.rss as f64 - m.used as f64, true),
    ];
    ctx.reply.map(fields.len());
    for (name, v, integer) in fields {
        ctx.reply.bulk_str(name);
        if integer {
            ctx.reply.int(v as i64);
        } else {
            ctx.reply.double(v);
        }
    }
}

pub fn memory_help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "MEMORY",
        &[
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
        ],
    );
}

/// MEMORY PURGE: returns the allocator's unused dirty pages to the system
/// at once instead of after jemalloc's decay time (as Redis does).
pub fn memory_purge(ctx: &mut Ctx, _args: &Args) {
    crate::memory::purge();
    ctx.reply.ok();
}

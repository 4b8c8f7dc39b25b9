//! Configuration: one table of parameters, with Redis's names, feeds the
//! command line, the redis.conf-style file and CONFIG GET/SET.
//!
//! Values are kept as canonical strings (what CONFIG GET prints); the few
//! a hot path or the cron reads are mirrored into atomics on every change.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::util::{glob_match, parse_memory};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Memory,
    Bool,
    Enum(&'static [&'static str]),
    /// Redis's values (listed in the error) plus our own additions.
    EnumPlus(&'static [&'static str], &'static [&'static str]),
    Str,
    /// Accepted (and shown by CONFIG GET) for compatibility; only the
    /// listed values are allowed because we implement no other behaviour.
    Fixed(&'static [&'static str]),
    /// `client-output-buffer-limit`: a new value merges into the current
    /// one class by class (see `outbuf::canonicalize`).
    OutputLimits,
}

pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// Settable at runtime with CONFIG SET.
    pub mutable: bool,
}

const fn p(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Param {
    Param {
        name,
        kind,
        default,
        mutable,
    }
}

pub const MAXMEMORY_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const INT_MAX: i64 = i32::MAX as i64;

/// Every parameter we know, in Redis's spelling.
#[rustfmt::skip]
pub static PARAMS: &[Param] = &[
    p("port", Kind::Int { min: 0, max: 65535 }, "6379", false),
    p("bind", Kind::Str, "127.0.0.1 -::1", false),
    p("requirepass", Kind::Str, "", true),
    p("aclfile", Kind::Str, "", false),
    p("databases", Kind::Int { min: 1, max: INT_MAX }, "16", false),
    p("hz", Kind::Int { min: 0, max: INT_MAX }, "10", true),
    p("maxmemory", Kind::Memory, "0", true),
    p("maxmemory-policy", Kind::EnumPlus(MAXMEMORY_POLICIES, &["allkeys-s3fifo"]), "noeviction", true),
    p("maxmemory-samples", Kind::Int { min: 1, max: 64 }, "5", true),
    p("maxmemory-eviction-tenacity", Kind::Int { min: 0, max: 100 }, "10", true),
    p("loglevel", Kind::Enum(LOGLEVELS), "notice", true),
    p("logfile", Kind::Str, "", false),
    p("daemonize", Kind::Fixed(&["no"]), "no", false),
    p("save", Kind::Fixed(&[""]), "", true),
    p("appendonly", Kind::Fixed(&["no"]), "no", true),
    p("shards", Kind::Int { min: 1, max: 1024 }, "0", false),
    p("threads", Kind::Int { min: 1, max: 1024 }, "0", false),
    p("timeout", Kind::Int { min: 0, max: INT_MAX }, "0", true),
    p("tcp-keepalive", Kind::Int { min: 0, max: INT_MAX }, "300", true),
    p("tcp-backlog", Kind::Int { min: 0, max: INT_MAX }, "511", false),
    p("maxclients", Kind::Int { min: 1, max: INT_MAX }, "10000", true),
    p("proto-max-bulk-len", Kind::Memory, "536870912", true),
    p("client-query-buffer-limit", Kind::Memory, "1073741824", true),
    p("client-output-buffer-limit", Kind::OutputLimits, crate::outbuf::DEFAULT, true),
    p("protected-mode", Kind::Bool, "yes", true),
    p("enable-debug-command", Kind::Enum(&["no", "yes", "local"]), "no", false),
    p("lfu-log-factor", Kind::Int { min: 0, max: INT_MAX }, "10", true),
    p("lfu-decay-time", Kind::Int { min: 0, max: INT_MAX }, "1", true),
    p("active-expire-effort", Kind::Int { min: 1, max: 10 }, "1", true),
    p("dir", Kind::Str, ".", true),
    p("dbfilename", Kind::Str, "dump.rdb", true),
    p("appendfsync", Kind::Enum(&["always", "everysec", "no"]), "everysec", true),
    p("io-threads", Kind::Int { min: 1, max: 128 }, "1", false),
    p("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    p("cluster-enabled", Kind::Bool, "no", false),
    p("cluster-config-file", Kind::Str, "nodes.conf", false),
    p("cluster-node-timeout", Kind::Int { min: 0, max: i64::MAX }, "15000", true),
    p("cluster-port", Kind::Int { min: 0, max: 65535 }, "0", false),
    p("cluster-announce-ip", Kind::Str, "", true),
    p("cluster-announce-port", Kind::Int { min: 0, max: 65535 }, "0", true),
    p("cluster-announce-bus-port", Kind::Int { min: 0, max: 65535 }, "0", true),
    p("cluster-announce-tls-port", Kind::Int { min: 0, max: 65535 }, "0", true),
    p("cluster-require-full-coverage", Kind::Bool, "yes", true),
    p("cluster-allow-reads-when-down", Kind::Bool, "no", true),
    p("cluster-replica-no-failover", Kind::Bool, "no", true),
    p("cluster-replica-validity-factor", Kind::Int { min: 0, max: i32::MAX as i64 }, "10", true),
    // Ours: the shared secret that authenticates cluster bus peers
    // (falls back to masterauth).
    p("cluster-bus-secret", Kind::Str, "", false),
    p("repl-backlog-size", Kind::Memory, "1048576", true),
    p("masterauth", Kind::Str, "", true),
    p("masteruser", Kind::Str, "", true),
    p("replicaof", Kind::Str, "", false),
    p("replica-read-only", Kind::Fixed(&["yes"]), "yes", true),
    p("replica-serve-stale-data", Kind::Bool, "yes", true),
    p("repl-diskless-sync", Kind::Bool, "yes", true),
    p("repl-diskless-sync-delay", Kind::Int { min: 0, max: INT_MAX }, "5", true),
    p("repl-ping-replica-period", Kind::Int { min: 1, max: INT_MAX }, "10", true),
    p("repl-timeout", Kind::Int { min: 1, max: INT_MAX }, "60", true),
    p("tls-port", Kind::Int { min: 0, max: 65535 }, "0", false),
    p("tls-cert-file", Kind::Str, "", false),
    p("tls-key-file", Kind::Str, "", false),
    p("tls-ca-cert-file", Kind::Str, "", false),
    p("tls-client-cert-file", Kind::Str, "", false),
    p("tls-client-key-file", Kind::Str, "", false),
    p("tls-auth-clients", Kind::Enum(&["no", "yes", "optional"]), "yes", false),
    p("tls-replication", Kind::Bool, "no", false),
    p("tls-cluster", Kind::Bool, "no", false),
];

pub fn find_param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// One of Redis's `values` (or our `extra` ones), case-insensitively; the
/// error lists Redis's values only, as Redis's does.
fn pick(values: &[&str], extra: &[&str], value: &str) -> Result<String, String> {
    values
        .iter()
        .chain(extra.iter())
        .find(|v| v.eq_ignore_ascii_case(value))
        .map(|v| v.to_string())
        .ok_or_else(|| {
            format!(
                "argument(s) must be one of the following: {}",
                values.join(", ")
            )
        })
}

/// Checks `value` against the parameter's kind and returns the canonical
/// form CONFIG GET shows, or the reason Redis would give. `current` is the
/// value being replaced (some parameters merge into it).
pub fn canonicalize(param: &Param, value: &str, current: &str) -> Result<String, String> {
    match param.kind {
        Kind::OutputLimits => crate::outbuf::canonicalize(value, current),
        Kind::Int { min, max } => {
            let v: i64 = value
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if v < min || v > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            // Redis clamps hz into 1..=500 rather than refusing it.
            if param.name == "hz" {
                return Ok(v.clamp(1, 500).to_string());
            }
            Ok(v.to_string())
        }
        Kind::Memory => parse_memory(value)
            .map(|v| v.to_string())
            .ok_or_else(|| "argument must be a memory value".to_string()),
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(values) => pick(values, &[], value),
        Kind::EnumPlus(values, extra) => pick(values, extra, value),
        Kind::Fixed(values) => values
            .iter()
            .find(|v| v.eq_ignore_ascii_case(value))
            .map(|v| v.to_string())
            .ok_or_else(|| {
                format!(
                    "ferrocache only supports {} {}",
                    param.name,
                    values
                        .iter()
                        .map(|v| if v.is_empty() { "''" } else { v })
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            }),
        Kind::Str => Ok(value.to_string()),
    }
}

/// Live configuration shared by all threads.
pub struct Config {
    values: RwLock<BTreeMap<&'static str, String>>,
    pub hz: AtomicU32,
    pub maxmemory: AtomicU64,
    pub proto_max_bulk_len: AtomicUsize,
    pub query_buffer_limit: AtomicUsize,
    pub requirepass_set: AtomicBool,
    pub maxclients: AtomicUsize,
    pub timeout_secs: AtomicU64,
    pub maxmemory_samples: AtomicU32,
    pub tcp_keepalive: AtomicU32,
    pub protected_mode: AtomicBool,
    pub output_limits: crate::outbuf::OutputLimits,
}

impl Config {
    /// Starts from defaults and applies `(name, value)` overrides in order
    /// (config file first, then the command line).
    pub fn new(overrides: &[(String, String)]) -> Result<Config, String> {
        let mut values = BTreeMap::new();
        for p in PARAMS {
            values.insert(p.name, p.default.to_string());
        }
        for (name, value) in overrides {
            let param = find_param(name).ok_or_else(|| format!("unknown option '{name}'"))?;
            let current = values.get(param.name).map(String::as_str).unwrap_or("");
            let v = canonicalize(param, value, current)
                .map_err(|e| format!("invalid value for '{name}' ('{value}'): {e}"))?;
            values.insert(param.name, v);
        }
        let cfg = Config {
            values: RwLock::new(values),
            hz: AtomicU32::new(10),
            maxmemory: AtomicU64::new(0),
            proto_max_bulk_len: AtomicUsize::new(0),
            query_buffer_limit: AtomicUsize::new(0),
            requirepass_set: AtomicBool::new(false),
            maxclients: AtomicUsize::new(0),
            timeout_secs: AtomicU64::new(0),
            maxmemory_samples: AtomicU32::new(5),
            tcp_keepalive: AtomicU32::new(0),
            protected_mode: AtomicBool::new(true),
            output_limits: Default::default(),
        };
        for p in PARAMS {
            let v = cfg.get(p.name).unwrap_or_default();
            cfg.mirror(p.name, &v);
        }
        Ok(cfg)
    }

    /// Keeps the atomic copies in step with the string value.
    fn mirror(&self, name: &str, v: &str) {
        let int = || v.parse::<u64>().unwrap_or(0);
        match name {
            "hz" => self.hz.store(int().clamp(1, 500) as u32, Ordering::Relaxed),
            "maxmemory" => {
                self.maxmemory.store(int(), Ordering::Relaxed);
                crate::eviction::set_maxmemory(int() as usize);
            }
            "proto-max-bulk-len" => self
                .proto_max_bulk_len
                .store(int() as usize, Ordering::Relaxed),
            "client-query-buffer-limit" => self
                .query_buffer_limit
                .store(int() as usize, Ordering::Relaxed),
            "requirepass" => {
                self.requirepass_set.store(!v.is_empty(), Ordering::Relaxed);
                crate::acl::set_requirepass(v);
            }
            "maxclients" => self.maxclients.store(int() as usize, Ordering::Relaxed),
            "timeout" => self.timeout_secs.store(int(), Ordering::Relaxed),
            "tcp-keepalive" => self
                .tcp_keepalive
                .store(int().min(u32::MAX as u64) as u32, Ordering::Relaxed),
            "client-output-buffer-limit" => {
                self.output_limits.apply(v);
                crate::replication::set_obuf_limits(v);
            }
            "protected-mode" => self.protected_mode.store(v == "yes", Ordering::Relaxed),
            "maxmemory-samples" => self
                .maxmemory_samples
                .store(int() as u32, Ordering::Relaxed),
            "maxmemory-policy" => {
                if let Some(p) = crate::eviction::Policy::from_name(v) {
                    crate::eviction::set_policy(p);
                }
            }
            "lfu-log-factor" => crate::eviction::set_lfu_log_factor(int() as u32),
            "maxmemory-eviction-tenacity" => crate::eviction::set_tenacity(int() as u32),
            "lfu-decay-time" => crate::eviction::set_lfu_decay_time(int() as u32),
            "repl-backlog-size" => crate::replication::set_backlog_size(int()),
            "replica-serve-stale-data" => crate::replication::set_serve_stale_data(v == "yes"),
            _ => {}
        }
    }

    /// Changes to the configured `dir` and records it as an absolute path
    /// (what CONFIG GET dir shows in Redis).
    pub fn apply_dir(&self) -> Result<(), String> {
        let dir = self.get("dir").unwrap_or_else(|| ".".into());
        std::env::set_current_dir(&dir).map_err(|e| format!("Can't chdir to '{dir}': {e}"))?;
        let abs = std::env::current_dir().map_err(|e| e.to_string())?;
        self.values
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert("dir", abs.display().to_string());
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let param = find_param(name)?;
        self.values
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(param.name)
            .cloned()
    }

    pub fn get_int(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// All (name, value) pairs whose name matches one of the patterns.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values
            .iter()
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|pat| glob_match(pat, name.as_bytes(), true))
            })
            .map(|(n, v)| (*n, v.clone()))
            .collect()
    }

    /// Sets a value the server itself derived (already canonical).
    pub fn set_internal(&self, name: &'static str, value: &str) {
        self.mirror(name, value);
        self.values
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, value.to_string());
    }

    /// Applies several settings atomically: all are validated before any
    /// is applied, as Redis 7's multi-parameter CONFIG SET.
    pub fn set_many(&self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut checked = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let fail = |why: &str| {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
            };
            let param = find_param(name).ok_or_else(|| {
                format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
            })?;
            if checked
                .iter()
                .any(|(p, _): &(&Param, String)| p.name == param.name)
            {
                return Err(fail("duplicate parameter"));
            }
            if !param.mutable {
                return Err(fail("can't set immutable config"));
            }
            let current = self.get(param.name).unwrap_or_default();
            let v = canonicalize(param, value, &current).map_err(|e| fail(&e))?;
            if param.name == "maxclients" {
                check_maxclients(&v).map_err(|e| fail(&e))?;
            }
            checked.push((param, v));
        }
        // CONFIG SET dir changes the working directory, as in Redis.
        for (param, v) in checked.iter_mut() {
            if param.name == "dir" {
                std::env::set_current_dir(&*v).map_err(|e| {
                    format!("ERR CONFIG SET failed (possibly related to argument 'dir') - {e}")
                })?;
                if let Ok(abs) = std::env::current_dir() {
                    *v = abs.display().to_string();
                }
            }
        }
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        for (param, v) in checked {
            self.mirror(param.name, &v);
            values.insert(param.name, v);
        }
        Ok(())
    }
}

/// Redis refuses a maxclients the process's descriptor limit cannot
/// serve (after trying to raise the limit), naming what it could serve.
fn check_maxclients(value: &str) -> Result<(), String> {
    let wanted: usize = value.parse().unwrap_or(0);
    let possible = crate::limits::adjust_open_files_limit(wanted);
    if possible < wanted {
        return Err(format!(
            "The operating system is not able to handle the specified number of clients, try with {possible}"
        ));
    }
    Ok(())
}

/// Splits a redis.conf line into arguments (same quoting rules as inline
/// commands).
fn split_line(line: &str) -> Option<Vec<String>> {
    let mut scratch = Vec::new();
    let mut ranges = Vec::new();
    if !crate::protocol::decode::split_args(line.as_bytes(), &mut scratch, &mut ranges) {
        return None;
    }
    Some(
        ranges
            .into_iter()
            .map(|r| String::from_utf8_lossy(&scratch[r]).into_owned())
            .collect(),
    )
}

/// Parses redis.conf-style text into (name, value) pairs. Unknown
/// directives fail with Redis's message shape.
pub fn parse_config_text(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fatal = |why: &str| {
            format!(
                "\n*** FATAL CONFIG FILE ERROR (ferrocache {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
                env!("CARGO_PKG_VERSION"),
                i + 1,
                line,
                why
            )
        };
        let args =
            split_line(line).ok_or_else(|| fatal("Unbalanced quotes in configuration line"))?;
        let Some((name, rest)) = args.split_first() else {
            continue;
        };
        if find_param(name).is_none() {
            return Err(fatal("Bad directive or wrong number of arguments"));
        }
        out.push((name.to_ascii_lowercase(), rest.join(" ")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::new(&[("maxmemory".into(), "100mb".into())]).unwrap();
        assert_eq!(c.get("maxmemory").unwrap(), "104857600");
        assert_eq!(c.maxmemory.load(Ordering::Relaxed), 104857600);
        assert_eq!(c.get("port").unwrap(), "6379");
        assert!(Config::new(&[("nope".into(), "1".into())]).is_err());
    }

    #[test]
    fn set_many_is_all_or_nothing() {
        let c = Config::new(&[]).unwrap();
        let err = c
            .set_many(&[("hz".into(), "20".into()), ("maxmemory".into(), "x".into())])
            .unwrap_err();
        assert!(err.contains("argument must be a memory value"), "{err}");
        assert_eq!(c.get("hz").unwrap(), "10");
        c.set_many(&[("hz".into(), "20".into())]).unwrap();
        assert_eq!(c.hz.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn config_file_text() {
        let pairs =
            parse_config_text("# comment\nport 7000\nsave \"\"\nbind 127.0.0.1 ::1\n").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("port".to_string(), "7000".to_string()),
                ("save".to_string(), "".to_string()),
                ("bind".to_string(), "127.0.0.1 ::1".to_string())
            ]
        );
        let err = parse_config_text("bogus 1\n").unwrap_err();
        assert!(err.contains("Bad directive"), "{err}");
    }
}

//! `ferrocache [config-file] [--option value ...]`, like redis-server.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command};
use ferrocache::config::{Config, PARAMS, parse_config_text};
use ferrocache::server::{Server, run};

// jemalloc, as Redis uses: its size classes make exact per-entry memory
// accounting possible (see src/memory.rs) and it handles many small
// allocations from many threads well.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (`malloc_conf`; `_RJEM_MALLOC_CONF` in the
/// environment still overrides them).
///
/// `thp:always`: the heap is backed by transparent huge pages where the
/// kernel allows them (`madvise` or `always` in
/// /sys/kernel/mm/transparent_hugepage/enabled). A keyspace is read at
/// random addresses, and with 4 KiB pages nearly every entry touched also
/// misses the TLB. Measured with 1M keys of 100 bytes on the 2-core
/// development machine: redis-benchmark GET at P=16 +20-24%, a full
/// resync's walk of the keyspace 2x faster; RSS +3.5 MB when empty, +2.4%
/// loaded (used_memory is unchanged: it counts allocations). Redis turns
/// huge pages off because a forked child's copy-on-write would copy 2 MB
/// per touched page; nothing here forks.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(c"thp:always".as_ptr());

/// A C string pointer for jemalloc to read before `main`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points to a 'static immutable C string.
unsafe impl Sync for MallocConf {}

fn cli() -> Command {
    let mut cmd = Command::new("ferrocache")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A Redis-protocol-compatible cache server")
        .arg(
            Arg::new("config-file")
                .help("redis.conf-style configuration file")
                .index(1),
        );
    for p in PARAMS {
        cmd = cmd.arg(
            Arg::new(p.name)
                .long(p.name)
                .num_args(1)
                .value_name("VALUE")
                .action(ArgAction::Append)
                .help(format!(
                    "default: {}",
                    if p.default.is_empty() {
                        "''"
                    } else {
                        p.default
                    }
                )),
        );
    }
    cmd
}

/// Rewrites argv the way redis-server reads it: an option takes every
/// following word up to the next `--option` (`--bind 127.0.0.1 -::1`,
/// `--save ''`), handed to clap as one `--option=words joined by spaces`
/// token so values may start with `-`.
fn join_option_values(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let flush = |cur: &mut Option<(String, Vec<String>)>, out: &mut Vec<String>| {
        if let Some((name, words)) = cur.take() {
            if words.is_empty() {
                out.push(name);
            } else {
                out.push(format!("{name}={}", words.join(" ")));
            }
        }
    };
    for arg in args {
        let is_option = arg.starts_with("--") && arg.len() > 2;
        if is_option && !arg.contains('=') && !matches!(arg.as_str(), "--help" | "--version") {
            flush(&mut current, &mut out);
            current = Some((arg, Vec::new()));
        } else if is_option {
            flush(&mut current, &mut out);
            out.push(arg);
        } else if let Some((_, words)) = current.as_mut() {
            words.push(arg);
        } else {
            out.push(arg);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Log output that never fails: like Redis, a closed or full stderr must
/// not take the server down (tracing would otherwise panic reporting the
/// write error).
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn init_logging(config: &Config) -> Result<(), String> {
    let level = match config.get("loglevel").as_deref() {
        Some("debug") => "debug",
        Some("verbose") => "info",
        Some("warning") => "warn",
        Some("nothing") => "off",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match config.get("logfile").filter(|f| !f.is_empty()) {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("Can't open the log file: {path}: {e}"))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(|| QuietStderr).init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let matches = cli().get_matches_from(join_option_values(std::env::args()));
    let mut overrides: Vec<(String, String)> = Vec::new();
    let config_file = matches.get_one::<String>("config-file").cloned();
    if let Some(path) = &config_file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Fatal error, can't open config file '{path}': {e}");
                return ExitCode::FAILURE;
            }
        };
        match parse_config_text(&text) {
            Ok(pairs) => overrides.extend(pairs),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Command-line options override the file, in the order given.
    let mut cli_opts: Vec<(usize, String, String)> = Vec::new();
    for p in PARAMS {
        if let (Some(indices), Some(values)) = (
            matches.indices_of(p.name),
            matches.get_many::<String>(p.name),
        ) {
            for (idx, value) in indices.zip(values) {
                cli_opts.push((idx, p.name.to_string(), value.clone()));
            }
        }
    }
    cli_opts.sort_by_key(|(i, _, _)| *i);
    overrides.extend(cli_opts.into_iter().map(|(_, n, v)| (n, v)));

    let config = match Config::new(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Fatal config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Like Redis, `dir` is the working directory: change to it, and
    // report it as an absolute path.
    if let Err(e) = config.apply_dir() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = init_logging(&config) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let maxclients = config.get_int("maxclients").max(1) as usize;
    let possible = ferrocache::limits::adjust_open_files_limit(maxclients);
    if possible < maxclients {
        tracing::warn!(
            "You requested maxclients of {maxclients} requiring at least {} max file descriptors. maxclients has been reduced to {possible} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
            maxclients + ferrocache::limits::RESERVED_FDS
        );
        config.set_internal("maxclients", &possible.to_string());
    }
    if let Some(path) = config.get("aclfile").filter(|p| !p.is_empty())
        && let Err(e) = ferrocache::acl::load_file(&path)
    {
        tracing::error!("{e}");
        eprintln!("Aborting Redis startup because of ACL errors: {e}");
        return ExitCode::FAILURE;
    }
    let tls = match ferrocache::tls::setup(&config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferrocache: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = if config.get("cluster-enabled").as_deref() == Some("yes") {
        match ferrocache::cluster::Cluster::open(&config) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut srv = Server::new(config, config_file);
    srv.cluster = cluster;
    srv.tls = tls;
    let srv = Arc::new(srv);
    match run(srv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferrocache: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::join_option_values;

    #[test]
    fn jemalloc_reads_the_built_in_options() {
        // SAFETY: `opt.thp` is a C string option of jemalloc.
        let thp = unsafe { tikv_jemalloc_ctl::raw::read_str(b"opt.thp\0") }.unwrap();
        assert_eq!(thp.strip_suffix(b"\0").unwrap_or(thp), b"always");
    }

    fn j(args: &[&str]) -> Vec<String> {
        join_option_values(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_take_words_up_to_the_next_option() {
        assert_eq!(
            j(&[
                "fc",
                "a.conf",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--save",
                "",
                "--port",
                "7"
            ]),
            [
                "fc",
                "a.conf",
                "--bind=127.0.0.1 -::1",
                "--save=",
                "--port=7"
            ]
        );
        assert_eq!(j(&["fc", "--version"]), ["fc", "--version"]);
        assert_eq!(j(&["fc", "--port=7"]), ["fc", "--port=7"]);
    }
}

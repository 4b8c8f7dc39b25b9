//! `ferrocache [config-file] [--option value ...]`, like redis-server.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command};
use ferrocache::config::{Config, PARAMS, parse_config_text};
use ferrocache::server::{Server, run};

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
        // Every option takes one or more words, joined with spaces like
        // redis-server does (`--bind 127.0.0.1 ::1`, `--save ''`).
        cmd = cmd.arg(
            Arg::new(p.name)
                .long(p.name)
                .num_args(1..)
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
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
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
        if let (Some(indices), Some(groups)) = (
            matches.indices_of(p.name),
            matches.get_occurrences::<String>(p.name),
        ) {
            let indices: Vec<usize> = indices.collect();
            let mut k = 0;
            for group in groups {
                let words: Vec<&String> = group.collect();
                let idx = indices.get(k).copied().unwrap_or(0);
                k += words.len();
                let value = words
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                cli_opts.push((idx, p.name.to_string(), value));
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
    if let Err(e) = init_logging(&config) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let srv = Arc::new(Server::new(config, config_file));
    match run(srv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferrocache: {e}");
            ExitCode::FAILURE
        }
    }
}

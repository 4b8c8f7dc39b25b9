//! Access control as Redis 7's ACL: users, their passwords, the commands
//! and keys they may use, the security log, and the ACL file.
//!
//! Users are immutable snapshots (`Arc<User>`) in one registry; a change
//! replaces the snapshot and bumps a global epoch. A connection keeps its
//! user's snapshot and the epoch at which it found that user
//! unrestricted, so the dispatcher's whole check for the default user is
//! one atomic load and one comparison (`ClientState::acl_fast`); only a
//! restricted user, or any ACL change, takes the slow path.

pub mod categories;
mod rules;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

pub use rules::{KeyPattern, User};

use crate::cmd::Args;
use crate::cmd::table::{Resolved, flag};

/// Bumped on every change to any user: connections re-read their user.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// The current ACL epoch (never `u64::MAX`, the "check every time" mark).
#[inline]
pub fn epoch() -> u64 {
    EPOCH.load(Relaxed)
}

/// How many entries ACL LOG keeps (Redis's acllog-max-len default).
const LOG_MAX_LEN: usize = 128;

struct Registry {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    log: Mutex<VecDeque<LogEntry>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut users = BTreeMap::new();
    users.insert("default".to_string(), Arc::new(User::new_default()));
    Registry {
        users: RwLock::new(users),
        log: Mutex::new(VecDeque::new()),
    }
});

fn users_read() -> std::sync::RwLockReadGuard<'static, BTreeMap<String, Arc<User>>> {
    REGISTRY.users.read().unwrap_or_else(|e| e.into_inner())
}

fn users_write() -> std::sync::RwLockWriteGuard<'static, BTreeMap<String, Arc<User>>> {
    REGISTRY.users.write().unwrap_or_else(|e| e.into_inner())
}

pub fn get_user(name: &str) -> Option<Arc<User>> {
    users_read().get(name).cloned()
}

pub fn default_user() -> Arc<User> {
    get_user("default").unwrap_or_else(|| Arc::new(User::new_default()))
}

/// Every user, sorted by name (ACL LIST, ACL USERS, ACL SAVE).
pub fn all_users() -> Vec<Arc<User>> {
    users_read().values().cloned().collect()
}

/// ACL SETUSER: applies `rules` to the named user (created if absent),
/// all or nothing. Returns Redis's error text.
pub fn set_user(name: &str, rules: &[&[u8]]) -> Result<(), String> {
    if name.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
        return Err("ERR Usernames can't contain spaces or null characters".into());
    }
    let mut users = users_write();
    let mut user = match users.get(name) {
        Some(u) => (**u).clone(),
        None => User::new(name),
    };
    for rule in rules {
        user.apply(rule).map_err(|why| {
            format!(
                "ERR Error in ACL SETUSER modifier '{}': {why}",
                String::from_utf8_lossy(rule)
            )
        })?;
    }
    users.insert(name.to_string(), Arc::new(user));
    EPOCH.fetch_add(1, Relaxed);
    Ok(())
}

/// ACL DELUSER: removes users; returns how many existed.
pub fn del_users(names: &[String]) -> Result<usize, String> {
    if names.iter().any(|n| n == "default") {
        return Err("ERR The 'default' user cannot be removed".into());
    }
    let mut users = users_write();
    let removed = names.iter().filter(|n| users.remove(*n).is_some()).count();
    EPOCH.fetch_add(1, Relaxed);
    Ok(removed)
}

/// `requirepass` is the default user's password (Redis's
/// ACLUpdateDefaultUserPassword): empty means nopass.
pub fn set_requirepass(pass: &str) {
    let rule = format!(">{pass}");
    let rules: Vec<&[u8]> = if pass.is_empty() {
        vec![b"resetpass", b"nopass"]
    } else {
        vec![b"resetpass", rule.as_bytes()]
    };
    let _ = set_user("default", &rules);
}

/// Whether a new connection starts authenticated: the default user is on
/// and needs no password.
pub fn default_is_open() -> bool {
    let u = default_user();
    u.enabled && u.nopass
}

/// AUTH / HELLO AUTH: the user, if it exists, is on and the password is
/// one of its own (compared as SHA-256 digests, in constant time).
pub fn authenticate(name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
    let name = std::str::from_utf8(name).ok()?;
    let user = get_user(name)?;
    (user.enabled && (user.nopass || user.password_matches(pass))).then_some(user)
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    /// The argument index of the first key refused.
    Key(usize),
}

/// Redis's ACLCheckAllUserCommandPerm for one command.
pub fn check(user: &User, resolved: &Resolved, args: &Args) -> Result<(), Denied> {
    let spec = resolved.spec;
    if spec.flags & flag::NO_AUTH != 0 {
        return Ok(());
    }
    if !user.command_allowed(resolved, args) {
        return Err(Denied::Command);
    }
    if user.allkeys {
        return Ok(());
    }
    let (first, last, step) = spec.keys;
    if first == 0 {
        return Ok(());
    }
    let argc = args.len() as i32;
    let last = if last < 0 {
        argc + last
    } else {
        last.min(argc - 1)
    };
    let (read, write) = crate::cmd::server::key_access(spec);
    let mut i = first;
    while i <= last {
        if !user.key_allowed(args.get(i as usize), read, write) {
            return Err(Denied::Key(i as usize));
        }
        i += step.max(1);
    }
    Ok(())
}

/// The error reply for a refusal (Redis 7.0's texts).
pub fn denied_message(denied: Denied, resolved: &Resolved) -> String {
    match denied {
        Denied::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            resolved.full_name
        ),
        Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
    }
}

// ------------------------------------------------------------- ACL LOG

pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub created_ms: u64,
    pub client_info: String,
}

/// Adds a security event; an event like a recent one (same reason,
/// context, object and user, within 60 s) only bumps its count, as in
/// Redis.
pub fn log_event(
    reason: &'static str,
    context: &'static str,
    object: String,
    username: String,
    client_info: String,
) {
    let now = crate::util::now_ms();
    let mut log = REGISTRY.log.lock().unwrap_or_else(|e| e.into_inner());
    let similar = log.iter().position(|e| {
        e.reason == reason
            && e.context == context
            && e.object == object
            && e.username == username
            && now.saturating_sub(e.created_ms) < 60_000
    });
    if let Some(pos) = similar {
        if let Some(mut e) = log.remove(pos) {
            e.count += 1;
            e.created_ms = now;
            e.client_info = client_info;
            log.push_front(e);
        }
        return;
    }
    log.push_front(LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        created_ms: now,
        client_info,
    });
    log.truncate(LOG_MAX_LEN);
}

/// The newest `count` entries, newest first, through `f`.
pub fn with_log<R>(f: impl FnOnce(&VecDeque<LogEntry>) -> R) -> R {
    f(&REGISTRY.log.lock().unwrap_or_else(|e| e.into_inner()))
}

pub fn reset_log() {
    REGISTRY
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

// ------------------------------------------------------------ ACL file

/// Parses ACL file text into users; nothing changes on error. Redis's
/// format: one `user <name> <rules...>` per line.
fn parse_acl_file(path: &str, text: &str) -> Result<BTreeMap<String, Arc<User>>, String> {
    let mut users = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut scratch = Vec::new();
        let mut ranges = Vec::new();
        if !crate::protocol::decode::split_args(line.as_bytes(), &mut scratch, &mut ranges) {
            errors.push(format!("{path}:{}: unbalanced quotes in acl line. ", i + 1));
            continue;
        }
        let words: Vec<&[u8]> = ranges.iter().map(|r| &scratch[r.clone()]).collect();
        if words.first().copied() != Some(&b"user"[..]) {
            errors.push(format!(
                "{path}:{}: line should start with user keyword. ",
                i + 1
            ));
            continue;
        }
        let Some(name) = words.get(1).and_then(|n| std::str::from_utf8(n).ok()) else {
            errors.push(format!("{path}:{}: user name missing. ", i + 1));
            continue;
        };
        if users.contains_key(name) {
            errors.push(format!("{path}:{}: Duplicate user '{name}' found. ", i + 1));
            continue;
        }
        let mut user = User::new(name);
        for rule in &words[2..] {
            if let Err(why) = user.apply(rule) {
                errors.push(format!(
                    "{path}:{}: Error in applying operation '{}': {why}. ",
                    i + 1,
                    String::from_utf8_lossy(rule)
                ));
            }
        }
        users.insert(name.to_string(), Arc::new(user));
    }
    if !errors.is_empty() {
        return Err(errors.concat());
    }
    // Without a default user in the file, it starts from its defaults.
    users
        .entry("default".to_string())
        .or_insert_with(|| Arc::new(User::new_default()));
    Ok(users)
}

/// Loads the ACL file, replacing every user (Redis's ACLLoadFromFile).
/// Returns the names of the users that existed before, other than
/// default, whose connections must be closed.
pub fn load_file(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error loading ACLs, opening file '{path}': {e}"))?;
    let new_users = parse_acl_file(path, &text)?;
    let mut users = users_write();
    let old: Vec<String> = users.keys().filter(|n| *n != "default").cloned().collect();
    *users = new_users;
    EPOCH.fetch_add(1, Relaxed);
    Ok(old)
}

/// Writes every user to the ACL file, atomically (temp file + rename).
pub fn save_file(path: &str) -> std::io::Result<()> {
    let mut text = String::new();
    for u in all_users() {
        text.push_str(&format!("user {} {}\n", u.name, u.describe()));
    }
    let tmp = format!("{path}.tmp-{}", std::process::id());
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// ACL GENPASS: `bits` random bits as lowercase hex, from the kernel's
/// CSPRNG.
pub fn genpass(bits: usize) -> std::io::Result<String> {
    use std::io::Read;
    let chars = bits.div_ceil(4);
    let mut raw = vec![0u8; chars.div_ceil(2)];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_file_parses_and_reports_errors() {
        let users = parse_acl_file("f", "user alice on >p ~* +@all\n\nuser bob off\n").unwrap();
        assert_eq!(
            users.keys().collect::<Vec<_>>(),
            ["alice", "bob", "default"]
        );
        let err = parse_acl_file("f", "usr x\nuser y bogus\n").unwrap_err();
        assert!(
            err.contains("f:1: line should start with user keyword"),
            "{err}"
        );
        assert!(
            err.contains("f:2: Error in applying operation 'bogus': Syntax error"),
            "{err}"
        );
    }

    #[test]
    fn genpass_lengths() {
        assert_eq!(genpass(256).unwrap().len(), 64);
        assert_eq!(genpass(1).unwrap().len(), 1);
        assert_eq!(genpass(5).unwrap().len(), 2);
    }
}

//! One ACL user and Redis's SETUSER rules applied to it.
//!
//! Command rules are kept twice: as a bitmap over the command table (what
//! the check reads) and as the ordered list of rules that produced it
//! (what ACL LIST and GETUSER print, like Redis 7.2's command_rules; a
//! new rule for a command or category replaces an older one for it).

use sha2::{Digest, Sha256};

use super::categories;
use crate::cmd::Args;
use crate::cmd::table::{Resolved, TABLE};
use crate::util::glob_match;

const ERR_SYNTAX: &str = "Syntax error";
const ERR_UNKNOWN: &str = "Unknown command or category name in ACL";
const ERR_NO_PASSWORD: &str = "The password you are trying to remove from the user does not exist";
const ERR_BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
const ERR_AFTER_ALLKEYS: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
const ERR_AFTER_ALLCHANNELS: &str = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels";
const ERR_SUB_FIRSTARG: &str = "Allowing first-arg of a subcommand is not supported";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub read: bool,
    pub write: bool,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` / `skip-sanitize-payload` (shown, no effect:
    /// we have no RESTORE).
    sanitize: Option<&'static str>,
    /// SHA-256 digests, in the order added.
    passwords: Vec<[u8; 32]>,
    /// Bit per command table entry.
    allowed: Vec<u64>,
    /// Every command, present and future (+@all / allcommands with
    /// nothing removed since): the check skips the bitmap.
    pub allcommands: bool,
    /// Started from +@all rather than -@all (what describe prints first).
    from_all: bool,
    rules: Vec<String>,
    /// Allowed first arguments of commands otherwise denied (`+select|0`),
    /// by command id.
    firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    pub allkeys: bool,
    keys: Vec<KeyPattern>,
    allchannels: bool,
    channels: Vec<Vec<u8>>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no passwords, no
    /// commands, no keys, no channels.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            allowed: vec![0; TABLE.entries.len().div_ceil(64)],
            allcommands: false,
            from_all: false,
            rules: Vec::new(),
            firstargs: Vec::new(),
            allkeys: false,
            keys: Vec::new(),
            allchannels: false,
            channels: Vec::new(),
        }
    }

    /// The default user at startup: `on nopass ~* &* +@all`.
    pub fn new_default() -> User {
        let mut u = User::new("default");
        for rule in ["on", "nopass", "~*", "&*", "+@all"] {
            let _ = u.apply(rule.as_bytes());
        }
        u
    }

    /// May run every command on every key: the dispatcher's fast path.
    #[inline]
    pub fn unrestricted(&self) -> bool {
        self.allcommands && self.allkeys
    }

    pub fn password_matches(&self, pass: &[u8]) -> bool {
        let digest = sha256(pass);
        // Compare every stored digest fully, so timing says nothing about
        // which bytes matched.
        let mut found = false;
        for p in &self.passwords {
            let diff = p.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= diff == 0;
        }
        found
    }

    pub fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(hex).collect()
    }

    fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
                self.allcommands = false;
            }
        }
    }

    /// Allows or denies a command, and with a container all of its
    /// subcommands (Redis's ACLChangeSelectorPerm).
    fn set_command(&mut self, resolved: &Resolved, on: bool) {
        self.set_bit(resolved.id, on);
        self.firstargs.retain(|(id, _)| *id != resolved.id);
        if !resolved.spec.subcommands.is_empty() {
            let prefix = format!("{}|", resolved.full_name);
            let subs: Vec<usize> = TABLE
                .entries
                .iter()
                .filter(|e| e.full_name.starts_with(&prefix))
                .map(|e| e.id)
                .collect();
            for id in subs {
                self.set_bit(id, on);
            }
        }
    }

    /// Records a command rule, dropping earlier rules for the same
    /// command (or its subcommands) or category.
    fn record_rule(&mut self, allow: bool, name: &str) {
        let name = name.to_ascii_lowercase();
        let sub_prefix = format!("{name}|");
        self.rules
            .retain(|r| r[1..] != name && !r[1..].starts_with(&sub_prefix));
        self.rules
            .push(format!("{}{name}", if allow { '+' } else { '-' }));
    }

    pub fn command_allowed(&self, resolved: &Resolved, args: &Args) -> bool {
        if self.allcommands || self.bit(resolved.id) {
            return true;
        }
        // `+cmd|arg`: a denied command allowed with that first argument.
        let arg_index = if resolved.full_name.contains('|') {
            2
        } else {
            1
        };
        args.len() > arg_index
            && self.firstargs.iter().any(|(id, allowed)| {
                *id == resolved.id
                    && allowed
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(args.get(arg_index)))
            })
    }

    pub fn key_allowed(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.allkeys
            || self.keys.iter().any(|p| {
                (p.read || !read) && (p.write || !write) && glob_match(&p.pattern, key, false)
            })
    }

    /// Applies one SETUSER rule; the error is Redis's reason text.
    pub fn apply(&mut self, rule: &[u8]) -> Result<(), &'static str> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" => self.set_allkeys(),
            b"resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
            }
            b"allchannels" => {
                self.allchannels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => {
                self.allowed.iter_mut().for_each(|w| *w = u64::MAX);
                self.allcommands = true;
                self.from_all = true;
                self.rules.clear();
                self.firstargs.clear();
            }
            b"nocommands" | b"-@all" => {
                self.allowed.iter_mut().for_each(|w| *w = 0);
                self.allcommands = false;
                self.from_all = false;
                self.rules.clear();
                self.firstargs.clear();
            }
            b"sanitize-payload" => self.sanitize = Some("sanitize-payload"),
            b"skip-sanitize-payload" => self.sanitize = Some("skip-sanitize-payload"),
            b"reset" => {
                for r in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "sanitize-payload",
                    "-@all",
                ] {
                    self.apply(r.as_bytes())?;
                }
            }
            _ => return self.apply_with_argument(rule),
        }
        Ok(())
    }

    fn set_allkeys(&mut self) {
        self.allkeys = true;
        self.keys.clear();
    }

    fn apply_with_argument(&mut self, rule: &[u8]) -> Result<(), &'static str> {
        let (op, rest) = rule.split_first().ok_or(ERR_SYNTAX)?;
        match op {
            b'>' => {
                let d = sha256(rest);
                if !self.passwords.contains(&d) {
                    self.passwords.push(d);
                }
                self.nopass = false;
            }
            b'#' => {
                let d = parse_hash(rest).ok_or(ERR_BAD_HASH)?;
                if !self.passwords.contains(&d) {
                    self.passwords.push(d);
                }
                self.nopass = false;
            }
            b'<' => {
                let d = sha256(rest);
                let before = self.passwords.len();
                self.passwords.retain(|p| *p != d);
                if self.passwords.len() == before {
                    return Err(ERR_NO_PASSWORD);
                }
            }
            b'!' => {
                let d = parse_hash(rest).ok_or(ERR_BAD_HASH)?;
                let before = self.passwords.len();
                self.passwords.retain(|p| *p != d);
                if self.passwords.len() == before {
                    return Err(ERR_NO_PASSWORD);
                }
            }
            b'~' => self.add_key_pattern(rest, true, true)?,
            b'%' => {
                let tilde = rest.iter().position(|&c| c == b'~').ok_or(ERR_SYNTAX)?;
                let (perms, pattern) = (&rest[..tilde], &rest[tilde + 1..]);
                if perms.is_empty() {
                    return Err(ERR_SYNTAX);
                }
                let (mut read, mut write) = (false, false);
                for c in perms {
                    match c.to_ascii_uppercase() {
                        b'R' => read = true,
                        b'W' => write = true,
                        _ => return Err(ERR_SYNTAX),
                    }
                }
                self.add_key_pattern(pattern, read, write)?;
            }
            b'&' => {
                if rest == b"*" {
                    self.allchannels = true;
                    self.channels.clear();
                } else {
                    if self.allchannels {
                        return Err(ERR_AFTER_ALLCHANNELS);
                    }
                    if !self.channels.iter().any(|c| c == rest) {
                        self.channels.push(rest.to_vec());
                    }
                }
            }
            b'+' | b'-' => self.apply_command_rule(*op == b'+', rest)?,
            _ => return Err(ERR_SYNTAX),
        }
        Ok(())
    }

    fn add_key_pattern(
        &mut self,
        pattern: &[u8],
        read: bool,
        write: bool,
    ) -> Result<(), &'static str> {
        if self.allkeys {
            return Err(ERR_AFTER_ALLKEYS);
        }
        if pattern == b"*" && read && write {
            self.set_allkeys();
            return Ok(());
        }
        match self.keys.iter_mut().find(|p| p.pattern == pattern) {
            Some(p) => {
                p.read |= read;
                p.write |= write;
            }
            None => self.keys.push(KeyPattern {
                pattern: pattern.to_vec(),
                read,
                write,
            }),
        }
        Ok(())
    }

    fn apply_command_rule(&mut self, allow: bool, name: &[u8]) -> Result<(), &'static str> {
        let name = std::str::from_utf8(name).map_err(|_| ERR_UNKNOWN)?;
        if let Some(cat) = name.strip_prefix('@') {
            let bit = categories::by_name(cat).ok_or(ERR_UNKNOWN)?;
            let ids: Vec<usize> = TABLE
                .entries
                .iter()
                .filter(|e| e.categories & bit != 0)
                .map(|e| e.id)
                .collect();
            for id in ids {
                self.set_command(&TABLE.entries[id], allow);
            }
            self.record_rule(allow, name);
            return Ok(());
        }
        let mut parts = name.splitn(3, '|');
        let top = parts.next().unwrap_or_default();
        let sub = parts.next();
        let firstarg_of_sub = parts.next();
        let top = crate::cmd::table::lookup_name(top.as_bytes()).ok_or(ERR_UNKNOWN)?;
        match sub {
            None => {
                self.set_command(top, allow);
                self.record_rule(allow, &top.full_name);
            }
            Some(sub) if !top.spec.subcommands.is_empty() => {
                let full = format!("{}|{}", top.full_name, sub.to_ascii_lowercase());
                let entry = TABLE
                    .entries
                    .iter()
                    .find(|e| e.full_name == full)
                    .ok_or(ERR_UNKNOWN)?;
                if firstarg_of_sub.is_some() {
                    return Err(ERR_SUB_FIRSTARG);
                }
                self.set_command(entry, allow);
                self.record_rule(allow, &full);
            }
            Some(arg) => {
                // `+select|0`: only allowing a first argument exists.
                if !allow || arg.is_empty() || firstarg_of_sub.is_some() {
                    return Err(ERR_UNKNOWN);
                }
                if !self.bit(top.id) {
                    self.rules.push(format!("+{}|{arg}", top.full_name));
                    let arg = arg.as_bytes().to_vec();
                    match self.firstargs.iter_mut().find(|(id, _)| *id == top.id) {
                        Some((_, list)) => {
                            if !list.contains(&arg) {
                                list.push(arg);
                            }
                        }
                        None => self.firstargs.push((top.id, vec![arg])),
                    }
                }
            }
        }
        Ok(())
    }

    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        if let Some(s) = self.sanitize {
            f.push(s);
        }
        f
    }

    /// The command rules as GETUSER shows them.
    pub fn describe_commands(&self) -> String {
        let mut s = String::from(if self.from_all { "+@all" } else { "-@all" });
        for r in &self.rules {
            s.push(' ');
            s.push_str(r);
        }
        s
    }

    pub fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(|p| {
                let prefix = match (p.read, p.write) {
                    (true, true) => "~",
                    (true, false) => "%R~",
                    _ => "%W~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The user as ACL LIST prints it (after `user <name> `), which
    /// SETUSER and the ACL file read back to the same user.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        for p in &self.passwords {
            parts.push(format!("#{}", hex(p)));
        }
        let keys = self.describe_keys();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if !self.allchannels {
            parts.push("resetchannels".into());
        }
        let channels = self.describe_channels();
        if !channels.is_empty() {
            parts.push(channels);
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("u");
        for r in rules {
            u.apply(r.as_bytes()).unwrap_or_else(|e| panic!("{r}: {e}"));
        }
        u
    }

    #[test]
    fn default_user_describes_as_redis() {
        assert_eq!(User::new_default().describe(), "on nopass ~* &* +@all");
        assert!(User::new_default().unrestricted());
    }

    #[test]
    fn rules_replace_earlier_rules_for_the_same_command() {
        let u = user(&["+get", "+@string", "-get", "+client", "-client|kill"]);
        assert_eq!(
            u.describe_commands(),
            "-@all +@string -get +client -client|kill"
        );
        let u = user(&["+client|kill", "+client"]);
        assert_eq!(u.describe_commands(), "-@all +client");
    }

    #[test]
    fn passwords_and_hashes() {
        let mut u = user(&[">p1", "on"]);
        assert!(u.password_matches(b"p1"));
        assert!(!u.password_matches(b"p2"));
        assert_eq!(u.apply(b"<p2"), Err(ERR_NO_PASSWORD));
        assert_eq!(u.apply(b"#abc"), Err(ERR_BAD_HASH));
        u.apply(b"<p1").unwrap();
        assert!(!u.password_matches(b"p1"));
        let h = hex(&sha256(b"x"));
        u.apply(format!("#{h}").as_bytes()).unwrap();
        assert!(u.password_matches(b"x"));
        u.apply(format!("!{h}").as_bytes()).unwrap();
        assert!(!u.password_matches(b"x"));
    }

    #[test]
    fn key_patterns() {
        let u = user(&["~cached:*", "%R~ro:*", "%W~wo:*"]);
        assert!(u.key_allowed(b"cached:1", true, true));
        assert!(u.key_allowed(b"ro:1", true, false));
        assert!(!u.key_allowed(b"ro:1", true, true));
        assert!(u.key_allowed(b"wo:1", false, true));
        assert!(!u.key_allowed(b"other", true, false));
        let mut u = user(&["allkeys"]);
        assert_eq!(u.apply(b"~a"), Err(ERR_AFTER_ALLKEYS));
        assert_eq!(u.apply(b"%X~a"), Err(ERR_SYNTAX));
    }
}

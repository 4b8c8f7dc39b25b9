//! ACL and AUTH as Redis 7: every SETUSER rule kind, AUTH and HELLO AUTH,
//! NOAUTH/WRONGPASS/NOPERM texts, ACL LOG, the ACL file.
//!
//! Checked against Debian's redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test acl`;
//! the error texts are 7.0's (`NOPERM this user has no permissions...`).
//! Where Redis 7.0 prints a user's command rules in an order of its own
//! (it re-derives them from a bitmap), the check is ferrocache-only: we
//! print the rules in the order given, as Redis 7.2 does.

mod common;
use common::*;

use redis::Value;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn noperm_cmd(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

fn acl_list(con: &mut redis::Connection) -> Vec<String> {
    q(con, &["ACL", "LIST"])
}

fn user_line(con: &mut redis::Connection, name: &str) -> String {
    let prefix = format!("user {name} ");
    acl_list(con)
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// A connection authenticated as `user`.
fn login(srv: &TestServer, user: &str, pass: &str) -> redis::Connection {
    let mut con = srv.client();
    let _: () = q(&mut con, &["AUTH", user, pass]);
    con
}

fn getuser(con: &mut redis::Connection, name: &str) -> Vec<(String, Value)> {
    let v: Value = q(con, &["ACL", "GETUSER", name]);
    let Value::Array(items) = v else {
        panic!("GETUSER reply {v:?}")
    };
    items
        .chunks(2)
        .map(|kv| {
            let key: String = redis::from_redis_value(kv[0].clone()).unwrap();
            (key, kv[1].clone())
        })
        .collect()
}

fn field_str(fields: &[(String, Value)], name: &str) -> String {
    let v = &fields.iter().find(|(k, _)| k == name).unwrap().1;
    redis::from_redis_value(v.clone()).unwrap()
}

fn field_list(fields: &[(String, Value)], name: &str) -> Vec<String> {
    let v = &fields.iter().find(|(k, _)| k == name).unwrap().1;
    redis::from_redis_value(v.clone()).unwrap()
}

// ------------------------------------------------------------- users

#[test]
fn default_user_is_open_and_described_as_redis() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(acl_list(&mut con), ["user default on nopass ~* &* +@all"]);
    let who: String = q(&mut con, &["ACL", "WHOAMI"]);
    assert_eq!(who, "default");
    let users: Vec<String> = q(&mut con, &["ACL", "USERS"]);
    assert_eq!(users, ["default"]);
    let u = getuser(&mut con, "default");
    assert_eq!(field_list(&u, "flags"), ["on", "nopass"]);
    assert_eq!(field_str(&u, "commands"), "+@all");
    assert_eq!(field_str(&u, "keys"), "~*");
    assert_eq!(field_str(&u, "channels"), "&*");
    let none: Value = q(&mut con, &["ACL", "GETUSER", "nobody"]);
    assert_eq!(none, Value::Nil);
}

#[test]
fn setuser_rules_as_described_by_acl_list() {
    let srv = TestServer::start();
    let mut con = srv.client();
    for (rules, expected) in [
        (&["reset"][..], "off sanitize-payload resetchannels -@all"),
        (
            &["reset", "+@all", "-@dangerous"][..],
            "off sanitize-payload resetchannels +@all -@dangerous",
        ),
        (
            &["reset", "-@all", "+@read"][..],
            "off sanitize-payload resetchannels -@all +@read",
        ),
        (
            &["reset", "+get"][..],
            "off sanitize-payload resetchannels -@all +get",
        ),
        (
            &["reset", "-@all", "+@read", "-get"][..],
            "off sanitize-payload resetchannels -@all +@read -get",
        ),
        (
            &["reset", "allcommands", "-flushall"][..],
            "off sanitize-payload resetchannels +@all -flushall",
        ),
        (
            &["reset", "+select|0"][..],
            "off sanitize-payload resetchannels -@all +select|0",
        ),
        (
            &["reset", "+config|get"][..],
            "off sanitize-payload resetchannels -@all +config|get",
        ),
        (
            &[
                "reset",
                "on",
                "nopass",
                "allkeys",
                "allchannels",
                "nocommands",
            ][..],
            "on nopass sanitize-payload ~* &* -@all",
        ),
        (
            &["reset", "~a*", "%R~r*", "%W~w*", "%RW~b*", "&chan"][..],
            "off sanitize-payload ~a* %R~r* %W~w* ~b* resetchannels &chan -@all",
        ),
        (
            &["reset", "on", ">secret"][..],
            "on sanitize-payload #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b resetchannels -@all",
        ),
        (
            &[
                "reset",
                "#2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
                "<secret",
            ][..],
            "off sanitize-payload resetchannels -@all",
        ),
        (
            &[
                "reset",
                ">secret",
                "!2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
            ][..],
            "off sanitize-payload resetchannels -@all",
        ),
        (
            &["reset", ">a", ">b", "resetpass"][..],
            "off sanitize-payload resetchannels -@all",
        ),
        (
            &["reset", "~x", "resetkeys", "~y"][..],
            "off sanitize-payload ~y resetchannels -@all",
        ),
        (
            &["reset", "&x", "resetchannels"][..],
            "off sanitize-payload resetchannels -@all",
        ),
    ] {
        let mut args = vec!["ACL", "SETUSER", "u"];
        args.extend_from_slice(rules);
        let _: () = q(&mut con, &args);
        assert_eq!(
            user_line(&mut con, "u"),
            format!("user u {expected}"),
            "{rules:?}"
        );
    }
}

#[test]
fn command_rules_keep_their_order() {
    if against_real_redis() {
        // Redis 7.0 re-derives the rules from its bitmap, in its own order.
        return;
    }
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(
        &mut con,
        &[
            "ACL",
            "SETUSER",
            "u",
            "+get",
            "+@string",
            "-set",
            "+client",
            "-client|kill",
            "+get",
        ],
    );
    assert_eq!(
        field_str(&getuser(&mut con, "u"), "commands"),
        "-@all +@string -set +client -client|kill +get"
    );
}

#[test]
fn setuser_errors_as_redis() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let pre = |rule: &str, why: &str| format!("ERR Error in ACL SETUSER modifier '{rule}': {why}");
    for (rule, why) in [
        ("badrule", "Syntax error"),
        ("+nosuch", "Unknown command or category name in ACL"),
        ("+@nosuch", "Unknown command or category name in ACL"),
        ("-select|0", "Unknown command or category name in ACL"),
        ("+config|nosuch", "Unknown command or category name in ACL"),
        (
            "+config|get|maxmemory",
            "Allowing first-arg of a subcommand is not supported",
        ),
        (
            "<nope",
            "The password you are trying to remove from the user does not exist",
        ),
        (
            "#abc",
            "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
        ),
        ("%X~a", "Syntax error"),
        ("%~a", "Syntax error"),
    ] {
        assert_eq!(
            q_err(&mut con, &["ACL", "SETUSER", "t", rule]),
            pre(rule, why)
        );
    }
    assert_eq!(
        q_err(&mut con, &["ACL", "SETUSER", "t", "allkeys", "~foo"]),
        pre(
            "~foo",
            "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
        )
    );
    // A failed SETUSER changes nothing, not even creating the user.
    let users: Vec<String> = q(&mut con, &["ACL", "USERS"]);
    assert_eq!(users, ["default"]);
    assert_eq!(
        q_err(&mut con, &["ACL", "SETUSER", "a b"]),
        "ERR Usernames can't contain spaces or null characters"
    );
}

// ----------------------------------------------------------- AUTH

#[test]
fn auth_with_users_passwords_and_flags() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "alice", "on", ">p1", ">p2", "~*", "+@all"],
    );
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "bob", "off", ">p", "~*", "+@all"],
    );
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "nop", "on", "nopass", "~*", "+@all"],
    );
    let mut c = srv.client();
    assert_eq!(q_err(&mut c, &["AUTH", "alice", "bad"]), WRONGPASS);
    assert_eq!(q_err(&mut c, &["AUTH", "nobody", "p1"]), WRONGPASS);
    assert_eq!(q_err(&mut c, &["AUTH", "bob", "p"]), WRONGPASS, "disabled");
    let _: () = q(&mut c, &["AUTH", "alice", "p2"]);
    let who: String = q(&mut c, &["ACL", "WHOAMI"]);
    assert_eq!(who, "alice");
    let _: () = q(&mut c, &["AUTH", "nop", "anything"]);
    let who: String = q(&mut c, &["ACL", "WHOAMI"]);
    assert_eq!(who, "nop");
    // The one-argument form needs a default user password.
    assert_eq!(
        q_err(&mut c, &["AUTH", "x"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    let info: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(info.contains(" user=nop "), "{info}");
    // RESET goes back to the default user.
    let reset: String = q(&mut c, &["RESET"]);
    assert_eq!(reset, "RESET");
    let who: String = q(&mut c, &["ACL", "WHOAMI"]);
    assert_eq!(who, "default");
}

#[test]
fn hello_auth_with_a_user() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "alice", "on", ">p1", "~*", "+@all"],
    );
    let mut c = srv.raw();
    c.send(&resp_cmd(&[b"HELLO", b"2", b"AUTH", b"alice", b"bad"]));
    let wrong = format!("-{WRONGPASS}\r\n");
    assert_eq!(c.read_exact_len(wrong.len()), wrong.as_bytes());
    let mut c = srv.client();
    let _: Value = q(&mut c, &["HELLO", "3", "AUTH", "alice", "p1"]);
    let who: String = q(&mut c, &["ACL", "WHOAMI"]);
    assert_eq!(who, "alice");
}

#[test]
fn requirepass_is_the_default_users_password() {
    let srv = TestServer::start_with(&["--requirepass", "secret"]);
    let mut raw = srv.raw();
    raw.roundtrip(b"GET x\r\n", b"-NOAUTH Authentication required.\r\n");
    raw.roundtrip(&resp_cmd(&[b"AUTH", b"default", b"secret"]), b"+OK\r\n");
    let mut con = login(&srv, "default", "secret");
    assert_eq!(
        user_line(&mut con, "default"),
        "user default on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all"
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "requirepass", ""]);
    assert_eq!(
        user_line(&mut con, "default"),
        "user default on nopass ~* &* +@all"
    );
    srv.raw().roundtrip(b"GET x\r\n", b"$-1\r\n");
    // A default user with a password makes new connections authenticate.
    let _: () = q(&mut con, &["ACL", "SETUSER", "default", "resetpass", ">pw"]);
    srv.raw()
        .roundtrip(b"GET x\r\n", b"-NOAUTH Authentication required.\r\n");
}

// ---------------------------------------------------- permissions

#[test]
fn command_category_and_subcommand_rules() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "u",
            "on",
            "nopass",
            "~*",
            "-@all",
            "+@string",
            "-set",
            "+client",
            "-client|kill",
            "+select|0",
        ],
    );
    let mut c = login(&srv, "u", "x");
    let _: Value = q(&mut c, &["GET", "k"]);
    let _: i64 = q(&mut c, &["APPEND", "k", "v"]);
    assert_eq!(q_err(&mut c, &["SET", "k", "v"]), noperm_cmd("set"));
    assert_eq!(q_err(&mut c, &["DEL", "k"]), noperm_cmd("del"));
    let _: i64 = q(&mut c, &["CLIENT", "ID"]);
    assert_eq!(
        q_err(&mut c, &["CLIENT", "KILL", "ID", "999"]),
        noperm_cmd("client|kill")
    );
    assert_eq!(
        q_err(&mut c, &["CONFIG", "GET", "x"]),
        noperm_cmd("config|get")
    );
    let _: () = q(&mut c, &["SELECT", "0"]);
    assert_eq!(q_err(&mut c, &["SELECT", "1"]), noperm_cmd("select"));
    // AUTH and friends are always allowed.
    let _: () = q(&mut c, &["AUTH", "u", "x"]);
}

#[test]
fn key_patterns_with_read_and_write_permissions() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "u",
            "on",
            "nopass",
            "+@all",
            "~cached:*",
            "%R~ro:*",
            "%W~wo:*",
        ],
    );
    let mut c = login(&srv, "u", "x");
    let _: () = q(&mut c, &["SET", "cached:1", "1"]);
    assert_eq!(q_err(&mut c, &["SET", "foo", "1"]), NOPERM_KEY);
    let _: Value = q(&mut c, &["GET", "ro:1"]);
    assert_eq!(q_err(&mut c, &["SET", "ro:1", "1"]), NOPERM_KEY);
    assert_eq!(q_err(&mut c, &["INCR", "ro:1"]), NOPERM_KEY, "read+write");
    let _: () = q(&mut c, &["SET", "wo:1", "2"]);
    assert_eq!(q_err(&mut c, &["GET", "wo:1"]), NOPERM_KEY);
    assert_eq!(q_err(&mut c, &["MGET", "cached:1", "foo"]), NOPERM_KEY);
    let _: Value = q(&mut c, &["MGET", "cached:1", "ro:2"]);
    // allkeys / resetkeys.
    let _: () = q(&mut admin, &["ACL", "SETUSER", "u", "allkeys"]);
    let _: () = q(&mut c, &["SET", "foo", "1"]);
    let _: () = q(&mut admin, &["ACL", "SETUSER", "u", "resetkeys"]);
    assert_eq!(q_err(&mut c, &["GET", "foo"]), NOPERM_KEY);
}

#[test]
fn changes_apply_to_connected_clients_at_once() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let mut c = srv.client();
    let _: Value = q(&mut c, &["GET", "k"]);
    let _: () = q(&mut admin, &["ACL", "SETUSER", "default", "-get"]);
    assert_eq!(q_err(&mut c, &["GET", "k"]), noperm_cmd("get"));
    let _: () = q(&mut admin, &["ACL", "SETUSER", "default", "+get"]);
    let _: Value = q(&mut c, &["GET", "k"]);
}

#[test]
fn multi_refuses_at_queue_time_and_rechecks_at_exec() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "m", "on", "nopass", "+@all", "~*", "-set"],
    );
    let mut c = login(&srv, "m", "x");
    let _: () = q(&mut c, &["MULTI"]);
    assert_eq!(q_err(&mut c, &["SET", "a", "1"]), noperm_cmd("set"));
    assert_eq!(
        q_err(&mut c, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );

    let _: () = q(&mut admin, &["ACL", "SETUSER", "m", "+set"]);
    let mut raw = srv.raw();
    raw.roundtrip(&resp_cmd(&[b"AUTH", b"m", b"x"]), b"+OK\r\n");
    raw.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    raw.roundtrip(b"SET k 1\r\n", b"+QUEUED\r\n");
    raw.roundtrip(b"GET k\r\n", b"+QUEUED\r\n");
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "m", "-set", "resetkeys", "~j*"],
    );
    let pre = "-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: ";
    let expected = format!(
        "*2\r\n{pre}no permission to execute the command or subcommand\r\n{pre}no permission to touch the specified keys\r\n"
    );
    raw.roundtrip(b"EXEC\r\n", expected.as_bytes());
}

// ------------------------------------------------------------ ACL LOG

#[test]
fn acl_log_records_refusals_and_failed_auth() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(&mut admin, &["ACL", "LOG", "RESET"]);
    let _: () = q(
        &mut admin,
        &[
            "ACL", "SETUSER", "u", "on", "nopass", "-@all", "+get", "~a*",
        ],
    );
    let mut c = login(&srv, "u", "x");
    let _ = q_err(&mut c, &["SET", "a", "1"]);
    let _ = q_err(&mut c, &["GET", "b"]);
    let _ = q_err(&mut c, &["GET", "b"]);
    let _ = q_err(&mut c, &["AUTH", "nobody", "pw"]);
    let log: Vec<Vec<Value>> = q(&mut admin, &["ACL", "LOG"]);
    assert_eq!(log.len(), 3);
    let entry = |i: usize| -> Vec<(String, String)> {
        log[i]
            .chunks(2)
            .map(|kv| {
                let k: String = redis::from_redis_value(kv[0].clone()).unwrap();
                let v = match &kv[1] {
                    Value::Int(n) => n.to_string(),
                    other => redis::from_redis_value(other.clone()).unwrap(),
                };
                (k, v)
            })
            .collect()
    };
    let get = |e: &[(String, String)], k: &str| {
        e.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let keys: Vec<String> = entry(0).iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        [
            "count",
            "reason",
            "context",
            "object",
            "username",
            "age-seconds",
            "client-info"
        ]
    );
    let (auth, key, cmd) = (entry(0), entry(1), entry(2));
    assert_eq!(get(&auth, "reason"), "auth");
    // The command name as sent (the redis crate sends it upper case).
    assert_eq!(get(&auth, "object"), "AUTH");
    assert_eq!(get(&auth, "username"), "nobody");
    assert_eq!(get(&key, "reason"), "key");
    assert_eq!(get(&key, "object"), "b");
    assert_eq!(get(&key, "count"), "2", "similar events are grouped");
    assert_eq!(get(&cmd, "reason"), "command");
    assert_eq!(get(&cmd, "object"), "set");
    assert_eq!(get(&cmd, "context"), "toplevel");
    assert_eq!(get(&cmd, "username"), "u");
    assert!(get(&cmd, "client-info").contains(" user=u "));
    let one: Vec<Value> = q(&mut admin, &["ACL", "LOG", "1"]);
    assert_eq!(one.len(), 1);
    let _: () = q(&mut admin, &["ACL", "LOG", "RESET"]);
    let none: Vec<Value> = q(&mut admin, &["ACL", "LOG"]);
    assert!(none.is_empty());
    assert_eq!(
        q_err(&mut admin, &["ACL", "LOG", "x"]),
        "ERR value is not an integer or out of range"
    );
}

// ------------------------------------------------------ other subcommands

#[test]
fn deluser_closes_the_users_connections() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "gone", "on", "nopass", "+@all", "~*"],
    );
    let mut raw = srv.raw();
    raw.roundtrip(&resp_cmd(&[b"AUTH", b"gone", b"x"]), b"+OK\r\n");
    let n: i64 = q(&mut admin, &["ACL", "DELUSER", "gone", "nosuch"]);
    assert_eq!(n, 1);
    assert_eq!(raw.read_to_close(), b"");
    assert_eq!(
        q_err(&mut admin, &["ACL", "DELUSER", "default"]),
        "ERR The 'default' user cannot be removed"
    );
}

#[test]
fn client_kill_by_user() {
    let srv = TestServer::start();
    let mut admin = srv.client();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "k", "on", "nopass", "+@all", "~*"],
    );
    let mut raw = srv.raw();
    raw.roundtrip(&resp_cmd(&[b"AUTH", b"k", b"x"]), b"+OK\r\n");
    let n: i64 = q(&mut admin, &["CLIENT", "KILL", "USER", "k"]);
    assert_eq!(n, 1);
    assert_eq!(raw.read_to_close(), b"");
    assert_eq!(
        q_err(&mut admin, &["CLIENT", "KILL", "USER", "nosuch"]),
        "ERR No such user 'nosuch'"
    );
}

#[test]
fn cat_genpass_dryrun() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let cats: Vec<String> = q(&mut con, &["ACL", "CAT"]);
    assert_eq!(cats.len(), 21);
    assert_eq!(cats[0], "keyspace");
    let string: Vec<String> = q(&mut con, &["ACL", "CAT", "string"]);
    assert!(string.contains(&"get".to_string()) && string.contains(&"incr".to_string()));
    let tx: Vec<String> = q(&mut con, &["ACL", "CAT", "transaction"]);
    let mut tx = tx;
    tx.sort();
    assert_eq!(tx, ["discard", "exec", "multi", "unwatch", "watch"]);
    assert_eq!(
        q_err(&mut con, &["ACL", "CAT", "nosuch"]),
        "ERR Unknown category 'nosuch'"
    );

    let p: String = q(&mut con, &["ACL", "GENPASS"]);
    assert_eq!(p.len(), 64);
    assert!(p.bytes().all(|c| c.is_ascii_hexdigit()));
    let p: String = q(&mut con, &["ACL", "GENPASS", "5"]);
    assert_eq!(p.len(), 2);
    for bad in ["0", "4097"] {
        assert_eq!(
            q_err(&mut con, &["ACL", "GENPASS", bad]),
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"
        );
    }

    let _: () = q(
        &mut con,
        &[
            "ACL", "SETUSER", "k", "on", "nopass", "+get", "+set", "%R~r*",
        ],
    );
    let r: String = q(&mut con, &["ACL", "DRYRUN", "k", "get", "foo"]);
    assert_eq!(r, "This user has no permissions to access the 'foo' key");
    let r: String = q(&mut con, &["ACL", "DRYRUN", "k", "set", "r1", "1"]);
    assert_eq!(r, "This user has no permissions to access the 'r1' key");
    let r: String = q(&mut con, &["ACL", "DRYRUN", "k", "del", "r1"]);
    assert_eq!(r, "This user has no permissions to run the 'del' command");
    let _: () = q(&mut con, &["ACL", "DRYRUN", "k", "get", "r1"]);
    assert_eq!(
        q_err(&mut con, &["ACL", "DRYRUN", "nouser", "get", "x"]),
        "ERR User 'nouser' not found"
    );
    assert_eq!(
        q_err(&mut con, &["ACL", "DRYRUN", "k", "nocmd"]),
        "ERR Command 'nocmd' not found"
    );
}

#[test]
fn command_info_shows_redis_categories() {
    let srv = TestServer::start();
    let mut con = srv.client();
    for (name, expected) in [
        ("get", vec!["@read", "@string", "@fast"]),
        ("dbsize", vec!["@keyspace", "@read", "@fast"]),
        (
            "flushall",
            vec!["@keyspace", "@write", "@slow", "@dangerous"],
        ),
        (
            "client|kill",
            vec!["@admin", "@slow", "@dangerous", "@connection"],
        ),
        ("acl|setuser", vec!["@admin", "@slow", "@dangerous"]),
    ] {
        let v: Vec<Value> = q(&mut con, &["COMMAND", "INFO", name]);
        let Value::Array(info) = &v[0] else { panic!() };
        let cats: Vec<String> = redis::from_redis_value(info[6].clone()).unwrap();
        assert_eq!(cats, expected, "{name}");
    }
}

// ------------------------------------------------------------ ACL file

#[test]
fn acl_file_load_and_save() {
    let path = temp_path("users.acl");
    std::fs::write(
        &path,
        "user alice on >p1 ~* +@all\nuser default on nopass ~* &* +@all\n",
    )
    .unwrap();
    let p = path.to_str().unwrap().to_string();
    let srv = TestServer::start_with(&["--aclfile", &p]);
    let mut con = srv.client();
    let mut alice = login(&srv, "alice", "p1");
    let who: String = q(&mut alice, &["ACL", "WHOAMI"]);
    assert_eq!(who, "alice");

    let _: () = q(
        &mut con,
        &["ACL", "SETUSER", "bob", "on", ">pw", "~b*", "+get"],
    );
    let _: () = q(&mut con, &["ACL", "SAVE"]);
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("user bob on #"), "{saved}");
    assert!(saved.contains("user alice on #"), "{saved}");

    // A broken file changes nothing.
    std::fs::write(&path, "user carol on nopass +@all\nbogus line\n").unwrap();
    let err = q_err(&mut con, &["ACL", "LOAD"]);
    assert!(err.starts_with("ERR "), "{err}");
    assert!(
        err.ends_with("WARNING: ACL errors detected, no change to the previously active ACL rules was performed"),
        "{err}"
    );
    let users: Vec<String> = q(&mut con, &["ACL", "USERS"]);
    assert_eq!(users, ["alice", "bob", "default"]);

    std::fs::write(&path, "user carol on nopass ~* +@all\n").unwrap();
    let _: () = q(&mut con, &["ACL", "LOAD"]);
    let users: Vec<String> = q(&mut con, &["ACL", "USERS"]);
    assert_eq!(users, ["carol", "default"]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn acl_save_and_load_need_an_acl_file() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let msg = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";
    assert_eq!(q_err(&mut con, &["ACL", "SAVE"]), msg);
    assert_eq!(q_err(&mut con, &["ACL", "LOAD"]), msg);
}

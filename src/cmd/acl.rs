//! The ACL command family (acl.c's aclCommand).

use super::{Args, Ctx};
use crate::acl;
use crate::cmd::connection::help_reply;
use crate::cmd::table::{Lookup, TABLE, lookup};
use crate::util::{eq_ic, parse_i64};

pub fn setuser(ctx: &mut Ctx, args: &Args) {
    let name = args.str(2).into_owned();
    let rules: Vec<&[u8]> = args.iter().skip(3).collect();
    match acl::set_user(&name, &rules) {
        Ok(()) => ctx.reply.ok(),
        Err(e) => ctx.error(&e),
    }
}

pub fn getuser(ctx: &mut Ctx, args: &Args) {
    let Some(u) = acl::get_user(&args.str(2)) else {
        return ctx.reply.null();
    };
    let r = &mut *ctx.reply;
    r.map(6);
    r.bulk_str("flags");
    let flags = u.flags();
    r.array(flags.len());
    for f in flags {
        r.bulk_str(f);
    }
    r.bulk_str("passwords");
    let hashes = u.password_hashes();
    r.array(hashes.len());
    for h in hashes {
        r.bulk_str(&h);
    }
    r.bulk_str("commands");
    r.bulk_str(&u.describe_commands());
    r.bulk_str("keys");
    r.bulk_str(&u.describe_keys());
    r.bulk_str("channels");
    r.bulk_str(&u.describe_channels());
    r.bulk_str("selectors");
    r.array(0);
}

/// Closes every connection authenticated as one of `names` (Redis frees
/// them when their user goes away); the caller's own closes after its
/// reply.
fn disconnect_users(ctx: &mut Ctx, names: &[String]) {
    let targets: Vec<u64> = ctx
        .srv
        .clients
        .iter()
        .filter(|c| names.contains(&c.user_name()))
        .map(|c| c.id)
        .collect();
    for id in targets {
        if id == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else {
            ctx.srv.kill_client(id);
        }
    }
}

pub fn deluser(ctx: &mut Ctx, args: &Args) {
    let names: Vec<String> = args
        .iter()
        .skip(2)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match acl::del_users(&names) {
        Ok(n) => {
            disconnect_users(ctx, &names);
            ctx.reply.int(n as i64);
        }
        Err(e) => ctx.error(&e),
    }
}

pub fn list(ctx: &mut Ctx, _args: &Args) {
    let users = acl::all_users();
    ctx.reply.array(users.len());
    for u in users {
        ctx.reply
            .bulk_str(&format!("user {} {}", u.name, u.describe()));
    }
}

pub fn users(ctx: &mut Ctx, _args: &Args) {
    let users = acl::all_users();
    ctx.reply.array(users.len());
    for u in users {
        ctx.reply.bulk_str(&u.name);
    }
}

pub fn whoami(ctx: &mut Ctx, _args: &Args) {
    let name = ctx.client.user.name.clone();
    ctx.reply.bulk_str(&name);
}

pub fn cat(ctx: &mut Ctx, args: &Args) {
    if args.len() == 2 {
        let names = acl::categories::NAMES;
        ctx.reply.array(names.len());
        for n in names {
            ctx.reply.bulk_str(n);
        }
        return;
    }
    if args.len() > 3 {
        return ctx.syntax_error();
    }
    let Some(bit) = acl::categories::by_name(&args.str(2)) else {
        return ctx.error(&format!("ERR Unknown category '{}'", args.str(2)));
    };
    let names: Vec<&str> = TABLE
        .entries
        .iter()
        .filter(|e| e.categories & bit != 0)
        .map(|e| e.full_name.as_str())
        .collect();
    ctx.reply.array(names.len());
    for n in names {
        ctx.reply.bulk_str(n);
    }
}

pub fn log(ctx: &mut Ctx, args: &Args) {
    let mut count = 10usize;
    if args.len() == 3 {
        if eq_ic(args.get(2), "reset") {
            acl::reset_log();
            return ctx.reply.ok();
        }
        match parse_i64(args.get(2)) {
            Some(n) => count = n.max(0) as usize,
            None => return ctx.not_integer(),
        }
    } else if args.len() > 3 {
        return ctx.syntax_error();
    }
    let now = crate::util::now_ms();
    let r = &mut *ctx.reply;
    acl::with_log(|log| {
        let shown = log.len().min(count);
        r.array(shown);
        for e in log.iter().take(shown) {
            r.map(7);
            r.bulk_str("count");
            r.int(e.count as i64);
            r.bulk_str("reason");
            r.bulk_str(e.reason);
            r.bulk_str("context");
            r.bulk_str(e.context);
            r.bulk_str("object");
            r.bulk_str(&e.object);
            r.bulk_str("username");
            r.bulk_str(&e.username);
            r.bulk_str("age-seconds");
            r.double(now.saturating_sub(e.created_ms) as f64 / 1000.0);
            r.bulk_str("client-info");
            r.bulk_str(&e.client_info);
        }
    });
}

fn aclfile(ctx: &Ctx) -> Option<String> {
    ctx.srv.config.get("aclfile").filter(|f| !f.is_empty())
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

pub fn save(ctx: &mut Ctx, _args: &Args) {
    let Some(path) = aclfile(ctx) else {
        return ctx.error(NO_ACLFILE);
    };
    match acl::save_file(&path) {
        Ok(()) => ctx.reply.ok(),
        Err(e) => {
            tracing::warn!("Opening temp ACL file for ACL SAVE: {e}");
            ctx.error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

pub fn load(ctx: &mut Ctx, _args: &Args) {
    let Some(path) = aclfile(ctx) else {
        return ctx.error(NO_ACLFILE);
    };
    match acl::load_file(&path) {
        Ok(old_users) => {
            disconnect_users(ctx, &old_users);
            ctx.reply.ok()
        }
        Err(e) => ctx.error(&format!(
            "ERR {e}WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        )),
    }
}

pub fn genpass(ctx: &mut Ctx, args: &Args) {
    let bits = if args.len() > 2 {
        match parse_i64(args.get(2)) {
            Some(b) if (1..=4096).contains(&b) => b as usize,
            Some(_) => {
                return ctx.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
            }
            None => return ctx.not_integer(),
        }
    } else {
        256
    };
    match acl::genpass(bits) {
        Ok(p) => ctx.reply.bulk_str(&p),
        Err(e) => ctx.error(&format!("ERR cannot read random bytes: {e}")),
    }
}

pub fn dryrun(ctx: &mut Ctx, args: &Args) {
    let username = args.str(2).into_owned();
    let Some(user) = acl::get_user(&username) else {
        return ctx.error(&format!("ERR User '{username}' not found"));
    };
    let cmd_args = args.slice_from(3);
    let resolved = match lookup(
        cmd_args.get(0),
        (cmd_args.len() > 1).then(|| cmd_args.get(1)),
    ) {
        Lookup::Found(r) => r,
        _ => {
            return ctx.error(&format!("ERR Command '{}' not found", cmd_args.str(0)));
        }
    };
    let spec = resolved.spec;
    let argc = cmd_args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        return ctx.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            resolved.full_name
        ));
    }
    match acl::check(&user, resolved, &cmd_args) {
        Ok(()) => ctx.reply.ok(),
        Err(acl::Denied::Command) => ctx.reply.bulk_str(&format!(
            "This user has no permissions to run the '{}' command",
            resolved.full_name
        )),
        Err(acl::Denied::Key(i)) => ctx.reply.bulk_str(&format!(
            "This user has no permissions to access the '{}' key",
            cmd_args.str(i)
        )),
    }
}

pub fn help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    );
}

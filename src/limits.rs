//! Connection limits that involve the operating system: the descriptor
//! limit behind `maxclients` and TCP keepalive (Redis's
//! adjustOpenFilesLimit and anetKeepAlive).

use std::os::fd::RawFd;

/// Descriptors Redis keeps for itself beyond one per client (listeners,
/// log file, persistence...).
pub const RESERVED_FDS: usize = 32;

/// Makes room for `maxclients` clients in RLIMIT_NOFILE, raising the soft
/// limit towards the hard one if needed, and returns how many clients the
/// resulting limit can serve (`maxclients` itself when it fits). Like
/// Redis, a limit that cannot be raised enough is raised as far as the
/// system allows.
pub fn adjust_open_files_limit(maxclients: usize) -> usize {
    let wanted = maxclients.saturating_add(RESERVED_FDS) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return maxclients;
    }
    if lim.rlim_cur >= wanted {
        return maxclients;
    }
    // Redis steps down 16 descriptors at a time until setrlimit succeeds;
    // the only limits that can stop it are the hard limit (unprivileged)
    // and fs.nr_open (privileged), so try those directly: the same
    // outcome without millions of failing calls for a huge maxclients.
    let old = lim.rlim_cur;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    let mut best = old;
    for candidate in [Some(wanted), nr_open, Some(lim.rlim_max)]
        .into_iter()
        .flatten()
        .filter(|c| *c > old && *c <= wanted)
    {
        let attempt = libc::rlimit {
            rlim_cur: candidate,
            rlim_max: lim.rlim_max.max(candidate),
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &attempt) } == 0 {
            best = candidate;
            break;
        }
    }
    if best >= wanted {
        return maxclients;
    }
    (best as usize).saturating_sub(RESERVED_FDS).max(1)
}

/// Enables TCP keepalive probes on an accepted socket: the first after
/// `interval` idle seconds, then every third of it, giving up after 3
/// unanswered (Redis's anetKeepAlive). 0 leaves keepalive off.
pub fn set_keepalive(fd: RawFd, interval: u32) {
    if interval == 0 {
        return;
    }
    let idle = interval.min(i32::MAX as u32) as libc::c_int;
    let probe_every = (idle / 3).max(1);
    let set = |level: libc::c_int, opt: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt on a socket the caller owns, with an int.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                &value as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, probe_every);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

//! Client state: what a connection's own task keeps (`ClientState`) and
//! what other connections may read or act on through the registry
//! (`ClientHandle`: CLIENT LIST, CLIENT KILL, INFO clients, shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::acl::{self, User};
use crate::cmd::OwnedArgs;
use crate::util::now_ms;

/// The registry's view of one connection. Fields the connection updates
/// per command are atomics written with plain stores (single writer).
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    pub created_ms: u64,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    pub db: AtomicUsize,
    /// Table id of the last command, plus one (0: none yet).
    pub last_cmd: AtomicUsize,
    pub last_interaction_ms: AtomicU64,
    pub resp: AtomicU8,
    pub qbuf: AtomicUsize,
    pub killed: AtomicBool,
    /// The ACL user the connection is authenticated as (CLIENT LIST,
    /// ACL DELUSER closing its connections).
    pub user: Mutex<String>,
    /// The connection became a replica link (PSYNC/SYNC): flags=S, type
    /// replica.
    pub is_replica: AtomicBool,
}

impl ClientHandle {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Self {
        let now = now_ms();
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created_ms: now,
            name: Mutex::new(None),
            lib_name: Mutex::new(String::new()),
            lib_ver: Mutex::new(String::new()),
            db: AtomicUsize::new(0),
            last_cmd: AtomicUsize::new(0),
            last_interaction_ms: AtomicU64::new(now),
            resp: AtomicU8::new(2),
            qbuf: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            user: Mutex::new("default".to_string()),
            is_replica: AtomicBool::new(false),
        }
    }

    pub fn user_name(&self) -> String {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn name(&self) -> Option<Bytes> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes the connection from another thread: its pending read sees
    /// end-of-file and its task exits. Call only while holding its
    /// registry entry (see `Server::kill_client`), which guarantees the fd
    /// is still this client's socket.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        // SAFETY: shutdown(2) on a descriptor we own through the registry;
        // the connection deregisters before it closes the socket.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }

    /// Stops reading from the connection (graceful shutdown): replies
    /// already computed are still written, then the task exits.
    pub fn stop_reading(&self) {
        // SAFETY: as in `kill`.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RD);
        }
    }

    /// One CLIENT LIST / CLIENT INFO line (without newline).
    pub fn info_line(&self, now: u64, cmd_name: &str) -> String {
        let name = self
            .name()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .unwrap_or_default();
        let age = now.saturating_sub(self.created_ms) / 1000;
        let idle = now.saturating_sub(self.last_interaction_ms.load(Ordering::Relaxed)) / 1000;
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            age,
            idle,
            if self.is_replica.load(Ordering::Relaxed) {
                "S"
            } else {
                "N"
            },
            self.db.load(Ordering::Relaxed),
            qbuf,
            qbuf + 16384 + 1024,
            cmd_name,
            self.user_name(),
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock().unwrap_or_else(|e| e.into_inner()),
            self.lib_ver.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// A connection's private state, touched only by its own task.
pub struct ClientState {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub handle: Arc<ClientHandle>,
    /// CLIENT REPLY OFF.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP: suppress the current command's reply...
    pub reply_skip: bool,
    /// ...and, when set by the command just run, the next one's.
    pub reply_skip_next: bool,
    /// Close once the pending replies are written (QUIT, protocol error).
    pub close_after_reply: bool,
    /// Connection comes from a loopback address (for
    /// `enable-debug-command local`).
    pub is_local: bool,
    /// The connection came in on the TLS port (cluster replies then name
    /// TLS ports, see `Cluster::client_port`).
    pub tls: bool,
    /// Commands queued since MULTI; `None` outside a transaction.
    pub multi: Option<Vec<OwnedArgs>>,
    /// A command was rejected while queuing: EXEC must abort.
    pub multi_error: bool,
    /// Set by any write to a WATCHed key (Redis's CLIENT_DIRTY_CAS).
    /// Replaced by a fresh flag on UNWATCH, which detaches it from every
    /// shard's watch list at once.
    pub watch_dirty: Arc<AtomicBool>,
    /// WATCHed keys with their db and their expiry when watched (a key
    /// that expires after WATCH fails the EXEC, as in Redis 7).
    pub watched: Vec<(usize, Bytes, u64)>,
    /// The ACL user (a snapshot, re-read when the ACL epoch moves).
    pub user: Arc<User>,
    /// ACL epoch of the `user` snapshot.
    pub user_epoch: u64,
    /// The ACL epoch at which `user` was found unrestricted, or
    /// `u64::MAX`: while it equals the current epoch the dispatcher skips
    /// every permission check (one load, one comparison).
    pub acl_fast: u64,
    /// Cluster mode: ASKING was sent (good for the next command).
    pub asking: bool,
    /// Cluster mode: READONLY (reads served by a replica).
    pub readonly: bool,
    /// This is the link to our primary: its writes are applied even on a
    /// read-only replica and are not propagated again.
    pub is_master: bool,
    /// REPLCONF listening-port / capa, sent by a replica before PSYNC.
    pub repl_listening_port: u16,
    pub repl_capa_eof: bool,
    pub repl_capa_psync2: bool,
    /// REPLCONF rdb-only 1 (redis-cli --rdb): the connection wants the
    /// snapshot only, and is closed after it instead of getting the stream.
    pub repl_rdb_only: bool,
    /// Work the connection loop must do after this command (PSYNC, WAIT).
    pub pending: Option<crate::replication::Pending>,
    /// Stream offset after this client's last propagated write: what WAIT
    /// waits for (Redis's woff).
    pub repl_offset: u64,
}

impl ClientState {
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Self {
        ClientState {
            id: handle.id,
            db: 0,
            resp3: false,
            authenticated,
            is_local: handle.addr.ip().is_loopback(),
            tls: false,
            handle,
            reply_off: false,
            reply_skip: false,
            reply_skip_next: false,
            close_after_reply: false,
            multi: None,
            multi_error: false,
            watch_dirty: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            user: acl::default_user(),
            user_epoch: 0,
            acl_fast: u64::MAX,
            asking: false,
            readonly: false,
            is_master: false,
            repl_listening_port: 0,
            repl_capa_eof: false,
            repl_rdb_only: false,
            repl_capa_psync2: false,
            pending: None,
            repl_offset: 0,
        }
    }

    /// Re-reads the user after an ACL change and decides whether its
    /// commands need checking.
    pub fn refresh_user(&mut self) {
        let epoch = acl::epoch();
        if self.user_epoch != epoch {
            match acl::get_user(&self.user.name) {
                Some(u) => self.user = u,
                // Deleted (ACL DELUSER closes such connections; this is the
                // window before): back to an unauthenticated default.
                None => self.set_user(acl::default_user(), false),
            }
            self.user_epoch = epoch;
        }
        // The link to our primary is not a user: Redis runs its commands
        // unchecked.
        self.acl_fast = if self.is_master || self.user.unrestricted() {
            epoch
        } else {
            u64::MAX
        };
    }

    /// Switches the connection's user (AUTH, HELLO AUTH, RESET).
    pub fn set_user(&mut self, user: Arc<User>, authenticated: bool) {
        *self.handle.user.lock().unwrap_or_else(|e| e.into_inner()) = user.name.clone();
        self.user = user;
        self.authenticated = authenticated;
        self.user_epoch = 0;
        self.acl_fast = u64::MAX;
    }

    pub fn unwatch_all(&mut self) {
        if !self.watched.is_empty() {
            self.watched.clear();
            self.watch_dirty = Arc::new(AtomicBool::new(false));
        }
    }

    pub fn discard_multi(&mut self) {
        self.multi = None;
        self.multi_error = false;
        self.unwatch_all();
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.handle.db.store(db, Ordering::Relaxed);
    }

    pub fn set_resp(&mut self, resp3: bool) {
        self.resp3 = resp3;
        self.handle
            .resp
            .store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }
}

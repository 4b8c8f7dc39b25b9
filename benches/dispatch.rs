//! Whole-command cost without sockets: lookup, arity and auth checks,
//! shard locking, the handler, the reply encoding and the statistics, as
//! `connection.rs` runs them for every decoded command.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use ferrocache::client::{ClientHandle, ClientState};
use ferrocache::cmd::OwnedArgs;
use ferrocache::cmd::dispatch::execute;
use ferrocache::config::Config;
use ferrocache::server::Server;
use ferrocache::stats::WorkerStats;

struct Fixture {
    srv: Server,
    state: ClientState,
    stats: WorkerStats,
    out: BytesMut,
}

impl Fixture {
    fn new() -> Self {
        let srv = Server::new(Config::new(&[]).expect("default config"), None);
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let laddr: SocketAddr = "127.0.0.1:6379".parse().unwrap();
        // fd -1: nothing here ever touches the socket.
        let handle = Arc::new(ClientHandle::new(srv.next_client_id(), addr, laddr, -1));
        let state = ClientState::new(handle, true);
        Fixture {
            srv,
            state,
            stats: WorkerStats::default(),
            out: BytesMut::with_capacity(4096),
        }
    }

    /// Runs a command and returns its reply (for setup and checks).
    fn call(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        let owned = OwnedArgs::from_slices(parts);
        self.out.clear();
        execute(
            &self.srv,
            &mut self.state,
            &owned.args(),
            &mut self.out,
            &self.stats,
        );
        self.out.to_vec()
    }

    /// Times `parts` as a pre-decoded command; the reply buffer is cleared
    /// every iteration, as the connection drains it after each write.
    fn bench(&mut self, c: &mut Criterion, name: &str, parts: &[&[u8]]) {
        let owned = OwnedArgs::from_slices(parts);
        let Fixture {
            srv,
            state,
            stats,
            out,
        } = self;
        c.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                execute(srv, state, black_box(&owned.args()), out, stats);
                out.len()
            })
        });
    }
}

fn dispatch(c: &mut Criterion) {
    let mut f = Fixture::new();
    let value = [b'v'; 32];
    let keys: Vec<String> = (0..10).map(|i| format!("bench:key:{i:04}")).collect();
    for k in &keys {
        assert_eq!(f.call(&[b"SET", k.as_bytes(), &value]), b"+OK\r\n");
    }
    // The replies are what a client expects, so we time real work.
    let mut get_reply = b"$32\r\n".to_vec();
    get_reply.extend_from_slice(&value);
    get_reply.extend_from_slice(b"\r\n");
    assert_eq!(f.call(&[b"GET", keys[0].as_bytes()]), get_reply);
    assert_eq!(f.call(&[b"INCR", b"bench:counter"]), b":1\r\n");
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().map(|k| k.as_bytes()));
    let mget_reply = f.call(&mget);
    assert!(mget_reply.starts_with(b"*10\r\n$32\r\n"));
    assert_eq!(mget_reply.len(), 5 + 10 * get_reply.len());

    f.bench(c, "dispatch/get_hit", &[b"GET", keys[0].as_bytes()]);
    f.bench(c, "dispatch/set", &[b"SET", keys[1].as_bytes(), &value]);
    f.bench(c, "dispatch/incr", &[b"INCR", b"bench:counter"]);
    f.bench(c, "dispatch/mget_10", &mget);

    // Every timed call ran as a command, none was rejected.
    assert_eq!(
        f.stats
            .error_replies
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = dispatch
}
criterion_main!(benches);

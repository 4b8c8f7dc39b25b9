//! What the fuzz targets run, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`), so every saved input is checked by plain
//! `cargo test` as well.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use ferrocache::client::{ClientHandle, ClientState};
use ferrocache::cmd::dispatch::execute;
use ferrocache::cmd::{Args, OwnedArgs};
use ferrocache::config::Config;
use ferrocache::protocol::{Decoded, Decoder};
use ferrocache::server::Server;
use ferrocache::stats::WorkerStats;

/// The commands a byte stream decodes to, fed as the connection feeds
/// the decoder: appended to one buffer in reads of the given sizes, the
/// consumed prefix dropped after each read. Stops at a protocol error
/// (which the connection answers and closes on).
fn decode_stream(
    data: &[u8],
    read_sizes: &mut dyn Iterator<Item = usize>,
) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut decoder = Decoder::new(1 << 20);
    let mut rbuf = BytesMut::new();
    let mut commands = Vec::new();
    let mut fed = 0;
    while fed < data.len() {
        let n = read_sizes
            .next()
            .unwrap_or(data.len())
            .clamp(1, data.len() - fed);
        rbuf.extend_from_slice(&data[fed..fed + n]);
        fed += n;
        loop {
            match decoder.decode(&rbuf) {
                Ok(Decoded::Command { start, .. }) => {
                    let base = decoder.arg_base(&rbuf, start);
                    let args = Args::new(base, decoder.args());
                    assert!(!args.is_empty(), "a command has a name");
                    commands.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(Decoded::Skip { .. }) => {}
                Ok(Decoded::Incomplete) => break,
                Err(_) => return (commands, true),
            }
        }
        let keep = decoder.keep_from();
        assert!(keep <= rbuf.len());
        bytes::Buf::advance(&mut rbuf, keep);
        decoder.consumed(keep);
    }
    (commands, false)
}

/// Decoder target: any byte stream, split into reads any way, decodes to
/// the same commands as in one read, without panicking.
pub fn decode_input(data: &[u8]) {
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_stream(stream, &mut std::iter::empty());
    // Read sizes from a small generator seeded by the first byte.
    let mut x = split_seed as u32 | 1;
    let mut sizes = std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        Some((x % 17) as usize + 1)
    });
    let chunked = decode_stream(stream, &mut sizes);
    assert_eq!(
        whole, chunked,
        "decoding depends on how reads split the input"
    );
}

/// Command execution target: the input is commands, one per line, with
/// space-separated arguments; each runs through the dispatcher of a fresh
/// server with an all-permissive default user.
pub fn execute_input(data: &[u8]) {
    let srv = Server::new(Config::new(&[]).expect("default config"), None);
    let addr: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    let laddr: SocketAddr = "127.0.0.1:6379".parse().expect("addr");
    // fd -1: the harness has no socket; kill/shutdown on it are no-ops.
    let handle = Arc::new(ClientHandle::new(srv.next_client_id(), addr, laddr, -1));
    let mut state = ClientState::new(handle, true);
    let stats = WorkerStats::default();
    let mut out = BytesMut::new();
    // The ACL registry is process-wide: undo what earlier inputs did to
    // the default user, or one `ACL SETUSER default -@all` would blunt
    // every later input.
    let reset = OwnedArgs::from_slices(&[
        b"ACL", b"SETUSER", b"default", b"reset", b"on", b"nopass", b"~*", b"&*", b"+@all",
    ]);
    execute(&srv, &mut state, &reset.args(), &mut out, &stats);
    for line in data.split(|&b| b == b'\n').take(32) {
        let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if parts.is_empty() || parts[0].is_empty() {
            continue;
        }
        let owned = OwnedArgs::from_slices(&parts);
        out.clear();
        let muted = state.reply_off || state.reply_skip;
        execute(&srv, &mut state, &owned.args(), &mut out, &stats);
        let silent_ok = muted || state.reply_off || state.reply_skip || state.close_after_reply;
        assert!(
            !out.is_empty() || silent_ok,
            "every command replies: {:?}",
            String::from_utf8_lossy(line)
        );
        if state.close_after_reply {
            break;
        }
    }
}

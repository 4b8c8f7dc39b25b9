//! Why ferrocache has its own request decoder instead of the
//! redis-protocol crate's.
//!
//! (a) Small pipelined commands: the common case must not be slower.
//! (b) One large command arriving in many reads: a stateless decoder has
//!     to re-parse the accumulated buffer from the start after every read
//!     until the frame is complete, which is quadratic in the command's
//!     size; ours resumes where it stopped, which is linear.
//!
//! Both sides are driven the way a connection drives them (see
//! src/connection.rs): append a read to the buffer, decode until
//! Incomplete, drop the consumed prefix.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ferrocache::protocol::{Decoded, Decoder};
use redis_protocol::resp2::decode::{decode_bytes_mut, decode_range};
use redis_protocol::resp2::types::{BytesFrame, RangeFrame};

const READ_SIZE: usize = 4096;

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes every complete command in `buf` with our decoder and returns
/// (commands, total argument bytes); touching the argument bytes is what
/// the dispatcher would do next, so neither side gets away with less.
fn ours_drain(dec: &mut Decoder, buf: &[u8]) -> (usize, usize) {
    let mut cmds = 0;
    let mut bytes = 0;
    loop {
        match dec.decode(buf).expect("valid input") {
            Decoded::Command { start, .. } => {
                let base = dec.arg_base(buf, start);
                cmds += 1;
                bytes += dec
                    .args()
                    .iter()
                    .map(|r| base[r.clone()].len())
                    .sum::<usize>();
            }
            Decoded::Skip { .. } => {}
            Decoded::Incomplete => return (cmds, bytes),
        }
    }
}

fn range_frame_bytes(f: &RangeFrame) -> usize {
    match f {
        RangeFrame::Array(v) => v.iter().map(range_frame_bytes).sum(),
        RangeFrame::BulkString(r) => r.1 - r.0,
        _ => 0,
    }
}

fn bytes_frame_bytes(f: &BytesFrame) -> usize {
    match f {
        BytesFrame::Array(v) => v.iter().map(bytes_frame_bytes).sum(),
        BytesFrame::BulkString(b) => b.len(),
        _ => 0,
    }
}

/// (a) 16 pipelined `GET key:000123`-style commands in one read buffer.
fn pipelined_gets(c: &mut Criterion) {
    let mut input = Vec::new();
    for i in 0..16 {
        let key = format!("key:{:06}", 123 + i);
        encode(&[b"GET", key.as_bytes()], &mut input);
    }
    let expected = (16, 16 * (3 + 10));

    // Both sides must agree on what is in the buffer before we time them.
    let mut dec = Decoder::default();
    assert_eq!(ours_drain(&mut dec, &input), expected);
    let keep = dec.keep_from();
    dec.consumed(keep);
    let mut probe = BytesMut::from(&input[..]);
    let mut n = 0;
    while let Some((f, _, _)) = decode_bytes_mut(&mut probe).unwrap() {
        assert_eq!(bytes_frame_bytes(&f), 13);
        n += 1;
    }
    assert_eq!(n, 16);

    let mut g = c.benchmark_group("decoder/pipelined_16_get");
    g.throughput(Throughput::Bytes(input.len() as u64))
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);

    g.bench_function("ferrocache", |b| {
        b.iter(|| {
            let r = ours_drain(&mut dec, black_box(&input));
            // Connection-style: the whole buffer was consumed.
            let keep = dec.keep_from();
            dec.consumed(keep);
            r
        })
    });

    // The zero-copy core of the crate, without building `Bytes` frames: the
    // fairest comparison of parsing alone.
    g.bench_function("redis_protocol_decode_range", |b| {
        b.iter(|| {
            let buf = black_box(&input[..]);
            let mut off = 0;
            let mut bytes = 0;
            while let Some((f, amt)) = decode_range(&buf[off..]).unwrap() {
                bytes += range_frame_bytes(&f);
                off += amt;
            }
            bytes
        })
    });

    // What a tokio-util codec built on the crate does: split each frame
    // off the BytesMut as `Bytes` views. Cloning the input is setup.
    g.bench_function("redis_protocol_decode_bytes_mut", |b| {
        let src = BytesMut::from(&input[..]);
        b.iter_batched_ref(
            || src.clone(),
            |buf| {
                let mut bytes = 0;
                while let Some((f, _, _)) = decode_bytes_mut(buf).unwrap() {
                    bytes += bytes_frame_bytes(&f);
                }
                bytes
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// (b) One MSET of 50,000 pairs (10-byte keys, 25-byte values) arriving
/// in 4 KiB reads.
fn large_mset_in_reads(c: &mut Criterion) {
    const PAIRS: usize = 50_000;
    let keys: Vec<String> = (0..PAIRS).map(|i| format!("key:{i:06}")).collect();
    let vals: Vec<String> = (0..PAIRS)
        .map(|i| format!("value:{i:06}:abcdefghijkl"))
        .collect();
    assert_eq!(keys[0].len(), 10);
    assert_eq!(vals[0].len(), 25);
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in keys.iter().zip(&vals) {
        args.push(k.as_bytes());
        args.push(v.as_bytes());
    }
    let mut input = Vec::new();
    encode(&args, &mut input);
    let nargs = 1 + 2 * PAIRS;
    let arg_bytes = 4 + PAIRS * 35;

    // Returns (argument count, argument bytes) of the command, once complete.
    let ours = |input: &[u8]| {
        let mut rbuf = BytesMut::with_capacity(READ_SIZE);
        let mut dec = Decoder::default();
        let mut got = (0, 0);
        for read in input.chunks(READ_SIZE) {
            rbuf.extend_from_slice(read);
            loop {
                match dec.decode(&rbuf).expect("valid input") {
                    Decoded::Command { start, .. } => {
                        let base = &rbuf[start..];
                        let bytes = dec.args().iter().map(|r| base[r.clone()].len()).sum();
                        got = (dec.args().len(), bytes);
                    }
                    Decoded::Skip { .. } => {}
                    Decoded::Incomplete => break,
                }
            }
            let keep = dec.keep_from();
            rbuf.advance(keep);
            dec.consumed(keep);
        }
        got
    };
    // A stateless decoder can only be asked "is there a whole frame in
    // this buffer?", so every read re-parses everything received so far.
    let stateless_bytes_mut = |input: &[u8]| {
        let mut rbuf = BytesMut::with_capacity(READ_SIZE);
        let mut got = (0, 0);
        for read in input.chunks(READ_SIZE) {
            rbuf.extend_from_slice(read);
            while let Some((f, _, _)) = decode_bytes_mut(&mut rbuf).unwrap() {
                if let BytesFrame::Array(v) = &f {
                    got = (v.len(), bytes_frame_bytes(&f));
                }
            }
        }
        got
    };
    let stateless_range = |input: &[u8]| {
        let mut rbuf = BytesMut::with_capacity(READ_SIZE);
        let mut got = (0, 0);
        for read in input.chunks(READ_SIZE) {
            rbuf.extend_from_slice(read);
            while let Some((f, amt)) = decode_range(&rbuf).unwrap() {
                if let RangeFrame::Array(v) = &f {
                    got = (v.len(), range_frame_bytes(&f));
                }
                rbuf.advance(amt);
            }
        }
        got
    };
    assert_eq!(ours(&input), (nargs, arg_bytes));
    assert_eq!(stateless_bytes_mut(&input), (nargs, arg_bytes));
    assert_eq!(stateless_range(&input), (nargs, arg_bytes));

    let mut g = c.benchmark_group(format!(
        "decoder/mset_{PAIRS}_pairs_{}_bytes_in_4k_reads",
        input.len()
    ));
    g.throughput(Throughput::Bytes(input.len() as u64))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    g.bench_function("ferrocache", |b| b.iter(|| ours(black_box(&input))));
    // Each iteration of these takes hundreds of ms: fewer samples, and
    // criterion's "unable to complete in time" notice is expected.
    g.sample_size(10);
    g.bench_function("redis_protocol_decode_bytes_mut", |b| {
        b.iter(|| stateless_bytes_mut(black_box(&input)))
    });
    g.bench_function("redis_protocol_decode_range", |b| {
        b.iter(|| stateless_range(black_box(&input)))
    });
    g.finish();
}

criterion_group!(benches, pipelined_gets, large_mset_in_reads);
criterion_main!(benches);

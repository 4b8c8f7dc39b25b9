//! Cost of the keyspace operations every command is built on, on a small
//! table (fits in cache) and a large one (every lookup misses the cache).
//!
//! Operations that change the table (insert, remove, expire_sample) run in
//! timed chunks, with the table restored between chunks outside the
//! timing, so every measured operation sees a table of the stated size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use ferrocache::store::{Db, Entry, Rng, Value};

/// A fixed clock: the expiry tests place TTLs around it.
const NOW: u64 = 1_700_000_000_000;
const SIZES: [usize; 2] = [1_000, 1_000_000];
/// Operations per timed chunk for the mutating benchmarks: small against
/// the table, large against the cost of reading the clock.
const CHUNK: usize = 1_000;
const VALUE: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// 16-byte keys, e.g. `key:000000000042`.
fn key(prefix: &str, i: usize) -> [u8; 16] {
    let s = format!("{prefix}:{i:012}");
    s.as_bytes().try_into().expect("16-byte key")
}

fn value() -> Value {
    // A fresh allocation per value, as SET's copy from the read buffer.
    Value::Str(Bytes::copy_from_slice(VALUE))
}

fn build(n: usize) -> (Db, Vec<[u8; 16]>) {
    let keys: Vec<[u8; 16]> = (0..n).map(|i| key("key", i)).collect();
    let mut db = Db::default();
    for k in &keys {
        db.insert(k, Entry::new(value(), 0, NOW));
    }
    assert_eq!(db.len(), n);
    (db, keys)
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
}

fn bench_db(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    configure(&mut g);
    for n in SIZES {
        // One table per size, built once; only the 1M one is big.
        let (mut db, keys) = build(n);
        let mut rng = Rng::new(0x5eed);

        // Mutating benchmarks change at most a tenth of the table per chunk.
        let chunk = CHUNK.min(n / 10);

        // Keys not in the table; inserted, timed, then removed untimed.
        let fresh: Vec<[u8; 16]> = (0..chunk).map(|i| key("new", i)).collect();
        g.bench_function(format!("insert_new/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let batch = &fresh[..left.min(chunk)];
                    let t = Instant::now();
                    for k in batch {
                        db.insert(black_box(k), Entry::new(value(), 0, NOW));
                    }
                    total += t.elapsed();
                    for k in batch {
                        db.remove(k);
                    }
                    left -= batch.len();
                }
                assert_eq!(db.len(), n);
                total
            })
        });

        g.bench_function(format!("get_hit/{n}"), |b| {
            b.iter(|| {
                let k = &keys[rng.below(n)];
                db.get_read(black_box(k), NOW).map(|e| e.expire_at)
            })
        });

        let misses: Vec<[u8; 16]> = (0..n.min(1 << 16)).map(|i| key("mis", i)).collect();
        g.bench_function(format!("get_miss/{n}"), |b| {
            b.iter(|| {
                let k = &misses[rng.below(misses.len())];
                db.get_read(black_box(k), NOW).is_some()
            })
        });

        // Existing keys in a shuffled order, a window at a time: removed
        // timed, reinserted untimed.
        let mut order = keys.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut next = 0;
        g.bench_function(format!("remove/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let len = left.min(chunk).min(n - next);
                    let victims = &order[next..next + len];
                    next = (next + len) % n;
                    let t = Instant::now();
                    for k in victims {
                        black_box(db.remove(black_box(k)));
                    }
                    total += t.elapsed();
                    for k in victims {
                        db.insert(k, Entry::new(value(), 0, NOW));
                    }
                    left -= len;
                }
                assert_eq!(db.len(), n);
                total
            })
        });

        g.bench_function(format!("random_key/{n}"), |b| {
            b.iter(|| db.random_key(&mut rng, NOW))
        });
        drop(db);

        // Every key has a TTL and a quarter of them are past it. Each
        // expired key the sampler deletes is replaced, untimed, by a fresh
        // expired key, so the table keeps its size and its 25%.
        let mut db = Db::default();
        for i in 0..n {
            let expire_at = if i % 4 == 0 {
                NOW - 1_000
            } else {
                NOW + 3_600_000
            };
            db.insert(&key("ttl", i), Entry::new(value(), expire_at, NOW));
        }
        assert_eq!(db.expires_len(), n);
        let mut refill = 0usize;
        // Redis samples 20 keys per loop of its active expiry cycle
        // (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
        g.bench_function(format!("expire_sample_20_of_25pct_expired/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    // About 5 deletions per call: keep the drift within a
                    // chunk to ~2% of the expired keys.
                    let calls = left.min((n / 10_000).clamp(1, 100));
                    let mut deleted = 0;
                    let t = Instant::now();
                    for _ in 0..calls {
                        deleted += black_box(db.expire_sample(&mut rng, 20, NOW)).1;
                    }
                    total += t.elapsed();
                    for _ in 0..deleted {
                        refill += 1;
                        db.insert(&key("rfl", refill), Entry::new(value(), NOW - 1_000, NOW));
                    }
                    left -= calls;
                }
                assert_eq!(db.len(), n);
                total
            })
        });
        // The sampler did find expired keys at the stated rate.
        assert!(refill > 0);
    }
    g.finish();
}

criterion_group!(benches, bench_db);
criterion_main!(benches);

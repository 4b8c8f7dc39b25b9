//! RDB persistence: SAVE, BGSAVE, the dump loaded at start, LASTSAVE.
//!
//! BGSAVE forks nothing: it takes the same point-in-time snapshot as a
//! full resync (replication/snapshot.rs) and writes the shard images to a
//! temporary file from a background thread, then renames it over
//! `dbfilename` in `dir` (the working directory), as Redis does.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::rdb;
use crate::server::Server;
use crate::util::now_ms;

static LAST_SAVE_SECS: AtomicU64 = AtomicU64::new(0);
static BGSAVE_RUNNING: AtomicBool = AtomicBool::new(false);
static LAST_BGSAVE_OK: AtomicBool = AtomicBool::new(true);
/// `dirty` at the last successful save (rdb_changes_since_last_save).
static DIRTY_AT_SAVE: AtomicU64 = AtomicU64::new(0);

pub fn last_save_secs(srv: &Server) -> u64 {
    match LAST_SAVE_SECS.load(Relaxed) {
        0 => srv.started_unix_ms / 1000,
        t => t,
    }
}

pub fn bgsave_in_progress() -> bool {
    BGSAVE_RUNNING.load(Relaxed)
}

pub fn last_bgsave_ok() -> bool {
    LAST_BGSAVE_OK.load(Relaxed)
}

pub fn changes_since_save(srv: &Server) -> u64 {
    srv.dirty.load(Relaxed) - DIRTY_AT_SAVE.load(Relaxed).min(srv.dirty.load(Relaxed))
}

/// The header, with the replication ID and offset the data corresponds
/// to when given (so a restarted replica can continue, PSYNC2), and the
/// databases' sizes.
fn header(srv: &Server, repl: Option<(&str, u64)>, db_sizes: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    rdb::write_header(
        &mut out,
        &rdb::HeaderInfo {
            ctime_secs: now_ms() / 1000,
            used_mem: srv.used_memory() as u64,
            repl,
            db_sizes,
        },
    );
    out
}

fn file_name(srv: &Server) -> String {
    srv.config
        .get("dbfilename")
        .unwrap_or_else(|| "dump.rdb".into())
}

/// Writes `parts` to a temporary file and renames it into place.
fn write_file(srv: &Server, parts: impl Iterator<Item = Vec<u8>>) -> std::io::Result<()> {
    let tmp = format!("temp-{}.rdb", std::process::id());
    let result = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for p in parts {
            f.write_all(&p)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file_name(srv))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn saved(dirty_then: u64) {
    LAST_SAVE_SECS.store(now_ms() / 1000, Relaxed);
    DIRTY_AT_SAVE.store(dirty_then, Relaxed);
}

/// SAVE: blocks every shard while it serializes, like Redis's SAVE
/// blocks the server.
pub fn save(srv: &Server) -> std::io::Result<()> {
    let dirty = srv.dirty.load(Relaxed);
    let now = now_ms();
    let applying = crate::replication::apply_guard();
    let guards: Vec<_> = (0..srv.store.len()).map(|i| srv.store.lock(i)).collect();
    // Dataset and offset read as one pair: nothing writes meanwhile.
    let repl = {
        let f = crate::replication::feed();
        f.active.then(|| (f.replid.clone(), f.offset))
    };
    let mut sizes = Vec::new();
    for g in &guards {
        rdb::add_db_sizes(&mut sizes, g);
    }
    let mut body = header(
        srv,
        repl.as_ref().map(|(id, off)| (id.as_str(), *off)),
        &sizes,
    );
    for g in &guards {
        rdb::write_shard(&mut body, g, now);
    }
    drop(guards);
    drop(applying);
    let mut crc = rdb::Crc64::new();
    crc.update(&body);
    rdb::write_trailer(&mut body, &mut crc);
    write_file(srv, std::iter::once(body))?;
    saved(dirty);
    Ok(())
}

/// DEBUG RELOAD, with every shard locked: saves the dataset to the dump
/// file, empties it and loads the file back (a round trip through the
/// RDB format).
pub fn reload(srv: &Server, locked: &mut crate::cmd::Locked<'_>, now: u64) -> Result<(), String> {
    let dirty = srv.dirty.load(Relaxed);
    let mut sizes = Vec::new();
    locked.for_each_indexed(|_, shard| rdb::add_db_sizes(&mut sizes, shard));
    let mut body = header(srv, None, &sizes);
    for shard in locked.shards_mut() {
        rdb::write_shard(&mut body, shard, now);
    }
    let mut crc = rdb::Crc64::new();
    crc.update(&body);
    rdb::write_trailer(&mut body, &mut crc);
    write_file(srv, std::iter::once(body)).map_err(|e| e.to_string())?;
    saved(dirty);
    let data = std::fs::read(file_name(srv)).map_err(|e| e.to_string())?;
    replace_with_image(srv, locked, &data, now).map_err(|e| e.to_string())?;
    Ok(())
}

/// Empties every database of the locked shards (all of them) and loads
/// the image in their place, every key kept (DEBUG RELOAD, a replica's
/// full sync).
pub fn replace_with_image(
    srv: &Server,
    locked: &mut crate::cmd::Locked<'_>,
    data: &[u8],
    now: u64,
) -> Result<rdb::LoadInfo, rdb::RdbError> {
    // A WATCHed key that the image drops or replaces fails its watcher's
    // EXEC, as after FLUSHALL (Redis's emptyData signals the flush); one
    // that the image brings into being does too, as Redis's swapdb load
    // does.
    for shard in locked.shards_mut() {
        shard.touch_watched_existing();
        for db in shard.dbs.iter_mut() {
            db.clear();
        }
    }
    let info = load_image(srv, locked, data, now, |_| true)?;
    for shard in locked.shards_mut() {
        shard.touch_watched_existing();
    }
    Ok(info)
}

/// The room each of `shards` reserves for a database of `keys` keys:
/// keys spread over the shards by slot, so a little over an even share
/// (a shard that gets more grows as usual).
fn shard_share(keys: usize, shards: usize) -> usize {
    let per = keys.div_ceil(shards);
    per + per / 32
}

/// Loads an RDB image into the locked shards (all of them), inserting
/// each key as it is parsed. Each database's tables are sized from the
/// image's RESIZEDB first, as Redis sizes its dicts, so the load never
/// grows a table on the way (a growth rehashes every key so far: without
/// the sizing a replica's full sync of 1M keys took about twice the CPU).
/// `keep` drops entries (a primary skips keys already expired).
pub fn load_image(
    srv: &Server,
    locked: &mut crate::cmd::Locked<'_>,
    data: &[u8],
    now: u64,
    keep: impl Fn(&crate::store::Entry) -> bool,
) -> Result<rdb::LoadInfo, rdb::RdbError> {
    let dbs = srv.databases();
    let shards = srv.store.len();
    let info = rdb::load(data, now, |item| match item {
        rdb::Loaded::Sized { db, keys, expires } if db < dbs => {
            // A size for the whole database: room for that many in all (a
            // file may give a database's size more than once).
            for shard in locked.shards_mut() {
                shard.dbs[db].reserve_for(shard_share(keys, shards), shard_share(expires, shards));
            }
        }
        rdb::Loaded::Key { db, key, entry } if db < dbs && keep(&entry) => {
            locked.shard_mut(srv.store.shard_of(&key)).dbs[db].insert(&key, entry);
        }
        _ => {}
    })?;
    locked.for_each_indexed(|_, shard| shard.refresh_mem());
    Ok(info)
}

/// BGSAVE: snapshot without stopping the world, written by a thread.
pub fn bgsave(srv: &Arc<Server>) -> Result<(), String> {
    if BGSAVE_RUNNING.swap(true, Relaxed) {
        return Err("ERR Background save already in progress".into());
    }
    let dirty = srv.dirty.load(Relaxed);
    let Some((job, mut images)) = crate::replication::snapshot::start(
        srv,
        now_ms(),
        crate::replication::snapshot::Walker::Thread,
        || {},
    ) else {
        BGSAVE_RUNNING.store(false, Relaxed);
        return Err("ERR Background save already in progress".into());
    };
    let srv = srv.clone();
    std::thread::Builder::new()
        .name("bgsave".into())
        .spawn(move || {
            let result = write_snapshot_file(&srv, &job, &mut images);
            drop(images);
            let ok = result.is_ok();
            match result {
                Ok(()) => {
                    saved(dirty);
                    tracing::info!("Background saving terminated with success");
                }
                Err(e) => tracing::warn!("Background saving error: {e}"),
            }
            LAST_BGSAVE_OK.store(ok, Relaxed);
            BGSAVE_RUNNING.store(false, Relaxed);
        })
        .map_err(|e| format!("ERR {e}"))?;
    Ok(())
}

fn write_snapshot_file(
    srv: &Server,
    job: &crate::replication::snapshot::Job,
    images: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    let tmp = format!("temp-bg-{}.rdb", std::process::id());
    let result = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut crc = rdb::Crc64::new();
        let head = header(srv, None, &job.db_sizes);
        crc.update(&head);
        f.write_all(&head)?;
        while let Some(img) = images.blocking_recv() {
            job.consumed();
            crc.update(&img);
            f.write_all(&img)?;
        }
        let mut tail = Vec::new();
        rdb::write_trailer(&mut tail, &mut crc);
        f.write_all(&tail)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file_name(srv))
    })();
    if result.is_err() {
        job.abandon();
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Loads `dir/dbfilename` at start if it exists. Keys already expired
/// are dropped, as a primary does when loading.
pub fn load_at_start(srv: &Server) -> Result<(), String> {
    let name = file_name(srv);
    let data = match std::fs::read(&name) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("Fatal error loading the DB: {e}. Exiting.")),
    };
    let started = std::time::Instant::now();
    let now = now_ms();
    // A replica keeps expired keys: its primary's DELs remove them.
    let replica = srv.config.get("replicaof").is_some_and(|m| !m.is_empty());
    let mut locked = crate::cmd::Locked::all(srv);
    let info = load_image(srv, &mut locked, &data, now, |entry| {
        replica || !entry.is_expired(now)
    })
    .map_err(|e| format!("Fatal error loading the DB: {e}. Exiting."))?;
    drop(locked);
    if replica && let (Some(id), Some(offset)) = (&info.repl_id, info.repl_offset) {
        // The history this data belongs to: the replica asks its primary
        // to continue from there. (Redis also restores it on a primary;
        // here a primary starts without a backlog, so that writes cost
        // nothing until a replica connects.)
        crate::replication::feed().reset_to(id, offset);
        tracing::info!("Restored replication ID and offset from the RDB: {id} {offset}");
    }
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({} keys read)",
        started.elapsed().as_secs_f64(),
        info.keys
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Locked;
    use crate::config::Config;
    use crate::store::{Db, Entry, Value};
    use bytes::Bytes;

    /// A load sizes each shard's tables from the image's RESIZEDB before
    /// the keys come: after it, each shard has the arrays that sizing
    /// gives, not the larger ones that growing key by key reached.
    #[test]
    fn a_load_sizes_the_tables_from_the_image_first() {
        const SHARDS: usize = 3;
        // About 8,100 keys a shard, just past a growth of the key table
        // (7,996 fit the array before it): grown, it is 70% full.
        const KEYS: usize = 24_300;
        let config = Config::new(&[("shards".into(), SHARDS.to_string())]).unwrap();
        let srv = Server::new(config, None);
        let now = 1;
        let mut locked = Locked::all(&srv);
        // The same count in every shard, a third of them with a TTL (a
        // real keyspace spreads only about evenly; a shard over its share
        // grows as usual).
        let mut per_shard = [0; SHARDS];
        for i in 0.. {
            let key = format!("key:{i}");
            let shard = srv.store.shard_of(key.as_bytes());
            if per_shard[shard] == KEYS / SHARDS {
                if per_shard.iter().all(|&n| n == KEYS / SHARDS) {
                    break;
                }
                continue;
            }
            let expire_at = if per_shard[shard] % 3 == 0 {
                u64::MAX / 2
            } else {
                0
            };
            per_shard[shard] += 1;
            let e = Entry::new(Value::Str(Bytes::from_static(b"v")), expire_at, now);
            locked.shard_mut(shard).dbs[0].insert(key.as_bytes(), e);
        }
        let grown: Vec<_> = (0..SHARDS)
            .map(|i| locked.shard_mut(i).dbs[0].slot_counts())
            .collect();
        let mut sizes = Vec::new();
        locked.for_each_indexed(|_, shard| rdb::add_db_sizes(&mut sizes, shard));
        let mut image = header(&srv, None, &sizes);
        for shard in locked.shards_mut() {
            rdb::write_shard(&mut image, shard, now);
        }
        let mut crc = rdb::Crc64::new();
        crc.update(&image);
        rdb::write_trailer(&mut image, &mut crc);

        let info = replace_with_image(&srv, &mut locked, &image, now).unwrap();
        assert_eq!(info.keys, KEYS as u64);
        let mut sized = Db::default();
        sized.reserve_for(shard_share(KEYS, SHARDS), shard_share(KEYS / 3, SHARDS));
        for (i, grown) in grown.into_iter().enumerate() {
            let db = &locked.shard_mut(i).dbs[0];
            assert_eq!(
                (db.len(), db.expires_len()),
                (KEYS / SHARDS, KEYS / SHARDS / 3)
            );
            assert_eq!(db.slot_counts(), sized.slot_counts(), "shard {i}");
            assert!(db.slot_counts().0 < grown.0, "shard {i}: {grown:?}");
        }
    }
}

//! Replication hooks.
//!
//! Every effective write reaches `propagate` (from the dispatcher, after a
//! write command changed the dataset) and every key deleted by expiry
//! reaches `propagate_expired`. The replication issue fills these in with
//! the backlog and replica streams; until then they do nothing and cost
//! nothing.

/// A write command that changed the dataset of database `db`.
#[inline(always)]
pub fn propagate(_db: usize, _argv: &crate::cmd::Args<'_>) {}

/// A key deleted because it expired (lazily or by the active cycle); a
/// primary sends replicas `DEL key` for it.
#[inline(always)]
pub fn propagate_expired(_key: &[u8]) {}

/// A transaction starts: replicas receive MULTI ... EXEC around its
/// writes so they apply it atomically.
#[inline(always)]
pub fn propagate_multi() {}

#[inline(always)]
pub fn propagate_exec() {}

/// A key evicted under maxmemory; a primary sends replicas `DEL key`.
#[inline(always)]
pub fn propagate_evicted(_db: usize, _key: &[u8]) {}

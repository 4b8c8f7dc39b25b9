//! ferrocache: a Redis-protocol-compatible cache server.
//!
//! See docs/architecture.md for the path of a command through these
//! modules.

pub mod acl;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod eviction;
pub mod expire;
pub mod flush;
pub mod limits;
pub mod memory;
pub mod outbuf;
pub mod persistence;
pub mod protocol;
pub mod rdb;
pub mod replication;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;
pub mod util;

/// The Redis version whose behaviour we implement, reported as
/// `redis_version` so clients enable the features they would with it.
pub const REDIS_VERSION: &str = "7.0.15";

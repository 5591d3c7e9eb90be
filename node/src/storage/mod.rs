//! Durable Raft state: the log, the vote and the log pointers, behind openraft's
//! `RaftLogStorage`/`RaftLogReader` traits.
//!
//! Two implementations of the same traits, so the store is chosen when a node starts:
//! - [`RocksLogStore`] (feature `rocksdb`): production. One fsync per append batch.
//! - [`MemLogStore`]: tests and the deterministic simulation, which must not do real I/O.
//!
//! The keyspace itself is not stored here: it lives in memory and is persisted by snapshots,
//! which the state machine adapter in [`crate::raft`] writes as files.

mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemLogStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksLogStore;

//! Durable Raft state: the log, the vote and the log pointers, behind openraft's
//! `RaftLogStorage`/`RaftLogReader` traits.
//!
//! Two implementations of the same traits, so the store is chosen when a node starts
//! ([`Stores`]):
//! - [`RocksLogStore`] (feature `rocksdb`): production. One fsync per append batch.
//! - [`MemLogStore`]: tests and the deterministic simulation, which must not do real I/O. As a
//!   simulated disk ([`MemLogStore::disk`]) it loses unsynced writes on a simulated crash.
//!
//! The keyspace itself is not stored here: it lives in memory and is persisted by snapshots,
//! which the state machine adapter in [`crate::raft`] writes as files.

mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemLogStore;
#[cfg(feature = "rocksdb")]
pub use rocks::{AppendSync, RocksLogStore};

use crate::keyspace::SharedKeyspace;
use crate::raft::{self, RaftError, RaftHandle, RaftSettings, SnapshotStore};

/// Where a node keeps its Raft log, vote and snapshots; chosen when it starts.
#[derive(Debug, Clone)]
pub enum Stores {
    /// RocksDB and snapshot files under the configured data directory (the `cellkv` binary).
    Dir,
    /// In memory, kept by the caller across restarts of the node: the simulation's disk.
    Memory {
        /// The Raft log and vote.
        log: MemLogStore,
        /// The snapshots (saving one counts as durable at once, like the fsynced rename of a
        /// snapshot file).
        snapshots: SnapshotStore,
    },
}

impl Stores {
    /// Starts the node's Raft on these stores.
    pub async fn start_raft(
        self,
        settings: RaftSettings,
        keyspace: SharedKeyspace,
    ) -> Result<RaftHandle, RaftError> {
        match self {
            Stores::Dir => raft::start(settings, keyspace).await,
            Stores::Memory { log, snapshots } => {
                raft::start_with_stores(settings, keyspace, log, snapshots).await
            }
        }
    }
}

/// The log id of entry `index` in term 1 of leader 1, for the stores' unit tests.
#[cfg(test)]
pub(crate) fn test_log_id(index: u64) -> raft::LogId {
    raft::LogId::new(
        openraft::vote::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

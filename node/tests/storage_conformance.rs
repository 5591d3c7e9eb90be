//! openraft's storage conformance suite (`openraft::testing::log::Suite`) against both log
//! stores, each paired with the keyspace state machine: the in-memory store with in-memory
//! snapshots, and RocksDB with snapshot files, each in a fresh temporary directory.

use std::sync::Arc;

use cellkv_node::keyspace::Keyspace;
use cellkv_node::raft::state_machine::KeyspaceStateMachine;
use cellkv_node::raft::{SnapshotStore, TypeConfig};
use cellkv_node::storage::MemLogStore;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;

fn state_machine(
    snapshots: SnapshotStore,
) -> Result<KeyspaceStateMachine, StorageError<TypeConfig>> {
    let keyspace = Arc::new(parking_lot::RwLock::new(Keyspace::new()));
    KeyspaceStateMachine::open(keyspace, snapshots, None)
        .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, MemLogStore, KeyspaceStateMachine> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<((), MemLogStore, KeyspaceStateMachine), StorageError<TypeConfig>> {
        Ok((
            (),
            MemLogStore::new(),
            state_machine(SnapshotStore::memory())?,
        ))
    }
}

#[tokio::test]
async fn memory_store_conformance() {
    Suite::test_all(MemBuilder)
        .await
        .expect("memory store conformance");
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use cellkv_node::storage::{AppendSync, RocksLogStore};
    use tempfile::TempDir;

    use super::*;

    /// Builds RocksDB stores that sync their appends as the field says.
    struct RocksBuilder(AppendSync);

    impl StoreBuilder<TypeConfig, RocksLogStore, KeyspaceStateMachine, TempDir> for RocksBuilder {
        async fn build(
            &self,
        ) -> Result<(TempDir, RocksLogStore, KeyspaceStateMachine), StorageError<TypeConfig>>
        {
            let to_storage = |e: std::io::Error| StorageError::read(TypeConfig::err_from_error(&e));
            let dir = tempfile::tempdir().map_err(to_storage)?;
            let log =
                RocksLogStore::open_with(dir.path().join("raft"), self.0).map_err(to_storage)?;
            let snapshots = SnapshotStore::dir(dir.path().join("snapshots")).map_err(to_storage)?;
            Ok((dir, log, state_machine(snapshots)?))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rocksdb_store_conformance() {
        Suite::test_all(RocksBuilder(AppendSync::OnCaller))
            .await
            .expect("rocksdb store conformance");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rocksdb_store_with_a_sync_thread_conformance() {
        Suite::test_all(RocksBuilder(AppendSync::OnSyncThread))
            .await
            .expect("rocksdb store (sync thread) conformance");
    }
}

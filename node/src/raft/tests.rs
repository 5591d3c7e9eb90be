//! Single-node Raft tests: leadership, writes, snapshots and purging, restart without
//! re-initialization, on the memory store and on RocksDB. The keyspace is observed only
//! through Raft's pointers (applied, snapshot, purged) and the snapshot files.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::keyspace::Keyspace;
use crate::storage::MemLogStore;

const WAIT: Duration = Duration::from_secs(10);

fn settings(
    dir: &std::path::Path,
    snapshot_entries: u64,
    snapshot_interval: Duration,
) -> RaftSettings {
    RaftSettings {
        node_id: 1,
        dir: dir.to_path_buf(),
        raft_addr: "127.0.0.1:7001".to_string(),
        peers: BTreeMap::new(),
        cluster_name: "cellkv".to_string(),
        snapshot_entries,
        snapshot_interval,
        peer_tls: None,
        events: None,
    }
}

fn keyspace() -> SharedKeyspace {
    Arc::new(parking_lot::RwLock::new(Keyspace::new()))
}

fn set(i: u64) -> Request {
    Request {
        time_ms: 1_700_000_000_000 + i,
        op: Op::Command {
            db: 0,
            args: vec![
                Bytes::from_static(b"SET"),
                Bytes::from(format!("k{i}")),
                Bytes::from(format!("v{i}")),
            ],
        },
    }
}

/// Writes `n` requests concurrently (so openraft may batch them) and returns the highest
/// log index they were applied at.
async fn write_many(handle: &RaftHandle, from: u64, n: u64) -> u64 {
    let mut tasks = Vec::new();
    for i in from..from + n {
        let raft = handle.raft.clone();
        tasks.push(tokio::spawn(async move { raft.client_write(set(i)).await }));
    }
    let mut last = 0;
    for task in tasks {
        let resp = task.await.expect("join").expect("client_write");
        last = last.max(resp.log_id.index);
    }
    last
}

async fn wait_metrics(
    handle: &RaftHandle,
    what: &str,
    f: impl Fn(&RaftMetrics) -> bool + Send,
) -> RaftMetrics {
    handle
        .raft
        .wait(Some(WAIT))
        .metrics(f, what)
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}; metrics: {:?}", handle.metrics()))
}

fn applied(handle: &RaftHandle) -> u64 {
    handle.metrics().last_applied.map_or(0, |id| id.index)
}

fn membership_log_id(handle: &RaftHandle) -> Option<LogId> {
    *handle.metrics().membership_config.log_id()
}

#[tokio::test]
async fn memory_node_writes_snapshots_purges_and_restarts() {
    let log = MemLogStore::new();
    let snapshots = SnapshotStore::memory();
    let dir = std::path::Path::new("/nonexistent");

    let node = start_with_stores(
        settings(dir, 50, Duration::ZERO),
        keyspace(),
        log.clone(),
        snapshots.clone(),
    )
    .await
    .expect("start");
    node.wait_leader(WAIT).await.expect("leader");
    let members_at = membership_log_id(&node).expect("initialized");

    let last = write_many(&node, 0, 200).await;
    assert!(
        last >= 200,
        "200 writes after the initial entries, got last index {last}"
    );
    let read = node
        .raft
        .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
        .await
        .expect("read index on a one-member cell");
    assert!(
        read.index() >= last,
        "the read index covers acknowledged writes"
    );
    assert!(
        applied(&node) >= last,
        "and the state machine has applied it"
    );
    let m = wait_metrics(&node, "snapshot and purge", |m| {
        m.snapshot.is_some_and(|s| s.index >= 150) && m.purged.is_some()
    })
    .await;
    let purged = m.purged.expect("purged").index;
    assert!(
        log.first_index().expect("log not empty") > purged,
        "purged entries are gone"
    );
    assert!(node.snapshot_stats().built() >= 1);
    assert!(node.snapshot_stats().last_index().is_some());
    node.shutdown().await.expect("shutdown");

    // Restart on the same "disk".
    let node = start_with_stores(
        settings(dir, 50, Duration::ZERO),
        keyspace(),
        log.clone(),
        snapshots,
    )
    .await
    .expect("restart");
    node.wait_leader(WAIT).await.expect("leader again");
    let m = wait_metrics(&node, "applied past the old tail", |m| {
        m.last_applied.is_some_and(|a| a.index > last)
    })
    .await;
    assert_eq!(
        membership_log_id(&node),
        Some(members_at),
        "not initialized again"
    );
    assert!(
        m.vote.leader_id.term >= 2,
        "a restart elects itself in a new term"
    );
    let more = write_many(&node, 1000, 10).await;
    assert!(more > last);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn snapshot_timer_snapshots_a_quiet_node() {
    let node = start_with_stores(
        settings(
            std::path::Path::new("/nonexistent"),
            1_000_000,
            Duration::from_millis(100),
        ),
        keyspace(),
        MemLogStore::new(),
        SnapshotStore::memory(),
    )
    .await
    .expect("start");
    node.wait_leader(WAIT).await.expect("leader");
    let last = write_many(&node, 0, 5).await;
    wait_metrics(&node, "timer snapshot", |m| {
        m.snapshot.is_some_and(|s| s.index >= last)
    })
    .await;
    node.shutdown().await.expect("shutdown");
}

#[cfg(feature = "rocksdb")]
#[tokio::test]
async fn rocksdb_node_keeps_state_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(settings(dir.path(), 20, Duration::ZERO), keyspace())
        .await
        .expect("start");
    node.wait_leader(WAIT).await.expect("leader");
    let members_at = membership_log_id(&node).expect("initialized");
    let last = write_many(&node, 0, 100).await;
    let m = wait_metrics(&node, "snapshot and purge", |m| {
        m.snapshot.is_some_and(|s| s.index >= 80) && m.purged.is_some()
    })
    .await;
    let snapshot_index = m.snapshot.expect("snapshot").index;
    node.shutdown().await.expect("shutdown");

    let files: Vec<String> = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshot dir")
        .map(|d| {
            d.expect("dirent")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files.len(),
        1,
        "only the newest snapshot is kept: {files:?}"
    );
    assert!(files[0].starts_with("snapshot-"), "{files:?}");

    // The previous node's tasks release the database asynchronously after shutdown.
    let mut attempt = 0;
    let node = loop {
        match start(settings(dir.path(), 20, Duration::ZERO), keyspace()).await {
            Ok(node) => break node,
            Err(RaftError::Storage(e)) if attempt < 100 => {
                attempt += 1;
                tracing::debug!("reopen: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    };
    assert!(
        node.snapshot_stats().last_index() >= Some(snapshot_index),
        "the snapshot was loaded at start"
    );
    node.wait_leader(WAIT).await.expect("leader again");
    wait_metrics(&node, "applied past the old tail", |m| {
        m.last_applied.is_some_and(|a| a.index > last)
    })
    .await;
    assert_eq!(
        membership_log_id(&node),
        Some(members_at),
        "not initialized again"
    );
    let more = write_many(&node, 1000, 5).await;
    assert!(more > last);
    node.shutdown().await.expect("shutdown");
}

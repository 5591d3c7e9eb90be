//! Three Raft nodes in one process, on memory stores, talking over the real gRPC network on
//! loopback: the cell forms by itself from the peers list, entries replicate, a new leader
//! takes over when the leader stops, the old leader catches up from the log when it comes
//! back, and a follower that was down while the log was purged catches up from a snapshot
//! streamed in several chunks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;
use crate::keyspace::Keyspace;
use crate::storage::MemLogStore;

const WAIT: Duration = Duration::from_secs(20);

/// One running member: its Raft, its gRPC server, and its "disk".
struct Member {
    handle: RaftHandle,
    keyspace: SharedKeyspace,
    stop_server: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_member(
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    listener: TcpListener,
    log: MemLogStore,
    snapshots: SnapshotStore,
) -> Member {
    let keyspace: SharedKeyspace = Arc::new(parking_lot::RwLock::new(Keyspace::new()));
    let settings = RaftSettings {
        node_id: id,
        dir: std::path::PathBuf::from("/nonexistent"),
        raft_addr: peers[&id].clone(),
        peers: peers.clone(),
        cluster_name: "test-cell".to_string(),
        snapshot_entries: 20,
        snapshot_interval: Duration::ZERO,
        peer_tls: None,
        events: None,
    };
    let handle = start_with_stores(settings, keyspace.clone(), log, snapshots)
        .await
        .expect("start");
    let (stop_server, stopped) = oneshot::channel::<()>();
    let service = handle.service().into_server();
    let server = tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    Member {
        handle,
        keyspace,
        stop_server,
        server,
    }
}

impl Member {
    async fn stop(self) {
        self.handle.shutdown().await.expect("raft shutdown");
        let _ = self.stop_server.send(());
        let _ = self.server.await;
    }

    fn applied(&self) -> u64 {
        self.handle.metrics().last_applied.map_or(0, |l| l.index)
    }
}

fn set(i: u64, value_len: usize) -> Request {
    Request {
        time_ms: 1_700_000_000_000 + i,
        op: Op::Command {
            db: 0,
            args: vec![
                Bytes::from_static(b"SET"),
                Bytes::from(format!("k{i}")),
                Bytes::from(vec![b'v'; value_len]),
            ],
        },
    }
}

/// The id of the leader all `members` agree on, other than `not` (a stopped leader that
/// followers remember until their election timeout).
async fn agreed_leader(members: &[&Member], not: Option<NodeId>) -> NodeId {
    let first = &members[0].handle;
    let m = first
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "a leader",
        )
        .await
        .expect("a leader is elected");
    let leader = m.current_leader.expect("leader");
    for member in members {
        member
            .handle
            .raft
            .wait(Some(WAIT))
            .current_leader(leader, "the same leader")
            .await
            .expect("every member knows the leader");
    }
    leader
}

/// Writes on the leader; a new leader refuses writes (nothing proposed) until it has heard
/// from a quorum, so those are retried.
async fn write_through(leader: &Member, from: u64, n: u64, value_len: usize) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        let mut attempts = 0;
        let resp = loop {
            match leader.handle.raft.client_write(set(i, value_len)).await {
                Ok(resp) => break resp,
                Err(openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ForwardToLeader(_),
                )) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("write on the leader: {e}"),
            }
        };
        last = last.max(resp.log_id.index);
    }
    last
}

async fn wait_applied(member: &Member, index: u64) {
    member
        .handle
        .raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "caught up")
        .await
        .unwrap_or_else(|e| panic!("node {} behind: {e}", member.handle.node_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_replicate_fail_over_and_catch_up_by_snapshot() {
    // RUST_LOG=info shows the cell forming and the snapshot travelling.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut listeners = BTreeMap::new();
    let mut peers = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        peers.insert(id, listener.local_addr().expect("addr").to_string());
        listeners.insert(id, listener);
    }
    let disks: BTreeMap<NodeId, (MemLogStore, SnapshotStore)> = (1..=3)
        .map(|id| (id, (MemLogStore::new(), SnapshotStore::memory())))
        .collect();
    let mut members = BTreeMap::new();
    // Highest id first: the pristine followers wait for node 1, which forms the cell.
    for id in (1..=3u64).rev() {
        let (log, snapshots) = disks[&id].clone();
        let listener = listeners.remove(&id).expect("listener");
        members.insert(id, start_member(id, &peers, listener, log, snapshots).await);
    }
    let all: Vec<&Member> = members.values().collect();
    let leader = agreed_leader(&all, None).await;
    for member in members.values() {
        let m = member
            .handle
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.membership_config.log_id().is_some(),
                "the membership arrives",
            )
            .await
            .expect("membership");
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        assert_eq!(voters, vec![1, 2, 3], "node {}", member.handle.node_id());
        assert_eq!(
            m.membership_config.log_id().map(|l| l.index),
            Some(0),
            "one membership entry, written by node 1 at index 0"
        );
    }

    let last = write_through(&members[&leader], 0, 30, 16).await;
    for member in members.values() {
        wait_applied(member, last).await;
        let keyspace = member.keyspace.read();
        assert_eq!(
            keyspace.db(0).map(|db| db.len()),
            Some(30),
            "node {} holds every key",
            member.handle.node_id()
        );
    }

    // The leader stops; the two others elect one of themselves and keep committing.
    let old = members.remove(&leader).expect("leader");
    old.stop().await;
    let rest: Vec<&Member> = members.values().collect();
    let new_leader = agreed_leader(&rest, Some(leader)).await;
    assert_ne!(new_leader, leader);
    let last = write_through(&members[&new_leader], 100, 10, 16).await;
    for member in members.values() {
        wait_applied(member, last).await;
    }

    // The old leader comes back on its own disk and catches up from the log; nothing is
    // initialized again.
    let listener = TcpListener::bind(&peers[&leader]).await.expect("rebind");
    let (log, snapshots) = disks[&leader].clone();
    let back = start_member(leader, &peers, listener, log, snapshots).await;
    wait_applied(&back, last).await;
    assert_eq!(
        back.handle
            .metrics()
            .membership_config
            .log_id()
            .map(|l| l.index),
        Some(0),
        "the restarted node keeps the first membership"
    );
    members.insert(leader, back);

    // A follower is down while 100 large writes go to the log, which is snapshotted and
    // purged past what the follower has, so it can only catch up from a snapshot of several
    // chunks (100 x 64 KiB against openraft's 3 MiB chunks).
    let follower = *members
        .keys()
        .find(|id| **id != new_leader)
        .expect("a follower");
    let behind = members.remove(&follower).expect("follower");
    let behind_last = behind.handle.metrics().last_log_index.unwrap_or(0);
    behind.stop().await;
    let last = write_through(&members[&new_leader], 200, 100, 64 * 1024).await;
    members[&new_leader]
        .handle
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > behind_last + 1),
            "the log is purged past the stopped follower",
        )
        .await
        .expect("purged");
    let listener = TcpListener::bind(&peers[&follower]).await.expect("rebind");
    let (log, snapshots) = disks[&follower].clone();
    let caught_up = start_member(follower, &peers, listener, log, snapshots).await;
    wait_applied(&caught_up, last).await;
    assert!(
        caught_up.handle.snapshot_stats().installed() >= 1,
        "caught up from a snapshot"
    );
    assert!(
        caught_up.handle.snapshot_stats().last_size() > 3 * 3 * 1024 * 1024 / 2,
        "the snapshot spanned several chunks: {} bytes",
        caught_up.handle.snapshot_stats().last_size()
    );
    assert_eq!(
        caught_up.keyspace.read().db(0).map(|db| db.len()),
        Some(140),
        "every key arrived"
    );
    assert!(caught_up.applied() >= last);
    caught_up.stop().await;
    for (_, member) in members {
        member.stop().await;
    }
}

/// The server side of a replication stream: requests are answered in order, and a refused
/// one (another cell's) is answered with its refusal after the answers to those before it,
/// and ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_stream_answers_in_order_and_ends_at_a_refusal() {
    use cellkv_proto::v1::raft_client::RaftClient;
    use cellkv_proto::v1::{RaftReply, RaftRequest};
    use futures_util::StreamExt;
    use openraft::raft::{AppendEntriesRequest, StreamAppendResult};

    let mut peers = BTreeMap::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    peers.insert(2, listener.local_addr().expect("addr").to_string());
    // Node 1 never starts: node 2 stays pristine and admits appends from it, a listed peer.
    peers.insert(1, "127.0.0.1:1".to_string());
    let node = start_member(
        2,
        &peers,
        listener,
        MemLogStore::new(),
        SnapshotStore::memory(),
    )
    .await;

    let request = |cluster: &str| {
        let heartbeat = AppendEntriesRequest::<TypeConfig> {
            vote: openraft::impls::Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        RaftRequest {
            payload: Bytes::from(grpc::encode(&heartbeat).expect("encodes")),
            from: 1,
            cluster: cluster.to_string(),
            to: 2,
        }
    };
    let sent = vec![
        request("test-cell"),
        request("test-cell"),
        request("other-cell"),
        request("test-cell"),
    ];
    let mut client = RaftClient::connect(format!("http://{}", peers[&2]))
        .await
        .expect("connects");
    let replies: Vec<RaftReply> = tokio::time::timeout(WAIT, async {
        let mut replies = client
            .append_stream(futures_util::stream::iter(sent))
            .await
            .expect("stream opened")
            .into_inner();
        let mut got = Vec::new();
        while let Some(reply) = replies.next().await {
            got.push(reply.expect("no transport error"));
        }
        got
    })
    .await
    .expect("the stream ends");
    assert_eq!(
        replies.len(),
        3,
        "two answers, the refusal, nothing after it: {replies:?}"
    );
    for reply in &replies[..2] {
        assert!(reply.error.is_empty(), "{reply:?}");
        let answer: StreamAppendResult<TypeConfig> =
            grpc::decode(&reply.payload).expect("an answer");
        assert!(answer.is_ok(), "the heartbeat is accepted: {answer:?}");
    }
    assert!(
        replies[2].error.contains("'other-cell'"),
        "{:?}",
        replies[2]
    );
    node.stop().await;
}

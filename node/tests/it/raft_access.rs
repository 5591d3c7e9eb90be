//! Only members speak Raft: a process that is not a member of the cell sends a node a vote
//! request and an append with a far higher term, and a forwarded write, under an id the cell
//! does not have; each is refused with `PermissionDenied` and logged, and the cell's term,
//! leader and data are as before. The same vote under a member's id is answered.

use std::time::Duration;

use bytes::Bytes;
use cellkv_node::raft::{grpc, TypeConfig, Vote};
use cellkv_proto::v1::forward_client::ForwardClient;
use cellkv_proto::v1::raft_client::RaftClient;
use cellkv_proto::v1::{ForwardRequest, RaftRequest};
use redis::Value;

use crate::cluster::Cell;
use crate::harness::{info_field, must_cmd};

/// The id the rogue claims: the cell has members 1 to 3 only.
const ROGUE: u64 = 99;

fn raft_request<T: serde::Serialize>(rpc: &T, from: u64, to: u64) -> RaftRequest {
    RaftRequest {
        payload: Bytes::from(grpc::encode(rpc).expect("encode")),
        from,
        cluster: "cellkv".into(),
        to,
    }
}

fn term(cell: &Cell, id: u64) -> u64 {
    let mut con = cell.con(id);
    info_field(&mut con, "raft_term")
        .and_then(|t| t.parse().ok())
        .expect("raft_term")
}

#[test]
fn a_node_refuses_raft_traffic_from_a_non_member() {
    let cell = Cell::must_start(3);
    let leader = cell.must_leader();
    let target = cell.follower_of(leader);
    let mut con = cell.con(leader);
    assert_eq!(must_cmd(&mut con, &["SET", "before", "1"]), Value::Okay);
    let term_before = term(&cell, target);
    let raft_port = cell.raft_port(target);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (vote, append, forward, member_vote) = runtime.block_on(async move {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{raft_port}"))
                .expect("endpoint")
                .timeout(Duration::from_secs(5))
                .connect()
                .await
                .expect("connect to the raft port");
        let mut raft = RaftClient::new(channel.clone());
        let high = Vote::new(term_before + 100, ROGUE);
        let vote_rpc = openraft::raft::VoteRequest::<TypeConfig>::new(high, None);
        let vote = raft
            .vote(raft_request(&vote_rpc, ROGUE, target))
            .await
            .map(|r| r.into_inner().error);
        let append_rpc = openraft::raft::AppendEntriesRequest::<TypeConfig> {
            vote: high,
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        let append = raft
            .append_entries(raft_request(&append_rpc, ROGUE, target))
            .await
            .map(|r| r.into_inner().error);
        let forward = ForwardClient::new(channel)
            .execute(ForwardRequest {
                ops: Bytes::new(),
                from: ROGUE,
                cluster: "cellkv".into(),
            })
            .await
            .map(|r| r.into_inner().error);
        // The same (stale) kind of request from a member is answered, not refused.
        let stale = Vote::new(1, leader);
        let member_rpc = openraft::raft::VoteRequest::<TypeConfig>::new(stale, None);
        let member_vote = raft
            .vote(raft_request(&member_rpc, leader, target))
            .await
            .map(|r| r.into_inner().error);
        (vote, append, forward, member_vote)
    });
    for (what, outcome) in [("vote", vote), ("append", append), ("forward", forward)] {
        match outcome {
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::PermissionDenied,
                    "{what}: {status}"
                );
                assert!(
                    status.message().contains("not a member"),
                    "{what}: {status}"
                );
            }
            Ok(error) => panic!("{what} from a non-member was answered (error {error:?})"),
        }
    }
    assert_eq!(member_vote.map_err(|s| s.to_string()), Ok(String::new()));

    let log = cell.log(target);
    assert!(
        log.contains("refused raft traffic from a non-member") && log.contains("from=99"),
        "{log}"
    );
    // Nothing moved: the same term and leader, and the cell serves as before.
    assert_eq!(term(&cell, target), term_before);
    assert_eq!(cell.must_leader(), leader);
    let mut on_target = cell.con(target);
    assert_eq!(
        must_cmd(&mut on_target, &["SET", "after", "2"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut on_target, &["MGET", "before", "after"]),
        Value::Array(vec![
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"2".to_vec())
        ])
    );
}

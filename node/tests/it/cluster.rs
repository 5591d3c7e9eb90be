//! Three real `cellkv` processes on loopback forming one cell from `--peers` alone: any node
//! serves any command (followers forward writes and read linearizably), `ROLE` and
//! `INFO replication` answer as Redis's master and replicas, a `kill -9` of the leader is
//! survived, the killed node catches up, and restarting the whole cell keeps its data and
//! never forms it again. Membership changes online: a fourth node joins by snapshot, the old
//! leader is removed while clients keep writing, and a removed id is never taken back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{
    free_ports, info_field, must_admin, must_cmd, must_fail, must_start_member, AdminCall,
    NodeProcess,
};

/// How long a cell may take to elect a leader (election timeouts are 300-600 ms).
const ELECTION: Duration = Duration::from_secs(20);

/// A cell of real processes; every process is killed when the cell is dropped.
pub(crate) struct Cell {
    tmp: tempfile::TempDir,
    raft_ports: BTreeMap<u64, u16>,
    peers: String,
    nodes: BTreeMap<u64, NodeProcess>,
    /// Flags every node starts with, after the cell's own.
    extra: Vec<String>,
}

impl Cell {
    /// Starts members `1..=size`, highest id first, so the former (node 1) comes last.
    pub(crate) fn must_start(size: u64) -> Cell {
        Cell::must_start_with(size, &[])
    }

    /// As [`Cell::must_start`], every node also getting `extra` flags.
    pub(crate) fn must_start_with(size: u64, extra: &[&str]) -> Cell {
        let (raft_ports, peers) = crate::harness::loopback_cell(size);
        let mut cell = Cell {
            tmp: tempfile::tempdir().expect("tempdir"),
            raft_ports,
            peers,
            nodes: BTreeMap::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in (1..=size).rev() {
            cell.must_start_node(id);
        }
        cell
    }

    fn must_start_node(&mut self, id: u64) {
        let dir = self.tmp.path().join(format!("n{id}"));
        let mut extra = vec!["--cluster-wait-timeout", "2s"];
        extra.extend(self.extra.iter().map(String::as_str));
        let node = must_start_member(&dir, id, self.raft_ports[&id], &self.peers, &extra);
        self.nodes.insert(id, node);
    }

    fn kill9(&mut self, id: u64) {
        self.nodes.remove(&id).expect("running").kill9();
    }

    /// `kill -9` of every running node but `survivor`.
    fn kill9_all_but(&mut self, survivor: u64) {
        let others: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| *id != survivor)
            .collect();
        for id in others {
            self.kill9(id);
        }
    }

    fn terminate_all(&mut self) {
        for (id, node) in std::mem::take(&mut self.nodes) {
            assert!(node.terminate(), "node {id} stops cleanly on SIGTERM");
        }
    }

    /// The Raft (node-to-node) port of member `id`.
    pub(crate) fn raft_port(&self, id: u64) -> u16 {
        self.raft_ports[&id]
    }

    pub(crate) fn con(&self, id: u64) -> redis::Connection {
        self.nodes[&id].must_connect()
    }

    pub(crate) fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.tmp.path().join(format!("n{id}")).join("cellkv.log"))
            .unwrap_or_default()
    }

    /// Waits until every running node names the same leader, which says it is the master
    /// and sees every other running node online, while each follower reports it as its
    /// master with the link up. Returns its id.
    pub(crate) fn must_leader(&self) -> u64 {
        let deadline = Instant::now() + ELECTION;
        let mut last_seen = String::new();
        while Instant::now() < deadline {
            match self.agreed_leader() {
                Ok(leader) => return leader,
                Err(seen) => last_seen = seen,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs: Vec<String> = self
            .nodes
            .keys()
            .map(|id| format!("--- node {id}:\n{}", self.log(*id)))
            .collect();
        panic!(
            "no agreed leader within {ELECTION:?}: {last_seen}\n{}",
            logs.join("\n")
        );
    }

    fn agreed_leader(&self) -> Result<u64, String> {
        let mut views = BTreeMap::new();
        for id in self.nodes.keys() {
            let mut con = self.con(*id);
            let field =
                |con: &mut redis::Connection, name: &str| info_field(con, name).unwrap_or_default();
            views.insert(
                *id,
                (
                    field(&mut con, "role"),
                    field(&mut con, "raft_leader_id"),
                    field(&mut con, "master_link_status"),
                    field(&mut con, "connected_slaves"),
                ),
            );
        }
        crate::harness::agreed_leader(&views, true)
    }

    pub(crate) fn follower_of(&self, leader: u64) -> u64 {
        *self
            .nodes
            .keys()
            .find(|id| **id != leader)
            .expect("a follower")
    }
}

fn get(con: &mut redis::Connection, key: &str) -> Value {
    must_cmd(con, &["GET", key])
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

/// A write acknowledged through any node is read back by every node at once (followers
/// read through the leader's read index), pipelined writes through a follower keep their
/// order, a client blocked on a follower is served by a push on the leader, and ROLE /
/// INFO replication describe the cell as Redis would.
fn check_serving(cell: &Cell, leader: u64, round: &str) {
    let follower = cell.follower_of(leader);
    let mut on_leader = cell.con(leader);
    let mut on_follower = cell.con(follower);
    let key_l = format!("{round}:via-leader");
    let key_f = format!("{round}:via-follower");
    assert_eq!(
        must_cmd(&mut on_leader, &["SET", &key_l, "from-leader"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut on_follower, &["SET", &key_f, "from-follower"]),
        Value::Okay,
        "a follower forwards the write to the leader"
    );
    let counter = format!("{round}:counter");
    let mut pipe = redis::pipe();
    for _ in 0..50 {
        pipe.cmd("INCR").arg(&counter);
    }
    let replies: Vec<i64> = pipe.query(&mut on_follower).expect("pipelined INCRs");
    assert_eq!(
        replies,
        (1..=50).collect::<Vec<i64>>(),
        "in order, each once"
    );
    // A client blocked on a follower is served by a push on the leader, exactly once.
    let queue = format!("{round}:queue");
    let waiter = {
        let mut con = cell.con(follower);
        let queue = queue.clone();
        std::thread::spawn(move || must_cmd(&mut con, &["BRPOP", &queue, "10"]))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        must_cmd(&mut on_leader, &["LPUSH", &queue, "job"]),
        Value::Int(1)
    );
    assert_eq!(
        waiter.join().expect("blocked client"),
        Value::Array(vec![bulk(&queue), bulk("job")])
    );
    assert_eq!(must_cmd(&mut on_leader, &["LLEN", &queue]), Value::Int(0));
    for id in cell.nodes.keys() {
        let mut con = cell.con(*id);
        assert_eq!(get(&mut con, &key_l), bulk("from-leader"), "node {id}");
        assert_eq!(get(&mut con, &key_f), bulk("from-follower"), "node {id}");
        assert_eq!(get(&mut con, &counter), bulk("50"), "node {id}");
    }

    // ROLE as Redis answers it.
    let leader_port = cell.nodes[&leader].port;
    match must_cmd(&mut on_leader, &["ROLE"]) {
        Value::Array(items) => {
            assert_eq!(items[0], bulk("master"));
            assert!(
                matches!(items[1], Value::Int(offset) if offset > 0),
                "{items:?}"
            );
            let Value::Array(replicas) = &items[2] else {
                panic!("replica list: {items:?}")
            };
            assert_eq!(replicas.len(), cell.nodes.len() - 1, "{items:?}");
        }
        other => panic!("ROLE on the leader: {other:?}"),
    }
    match must_cmd(&mut on_follower, &["ROLE"]) {
        Value::Array(items) => {
            assert_eq!(
                items[..4],
                [
                    bulk("slave"),
                    bulk("127.0.0.1"),
                    Value::Int(i64::from(leader_port)),
                    bulk("connected")
                ],
                "{items:?}"
            );
        }
        other => panic!("ROLE on a follower: {other:?}"),
    }
    assert_eq!(
        info_field(&mut on_follower, "master_port"),
        Some(leader_port.to_string())
    );
    assert_eq!(
        info_field(&mut on_follower, "raft_members").as_deref(),
        Some("1,2,3")
    );
}

/// The whole life of a cell: forms from `--peers` on first start, serves on every node,
/// survives `kill -9` of its leader, takes the killed node back, refuses writes with
/// CLUSTERDOWN when a majority is gone, and keeps everything across a full restart without
/// forming itself again.
#[test]
fn three_nodes_form_serve_fail_over_and_restart() {
    let mut cell = Cell::must_start(3);
    let leader = cell.must_leader();
    assert_eq!(
        cell.log(1).matches("formed the cell").count(),
        1,
        "node 1, the lowest id, formed the cell"
    );
    for id in [2, 3] {
        assert_eq!(
            cell.log(id).matches("formed the cell").count(),
            0,
            "node {id}"
        );
    }
    check_serving(&cell, leader, "first");

    // kill -9 the leader: the other two elect one of themselves and serve.
    cell.kill9(leader);
    let second = cell.must_leader();
    assert_ne!(second, leader);
    check_serving(&cell, second, "second");

    // The killed node comes back on its data and catches up with what it missed.
    cell.must_start_node(leader);
    let third = cell.must_leader();
    {
        let mut back = cell.con(leader);
        assert_eq!(get(&mut back, "second:via-follower"), bulk("from-follower"));
        assert_eq!(get(&mut back, "second:counter"), bulk("50"));
    }
    check_serving(&cell, third, "third");

    // With two of three gone nothing can be committed: a write waits for a leader for
    // cluster-wait-timeout, then fails with CLUSTERDOWN; nothing it tried is applied later.
    let survivor = cell.follower_of(third);
    cell.kill9_all_but(survivor);
    let mut alone = cell.con(survivor);
    let error = must_fail(&mut alone, &["SET", "lonely", "write"]);
    assert!(error.starts_with("CLUSTERDOWN"), "{error}");
    drop(alone);
    cell.terminate_all();

    // Every node restarts on its data: one leader again, all data there, nobody forms the
    // cell a second time.
    for id in 1..=3 {
        cell.must_start_node(id);
    }
    let fourth = cell.must_leader();
    for id in 1..=3 {
        let mut con = cell.con(id);
        for round in ["first", "second", "third"] {
            assert_eq!(
                get(&mut con, &format!("{round}:counter")),
                bulk("50"),
                "node {id}, {round}"
            );
        }
        assert_eq!(get(&mut con, "lonely"), Value::Nil, "node {id}");
    }
    assert_eq!(
        cell.log(1).matches("formed the cell").count(),
        1,
        "a restart never forms the cell again"
    );
    check_serving(&cell, fourth, "fourth");
}

/// A follower's replies come from the leader's state, never from its own older copy: a
/// pipelined read after a write in the same pipeline sees that write, and a write that the
/// follower's copy shows as changing nothing (an SADD of a member another client has just
/// removed through the leader) is judged again on confirmed state and applied.
#[test]
fn a_follower_reads_its_own_pipelined_writes_and_judges_no_op_writes_on_fresh_state() {
    let cell = Cell::must_start(3);
    let leader = cell.must_leader();
    let follower = cell.follower_of(leader);
    let mut via_follower = cell.con(follower);
    let mut via_leader = cell.con(leader);
    for round in 0..30 {
        let value = format!("v{round}");
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg("k");
        pipe.cmd("SET").arg("k").arg(&value);
        pipe.cmd("GET").arg("k");
        let (_, _, after): (Value, Value, Value) = pipe.query(&mut via_follower).expect("pipeline");
        assert_eq!(
            after,
            bulk(&value),
            "round {round}: read after a pipelined write"
        );

        let member = format!("m{round}");
        assert_eq!(
            must_cmd(&mut via_follower, &["SADD", "s", &member]),
            Value::Int(1)
        );
        assert_eq!(
            must_cmd(&mut via_follower, &["SADD", "s", &member]),
            Value::Int(0)
        );
        assert_eq!(
            must_cmd(&mut via_leader, &["SREM", "s", &member]),
            Value::Int(1)
        );
        assert_eq!(
            must_cmd(&mut via_follower, &["SADD", "s", &member]),
            Value::Int(1),
            "round {round}: SADD after another client's SREM"
        );
    }
}

/// `read-consistency local` serves what a follower has applied even with the rest of the
/// cell gone; the default, linearizable, refuses that read instead of risking a stale value.
#[test]
fn local_reads_outlive_the_majority_and_linearizable_reads_do_not() {
    for mode in ["local", "linearizable"] {
        let mut cell = Cell::must_start_with(3, &["--read-consistency", mode]);
        let leader = cell.must_leader();
        let survivor = cell.follower_of(leader);
        let mut con = cell.con(survivor);
        assert_eq!(
            must_cmd(&mut con, &["CONFIG", "GET", "read-consistency"]),
            Value::Array(vec![bulk("read-consistency"), bulk(mode)])
        );
        assert_eq!(
            must_cmd(&mut cell.con(leader), &["SET", "k", "v"]),
            Value::Okay
        );
        // Even a local read sees the write once the survivor has applied it.
        let deadline = Instant::now() + ELECTION;
        while get(&mut con, "k") != bulk("v") {
            assert!(Instant::now() < deadline, "{mode}: write never applied");
            std::thread::sleep(Duration::from_millis(20));
        }
        cell.kill9_all_but(survivor);
        let mut con = cell.con(survivor);
        if mode == "local" {
            assert_eq!(get(&mut con, "k"), bulk("v"));
        } else {
            let error = must_fail(&mut con, &["GET", "k"]);
            assert!(
                error.starts_with("CLUSTERDOWN") || error.starts_with("TRYAGAIN"),
                "{error}"
            );
        }
    }
}

/// A bare PUBLISH on one node reaches subscribers on the others, in publish order, and a
/// PUBLISH inside MULTI reaches them when its entry applies.
#[test]
fn publish_reaches_subscribers_on_every_node_in_order() {
    let cell = Cell::must_start(3);
    let leader = cell.must_leader();
    let follower = cell.follower_of(leader);
    let other = *cell
        .nodes
        .keys()
        .find(|id| **id != leader && **id != follower)
        .expect("a third node");
    let mut subscriber = cell.con(follower);
    subscriber
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("pubsub:progress:*").expect("psubscribe");
    let mut publisher = cell.con(other);
    for i in 0..100 {
        // The count is this node's receivers, as in Redis Cluster: none here.
        assert_eq!(
            must_cmd(
                &mut publisher,
                &["PUBLISH", "pubsub:progress:job", &i.to_string()]
            ),
            Value::Int(0)
        );
    }
    for i in 0..100 {
        let message = pubsub.get_message().expect("a message within 10 s");
        assert_eq!(message.get_channel_name(), "pubsub:progress:job");
        assert_eq!(
            message.get_payload::<String>().expect("text"),
            i.to_string()
        );
    }
    let mut leader_con = cell.con(leader);
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("result")
        .arg("done")
        .cmd("PUBLISH")
        .arg("pubsub:progress:job")
        .arg("finished")
        .query::<Value>(&mut leader_con)
        .expect("MULTI with PUBLISH");
    let message = pubsub.get_message().expect("the transaction's message");
    assert_eq!(message.get_payload::<String>().expect("text"), "finished");
}

/// Membership online, end to end: a fourth node with a fresh directory joins after the log
/// was purged (so it catches up from a snapshot) and serves the earlier data; the old leader
/// is removed through itself, leadership moves, and a client writing through a follower the
/// whole time sees every write acknowledged and read back; the removed id is refused when
/// added again.
#[test]
fn add_a_node_by_snapshot_remove_the_leader_and_never_reuse_its_id() {
    let mut cell = Cell::must_start_with(3, &["--snapshot-entries", "20"]);
    let leader = cell.must_leader();
    let leader_raft = cell.raft_ports[&leader];

    // Enough writes that a snapshot covers them and the log before it is purged: one at a
    // time, since a pipelined batch would be one log entry.
    {
        let mut con = cell.con(leader);
        for i in 0..300 {
            let _: Value = redis::cmd("SET")
                .arg(format!("early:{i}"))
                .arg(i)
                .query(&mut con)
                .expect("early write");
        }
        let snapshot = must_admin(leader_raft, AdminCall::Snapshot);
        assert_eq!(snapshot.error, "", "{snapshot:?}");
        assert!(snapshot.snapshot_index >= 300, "{snapshot:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let purged: u64 = info_field(&mut con, "raft_purged_index")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if purged > 100 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the log was never purged ({purged})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // A client keeps writing and reading through a follower that stays in the cell.
    let writer_node = cell.follower_of(leader);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut con = cell.con(writer_node);
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = 0u64;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let key = format!("during:{acked}");
                let set = redis::cmd("SET")
                    .arg(&key)
                    .arg(acked)
                    .query::<Value>(&mut con);
                match set {
                    Ok(Value::Okay) => {
                        let got = redis::cmd("GET").arg(&key).query::<Value>(&mut con);
                        match got {
                            Ok(v) if v == bulk(&acked.to_string()) => acked += 1,
                            other => failures.push(format!("GET {key}: {other:?}")),
                        }
                    }
                    other => failures.push(format!("SET {key}: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (acked, failures)
        })
    };

    // Node 4 starts pristine with the cell's peers plus itself, so it waits to be reached;
    // the add goes to a follower, which forwards it to the leader.
    let port4 = free_ports(1)[0];
    let addr4 = format!("127.0.0.1:{port4}");
    let peers4 = format!("{},4@{addr4}", cell.peers);
    let dir4 = cell.tmp.path().join("n4");
    let node4 = must_start_member(&dir4, 4, port4, &peers4, &["--cluster-wait-timeout", "2s"]);
    let added = must_admin(
        cell.raft_ports[&writer_node],
        AdminCall::AddNode(4, addr4.clone()),
    );
    assert_eq!(added.error, "", "{added:?}\n{}", node4.log());
    assert_eq!(added.voters, vec![1, 2, 3, 4], "{added:?}");
    assert!(added.learners.is_empty(), "{added:?}");
    cell.raft_ports.insert(4, port4);
    cell.nodes.insert(4, node4);
    {
        let mut con = cell.con(4);
        // Reads first: they wait until node 4 has applied the leader's read index, and the
        // install is counted before its state machine reports anything applied.
        assert_eq!(get(&mut con, "early:0"), bulk("0"));
        assert_eq!(get(&mut con, "early:299"), bulk("299"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let installed: u64 = info_field(&mut con, "raft_snapshots_installed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if installed >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node 4 caught up from a snapshot, the log before it being purged\n{}",
                cell.log(4)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            info_field(&mut con, "raft_members").as_deref(),
            Some("1,2,3,4")
        );
    }
    let again = must_admin(leader_raft, AdminCall::AddNode(4, addr4.clone()));
    assert!(again.error.contains("already a voter"), "{again:?}");

    // Remove the leader through itself: leadership moves, then the new leader removes it.
    let removed = must_admin(leader_raft, AdminCall::RemoveNode(leader));
    assert_eq!(removed.error, "", "{removed:?}");
    assert!(!removed.voters.contains(&leader), "{removed:?}");
    assert_eq!(removed.voters.len(), 3, "{removed:?}");
    assert_ne!(removed.leader_id, leader, "{removed:?}");
    let old_addr = format!("127.0.0.1:{leader_raft}");
    cell.kill9(leader);
    let new_leader = cell.must_leader();
    assert_ne!(new_leader, leader);

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (acked, failures) = writer.join().expect("writer");
    println!(
        "membership: {acked} writes acknowledged during the changes, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "writes failed during the changes: {failures:?}"
    );
    assert!(acked > 0, "the writer made progress");

    // Every acknowledged write is on every remaining node, the new one included.
    for id in cell.nodes.keys() {
        let mut con = cell.con(*id);
        for i in [0, acked / 2, acked - 1] {
            assert_eq!(
                get(&mut con, &format!("during:{i}")),
                bulk(&i.to_string()),
                "node {id}"
            );
        }
        assert_eq!(get(&mut con, "early:150"), bulk("150"), "node {id}");
        let members = info_field(&mut con, "raft_members").unwrap_or_default();
        assert!(
            !members.split(',').any(|m| m == leader.to_string()),
            "node {id}: {members}"
        );
    }

    // The removed id is never taken back, whatever the address; a fresh id would be.
    let survivor_raft = cell.raft_ports[&new_leader];
    for addr in [old_addr, "127.0.0.1:1".to_string()] {
        let refused = must_admin(survivor_raft, AdminCall::AddNode(leader, addr));
        assert!(refused.error.contains("never reused"), "{refused:?}");
    }
    let missing = must_admin(survivor_raft, AdminCall::RemoveNode(leader));
    assert!(missing.error.contains("not a member"), "{missing:?}");

    // Leadership can be moved by hand to the new node.
    let moved = must_admin(survivor_raft, AdminCall::TransferLeader(4));
    assert_eq!(moved.error, "", "{moved:?}");
    assert_eq!(moved.leader_id, 4, "{moved:?}");
    let mut con = cell.con(4);
    assert_eq!(must_cmd(&mut con, &["SET", "after", "moved"]), Value::Okay);
    for id in cell.nodes.keys() {
        assert_eq!(get(&mut cell.con(*id), "after"), bulk("moved"), "node {id}");
    }
}

/// The leader loses its links to both other members (a test-only switch in the node's
/// transport; real clients still reach it) while a client keeps writing through it: it
/// acknowledges nothing sent after the cut, its reads are refused rather than stale, the
/// other two elect a leader and take writes, and once the link is back the old leader
/// follows and nothing it took alone is visible anywhere.
#[cfg(feature = "fault-injection")]
#[test]
fn an_isolated_leader_acknowledges_nothing_and_what_it_took_alone_never_appears() {
    use std::io::Write as _;
    let cell = Cell::must_start(3);
    let leader = cell.must_leader();
    let majority: Vec<u64> = cell
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    let mut on_leader = cell.con(leader);
    assert_eq!(
        must_cmd(&mut on_leader, &["SET", "fence", "before"]),
        Value::Okay
    );
    // A subscriber on the node about to be cut off keeps its subscription throughout.
    let mut subscriber = cell.con(leader);
    subscriber
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("pubsub:progress:p").expect("subscribe");

    // A client writes unique keys through the leader, one at a time, before and after the
    // cut, recording each key's reply.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut con = cell.con(leader);
        std::thread::spawn(move || {
            let mut outcomes: Vec<(String, Instant, Result<(), String>)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("w:{n}");
                let sent = Instant::now();
                let reply = redis::cmd("SET")
                    .arg(&key)
                    .arg("x")
                    .query::<Value>(&mut con);
                let outcome = match reply {
                    Ok(Value::Okay) => Ok(()),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(e) => Err(e.to_string()),
                };
                outcomes.push((key, sent, outcome));
            }
            outcomes
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let switch = cell.nodes[&leader].dir.join("fault-isolate");
    std::fs::write(&switch, b"").expect("isolate the leader");
    let cut = Instant::now();

    // The majority elects one of its own and takes writes; the fence moves.
    let deadline = Instant::now() + ELECTION;
    let new_leader = loop {
        let masters: Vec<u64> = majority
            .iter()
            .copied()
            .filter(|id| info_field(&mut cell.con(*id), "role").as_deref() == Some("master"))
            .collect();
        if let [one] = masters[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "the majority elects no leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    let elected_after = cut.elapsed();
    let mut on_new = cell.con(new_leader);
    assert_eq!(
        must_cmd(&mut on_new, &["SET", "fence", "after"]),
        Value::Okay
    );

    // The isolated node cannot confirm a read: it refuses instead of answering "before".
    let read = redis::cmd("GET")
        .arg("fence")
        .query::<Value>(&mut on_leader);
    assert!(
        matches!(&read, Err(e) if e.code().is_some()),
        "a read on the isolated leader is refused, not served stale: {read:?}"
    );
    // Let the writer's last attempts run out (cluster-wait-timeout 2 s) before healing, so
    // every outcome it saw was decided while cut off.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let outcomes = writer.join().expect("writer");
    let role_while_cut = info_field(&mut on_leader, "role").unwrap_or_default();
    std::fs::remove_file(&switch).expect("heal");
    let healed = cell.must_leader();
    // Published on the majority after healing: the subscription on the once-isolated node
    // is still there and gets it.
    assert_eq!(
        must_cmd(
            &mut cell.con(new_leader),
            &["PUBLISH", "pubsub:progress:p", "after-heal"]
        ),
        Value::Int(0)
    );
    let message = pubsub
        .get_message()
        .expect("the message published after healing");
    assert_eq!(message.get_payload::<String>().expect("text"), "after-heal");

    // Acknowledged writes were sent before the cut and are everywhere; writes refused by
    // the isolated leader are nowhere.
    let (acked, refused): (Vec<_>, Vec<_>) = outcomes.iter().partition(|(_, _, o)| o.is_ok());
    let acked_after_cut: Vec<&String> = acked
        .iter()
        .filter(|(_, sent, _)| *sent > cut + Duration::from_millis(200))
        .map(|(key, _, _)| key)
        .collect();
    assert!(
        acked_after_cut.is_empty(),
        "writes sent to the isolated leader after the cut were acknowledged: {acked_after_cut:?}"
    );
    assert!(!acked.is_empty() && !refused.is_empty(), "{outcomes:?}");
    for (key, _, outcome) in &refused {
        // The redis crate names the error code its own way (`ClusterDown: ...`,
        // `"UNKNOWN": ...`).
        let text = outcome.as_ref().err().cloned().unwrap_or_default();
        let lower = text.to_ascii_lowercase();
        assert!(
            ["unknown", "clusterdown", "tryagain"]
                .iter()
                .any(|code| lower.trim_start_matches('"').starts_with(code)),
            "{key}: {text}"
        );
    }
    for id in cell.nodes.keys() {
        let mut con = cell.con(*id);
        assert_eq!(get(&mut con, "fence"), bulk("after"), "node {id}");
        for (key, _, _) in &acked {
            assert_eq!(
                get(&mut con, key),
                bulk("x"),
                "node {id}: acknowledged {key}"
            );
        }
        for (key, _, _) in &refused {
            assert_eq!(
                get(&mut con, key),
                Value::Nil,
                "node {id}: {key} taken alone"
            );
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "partition: leader {leader} isolated; {} writes acknowledged before the cut, 0 after, \
         {} refused ({}); node {new_leader} elected {} ms after the cut; role of the \
         isolated node while cut off: {role_while_cut}; after healing node {healed} leads and \
         every node reads the majority's value",
        acked.len(),
        refused.len(),
        refused
            .first()
            .and_then(|(_, _, o)| o.as_ref().err())
            .map(|t| t.split(' ').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
        elected_after.as_millis(),
    );
}

//! `cellkv-cli` end to end: each test starts the real `cellkv` server on ephemeral loopback
//! ports and runs the real `cellkv-cli` binary against it.
//!
//! The server binary is taken from the target directory `cellkv-cli` was built into (or
//! from `$CELLKV_BIN`). `cargo test --workspace` builds it, because the node package's own
//! integration tests need it; when testing this package alone, build it first with
//! `cargo build -p cellkv-node --bin cellkv`.

// These tests drive real processes in real time; the simulator's clock rules are for node code.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const CLI: &str = env!("CARGO_BIN_EXE_cellkv-cli");

/// How long a node may take to print its ready line: a cold RocksDB open on a loaded
/// 2-core machine can take several seconds.
const READY_POLLS: u32 = 1200;
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running `cellkv`; dropping it kills the process, so a failing test leaves nothing
/// behind.
struct Node {
    child: Child,
    port: u16,
    raft_port: u16,
    dir: tempfile::TempDir,
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn output_so_far(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read("stdout.log").unwrap_or_default(),
            read("stderr.log").unwrap_or_default()
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cellkv_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CELLKV_BIN") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(CLI).with_file_name(format!("cellkv{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the cellkv server binary is not at {}: run the tests with `cargo test --workspace`, \
         or build it first with `cargo build -p cellkv-node --bin cellkv` (or set CELLKV_BIN)",
        path.display()
    );
    path
}

/// Starts `cellkv` in a fresh directory and waits for its `cellkv ready on ADDR` line.
/// Output goes to files rather than pipes, so the server can never block on a full pipe.
fn must_start_node() -> Node {
    must_start_node_with(free_port(), &[])
}

/// A loopback port free right now: the Raft port must be known for `cluster` commands.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `cellkv` in a fresh directory with Raft on `raft_port` and `extra` flags.
fn must_start_node_with(raft_port: u16, extra: &[&str]) -> Node {
    let raft_port_arg = raft_port.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = File::create(dir.path().join("stdout.log")).expect("stdout file");
    let stderr = File::create(dir.path().join("stderr.log")).expect("stderr file");
    let child = Command::new(cellkv_binary())
        .args([
            "--port",
            "0",
            "--raft-port",
            &raft_port_arg,
            "--bind",
            "127.0.0.1",
            "--log-level",
            "warn",
        ])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn cellkv");
    let mut node = Node {
        child,
        port: 0,
        raft_port,
        dir,
    };
    for _ in 0..READY_POLLS {
        let stdout =
            std::fs::read_to_string(node.dir.path().join("stdout.log")).unwrap_or_default();
        let ready = stdout
            .lines()
            .find_map(|line| line.strip_prefix("cellkv ready on "));
        if let Some(addr) = ready {
            node.port = addr
                .rsplit(':')
                .next()
                .and_then(|port| port.trim().parse().ok())
                .unwrap_or_else(|| panic!("no port in ready line '{addr}'"));
            return node;
        }
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!(
                "cellkv exited ({status}) before serving\n{}",
                node.output_so_far()
            );
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
    panic!("cellkv did not get ready in time\n{}", node.output_so_far());
}

/// Runs `cellkv-cli` with `args`, never inheriting a `CELLKV_NODE` from the environment.
fn cli(args: &[&str]) -> Output {
    Command::new(CLI)
        .env_remove("CELLKV_NODE")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cellkv-cli")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn must_succeed(args: &[&str]) -> String {
    let output = cli(args);
    assert!(
        output.status.success(),
        "cellkv-cli {args:?} failed ({}): stdout {:?}, stderr {:?}",
        output.status,
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// `ping` prints PONG; `info SECTION` prints that section with plain newlines.
#[test]
fn ping_and_info() {
    let node = must_start_node();
    let addr = node.addr();
    assert_eq!(must_succeed(&["--node", &addr, "ping"]), "PONG\n");
    let info = must_succeed(&["--node", &addr, "info", "replication"]);
    assert!(info.starts_with("# Replication\n"), "{info}");
    assert!(info.lines().any(|l| l == "role:master"), "{info}");
    assert!(!info.contains('\r'), "{info:?}");
}

/// `raw` sends any command and prints the reply as redis-cli does; an error reply fails.
#[test]
fn raw_commands_print_like_redis_cli() {
    let node = must_start_node();
    let addr = node.addr();
    assert_eq!(
        must_succeed(&["--node", &addr, "raw", "set", "k", "v"]),
        "OK\n"
    );
    assert_eq!(
        must_succeed(&["--node", &addr, "raw", "get", "k"]),
        "\"v\"\n"
    );
    assert_eq!(
        must_succeed(&["--node", &addr, "raw", "get", "missing"]),
        "(nil)\n"
    );
    assert_eq!(
        must_succeed(&["--node", &addr, "raw", "incrby", "n", "-5"]),
        "(integer) -5\n"
    );
    let mget = must_succeed(&["--node", &addr, "raw", "mget", "k", "missing"]);
    assert_eq!(mget, "1) \"v\"\n2) (nil)\n");

    let failed = cli(&["--node", &addr, "raw", "incr", "k"]);
    assert!(
        !failed.status.success(),
        "an error reply must fail the process"
    );
    assert_eq!(
        stdout(&failed),
        "(error) ERR value is not an integer or out of range\n"
    );
}

/// `status` summarises role, Raft fields and keys; `CELLKV_NODE` picks the node.
#[test]
fn status_shows_role_raft_and_keys() {
    let node = must_start_node();
    let addr = node.addr();
    must_succeed(&["--node", &addr, "raw", "set", "a", "1"]);
    must_succeed(&["--node", &addr, "raw", "set", "b", "2"]);
    let output = Command::new(CLI)
        .env("CELLKV_NODE", &addr)
        .arg("status")
        .output()
        .expect("run cellkv-cli");
    assert!(output.status.success(), "{output:?}");
    let status = stdout(&output);
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.collect::<Vec<_>>().join(" "))
        })
    };
    assert_eq!(field("node").as_deref(), Some(addr.as_str()), "{status}");
    assert_eq!(field("role").as_deref(), Some("master"), "{status}");
    assert_eq!(field("raft_leader_id").as_deref(), Some("1"), "{status}");
    assert_eq!(field("raft_members").as_deref(), Some("1"), "{status}");
    assert_eq!(field("keys").as_deref(), Some("db0=2"), "{status}");
    let applied: u64 = field("raft_applied_index")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no applied index in\n{status}"));
    assert!(applied >= 2, "{status}");
}

/// A node that is not listening makes every subcommand exit non-zero with a message.
#[test]
fn unreachable_node_fails() {
    // A port that was just free and is closed again: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    for command in [
        &["ping"][..],
        &["status"],
        &["raw", "get", "k"],
        &["cluster", "status"],
    ] {
        let mut args = vec!["--node", addr.as_str(), "--connect-timeout", "2"];
        args.extend_from_slice(command);
        let output = cli(&args);
        assert!(!output.status.success(), "{args:?} succeeded: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("cannot connect to {addr}")),
            "{stderr}"
        );
    }
}

/// `cluster` subcommands talk to the Admin service on the Raft port: status lists the cell,
/// snapshot builds one, and what the cell refuses fails the process with the reason.
#[test]
fn cluster_commands_on_a_one_node_cell() {
    let node = must_start_node();
    let raft = format!("127.0.0.1:{}", node.raft_port);
    must_succeed(&["--node", &node.addr(), "raw", "set", "k", "v"]);
    let status = must_succeed(&["--node", &raft, "cluster", "status"]);
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.collect::<Vec<_>>().join(" "))
        })
    };
    assert_eq!(field("node_id").as_deref(), Some("1"), "{status}");
    assert_eq!(field("state").as_deref(), Some("Leader"), "{status}");
    assert_eq!(field("leader").as_deref(), Some("1"), "{status}");
    assert_eq!(field("voters").as_deref(), Some("1"), "{status}");
    assert_eq!(field("learners").as_deref(), Some("-"), "{status}");
    assert_eq!(
        field("resp_port").as_deref(),
        Some(node.port.to_string().as_str()),
        "{status}"
    );

    let snapshot = must_succeed(&["--node", &raft, "cluster", "snapshot"]);
    assert!(
        snapshot.starts_with("snapshot built up to index "),
        "{snapshot}"
    );
    let moved = must_succeed(&["--node", &raft, "cluster", "transfer-leader", "1"]);
    assert!(moved.starts_with("node 1 already leads\n"), "{moved}");

    for (args, reason) in [
        (
            &["add-node", "1", "127.0.0.1:9"][..],
            "node 1 is already a voter",
        ),
        (&["remove-node", "1"], "the only voter"),
        (&["remove-node", "7"], "node 7 is not a member"),
        (&["transfer-leader", "7"], "node 7 is not a voter"),
    ] {
        let mut all = vec!["--node", raft.as_str(), "cluster"];
        all.extend_from_slice(args);
        let output = cli(&all);
        assert!(!output.status.success(), "{all:?} succeeded: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{all:?}: {stderr}");
    }
}

/// Growing a cell with the real tool: a one-node cell takes a second node (started pristine
/// with the cell's member and itself as peers), which then leads; the first node is removed
/// through the second, and its id is refused when offered again.
#[test]
fn cluster_commands_grow_and_shrink_a_cell() {
    let first = must_start_node();
    let raft1 = format!("127.0.0.1:{}", first.raft_port);
    must_succeed(&["--node", &first.addr(), "raw", "set", "before", "join"]);
    let port2 = free_port();
    let raft2 = format!("127.0.0.1:{port2}");
    let peers = format!("1@{raft1},2@{raft2}");
    let second = must_start_node_with(port2, &["--node-id", "2", "--peers", &peers]);

    let added = must_succeed(&["--node", &raft1, "cluster", "add-node", "2", &raft2]);
    assert!(
        added.starts_with("node 2 caught up and is now a voter\n"),
        "{added}"
    );
    assert!(added.contains("voters          1,2\n"), "{added}");
    assert_eq!(
        must_succeed(&["--node", &second.addr(), "raw", "get", "before"]),
        "\"join\"\n"
    );

    // Through the follower: it forwards to the leader.
    let moved = must_succeed(&["--node", &raft2, "cluster", "transfer-leader", "2"]);
    assert!(moved.contains("leader          2\n"), "{moved}");
    let status = must_succeed(&["--node", &raft1, "cluster", "status"]);
    assert!(status.contains("state           Follower\n"), "{status}");

    let removed = must_succeed(&["--node", &raft2, "cluster", "remove-node", "1"]);
    assert!(removed.contains("voters          2\n"), "{removed}");
    drop(first);
    must_succeed(&["--node", &second.addr(), "raw", "set", "after", "removal"]);

    let refused = cli(&["--node", &raft2, "cluster", "add-node", "1", &raft1]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("node ids are never reused"), "{stderr}");
}

/// Polls `cellkv-cli ready` on `addr` until it passes; returns its output.
fn wait_ready(addr: &str) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        let output = cli(&["--node", addr, "--connect-timeout", "2", "ready"]);
        last = format!(
            "{}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            return stdout(&output);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr} never became ready: {last}");
}

/// `ready`: a one-node cell's leader is ready; a node whose cell has no majority running is
/// not, says why and exits 1. `cluster step-down` cannot hand a one-voter cell's leadership
/// to anyone.
#[test]
fn ready_needs_a_leader() {
    let node = must_start_node();
    let ready = wait_ready(&node.addr());
    assert_eq!(ready, "ready: node 1 leads\n");
    let raft = format!("127.0.0.1:{}", node.raft_port);
    let refused = cli(&["--node", &raft, "cluster", "step-down"]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("only voter"), "{stderr}");

    // Node 1 of three, alone: it forms the cell but can elect nobody.
    let port = free_port();
    let peers = format!(
        "1@127.0.0.1:{port},2@127.0.0.1:{},3@127.0.0.1:{}",
        free_port(),
        free_port()
    );
    let lonely = must_start_node_with(port, &["--node-id", "1", "--peers", &peers]);
    let output = cli(&["--node", &lonely.addr(), "ready"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout(&output), "not ready: the cell has no leader\n");
}

/// In a three-node cell every node becomes ready (a follower by comparing its applied index
/// with the leader's commit index, asked over RESP); `cluster step-down` on the leader
/// hands leadership to another voter, and on a follower does nothing.
#[test]
fn ready_and_step_down_in_a_three_node_cell() {
    let raft_ports = [free_port(), free_port(), free_port()];
    let peers = raft_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let nodes: Vec<Node> = raft_ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let id = (i + 1).to_string();
            must_start_node_with(*port, &["--node-id", &id, "--peers", &peers])
        })
        .collect();
    must_succeed(&["--node", &nodes[1].addr(), "raw", "set", "k", "v"]);
    let mut followers = 0;
    for node in &nodes {
        let ready = wait_ready(&node.addr());
        if ready.starts_with("ready: following node ") {
            followers += 1;
            assert!(ready.contains(", the leader had committed "), "{ready}");
        } else {
            assert!(ready.ends_with(" leads\n"), "{ready}");
        }
    }
    assert_eq!(followers, 2, "one leader, two followers");

    let status = must_succeed(&[
        "--node",
        &format!("127.0.0.1:{}", raft_ports[0]),
        "cluster",
        "status",
    ]);
    let leader: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("leader")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no leader in\n{status}"));
    let leader_raft = format!("127.0.0.1:{}", raft_ports[leader - 1]);
    let follower = if leader == 1 { 2 } else { 1 };
    let follower_raft = format!("127.0.0.1:{}", raft_ports[follower - 1]);

    let nothing = must_succeed(&["--node", &follower_raft, "cluster", "step-down"]);
    assert_eq!(
        nothing,
        format!("node {follower} does not lead (leader: {leader}); nothing to move\n")
    );
    let moved = must_succeed(&["--node", &leader_raft, "cluster", "step-down"]);
    let new_leader: usize = moved
        .lines()
        .find_map(|line| line.strip_prefix("leader")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no leader in\n{moved}"));
    assert_ne!(new_leader, leader, "{moved}");
    assert_eq!(
        must_succeed(&["--node", &nodes[leader - 1].addr(), "raw", "get", "k"]),
        "\"v\"\n"
    );
    wait_ready(&nodes[leader - 1].addr());
}

/// A CA and one certificate it signed for `localhost`/`127.0.0.1`, usable by server and
/// client alike, written as `ca.crt`, `node.crt` and `node.key` in a temporary directory.
fn must_write_pki() -> tempfile::TempDir {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).expect("ca cert").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    for (name, text) in [
        ("ca.crt", ca_pem),
        ("node.crt", cert.pem()),
        ("node.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.path().join(name), text).expect("write pem");
    }
    dir
}

/// With `tls-replication yes` the Raft port speaks mutual TLS only: `cluster status`
/// without certificates fails, and with `--tls-replication yes` and the node's files it
/// answers.
#[test]
fn cluster_commands_reach_a_node_that_speaks_mutual_tls() {
    let pki = must_write_pki();
    let file = |name: &str| pki.path().join(name).display().to_string();
    let (cert, key, ca) = (file("node.crt"), file("node.key"), file("ca.crt"));
    let files = [
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
    ];
    let mut node_flags = files.to_vec();
    node_flags.extend(["--tls-replication", "yes"]);
    let node = must_start_node_with(free_port(), &node_flags);
    let raft = format!("127.0.0.1:{}", node.raft_port);
    let plain = cli(&["--node", &raft, "--timeout", "3", "cluster", "status"]);
    assert!(!plain.status.success(), "{plain:?}");
    let mut args = vec!["--node", &raft, "--tls-replication", "yes"];
    args.extend(files);
    args.extend(["cluster", "status"]);
    let status = must_succeed(&args);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["node_id", "1"])),
        "{status}"
    );
    let incomplete = cli(&[
        "--node",
        &raft,
        "--tls-replication",
        "yes",
        "cluster",
        "status",
    ]);
    assert!(!incomplete.status.success());
    assert!(
        String::from_utf8_lossy(&incomplete.stderr).contains("needs --tls-cert-file"),
        "{incomplete:?}"
    );
}

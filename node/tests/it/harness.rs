//! Starting and stopping `cellkv` processes for tests, and small RESP helpers.
//!
//! Every node listens on an ephemeral loopback port (`--port 0`) and reports it on stdout;
//! the guard kills the process when dropped, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `cellkv` process.
pub struct NodeProcess {
    child: Child,
    /// The RESP port it listens on (its TLS port when it serves TLS only).
    pub port: u16,
    /// Its RESP TLS port, when started with `--tls-port`.
    pub tls_port: Option<u16>,
    /// Its data directory.
    pub dir: PathBuf,
}

impl NodeProcess {
    /// `redis://` URL of this node.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A new synchronous connection through the `redis` crate.
    pub fn must_connect(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client");
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect")
    }

    /// A raw TCP connection with a read timeout.
    pub fn must_tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("tcp connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
    }

    /// Sends SIGKILL: no chance to flush anything not already on disk.
    pub fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.clone()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit success.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cellkv.log")).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cellkv` on `dir` with extra flags and waits until it serves.
pub fn must_start_in(dir: &Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--raft-port", "0"];
    args.extend_from_slice(extra);
    must_spawn(dir, &args)
}

/// Starts `cellkv` on `dir` as member `node_id` of the cell described by `peers`
/// (`ID@127.0.0.1:PORT,...`, see [`free_ports`]), listening for Raft on `raft_port`, and
/// waits until it serves RESP (which a member of a cell does before any leader exists).
pub fn must_start_member(
    dir: &Path,
    node_id: u64,
    raft_port: u16,
    peers: &str,
    extra: &[&str],
) -> NodeProcess {
    let node_id = node_id.to_string();
    let raft_port = raft_port.to_string();
    let mut args = vec![
        "--node-id",
        &node_id,
        "--raft-port",
        &raft_port,
        "--peers",
        peers,
    ];
    args.extend_from_slice(extra);
    must_spawn(dir, &args)
}

/// Ports free on loopback right now (bound once and released), for `--raft-port`s that must
/// be known before the nodes start.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Spawns `cellkv` on `dir` with `args` after the common ones, and waits for its ready line.
fn must_spawn(dir: &Path, args: &[&str]) -> NodeProcess {
    std::fs::create_dir_all(dir).expect("mkdir");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("cellkv.log"))
        .expect("log file");
    // A test that picks its own `--port` (clap takes a flag once) replaces the default.
    let default_port: &[&str] = if args.contains(&"--port") {
        &[]
    } else {
        &["--port", "0"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellkv"))
        .args(default_port)
        .args(["--bind", "127.0.0.1", "--log-level", "info"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn cellkv");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut tls_port = None;
    let port = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("cellkv tls ready on ") {
                    tls_port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                }
                if let Some(addr) = line.strip_prefix("cellkv ready on ") {
                    let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                    break port.expect("port in ready line");
                }
            }
            _ => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("cellkv.log")).unwrap_or_default();
                panic!("cellkv exited before serving; log:\n{log}");
            }
        }
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    NodeProcess {
        child,
        port,
        tls_port,
        dir: dir.to_path_buf(),
    }
}

/// Starts `cellkv` in a fresh temporary directory (kept alive by the returned guard).
pub fn must_start(extra: &[&str]) -> (NodeProcess, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), extra);
    (node, tmp)
}

/// Sends raw bytes and reads until `expected_len` bytes arrived or the peer closed.
pub fn must_exchange(stream: &mut TcpStream, request: &[u8], expected_len: usize) -> Vec<u8> {
    stream.write_all(request).expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    while reply.len() < expected_len {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", reply.len()),
        }
    }
    reply
}

/// Reads until the peer closes the connection (or the read timeout hits).
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// Runs a command through the `redis` crate and returns the raw value.
pub fn must_cmd(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command that must fail and returns the error's full text as Redis sent it.
pub fn must_fail(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => {
            let code = e.code().unwrap_or("").to_string();
            let detail = e.detail().unwrap_or("").to_string();
            format!("{code} {detail}").trim().to_string()
        }
    }
}

/// A field of `INFO`, parsed.
pub fn info_field(con: &mut redis::Connection, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("everything")
        .query(con)
        .expect("info");
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Sends `request` and reads until the reply contains `needle`.
pub fn must_exchange_until(stream: &mut TcpStream, request: &[u8], needle: &[u8]) -> Vec<u8> {
    stream.write_all(request).expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    while !reply.windows(needle.len()).any(|w| w == needle) {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "closed before {:?}: {}",
                needle,
                String::from_utf8_lossy(&reply)
            ),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed: {e}; got {}", String::from_utf8_lossy(&reply)),
        }
    }
    reply
}

/// A call to a node's `Admin` gRPC service (on its Raft port), for membership tests.
#[derive(Clone, Debug)]
pub enum AdminCall {
    /// Add node `.0` at Raft address `.1`.
    AddNode(u64, String),
    /// Remove node `.0`.
    RemoveNode(u64),
    /// Make node `.0` the leader.
    TransferLeader(u64),
    /// Build a snapshot on the called node.
    Snapshot,
}

/// Runs `call` against the node whose Raft port is `raft_port` and returns its answer
/// (`error` set when the cell refused). Panics only when the call itself fails.
pub fn must_admin(raft_port: u16, call: AdminCall) -> cellkv_proto::v1::AdminReply {
    use cellkv_proto::v1::admin_client::AdminClient;
    use cellkv_proto::v1::{
        AddNodeRequest, RemoveNodeRequest, SnapshotRequest, TransferLeaderRequest,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut client = AdminClient::connect(format!("http://127.0.0.1:{raft_port}"))
            .await
            .expect("connect to the admin service");
        let timeout = Duration::from_secs(90);
        let reply = match call.clone() {
            AdminCall::AddNode(node_id, addr) => {
                let mut request = tonic::Request::new(AddNodeRequest {
                    node_id,
                    addr,
                    cluster: String::new(),
                });
                request.set_timeout(timeout);
                client.add_node(request).await
            }
            AdminCall::RemoveNode(node_id) => {
                let mut request = tonic::Request::new(RemoveNodeRequest {
                    node_id,
                    cluster: String::new(),
                });
                request.set_timeout(timeout);
                client.remove_node(request).await
            }
            AdminCall::TransferLeader(node_id) => {
                let mut request = tonic::Request::new(TransferLeaderRequest {
                    node_id,
                    cluster: String::new(),
                });
                request.set_timeout(timeout);
                client.transfer_leader(request).await
            }
            AdminCall::Snapshot => {
                let mut request = tonic::Request::new(SnapshotRequest::default());
                request.set_timeout(timeout);
                client.snapshot(request).await
            }
        };
        reply
            .unwrap_or_else(|status| panic!("{call:?}: {status}"))
            .into_inner()
    })
}

/// Raft ports for members `1..=size` of a cell on loopback, and the `--peers` value naming
/// them.
pub fn loopback_cell(size: u64) -> (std::collections::BTreeMap<u64, u16>, String) {
    let raft_ports: std::collections::BTreeMap<u64, u16> =
        (1..=size).zip(free_ports(size as usize)).collect();
    let peers = raft_ports
        .iter()
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    (raft_ports, peers)
}

/// What one node's `INFO replication` says of the cell: `role`, `raft_leader_id`,
/// `master_link_status`, `connected_slaves`.
pub type ReplicationView = (String, String, String, String);

/// The leader every node agrees on, given each running node's view: exactly one says it is
/// the master, every node names it as leader, and each follower reports its link up. With
/// `all_links`, the leader must also count every other node as a connected replica.
/// Otherwise the views, for a failure message.
pub fn agreed_leader(
    views: &std::collections::BTreeMap<u64, ReplicationView>,
    all_links: bool,
) -> Result<u64, String> {
    let seen = format!("{views:?}");
    let masters: Vec<u64> = views
        .iter()
        .filter(|(_, v)| v.0 == "master")
        .map(|(id, _)| *id)
        .collect();
    let [leader] = masters[..] else {
        return Err(seen);
    };
    let followers = (views.len() - 1).to_string();
    let agreed = views.iter().all(|(id, (role, leader_id, link, slaves))| {
        leader_id == &leader.to_string()
            && if *id == leader {
                !all_links || slaves == &followers
            } else {
                role == "slave" && link == "up"
            }
    });
    if agreed {
        Ok(leader)
    } else {
        Err(seen)
    }
}

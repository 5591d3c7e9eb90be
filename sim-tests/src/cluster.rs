//! The simulated cell: three madsim nodes, each running the `cellkv` server through
//! [`Server::start_with`] with a [`Config`] parsed from the same flags the binary takes, each
//! on its own IP, each with its simulated disk ([`MemLogStore::disk`] plus in-memory
//! snapshots) that outlives kills and restarts.
//!
//! Faults act on it: [`Cell::crash`] kills a node and drops its unsynced writes,
//! [`Cell::restart`] boots it again from its disk, [`Cell::cut`] and [`Cell::mend`] clog and
//! unclog the node-to-node links (clients still reach every node), [`Cell::pause`] freezes a
//! node's tasks, [`Cell::set_clock_offset`] moves a node's wall clock, [`Cell::set_disk_fsync`]
//! slows its disk. Membership changes go through the node's own admin service
//! (`faults`); the cell starts the new nodes they add ([`Cell::start_new_node`]), stops the
//! nodes they remove ([`Cell::retire`]) and keeps the clients' [`Roster`] to the members.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::config::{Config, Flags};
use cellkv_node::raft::SnapshotStore;
use cellkv_node::server::{Node, Server};
use cellkv_node::storage::{MemLogStore, Stores};
use clap::Parser;
use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::{Handle, NodeHandle};
use parking_lot::Mutex;

use crate::client::Roster;

/// RESP port of every node.
pub const RESP_PORT: u16 = 6379;
/// Node-to-node port of every node.
pub const RAFT_PORT: u16 = 16379;

/// Knobs of a cell, drawn from the seed or set by a scenario.
#[derive(Clone, Debug)]
pub struct CellOptions {
    /// Number of members.
    pub members: u64,
    /// `--snapshot-entries`: small, so long outages end in a snapshot install.
    pub snapshot_entries: u64,
    /// Simulated fsync time of every disk.
    pub fsync: Duration,
    /// `--read-consistency`.
    pub read_consistency: String,
    /// Test-only fault: disks acknowledge appends before syncing them.
    pub ack_before_sync: bool,
    /// Run under the cache workload's `maxmemory` and eviction rules (`cache::LIMIT`).
    pub maxmemory: bool,
    /// More flags for every node (a scenario's own eviction rules, say).
    pub extra_flags: Vec<String>,
}

impl Default for CellOptions {
    fn default() -> Self {
        CellOptions {
            members: 3,
            snapshot_entries: 40,
            fsync: Duration::from_millis(2),
            read_consistency: "linearizable".into(),
            ack_before_sync: false,
            maxmemory: true,
            extra_flags: Vec::new(),
        }
    }
}

/// One member: its madsim node, its disk, and the running server's state while it is up.
pub struct Member {
    /// Raft node id (1-based).
    pub id: u64,
    /// Its IP address.
    pub ip: IpAddr,
    /// The madsim node.
    pub handle: NodeHandle,
    /// The Raft log and vote.
    pub disk: MemLogStore,
    /// Snapshots.
    pub snapshots: SnapshotStore,
    /// The running server's node state; `None` while down or starting.
    running: Arc<Mutex<Option<Arc<Node>>>>,
    /// Whether it is killed.
    pub down: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Whether it was removed from the cell and stopped for good.
    pub retired: bool,
}

impl Member {
    /// The node's state while its server runs (started and not killed).
    pub fn node(&self) -> Option<Arc<Node>> {
        if self.down {
            return None;
        }
        self.running.lock().clone()
    }

    /// Its RESP address.
    pub fn resp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, RESP_PORT)
    }
}

/// The simulated cell.
pub struct Cell {
    /// Every node ever started, removed ones included; index = id - 1.
    pub members: Vec<Member>,
    handle: Handle,
    /// The disks' usual sync time.
    fsync: Duration,
    /// What every node is started with.
    options: CellOptions,
    /// The members the clients talk to.
    roster: Roster,
}

/// IP of member `id`.
pub fn member_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

impl Cell {
    /// Creates the members and starts them.
    pub fn start(options: &CellOptions) -> Cell {
        let handle = Handle::current();
        // Offsets left by a world that ran before on this thread.
        cellkv_node::server::clock::sim::clear();
        let ids: Vec<u64> = (1..=options.members).collect();
        let mut cell = Cell {
            members: Vec::new(),
            handle,
            fsync: options.fsync,
            options: options.clone(),
            roster: Roster::default(),
        };
        for &id in &ids {
            let member = cell.spawn_member(id, &ids);
            cell.roster.add(member.resp_addr());
            cell.members.push(member);
        }
        cell
    }

    /// Boots node `id` on an empty disk with `--peers` listing `peers` (which includes it),
    /// as the binary would be started.
    fn spawn_member(&self, id: u64, peers: &[u64]) -> Member {
        let options = &self.options;
        let ip = member_ip(id);
        let peers: Vec<String> = peers
            .iter()
            .map(|p| format!("{p}@{}:{RAFT_PORT}", member_ip(*p)))
            .collect();
        let peers = peers.join(",");
        let mut args = vec![
            "cellkv".to_string(),
            format!("--node-id={id}"),
            format!("--bind={ip}"),
            format!("--port={RESP_PORT}"),
            format!("--raft-port={RAFT_PORT}"),
            format!("--peers={peers}"),
            format!("--dir={}", std::env::temp_dir().display()),
            format!("--snapshot-entries={}", options.snapshot_entries),
            format!("--read-consistency={}", options.read_consistency),
            "--cluster-wait-timeout=2s".to_string(),
            // The simulated clients connect from other (non-loopback) addresses without a
            // password.
            "--protected-mode=no".to_string(),
        ];
        if options.maxmemory {
            args.push(format!("--maxmemory={}", crate::cache::LIMIT));
            args.extend(
                crate::cache::RULES
                    .iter()
                    .map(|r| format!("--eviction={r}")),
            );
        }
        args.extend(options.extra_flags.iter().cloned());
        let flags = Flags::try_parse_from(args).expect("flags");
        let config = Config::load(flags).expect("config");
        let disk = MemLogStore::disk(options.fsync);
        // As a cell's RocksDB store does: an append returns before its sync.
        disk.set_syncs_behind(true);
        if options.ack_before_sync {
            disk.set_ack_before_sync(true);
        }
        let snapshots = SnapshotStore::memory();
        let running: Arc<Mutex<Option<Arc<Node>>>> = Arc::default();
        let (d, s, r) = (disk.clone(), snapshots.clone(), running.clone());
        let node = self
            .handle
            .create_node()
            .name(format!("n{id}"))
            .ip(ip)
            .init(move || {
                let config = config.clone();
                let stores = Stores::Memory {
                    log: d.clone(),
                    snapshots: s.clone(),
                };
                let running = r.clone();
                async move {
                    let server = match Server::start_with(config, stores).await {
                        Ok(server) => server,
                        Err(e) => panic!("node {id} failed to start: {e}"),
                    };
                    *running.lock() = Some(server.node.clone());
                    server.wait_shutdown().await;
                }
            })
            .build();
        Member {
            id,
            ip,
            handle: node,
            disk,
            snapshots,
            running,
            down: false,
            paused: false,
            retired: false,
        }
    }

    /// Starts a new node under a fresh id (ids are never reused) with an empty disk and
    /// `--peers` naming the members plus itself, as an operator would before `add-node`: it
    /// waits, pristine, until the leader reaches it. It is not on the roster yet.
    pub fn start_new_node(&mut self) -> u64 {
        let id = self.members.len() as u64 + 1;
        let mut peers = self.ids();
        peers.push(id);
        let member = self.spawn_member(id, &peers);
        self.members.push(member);
        id
    }

    /// Takes member `id` off the roster: clients stop sending it commands (a removed node is
    /// dropped from the clients' configuration before it is stopped).
    pub fn unlist(&self, id: u64) {
        self.roster.remove(self.member(id).resp_addr());
    }

    /// Puts member `id` on the roster (it became a voter).
    pub fn list(&self, id: u64) {
        self.roster.add(self.member(id).resp_addr());
    }

    /// Stops a removed member for good and wipes it: it is no longer part of the cell, no
    /// fault touches it and nothing restarts it (started again on its old disk it would
    /// campaign with a membership that no longer has it).
    pub fn retire(&mut self, id: u64) {
        self.unlist(id);
        self.crash(id);
        self.member_mut(id).retired = true;
    }

    /// The clients' view of the members.
    pub fn roster(&self) -> Roster {
        self.roster.clone()
    }

    /// The membership the cell has committed, as the leader with the highest term that is
    /// running reports it: `(voters, learners)`, or `None` without a leader or while a change
    /// is not applied yet (joint, or not yet committed).
    pub fn committed_membership(&self) -> Option<(BTreeSet<u64>, BTreeSet<u64>)> {
        let metrics = self
            .members
            .iter()
            .filter(|m| !m.retired)
            .filter_map(|m| m.node())
            .map(|n| n.raft.metrics())
            .filter(|m| m.state == openraft::ServerState::Leader)
            .max_by_key(|m| m.current_term)?;
        let config = &metrics.membership_config;
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        if config.log_id().as_ref().map_or(0, |l| l.index) > applied {
            return None;
        }
        let membership = config.membership();
        if membership.get_joint_config().len() != 1 {
            return None;
        }
        Some((
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        ))
    }

    /// The member with this id.
    pub fn member(&self, id: u64) -> &Member {
        &self.members[(id - 1) as usize]
    }

    fn member_mut(&mut self, id: u64) -> &mut Member {
        &mut self.members[(id - 1) as usize]
    }

    /// Ids of every node of the cell: the members, and nodes started to join it; not the
    /// removed ones.
    pub fn ids(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| !m.retired)
            .map(|m| m.id)
            .collect()
    }

    /// Ids of the cell's nodes that are up.
    pub fn up_ids(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| !m.down && !m.retired)
            .map(|m| m.id)
            .collect()
    }

    /// One line per node of the cell as its own Raft sees itself (state, term, leader,
    /// applied index, voter sets), for failure messages.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        for member in self.members.iter().filter(|m| !m.retired) {
            let line = match member.node() {
                None if member.down => format!("n{}: down", member.id),
                None => format!("n{}: starting", member.id),
                Some(node) => {
                    let m = node.raft.metrics();
                    format!(
                        "n{}: {:?} term {} leader {:?} applied {:?} voter sets {:?}{}",
                        member.id,
                        m.state,
                        m.current_term,
                        m.current_leader,
                        m.last_applied.map(|l| l.index),
                        m.membership_config.membership().get_joint_config(),
                        if member.paused { " (paused)" } else { "" },
                    )
                }
            };
            lines.push(line);
        }
        lines.join("; ")
    }

    /// The leader as some running member believes it to be (the highest term wins).
    pub fn leader(&self) -> Option<u64> {
        self.members
            .iter()
            .filter(|m| !m.retired)
            .filter_map(|m| m.node())
            .map(|n| n.raft.metrics())
            .filter(|m| m.state == openraft::ServerState::Leader)
            .max_by_key(|m| m.current_term)
            .map(|m| m.id)
    }

    /// Kills member `id` as a power loss would: its tasks die, and its disk keeps what was
    /// synced plus a random prefix of what was not. Returns the writes lost.
    pub fn crash(&mut self, id: u64) -> usize {
        self.crash_keeping(id, None)
    }

    /// [`Cell::crash`] keeping exactly `flushed` unsynced writes (`None`: a random number).
    pub fn crash_keeping(&mut self, id: u64, flushed: Option<usize>) -> usize {
        let sim = self.handle.clone();
        let member = self.member_mut(id);
        if member.down {
            return 0;
        }
        sim.kill(member.handle.id());
        member.down = true;
        member.paused = false;
        *member.running.lock() = None;
        let unsynced = member.disk.unsynced();
        let flushed = flushed.unwrap_or_else(|| thread_rng().gen_range(0..=unsynced));
        member.disk.crash(flushed)
    }

    /// Boots member `id` again from its disk.
    pub fn restart(&mut self, id: u64) {
        let sim = self.handle.clone();
        let member = self.member_mut(id);
        if !member.down || member.retired {
            return;
        }
        member.down = false;
        sim.restart(member.handle.id());
    }

    /// Freezes member `id`'s tasks (a stop-the-world pause, a VM migration).
    pub fn pause(&mut self, id: u64) {
        let sim = self.handle.clone();
        let member = self.member_mut(id);
        if member.down || member.paused || member.retired {
            return;
        }
        member.paused = true;
        sim.pause(member.handle.id());
    }

    /// Lets a paused member run again.
    pub fn resume(&mut self, id: u64) {
        let sim = self.handle.clone();
        let member = self.member_mut(id);
        if !member.paused {
            return;
        }
        member.paused = false;
        sim.resume(member.handle.id());
    }

    /// Cuts the node-to-node link from `a` to `b` (one direction).
    pub fn cut(&self, a: u64, b: u64) {
        NetSim::current().clog_link(self.member(a).handle.id(), self.member(b).handle.id());
    }

    /// Mends the link from `a` to `b`.
    pub fn mend(&self, a: u64, b: u64) {
        NetSim::current().unclog_link(self.member(a).handle.id(), self.member(b).handle.id());
    }

    /// Mends every link between members.
    pub fn mend_all(&self) {
        for a in self.ids() {
            for b in self.ids() {
                if a != b {
                    self.mend(a, b);
                }
            }
        }
    }

    /// Sets member `id`'s wall clock `offset_ms` away from true time (0: correct). The
    /// offset belongs to the machine: it outlives crashes and restarts.
    pub fn set_clock_offset(&self, id: u64, offset_ms: i64) {
        cellkv_node::server::clock::sim::set_offset_us(
            self.member(id).handle.id(),
            offset_ms.saturating_mul(1000),
        );
    }

    /// Makes member `id`'s disk take `fsync` per sync (`None`: the usual time again).
    pub fn set_disk_fsync(&self, id: u64, fsync: Option<Duration>) {
        self.member(id).disk.set_fsync(fsync.unwrap_or(self.fsync));
    }

    /// Heals everything: mends links, resumes paused members, restarts killed ones, sets
    /// every clock right, gives every disk its usual speed and puts the network back to its
    /// calm settings.
    pub fn heal(&mut self) {
        self.mend_all();
        for id in self.ids() {
            self.set_clock_offset(id, 0);
            self.set_disk_fsync(id, None);
            self.resume(id);
            self.restart(id);
        }
        NetSim::current().update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = Duration::from_millis(1)..Duration::from_millis(5);
        });
    }
}

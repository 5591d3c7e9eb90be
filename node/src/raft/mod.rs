//! The Raft layer: openraft's type configuration, the runtime adapter ([`rt`]), the state
//! machine adapter over the keyspace ([`state_machine`]), snapshot files, the network over
//! gRPC ([`network`] calls peers, [`grpc`] serves them) and [`start`], which brings a node's
//! Raft up.
//!
//! Every write is a log entry, even on a single node: the server proposes a
//! [`Request`](crate::keyspace::Request) with `raft.client_write_ff(request, responder)` and
//! answers the client with the [`Frame`](crate::resp::Frame) it applied with, which the
//! [`ReplyCallback`] responder hands over as the entry applies. Concurrent proposals are
//! batched twice: the server gathers the writes of many connections into one entry
//! (`server::gather`), and openraft itself queues the entries that arrive while one append
//! is being fsynced and writes them together in the next append (one fsync per batch).
//!
//! Linearizable reads: `raft.ensure_linearizable(ReadPolicy::ReadIndex).await` on the leader
//! confirms leadership with a quorum and waits until the state machine has applied up to the
//! read index; then read the keyspace. See [`RaftHandle`] for the details.
//!
//! After [`start`] returns, the node campaigns; callers wait for [`RaftHandle::wait_leader`]
//! before they propose (a one-member cluster elects itself within one election timeout).
//!
//! Forming a cell: a node started without peers forms a one-member cell of itself on its very
//! first start. Nodes started with the same peers list form one cell: on its very first start
//! (no vote, no log, no snapshot) the member with the lowest id initializes the membership
//! with every listed member and campaigns; the others wait, pristine, until it reaches them.
//! A restart never initializes again, whatever the flags say: membership then changes only
//! through Raft.

pub mod grpc;
pub mod network;
pub mod rt;
mod snapshot;
pub mod state_machine;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::InitializeError;
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use openraft_rt::WatchReceiver;

use crate::keyspace::{EventSink, Op, Request, SharedKeyspace};
use network::{GrpcNetwork, PeerChannels};
pub use snapshot::{SnapshotStats, SnapshotStore};
use state_machine::KeyspaceStateMachine;

/// openraft's type configuration for cellkv: entries carry keyspace
/// [`Request`](crate::keyspace::Request)s and replies are RESP
/// [`Frame`](crate::resp::Frame)s. Written out rather than declared with
/// `declare_raft_types!`, whose pattern cannot name the generic `Responder<T>`; everything
/// but `D`, `R`, the runtime and the responder is openraft's default.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = crate::keyspace::Request;
    type R = crate::resp::Frame;
    type NodeId = u64;
    type Node = openraft::BasicNode;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = ReplyCallback<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = rt::CellRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// Where the result of a write proposed with `client_write_ff` goes: a function run by the
/// state-machine worker as the entry applies, so a gathered batch hands each connection its
/// replies straight from apply instead of through one more task.
pub struct ReplyCallback<T>(Box<dyn FnOnce(T) + Send + 'static>);

impl<T> ReplyCallback<T> {
    /// A responder that calls `deliver` with the result.
    pub fn new(deliver: impl FnOnce(T) + Send + 'static) -> ReplyCallback<T> {
        ReplyCallback(Box::new(deliver))
    }
}

impl<T: openraft::OptionalSend + 'static> openraft::raft::responder::Responder<TypeConfig, T>
    for ReplyCallback<T>
{
    fn on_complete(self, result: T) {
        (self.0)(result)
    }
}

/// A node's id in the cell.
pub type NodeId = u64;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// The position of a log entry: (leader term and node, index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote: the term and the candidate voted for.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A membership config and the log id it was applied at.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Metadata of a snapshot: what it covers.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// Snapshot bytes as openraft carries them: the whole snapshot in memory.
pub type SnapshotData = Cursor<Vec<u8>>;
/// A snapshot with its metadata.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// The Raft node handle type.
pub type Raft = openraft::Raft<TypeConfig, KeyspaceStateMachine>;
/// What a proposed write comes to: its applied reply, or why it was not applied.
pub type ClientWriteResult = openraft::raft::ClientWriteResult<TypeConfig>;
/// openraft's live metrics of a node (state, leader, applied, snapshot, purged).
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

/// Log entries kept after a snapshot covers them, so a briefly lagging follower catches up
/// from the log instead of needing the whole snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 32;

/// Log lines show what kind of command an entry holds, never its keys or values: values can
/// be secrets (sessions, tokens) and key names can embed them.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(&self.op, self.time_ms, f)
    }
}

/// The log line of one entry (see the `Display` impl above); an `AsUser` entry names its
/// user, then describes what it wraps.
fn describe(op: &Op, time_ms: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match op {
        Op::Client { client, seq, ops } => write!(
            f,
            "BATCH(node={} conn={} seq={seq}, {} writes, t={})",
            client.node,
            client.conn,
            ops.len(),
            time_ms
        ),
        Op::Batch(ops) => write!(f, "GATHERED({} proposals, t={time_ms})", ops.len()),
        Op::AsUser { user, op } => {
            write!(f, "AS({user}) ")?;
            describe(op, time_ms, f)
        }
        Op::Command { db, args } => {
            let name = args
                .first()
                .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase());
            write!(
                f,
                "{}(db={db}, {} args, t={})",
                name.as_deref().unwrap_or("?"),
                args.len().saturating_sub(1),
                time_ms
            )
        }
        Op::Exec {
            db,
            watches,
            commands,
        } => write!(
            f,
            "EXEC(db={db}, {} commands, {} watched, t={})",
            commands.len(),
            watches.len(),
            time_ms
        ),
        // Never the rules: they hold password hashes.
        Op::Acl(acl) => {
            let what = match acl {
                crate::keyspace::AclOp::SetUser { .. } => "SETUSER",
                crate::keyspace::AclOp::DelUser { .. } => "DELUSER",
                crate::keyspace::AclOp::Load { .. } => "LOAD",
            };
            write!(f, "ACL {what}(t={})", time_ms)
        }
        Op::Expire { db, keys } => write!(f, "EXPIRE(db={db}, {} keys, t={})", keys.len(), time_ms),
        Op::MemoryAtStart(settings) => write!(
            f,
            "MEMORY(maxmemory={}, policy={}, {} prefix rules, t={})",
            settings.maxmemory,
            settings.policy.name(),
            settings.rules.len(),
            time_ms
        ),
        Op::ConfigSet { pairs } => write!(
            f,
            "CONFIG-SET({}, t={})",
            pairs
                .iter()
                .map(|(name, _)| String::from_utf8_lossy(name))
                .collect::<Vec<_>>()
                .join(","),
            time_ms
        ),
        Op::Evict { db, keys } => {
            write!(f, "EVICT(db={db}, {} keys, t={})", keys.len(), time_ms)
        }
    }
}

/// What a node needs to run its Raft.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// This node's id in the cell; must never change for a data directory.
    pub node_id: NodeId,
    /// Data directory: the log goes to `dir/raft`, snapshots to `dir/snapshots`.
    pub dir: PathBuf,
    /// Address other members reach this node's Raft service at (recorded in the membership
    /// of a one-member cell; with `peers`, this node's entry there is used).
    pub raft_addr: String,
    /// The cell's members and their Raft addresses, this node included; empty for a
    /// one-member cell.
    pub peers: BTreeMap<NodeId, String>,
    /// The cell's name: RPCs from another cell are refused.
    pub cluster_name: String,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_entries: u64,
    /// Also build a snapshot this often if anything was applied since the last one
    /// (zero disables the timer).
    pub snapshot_interval: Duration,
    /// Node-to-node mutual TLS (`tls-replication yes`); `None` = plain gRPC.
    pub peer_tls: Option<crate::tls::PeerTls>,
    /// Where apply's events go (blocked clients, pub/sub); `None` drops them.
    pub events: Option<EventSink>,
}

/// Why the Raft layer could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The log store or the snapshot directory failed.
    #[error("raft storage: {0}")]
    Storage(#[from] std::io::Error),
    /// The Raft configuration is invalid.
    #[error("raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The Raft core stopped (shut down, or a storage error stopped it).
    #[error("raft stopped: {0}")]
    Fatal(#[from] openraft::error::Fatal<TypeConfig>),
    /// Forming the one-member cluster failed.
    #[error("raft initialize: {0}")]
    Initialize(String),
    /// The Raft core task failed while shutting down.
    #[error("raft shutdown: {0}")]
    Shutdown(String),
    /// A wait ran out of time.
    #[error("raft: {0}")]
    Timeout(String),
    /// This build has no durable log store.
    #[error("raft: built without the `rocksdb` feature; use start_with_stores")]
    NoDurableStore,
}

/// A running Raft node and its background snapshot timer.
///
/// Writes: `handle.raft.client_write(request).await` returns a `ClientWriteResponse` whose
/// `data` is the reply [`Frame`](crate::resp::Frame) and `log_id` where it was applied; on a
/// node that is not the leader it fails with `ClientWriteError::ForwardToLeader` (leader id and
/// node, if known). Submitting many requests concurrently is what lets openraft batch them
/// into one append and one fsync; `raft.client_write_many(requests)` submits a batch in one
/// message and streams the results back in order.
///
/// Linearizable reads: `handle.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex)`
/// returns once the leader confirmed it still leads (heartbeat to a quorum, immediate for a
/// one-member cell) and the local state machine applied everything up to the read index; read
/// the keyspace after it returns. `ReadPolicy::LeaseRead` skips the quorum round while the
/// leader lease holds (clock-drift assumption), and fails at once otherwise. For a read on a
/// follower: call `raft.get_read_linearizer(ReadPolicy::ReadIndex)` on the leader (over the
/// `Forward.ReadIndex` RPC), send back `linearizer.read_log_id()`, and on the follower build
/// `openraft::raft::linearizable_read::Linearizer::new(leader_id, read_log_id, None)` and call
/// `.try_await_ready(&raft, Some(timeout))`. Reads that wait at the same time share one
/// leadership confirmation.
pub struct RaftHandle {
    /// The openraft node.
    pub raft: Raft,
    node_id: NodeId,
    cluster_name: String,
    channels: PeerChannels,
    peer_tls: Option<crate::tls::PeerTls>,
    configured_peers: Vec<NodeId>,
    stats: Arc<SnapshotStats>,
    ever_members: state_machine::EverMembers,
    snapshot_timer: Option<tokio::task::JoinHandle<()>>,
    /// Turns true when this node's Raft is being shut down: the replication streams its
    /// service answers end then, instead of waiting for the leader's next append.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// The Raft address of member `id` in `raft`'s current membership.
pub fn member_addr(raft: &Raft, id: NodeId) -> Option<String> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    m.membership_config
        .membership()
        .get_node(&id)
        .map(|node| node.addr.clone())
}

impl fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftHandle")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl RaftHandle {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The cell's name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The channels to peers, shared with the Raft network (for forwarding and probes).
    pub fn channels(&self) -> PeerChannels {
        self.channels.clone()
    }

    /// The Raft address of member `id` in the current membership.
    pub fn member_addr(&self, id: NodeId) -> Option<String> {
        member_addr(&self.raft, id)
    }

    /// The `Raft` gRPC service answering peers for this node.
    pub fn service(&self) -> grpc::RaftService {
        grpc::RaftService::new(
            self.raft.clone(),
            self.node_id,
            &self.cluster_name,
            self.configured_peers.clone(),
            self.stopping.subscribe(),
        )
    }

    /// Node-to-node TLS, when `tls-replication` is on.
    pub fn peer_tls(&self) -> Option<&crate::tls::PeerTls> {
        self.peer_tls.as_ref()
    }

    /// Why a call from node `from` is refused, if it is: see [`grpc::sender_refusal`].
    pub fn sender_refusal(&self, from: NodeId) -> Option<String> {
        grpc::sender_refusal(
            &self.raft,
            self.node_id,
            &self.configured_peers,
            from,
            |_| false,
        )
    }

    /// Snapshot counters for INFO: built, installed, last index, size.
    pub fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    /// Every node id that was ever a member, as far as this node has applied (plus the
    /// members of its current, possibly uncommitted, membership): ids are never reused.
    pub fn ever_members(&self) -> std::collections::BTreeSet<NodeId> {
        let mut ids = self.ever_members.lock().clone();
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        ids.extend(m.membership_config.membership().nodes().map(|(id, _)| *id));
        ids
    }

    /// A copy of openraft's current metrics (state, leader, last applied, snapshot, purged).
    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Waits until this node is the leader, at most `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<(), RaftError> {
        let me = self.node_id;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| m.state == ServerState::Leader && m.current_leader == Some(me),
                "this node leads",
            )
            .await
            .map(|_| ())
            .map_err(|e| RaftError::Timeout(e.to_string()))
    }

    /// Stops the snapshot timer and the Raft node, and waits for the Raft core to exit.
    pub async fn shutdown(mut self) -> Result<(), RaftError> {
        if let Some(timer) = self.snapshot_timer.take() {
            timer.abort();
        }
        self.stop_raft().await
    }

    /// Ends the replication streams this node answers and stops the Raft node, waiting for
    /// its core to exit.
    pub async fn stop_raft(&self) -> Result<(), RaftError> {
        self.stopping.send_replace(true);
        self.raft
            .shutdown()
            .await
            .map_err(|e| RaftError::Shutdown(e.to_string()))
    }
}

impl Drop for RaftHandle {
    fn drop(&mut self) {
        // The timer holds a Raft clone; left running it would keep the node alive.
        if let Some(timer) = self.snapshot_timer.take() {
            timer.abort();
        }
    }
}

/// Starts a node's Raft on RocksDB (`settings.dir/raft`) with snapshot files in
/// `settings.dir/snapshots`, loading the newest snapshot into `keyspace`. See
/// [`start_with_stores`].
#[cfg(feature = "rocksdb")]
pub async fn start(
    settings: RaftSettings,
    keyspace: SharedKeyspace,
) -> Result<RaftHandle, RaftError> {
    // A lone node syncs on Raft's core; a cell's node on a thread of the store's own, so that
    // a leader replicates while its own disk syncs (`storage::AppendSync`).
    let sync = if settings.peers.len() > 1 {
        crate::storage::AppendSync::OnSyncThread
    } else {
        crate::storage::AppendSync::OnCaller
    };
    let log_store = crate::storage::RocksLogStore::open_with(settings.dir.join("raft"), sync)?;
    let snapshots = SnapshotStore::dir(settings.dir.join("snapshots"))?;
    start_with_stores(settings, keyspace, log_store, snapshots).await
}

/// Without the `rocksdb` feature there is no durable log store: always fails.
#[cfg(not(feature = "rocksdb"))]
pub async fn start(
    _settings: RaftSettings,
    _keyspace: SharedKeyspace,
) -> Result<RaftHandle, RaftError> {
    Err(RaftError::NoDurableStore)
}

/// Starts a node's Raft over the given log store and snapshot store (tests and the simulation
/// pass [`MemLogStore`](crate::storage::MemLogStore) and [`SnapshotStore::memory`];
/// `settings.dir` is not used).
///
/// The newest snapshot is loaded into `keyspace` (which is emptied if there is none), openraft
/// re-applies the committed log after it, and on the very first start (no vote, no log) the
/// node forms its cell as the module documentation says. A restart never initializes again.
pub async fn start_with_stores<LS>(
    settings: RaftSettings,
    keyspace: SharedKeyspace,
    log_store: LS,
    snapshots: SnapshotStore,
) -> Result<RaftHandle, RaftError>
where
    LS: RaftLogStorage<TypeConfig>,
{
    let config = Arc::new(raft_config(
        settings.snapshot_entries,
        &settings.cluster_name,
    )?);
    let state_machine = KeyspaceStateMachine::open(keyspace, snapshots, settings.events.clone())?;
    let stats = state_machine.stats();
    let ever_members = state_machine.ever_members();
    let channels = PeerChannels::new(settings.peer_tls.clone());
    let network = GrpcNetwork::new(settings.node_id, &settings.cluster_name, channels.clone());
    let raft = Raft::new(settings.node_id, config, network, log_store, state_machine).await?;
    form_cell(&raft, &settings).await?;

    let snapshot_timer = (!settings.snapshot_interval.is_zero())
        .then(|| spawn_snapshot_timer(raft.clone(), settings.snapshot_interval));
    Ok(RaftHandle {
        raft,
        node_id: settings.node_id,
        cluster_name: settings.cluster_name,
        channels,
        configured_peers: settings.peers.keys().copied().collect(),
        peer_tls: settings.peer_tls,
        stats,
        ever_members,
        snapshot_timer,
        stopping: tokio::sync::watch::channel(false).0,
    })
}

/// On a pristine node, forms the cell if this node is the one to: alone without peers, or as
/// the lowest id among them. An initialized node only says how it restarted.
async fn form_cell(raft: &Raft, settings: &RaftSettings) -> Result<(), RaftError> {
    let me = settings.node_id;
    if raft.is_initialized().await? {
        let voters: Vec<NodeId> = raft.voter_ids().collect();
        tracing::info!(node_id = me, ?voters, "raft restarted from its log");
        let listed: Vec<NodeId> = settings.peers.keys().copied().collect();
        if !listed.is_empty() && voters != listed {
            tracing::warn!(
                ?voters,
                peers = ?listed,
                "the stored membership differs from --peers; the stored one stands (change \
                 members through the cluster admin commands)"
            );
        }
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> = if settings.peers.is_empty() {
        BTreeMap::from([(me, BasicNode::new(&settings.raft_addr))])
    } else if settings.peers.keys().next() == Some(&me) {
        settings
            .peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect()
    } else {
        tracing::info!(
            node_id = me,
            former = ?settings.peers.keys().next(),
            "pristine: waiting for the lowest-id member to form the cell"
        );
        return Ok(());
    };
    let count = members.len();
    match raft.initialize(members).await {
        Ok(()) => tracing::info!(node_id = me, members = count, "formed the cell"),
        // Someone (a leader's replication) got here first: already part of a cluster.
        Err(openraft::error::RaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => return Err(RaftError::Initialize(e.to_string())),
    }
    Ok(())
}

fn raft_config(snapshot_entries: u64, cluster_name: &str) -> Result<Config, RaftError> {
    let config = Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_entries.max(1)),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        // A restarted leader campaigns again instead of resuming its old term: `committed` is
        // persisted without fsync, so after a power loss it may lag, and a resumed leader would
        // serve reads from a state machine that has not re-applied everything it acknowledged.
        // A new term commits a blank entry first, which brings the state machine up to date.
        enable_leader_restore: Some(false),
        // The network allows this much per streamed chunk plus once more for the install
        // (decoding the keyspace and syncing the file); openraft's 200 ms is tight for that
        // on a busy machine.
        install_snapshot_timeout: 1000,
        ..Config::default()
    };
    Ok(config.validate()?)
}

/// Builds a snapshot every `every` if anything was applied since the last one, so a quiet
/// node does not keep a long log tail to replay after a restart.
fn spawn_snapshot_timer(raft: Raft, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (applied, snapshot) = {
                let metrics = raft.metrics();
                let m = metrics.borrow_watched();
                (
                    m.last_applied.map(|id| id.index),
                    m.snapshot.map(|id| id.index),
                )
            };
            if applied > snapshot && raft.trigger().snapshot().await.is_err() {
                return; // the node stopped
            }
        }
    })
}

#[cfg(all(test, not(madsim)))]
mod tests;

#[cfg(all(test, not(madsim)))]
mod cluster_tests;

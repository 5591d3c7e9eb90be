//! The server: the RESP listener, one task per connection, the routing of each command to
//! the write path (a Raft log entry, proposed here on the leader or forwarded to it from a
//! follower) or the read path (a linearizable read of the local keyspace), the node-to-node
//! listener (`peers`), and the leader's background deletion of expired keys.

pub mod admin;
pub mod blocking;
pub mod clock;
pub mod commands;
mod conn;
mod eviction;
mod expiry;
pub mod fanout;
mod forwarding;
mod gather;
mod monitor;
pub mod peers;
pub mod pubsub;
mod read_barrier;
mod redact;
pub mod security;
mod session;
pub mod slowlog;
pub mod subscribe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::keyspace::encoding::{self, EncodingLimits};
use crate::keyspace::sessions::ClientId;
use crate::keyspace::{Event, EventSink, Keyspace, Op, SharedKeyspace, Value};
use crate::raft::{self, RaftHandle, RaftSettings};
use crate::resp::Frame;
use crate::storage::Stores;
use gather::Gathered;

pub use read_barrier::ReadBarrier;
pub use session::{ClientState, Session};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Raft (log store, state machine, initialization) failed to start.
    #[error("raft: {0}")]
    Raft(#[from] raft::RaftError),
    /// The `aclfile` could not be read or holds an invalid rule.
    #[error("aclfile {path}: {reason}")]
    AclFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why (never a rule's text, which may hold a password).
        reason: String,
    },
    /// The TLS files could not be read or do not fit together.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The RESP or node-to-node port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused by `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands run.
    pub commands_processed: AtomicU64,
    /// Keys deleted by active expiry.
    pub expired_keys: AtomicU64,
    /// Connections closed for protocol errors.
    pub protocol_errors: AtomicU64,
    /// Highest `used_memory` reported.
    pub used_memory_peak: AtomicU64,
    /// Failed `AUTH`s (`acl_access_denied_auth`).
    pub acl_denied_auth: AtomicU64,
    /// Commands refused by ACL (`acl_access_denied_cmd`).
    pub acl_denied_cmd: AtomicU64,
    /// Keys refused by ACL (`acl_access_denied_key`).
    pub acl_denied_key: AtomicU64,
    /// Channels refused by ACL (`acl_access_denied_channel`).
    pub acl_denied_channel: AtomicU64,
}

/// Settings that `CONFIG SET` may change while running.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `proto-max-bulk-len`.
    pub proto_max_bulk_len: usize,
    /// `maxclients`.
    pub maxclients: usize,
    /// `slowlog-log-slower-than`, microseconds; negative = off.
    pub slowlog_log_slower_than: i64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: usize,
    /// `secret-prefixes`.
    pub secret_prefixes: Arc<Vec<String>>,
    /// `timeout`: idle seconds before a client is closed; 0 = never.
    pub timeout: u64,
    /// `client-query-buffer-limit`.
    pub client_query_buffer_limit: usize,
    /// `client-output-buffer-limit normal`: replies a client has not read yet.
    pub normal_output_limit: pubsub::OutputLimit,
    /// `protected-mode`.
    pub protected_mode: bool,
    /// The encoding thresholds (`hash-max-listpack-entries` and friends); every change is
    /// also published to the table `OBJECT ENCODING` reads.
    pub encoding: EncodingLimits,
}

/// Everything a connection needs from the node it runs on.
pub struct Node {
    /// The configuration the node started with.
    pub config: Config,
    /// Settings changeable at run time.
    pub runtime: RwLock<RuntimeSettings>,
    /// Raft.
    pub raft: RaftHandle,
    /// The replicated keyspace (read side).
    pub keyspace: SharedKeyspace,
    /// Counters.
    pub stats: Stats,
    /// Linearizable-read confirmations shared by all waiting readers.
    pub read_barrier: ReadBarrier,
    /// The RESP address actually bound: the plain port's, or the TLS port's when there is
    /// no plain port.
    pub resp_addr: SocketAddr,
    /// The RESP TLS address bound, when `tls-port` is set.
    pub tls_addr: Option<SocketAddr>,
    /// Clients blocked on keys.
    pub blocked: Arc<blocking::BlockedClients>,
    /// This node's pub/sub subscriptions.
    pub pubsub: Arc<pubsub::Hub>,
    /// Links to the other members: leader routing, forwarding, status probes.
    pub peers: Arc<peers::Peers>,
    /// Gathers the writes proposed here into one log entry per wave.
    gatherer: gather::Gatherer,
    /// Gathers the writes this follower forwards into one call to the leader per wave.
    forwarder: forwarding::Forwarder,
    /// Cell time as this node knows it: what entries are stamped with and TTLs are
    /// measured against (`clock::CellClock`).
    pub cell_clock: Arc<clock::CellClock>,
    /// The leader's evictions and growth in flight (`maxmemory`).
    evictor: eviction::Evictor,
    /// Bumped whenever applied entries change the ACL users, so connections re-read theirs.
    pub acl_epoch: Arc<AtomicU64>,
    /// Whether the users of `aclfile`/`requirepass` are loaded; commands wait until then.
    pub acl_ready: watch::Sender<bool>,
    /// This node's `ACL LOG`.
    pub acl_log: Mutex<security::AclLog>,
    /// This node's `SLOWLOG`.
    pub slowlog: Mutex<slowlog::SlowLog>,
    /// Connections in `MONITOR` mode.
    pub monitors: monitor::Monitors,
    clients: Mutex<BTreeMap<u64, Arc<ClientState>>>,
    connected: AtomicUsize,
    next_client_id: AtomicU64,
    started_ms: u64,
    /// Tells this run's client sessions apart from the previous runs' (`ClientId::boot`).
    boot: u64,
    shutdown: watch::Sender<bool>,
    leader: AtomicBool,
    /// The last log index when this node last took office: its projections of memory wait
    /// until everything up to it is applied.
    office_index: AtomicU64,
    /// A task of this leader is finishing a membership change left in joint consensus
    /// (`admin::finish_left_joint`).
    pub(crate) joint_finisher: AtomicBool,
}

impl Node {
    /// Proposes a connection's writes, in order, as one log entry under the connection's next
    /// session number: on the leader to its own Raft, on a follower forwarded to the leader in
    /// one RPC. The replies come back in order. While there is no leader, or the leader
    /// cannot take writes yet, or the leader was lost with the batch in flight, tries again
    /// (the same entry, which apply runs at most once) up to `cluster-wait-timeout`.
    pub async fn propose_many(&self, writer: &mut Writer, ops: Vec<Op>) -> WriteReplies {
        let count = ops.len();
        if count == 0 {
            return WriteReplies::ready(Vec::new());
        }
        let batch = [Op::Client {
            client: writer.id,
            seq: writer.next_seq(),
            ops,
        }];
        let deadline = clock::now_ms().saturating_add(
            u64::try_from(self.config.cluster_wait_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        // Once an attempt may have been applied, every later failure is reported as unknown:
        // the batch is sent again only under its session number, which apply runs once.
        let mut maybe_applied = false;
        loop {
            let route = if self.is_leader() {
                Ok(None)
            } else {
                self.peers.route().await
            };
            let outcome = match route {
                Err(text) => Proposal::NotProposed(text),
                Ok(Some(leader)) => match self.forwarder.forward(leader, &batch).await {
                    peers::Forwarded::Replies(frames) => Proposal::Replies(frames),
                    peers::Forwarded::Failed(text) => Proposal::Failed(text),
                    peers::Forwarded::Unknown(reason) => Proposal::Lost(reason),
                    peers::Forwarded::LeadsHere => {
                        Proposal::NotProposed(String::from("leadership moved here"))
                    }
                },
                Ok(None) => {
                    let left = deadline.saturating_sub(clock::now_ms());
                    let wait = Duration::from_millis(left).max(MIN_COMMIT_WAIT);
                    self.propose_local(&batch, wait, &mut writer.timer).await
                }
            };
            let reason = match outcome {
                Proposal::Replies(frames) => return WriteReplies::unbatch(frames, count),
                Proposal::Failed(text) if maybe_applied => {
                    tracing::warn!(reason = %text, "write outcome unknown");
                    return WriteReplies::Failed(peers::UNKNOWN_OUTCOME.to_string());
                }
                Proposal::Failed(text) => return WriteReplies::Failed(text),
                Proposal::Lost(text) => {
                    maybe_applied = true;
                    text
                }
                Proposal::NotProposed(text) => text,
            };
            if clock::now_ms() >= deadline {
                if maybe_applied {
                    tracing::warn!(%reason, "write outcome unknown at cluster-wait-timeout");
                    return WriteReplies::Failed(peers::UNKNOWN_OUTCOME.to_string());
                }
                return WriteReplies::Failed(format!(
                    "CLUSTERDOWN The cluster is down: no leader took the write within \
                     cluster-wait-timeout ({reason})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes `ops` stamped with this node's cell time to its own Raft, in the entry the
    /// gatherer proposes next, and waits up to `wait` (on `timer`) for their replies (one per
    /// op).
    pub async fn propose_local(
        &self,
        ops: &[Op],
        wait: Duration,
        timer: &mut CommitTimer,
    ) -> Proposal {
        // A leader new in office may not have applied its predecessors' last entries yet;
        // projecting memory without them would reserve too little room and let apply refuse
        // writes with -OOM while keys could still be evicted. (Its own entries are in the
        // evictor's pending totals.)
        let office = self.office_index.load(Ordering::Acquire);
        let behind = {
            let keyspace = self.keyspace.read();
            self.evictor.limits(&keyspace) && keyspace.applied_index() < office
        };
        if behind {
            let _ = self
                .raft
                .raft
                .wait(Some(wait))
                .applied_index_at_least(Some(office), "entries of earlier terms applied")
                .await;
        }
        // Room under `maxmemory` is made in the same message, ahead of the writes.
        let (time_ms, reservation) = {
            let keyspace = self.keyspace.read();
            (
                self.cell_now_ms(&keyspace),
                self.evictor.reserve(&keyspace, ops),
            )
        };
        let evictions = reservation.evictions.len();
        let proposed: Vec<Op> = reservation.evictions.iter().chain(ops).cloned().collect();
        let replied = self.gatherer.propose(time_ms, proposed);
        // A leader cut off from the majority may not learn for a while that it no longer
        // leads; its writes must not wait on it for ever.
        let deadline = timer.arm(wait);
        let proposal = tokio::select! {
            biased;
            gathered = replied => match gathered {
                Ok(Gathered::Applied(mut frames)) => {
                    for evicted in frames.drain(..evictions.min(frames.len())) {
                        if let Frame::Integer(evicted) = evicted {
                            tracing::debug!(evicted, "evicted under maxmemory");
                        }
                    }
                    Proposal::Replies(frames)
                }
                Ok(Gathered::NotLeader) => {
                    Proposal::NotProposed("this node does not lead".to_string())
                }
                // Proposed and then lost with the leadership: the next leader may still
                // commit it.
                Ok(Gathered::Lost(reason)) => Proposal::Lost(reason),
                Ok(Gathered::Stopped(reason)) => {
                    Proposal::Failed(format!("ERR raft stopped: {reason}"))
                }
                Err(_) => Proposal::Lost("the node is shutting down".to_string()),
            },
            _ = deadline => Proposal::Lost(format!("not committed within {} ms", wait.as_millis())),
        };
        self.evictor.release(reservation);
        proposal
    }

    /// Proposes one entry and waits for its reply.
    pub async fn write(&self, writer: &mut Writer, op: Op) -> Frame {
        self.propose_many(writer, vec![op]).await.next().await
    }

    /// The session numbering for connection `conn` of this run of the node (0 = the node's
    /// own tasks).
    pub fn writer(&self, conn: u64) -> Writer {
        Writer {
            id: ClientId {
                node: self.config.node_id,
                boot: self.boot,
                conn,
            },
            seq: 0,
            timer: CommitTimer::default(),
        }
    }

    /// Cell time now, in milliseconds: never behind the replicated clock of `keyspace`.
    pub fn cell_now_ms(&self, keyspace: &Keyspace) -> u64 {
        self.cell_clock.now_ms(keyspace.clock_ms())
    }

    /// Whether one of `keys` holds a list or sorted set now, so a blocked pop could be served.
    pub fn any_key_can_serve(&self, db: u32, keys: &[bytes::Bytes]) -> bool {
        key_can_serve(&self.keyspace, db, keys)
    }

    /// Whether this node currently leads (refreshed from Raft's metrics).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Asks the node to stop; `wait_shutdown` then returns.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true when the node is stopping.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Milliseconds since the node started.
    pub fn uptime_ms(&self) -> u64 {
        clock::now_ms().saturating_sub(self.started_ms)
    }

    /// Every connected client's record.
    pub fn clients(&self) -> Vec<Arc<ClientState>> {
        self.clients.lock().values().cloned().collect()
    }

    /// Number of connected clients.
    pub fn connected_clients(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    fn register(&self, addr: String, laddr: String) -> Arc<ClientState> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
        let client = Arc::new(ClientState::new(id, addr, laddr));
        self.clients.lock().insert(id, client.clone());
        client
    }

    fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }
}

/// The least time a write proposed on this node is given to commit, even when its
/// `cluster-wait-timeout` is nearly used up by waiting for a leader.
const MIN_COMMIT_WAIT: Duration = Duration::from_millis(500);

/// What became of entries proposed to this node's Raft or forwarded to the leader.
pub enum Proposal {
    /// Applied: one reply per entry.
    Replies(Vec<Frame>),
    /// Nothing was proposed; trying again (at the leader) may work.
    NotProposed(String),
    /// Proposed, then the leader was lost: they may or may not be applied.
    Lost(String),
    /// Will not work however often it is tried (the error text for the client).
    Failed(String),
}

/// One connection's numbering of its write batches: each batch goes to Raft as one
/// `Op::Client` entry under a new number, and is sent again under the same number when its
/// fate is unknown (see `keyspace::sessions`).
#[derive(Debug)]
pub struct Writer {
    id: ClientId,
    seq: u64,
    timer: CommitTimer,
}

/// The deadline a proposal's commit is awaited against, reused from proposal to proposal:
/// moving a registered timer to a later instant only updates it in place, while a fresh
/// timer per write takes and releases a lock of the runtime's timer wheel (perf put that at
/// about 5 % of a write's user-space CPU at pipeline 1; end to end it was within the noise,
/// docs/benchmarks.md).
#[derive(Debug, Default)]
pub struct CommitTimer(Option<std::pin::Pin<Box<tokio::time::Sleep>>>);

impl CommitTimer {
    /// Sets the deadline `wait` from now and returns the timer to await.
    fn arm(&mut self, wait: Duration) -> std::pin::Pin<&mut tokio::time::Sleep> {
        let deadline = tokio::time::Instant::now() + wait;
        if let Some(sleep) = &mut self.0 {
            sleep.as_mut().reset(deadline);
        }
        self.0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
            .as_mut()
    }
}

impl Writer {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The replies to a batch of writes, in proposal order.
pub enum WriteReplies {
    /// One reply per write.
    Ready(std::vec::IntoIter<Frame>),
    /// Could not be proposed, or the outcome is unknown; every write gets this error.
    Failed(String),
}

impl WriteReplies {
    fn ready(frames: Vec<Frame>) -> WriteReplies {
        WriteReplies::Ready(frames.into_iter())
    }

    /// The replies of a batch proposed as one `Op::Client` entry: that entry's reply is an
    /// array with one reply per write.
    fn unbatch(mut frames: Vec<Frame>, count: usize) -> WriteReplies {
        match (frames.pop(), frames.is_empty()) {
            (Some(Frame::Array(replies)), true) if replies.len() == count => {
                WriteReplies::ready(replies)
            }
            (Some(Frame::Error(text)), true) => WriteReplies::Failed(text),
            other => {
                tracing::error!(reply = ?other, "a write batch got a malformed reply");
                WriteReplies::Failed("ERR a write batch got a malformed reply".to_string())
            }
        }
    }

    /// The next write's reply.
    pub async fn next(&mut self) -> Frame {
        match self {
            WriteReplies::Failed(text) => Frame::error(text.clone()),
            WriteReplies::Ready(frames) => frames
                .next()
                .unwrap_or_else(|| Frame::error("ERR a write lost its reply")),
        }
    }
}

/// A running node: its listener and background tasks.
pub struct Server {
    /// The shared node state.
    pub node: Arc<Node>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds the node-to-node port, starts Raft (loading the snapshot and replaying the
    /// log), binds the RESP port and serves. A one-member cell first waits until this node
    /// leads; a member of a larger cell serves at once, and its commands wait for a leader
    /// (up to `cluster-wait-timeout`), since the others may not have started yet.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        Server::start_with(config, Stores::Dir).await
    }

    /// [`Server::start`] with the Raft log and snapshots kept in `stores` (the simulation
    /// passes its in-memory disk).
    pub async fn start_with(config: Config, stores: Stores) -> Result<Server, StartError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StartError::DataDir {
            path: config.dir.clone(),
            source,
        })?;
        // Before anything listens: a bad certificate or key stops the node here.
        let tls = crate::tls::load(&config.tls)?;
        #[cfg(feature = "fault-injection")]
        tokio::spawn(crate::fault::watch(config.dir.clone()));
        let raft_bind = format!("{}:{}", config.bind, config.raft_port);
        let (raft_listener, raft_local) =
            peers::bind(&raft_bind)
                .await
                .map_err(|source| StartError::Listen {
                    addr: raft_bind.clone(),
                    source,
                })?;
        let startup_users = read_startup_users(&config)?;
        let keyspace: SharedKeyspace = Arc::new(RwLock::new(Keyspace::new()));
        let acl_epoch = Arc::new(AtomicU64::new(1));
        let blocked = Arc::new(blocking::BlockedClients::default());
        let pubsub = Arc::new(pubsub::Hub::default());
        pubsub.set_limit(config.client_output_buffer_limit.pubsub);
        let members: BTreeMap<raft::NodeId, String> = config
            .peers
            .iter()
            .map(|p| (p.id, p.addr.clone()))
            .collect();
        let raft_addr = members
            .get(&config.node_id)
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", config.bind, raft_local.port()));
        let settings = RaftSettings {
            node_id: config.node_id,
            dir: config.dir.clone(),
            raft_addr,
            peers: members,
            cluster_name: config.cluster_name.clone(),
            snapshot_entries: config.snapshot_entries,
            snapshot_interval: config.snapshot_interval,
            peer_tls: tls.peers.clone(),
            events: Some(event_sink(
                keyspace.clone(),
                blocked.clone(),
                pubsub.clone(),
                acl_epoch.clone(),
            )),
        };
        let raft = stores.start_raft(settings, keyspace.clone()).await?;
        if config.peers.is_empty() {
            raft.wait_leader(Duration::from_secs(30)).await?;
        }
        tracing::info!(addr = %raft_local, node_id = config.node_id, "serving node-to-node gRPC");

        let listener = match config.plain_port_enabled() {
            true => Some(listen(&config.bind, config.port).await?),
            false => None,
        };
        let tls_listener = match (config.tls.port, tls.resp.clone()) {
            (Some(port), Some(acceptor)) => Some((listen(&config.bind, port).await?, acceptor)),
            _ => None,
        };
        let tls_addr = tls_listener.as_ref().map(|((_, addr), _)| *addr);
        let Some(resp_addr) = listener.as_ref().map(|(_, addr)| *addr).or(tls_addr) else {
            return Err(StartError::Listen {
                addr: config.bind.clone(),
                source: std::io::Error::other("neither port nor tls-port is served"),
            });
        };
        warn_if_exposed(&config);
        let (shutdown, _) = watch::channel(false);
        let cell_clock = Arc::new(clock::CellClock::default());
        let peers = Arc::new(peers::Peers::new(
            cell_clock.clone(),
            config.node_id,
            &config.cluster_name,
            raft.raft.clone(),
            raft.channels(),
            config.cluster_wait_timeout,
        ));
        let (gatherer, gather_task) = gather::Gatherer::start(raft.raft.clone());
        let (forwarder, forward_task) = forwarding::Forwarder::start(peers.clone());
        let read_barrier =
            ReadBarrier::start(raft.raft.clone(), peers.clone(), config.read_consistency);
        let runtime = RuntimeSettings {
            proto_max_bulk_len: config.proto_max_bulk_len,
            maxclients: config.maxclients,
            slowlog_log_slower_than: config.slowlog_log_slower_than,
            slowlog_max_len: config.slowlog_max_len,
            secret_prefixes: Arc::new(config.secret_prefixes.clone()),
            timeout: config.timeout,
            client_query_buffer_limit: config.client_query_buffer_limit,
            normal_output_limit: config.client_output_buffer_limit.normal,
            protected_mode: config.protected_mode,
            encoding: EncodingLimits::default(),
        };
        // A node restarted inside a long-lived process (the simulator) starts from the
        // defaults again, for OBJECT ENCODING as for CONFIG GET.
        encoding::publish(&runtime.encoding);
        let node = Arc::new(Node {
            runtime: RwLock::new(runtime),
            config,
            raft,
            keyspace,
            stats: Stats::default(),
            read_barrier,
            resp_addr,
            tls_addr,
            blocked,
            pubsub,
            peers,
            gatherer,
            forwarder,
            cell_clock,
            evictor: eviction::Evictor::default(),
            acl_epoch,
            acl_ready: watch::channel(false).0,
            acl_log: Mutex::new(security::AclLog::default()),
            slowlog: Mutex::new(slowlog::SlowLog::default()),
            monitors: monitor::Monitors::default(),
            clients: Mutex::new(BTreeMap::new()),
            connected: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(0),
            started_ms: clock::now_ms(),
            // The start time alone: two runs of one node never start in the same millisecond
            // (one process at a time holds its directory), and nothing per-process may reach
            // the log, or a simulation would not replay the same from its seed.
            boot: clock::now_ms(),
            shutdown,
            leader: AtomicBool::new(false),
            office_index: AtomicU64::new(0),
            joint_finisher: AtomicBool::new(false),
        });
        let mut tasks = vec![gather_task, forward_task];
        if let Some((listener, addr)) = listener {
            tracing::info!(%addr, node_id = node.config.node_id, "serving RESP");
            tasks.push(tokio::spawn(conn::accept_loop(
                node.clone(),
                listener,
                None,
            )));
        }
        if let Some(((listener, addr), acceptor)) = tls_listener {
            tracing::info!(%addr, node_id = node.config.node_id, "serving RESP over TLS");
            tasks.push(tokio::spawn(conn::accept_loop(
                node.clone(),
                listener,
                Some(acceptor),
            )));
        }
        tasks.extend([
            tokio::spawn(expiry::run(node.clone())),
            tokio::spawn(eviction::run(node.clone())),
            tokio::spawn(watch_leadership(node.clone())),
            tokio::spawn(peers::serve(node.clone(), raft_listener)),
            tokio::spawn(peers::probe_loop(node.clone())),
            tokio::spawn(security::load_at_start(node.clone(), startup_users)),
        ]);
        Ok(Server { node, tasks })
    }

    /// The bound RESP address (the TLS one when there is no plain port).
    pub fn resp_addr(&self) -> SocketAddr {
        self.node.resp_addr
    }

    /// The bound RESP TLS address, when `tls-port` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.node.tls_addr
    }

    /// Waits until something asks the node to stop (SHUTDOWN, or `request_shutdown`).
    pub async fn wait_shutdown(&self) {
        let mut signal = self.node.shutdown_signal();
        while !*signal.borrow_and_update() {
            if signal.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops serving and shuts Raft down cleanly (its log is already durable).
    pub async fn stop(self) {
        self.node.request_shutdown();
        for task in &self.tasks {
            task.abort();
        }
        if let Err(e) = self.node.raft.stop_raft().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// Binds a RESP listener on `bind:port`; returns it with the address bound.
async fn listen(bind: &str, port: u16) -> Result<(TcpListener, SocketAddr), StartError> {
    let addr = format!("{bind}:{port}");
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    Ok((listener, local))
}

/// Redis's start-up warning for a server reachable from other hosts that opens without a
/// password: in protected mode those clients will be refused (`-DENIED`) until one is set.
fn warn_if_exposed(config: &Config) {
    let loopback = match config.bind.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => config.bind == "localhost",
    };
    if loopback || config.requirepass.is_some() || config.aclfile.is_some() {
        return;
    }
    if config.protected_mode {
        tracing::warn!(
            bind = %config.bind,
            "protected mode is on and the default user has no password: clients that are \
             not on this host (or without a TLS client certificate) are refused with DENIED; \
             set requirepass or an aclfile, or protected-mode no on a trusted network"
        );
    } else {
        tracing::warn!(
            bind = %config.bind,
            "listening beyond loopback with protected-mode no and no password: anyone who \
             reaches the port can read and change every key"
        );
    }
}

/// The users `aclfile` and `requirepass` configure, read before anything starts so a bad
/// file stops the node at once, as it stops Redis.
fn read_startup_users(
    config: &Config,
) -> Result<Option<(String, Vec<crate::acl::UserRules>)>, StartError> {
    let text = match &config.aclfile {
        None => None,
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|e| StartError::AclFile {
                path: path.clone(),
                reason: e.to_string(),
            })?,
        ),
    };
    crate::acl::startup_users(
        text.as_deref(),
        config.requirepass.as_ref().map(|p| p.expose()),
    )
    .map_err(|reason| StartError::AclFile {
        path: config.aclfile.clone().unwrap_or_default(),
        reason,
    })
}

/// Where apply's events go: ready keys wake this node's blocked clients (only when the key
/// can serve them, so a pop that emptied a list wakes nobody), and messages published inside
/// transactions reach this node's subscribers.
fn event_sink(
    keyspace: SharedKeyspace,
    blocked: Arc<blocking::BlockedClients>,
    pubsub: Arc<pubsub::Hub>,
    acl_epoch: Arc<AtomicU64>,
) -> EventSink {
    EventSink::new(move |events| {
        for event in events {
            match event {
                Event::Ready { db, key } => {
                    if blocked.has_waiters(db, &key)
                        && key_can_serve(&keyspace, db, std::slice::from_ref(&key))
                    {
                        blocked.key_ready(db, &key);
                    }
                }
                Event::Publish { channel, message } => {
                    pubsub.publish(&channel, &message);
                }
                Event::AclChanged => {
                    acl_epoch.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    })
}

fn key_can_serve(keyspace: &SharedKeyspace, db: u32, keys: &[bytes::Bytes]) -> bool {
    let keyspace = keyspace.read();
    let now_ms = clock::now_ms().max(keyspace.clock_ms());
    let Some(db) = keyspace.db(db) else {
        return false;
    };
    keys.iter().any(|key| {
        db.get(key, now_ms)
            .is_some_and(|e| matches!(e.value, Value::List(_) | Value::ZSet(_)))
    })
}

/// Keeps [`Node::is_leader`] current from Raft's metrics.
async fn watch_leadership(node: Arc<Node>) {
    let me = node.config.node_id;
    let mut metrics = node.raft.raft.metrics();
    loop {
        let (leads, sole_voter, joint, last_log_index) = {
            let m = openraft_rt::WatchReceiver::borrow_watched(&metrics);
            let leads = m.current_leader == Some(me) && m.state == openraft::ServerState::Leader;
            let membership = m.membership_config.membership();
            let mut voters = membership.voter_ids();
            let joint = membership.get_joint_config().len() > 1;
            // A joint configuration (a change in progress) never counts as sole.
            let sole = voters.next() == Some(me) && voters.next().is_none() && !joint;
            (leads, sole, joint, m.last_log_index.unwrap_or(0))
        };
        if leads && !node.leader.load(Ordering::Relaxed) {
            // Taking office is the one moment the wall clock may move cell time (forward
            // only): a sitting leader's clock jumping later moves no expiry.
            let replicated = node.keyspace.read().clock_ms();
            node.cell_clock.take_office(replicated);
            node.office_index.store(last_log_index, Ordering::Release);
        }
        node.leader.store(leads, Ordering::Relaxed);
        node.read_barrier.set_sole_voter_leader(leads && sole_voter);
        if leads && joint && !node.joint_finisher.swap(true, Ordering::AcqRel) {
            tokio::spawn(admin::finish_left_joint(node.clone()));
        }
        if openraft_rt::WatchReceiver::changed(&mut metrics)
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::CommitTimer;

    #[tokio::test]
    async fn a_reused_commit_timer_fires_at_its_latest_deadline() {
        let mut timer = CommitTimer::default();
        // Fires once armed and awaited.
        tokio::time::timeout(Duration::from_secs(5), timer.arm(Duration::from_millis(20)))
            .await
            .expect("an armed timer fires");
        // Re-armed after firing, for a minute: it must not fire at the old deadline.
        let later = tokio::time::timeout(
            Duration::from_millis(200),
            timer.arm(Duration::from_secs(60)),
        );
        assert!(later.await.is_err(), "re-armed timer fired early");
        // Armed earlier than its pending deadline: the earlier one holds.
        tokio::time::timeout(Duration::from_secs(5), timer.arm(Duration::from_millis(20)))
            .await
            .expect("a timer moved earlier fires at the earlier deadline");
    }
}

//! A node's work with the other members of its cell, beyond Raft replication itself:
//! - [`Peers`]: finding the leader (waiting up to `cluster-wait-timeout` while there is
//!   none), forwarding a follower's writes to it, asking it for a read index, and a status
//!   probe of every member once a second (for `ROLE` and `INFO replication`: who leads, its
//!   RESP port, whether the link is up);
//! - the `Forward` and `Admin` gRPC services the leader and every node answer them with
//!   (`Admin`'s membership calls are carried out by [`admin`](super::admin));
//! - [`serve`], the gRPC listener on the Raft port carrying those two and the `Raft` service.
//!
//! Forwarding: a follower sends one connection's batch of writes (one session-numbered
//! `Op::Client` entry) to the leader, which stamps it with its cell time, proposes it and returns
//! its reply. When the receiver is not the leader, or the leader cannot even be connected to,
//! nothing was proposed and the follower tries again at the leader it learns of. When the
//! call failed after it was sent, the outcome is unknown and [`Forwarded::Unknown`] says so;
//! the caller may send the same entry again, which apply runs at most once.
//!
//! Reads on a follower are linearizable: the leader confirms it still leads and returns its
//! read index (openraft's read-index), the follower waits until it has applied that far, then
//! reads locally. Many reads waiting at once share one round (see `read_barrier`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cellkv_proto::v1::admin_client::AdminClient;
use cellkv_proto::v1::admin_server::{self, AdminServer};
use cellkv_proto::v1::fanout_server::FanoutServer;
use cellkv_proto::v1::forward_client::ForwardClient;
use cellkv_proto::v1::forward_server::{self, ForwardServer};
use cellkv_proto::v1::{
    AddNodeRequest, AdminReply, ForwardReply, ForwardRequest, ReadIndexReply, ReadIndexRequest,
    RemoveNodeRequest, SnapshotRequest, StatusReply, StatusRequest, TransferLeaderRequest,
};
use openraft::ReadPolicy;
use openraft_rt::WatchReceiver;
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

use super::admin::{self, Change};
use super::{clock, Node};
use crate::keyspace::Op;
use crate::raft::grpc::{decode, encode, refusal};
use crate::raft::network::{PeerChannels, MAX_MESSAGE};
use crate::raft::{LogId, NodeId, Raft};
use crate::resp::Frame;

/// Deadline of one forwarded batch of writes: they must be replicated and applied.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the leader waits for forwarded writes to commit: the sender gives up first, so
/// an answer it gets is never one it stopped waiting for.
const COMMIT_WAIT: Duration = Duration::from_secs(9);
/// Deadline of one read-index request (one heartbeat round on the leader).
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);
/// How often every member is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A member not heard from for this long counts as disconnected (`master_link_status:down`).
pub const LINK_DOWN_AFTER_MS: u64 = 3_000;
/// Pause before another attempt when the leader changed under a request.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The reply to writes whose fate is unknown: the leader did not answer after receiving them.
pub const UNKNOWN_OUTCOME: &str =
    "UNKNOWN the leader did not answer; the write may or may not have been applied";

/// What a member last told this node about itself.
#[derive(Clone, Debug, Default)]
pub struct PeerStatus {
    /// Its RESP port.
    pub resp_port: u16,
    /// Its Raft state (`Leader`, `Follower`, ...).
    pub state: String,
    /// The leader it knows of (0 = none).
    pub leader_id: u64,
    /// Its applied index.
    pub applied_index: u64,
    /// When it last answered (ms since the epoch); 0 = never.
    pub last_ok_ms: u64,
}

impl PeerStatus {
    /// Whether it answered recently.
    pub fn is_up(&self, now_ms: u64) -> bool {
        self.last_ok_ms != 0 && now_ms.saturating_sub(self.last_ok_ms) < LINK_DOWN_AFTER_MS
    }
}

/// The outcome of one attempt to forward writes.
enum Attempt {
    /// One reply per write.
    Replies(Vec<Frame>),
    /// Nothing was proposed: the receiver is not the leader (here is who it thinks is), or
    /// it could not be connected to.
    NotProposed(Option<NodeId>, String),
    /// Nothing was proposed and trying again will not help.
    Refused(String),
    /// The writes may or may not have been applied.
    Unknown(String),
}

/// The outcome of forwarding writes.
#[derive(Clone, Debug)]
pub enum Forwarded {
    /// One reply per write, in order.
    Replies(Vec<Frame>),
    /// The error every write gets (no leader, refused); nothing was applied.
    Failed(String),
    /// The writes were sent and the leader was lost before it answered: they may or may not
    /// have been applied.
    Unknown(String),
    /// Leadership moved to this node before anything was proposed: propose locally.
    LeadsHere,
}

/// The outcome of a follower's read-index round.
pub enum ReadIndex {
    /// This node has applied the leader's read index: read locally.
    Ready,
    /// Leadership moved to this node: confirm as the leader.
    LeadsHere,
    /// The read cannot be confirmed; the error text for the client.
    Failed(String),
}

/// This node's links to the other members.
pub struct Peers {
    cell_clock: Arc<clock::CellClock>,
    me: NodeId,
    cluster: String,
    raft: Raft,
    channels: PeerChannels,
    wait_timeout: Duration,
    status: Mutex<BTreeMap<NodeId, PeerStatus>>,
}

impl Peers {
    /// Links of node `me` in cell `cluster`, over the Raft handle's channels.
    pub fn new(
        cell_clock: Arc<clock::CellClock>,
        me: NodeId,
        cluster: &str,
        raft: Raft,
        channels: PeerChannels,
        wait_timeout: Duration,
    ) -> Peers {
        Peers {
            cell_clock,
            me,
            cluster: cluster.to_string(),
            raft,
            channels,
            wait_timeout,
            status: Mutex::new(BTreeMap::new()),
        }
    }

    /// What every probed member last said.
    pub fn statuses(&self) -> BTreeMap<NodeId, PeerStatus> {
        self.status.lock().clone()
    }

    /// The Raft address of member `id`.
    fn addr_of(&self, id: NodeId) -> Option<String> {
        crate::raft::member_addr(&self.raft, id)
    }

    /// The leader, waiting until `deadline_ms` for one to be known.
    async fn leader(&self, deadline_ms: u64) -> Result<NodeId, String> {
        let remaining = deadline_ms.saturating_sub(clock::now_ms());
        self.raft
            .wait(Some(Duration::from_millis(remaining)))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .ok()
            .and_then(|m| m.current_leader)
            .ok_or_else(|| {
                "CLUSTERDOWN The cluster is down: no leader within cluster-wait-timeout".to_string()
            })
    }

    fn deadline(&self) -> u64 {
        clock::now_ms().saturating_add(self.wait_timeout.as_millis() as u64)
    }

    /// Where writes should go now: `Ok(None)` = this node leads; `Ok(Some(id))` = forward to
    /// `id`. Waits up to `cluster-wait-timeout` for a leader.
    pub async fn route(&self) -> Result<Option<NodeId>, String> {
        let leader = self.leader(self.deadline()).await?;
        Ok((leader != self.me).then_some(leader))
    }

    /// Forwards `ops` to the leader (first `leader`) and returns one reply per op, or the
    /// error text every op gets. Tries again only while nothing was proposed, until
    /// `cluster-wait-timeout`.
    pub async fn forward(&self, leader: NodeId, ops: &[Op]) -> Forwarded {
        let encoded = match encode(&ops) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => return Forwarded::Failed(format!("ERR forward: {e}")),
        };
        let deadline = self.deadline();
        let mut target = leader;
        let mut hops = 0;
        loop {
            let reason = match self.forward_once(target, encoded.clone()).await {
                Attempt::Replies(frames) if frames.len() == ops.len() => {
                    return Forwarded::Replies(frames)
                }
                Attempt::Replies(frames) => {
                    return Forwarded::Failed(format!(
                        "ERR the leader answered {} writes with {} replies",
                        ops.len(),
                        frames.len()
                    ))
                }
                Attempt::Refused(reason) => {
                    return Forwarded::Failed(format!("ERR forward refused: {reason}"))
                }
                Attempt::Unknown(reason) => {
                    tracing::info!(leader = target, %reason, "forwarded writes: leader lost");
                    return Forwarded::Unknown(reason);
                }
                Attempt::NotProposed(Some(hint), _)
                    if hint != target && hint != self.me && clock::now_ms() < deadline =>
                {
                    // Follow the hint at once; two nodes naming each other during an
                    // election must not spin.
                    hops += 1;
                    if hops > 2 {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    target = hint;
                    continue;
                }
                Attempt::NotProposed(_, reason) => reason,
            };
            if clock::now_ms() >= deadline {
                return Forwarded::Failed(format!(
                    "CLUSTERDOWN The cluster is down: no leader took the write within cluster-wait-timeout ({reason})"
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            target = match self.leader(deadline).await {
                Ok(leader) => leader,
                Err(text) => return Forwarded::Failed(text),
            };
            if target == self.me {
                return Forwarded::LeadsHere;
            }
        }
    }

    async fn forward_once(&self, target: NodeId, ops: Bytes) -> Attempt {
        let Some(addr) = self.addr_of(target) else {
            return Attempt::NotProposed(None, format!("node {target} is not a member"));
        };
        let channel = match self.channels.channel(target, &addr) {
            Ok(channel) => channel,
            Err(e) => return Attempt::Refused(e),
        };
        let mut client = ForwardClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut request = Request::new(ForwardRequest {
            ops,
            from: self.me,
            cluster: self.cluster.clone(),
        });
        request.set_timeout(FORWARD_TIMEOUT);
        let reply = match tokio::time::timeout(FORWARD_TIMEOUT, client.execute(request)).await {
            Err(_) => return Attempt::Unknown(format!("no answer from node {target} in time")),
            Ok(Err(status)) if never_sent(&status) => {
                return Attempt::NotProposed(None, format!("node {target}: {}", status.message()))
            }
            // Refused before anything was proposed: this node is not a member there.
            Ok(Err(status)) if status.code() == tonic::Code::PermissionDenied => {
                return Attempt::Refused(status.message().to_string())
            }
            Ok(Err(status)) => {
                return Attempt::Unknown(format!(
                    "node {target}: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if !reply.error.is_empty() {
            return Attempt::Refused(reply.error);
        }
        if reply.frames.is_empty() {
            let hint = (reply.leader_id != 0).then_some(reply.leader_id);
            return Attempt::NotProposed(hint, format!("node {target} does not lead"));
        }
        match decode::<Vec<Frame>>(&reply.frames) {
            Ok(frames) => Attempt::Replies(frames),
            Err(e) => Attempt::Unknown(format!("undecodable replies from node {target}: {e}")),
        }
    }

    /// On a follower: asks the leader for a read index and waits until this node has applied
    /// that far, so a local read that follows sees every write acknowledged before it.
    pub async fn follower_read_index(&self) -> ReadIndex {
        let deadline = self.deadline();
        loop {
            let leader = match self.leader(deadline).await {
                Ok(leader) => leader,
                Err(text) => return ReadIndex::Failed(text),
            };
            if leader == self.me {
                return ReadIndex::LeadsHere;
            }
            match self.read_index_once(leader).await {
                Ok((index, leader_time_ms)) => {
                    self.cell_clock.now_ms(leader_time_ms);
                    let remaining = deadline.saturating_sub(clock::now_ms());
                    let wait = Duration::from_millis(remaining).max(READ_INDEX_TIMEOUT);
                    return match self
                        .raft
                        .wait(Some(wait))
                        .applied_index_at_least(Some(index), "the read index is applied")
                        .await
                    {
                        Ok(_) => ReadIndex::Ready,
                        Err(e) => ReadIndex::Failed(format!("TRYAGAIN read not confirmed: {e}")),
                    };
                }
                Err((retry, reason)) => {
                    if !retry || clock::now_ms() >= deadline {
                        return ReadIndex::Failed(format!("TRYAGAIN read not confirmed: {reason}"));
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// One read-index request: the index and the leader's cell time, or, on failure,
    /// whether trying again may help.
    async fn read_index_once(&self, leader: NodeId) -> Result<(u64, u64), (bool, String)> {
        let addr = self
            .addr_of(leader)
            .ok_or_else(|| (true, format!("node {leader} is not a member")))?;
        let channel = self
            .channels
            .channel(leader, &addr)
            .map_err(|e| (false, e))?;
        let mut client = ForwardClient::new(channel);
        let mut request = Request::new(ReadIndexRequest {
            from: self.me,
            cluster: self.cluster.clone(),
        });
        request.set_timeout(READ_INDEX_TIMEOUT);
        let reply = match tokio::time::timeout(READ_INDEX_TIMEOUT, client.read_index(request)).await
        {
            Err(_) => return Err((true, format!("node {leader} did not answer in time"))),
            Ok(Err(status)) => return Err((true, format!("node {leader}: {}", status.message()))),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if !reply.error.is_empty() {
            return Err((false, reply.error));
        }
        if reply.read_log_id.is_empty() {
            return Err((true, format!("node {leader} does not lead")));
        }
        let log_id: LogId = decode(&reply.read_log_id)
            .map_err(|e| (false, format!("undecodable read index: {e}")))?;
        Ok((log_id.index, reply.time_ms))
    }

    /// Asks every other member for its status, concurrently, and records the answers.
    async fn probe_all(&self) {
        let members: Vec<(NodeId, String)> = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.me)
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect()
        };
        let probes = members.into_iter().map(|(id, addr)| async move {
            let answer = self.probe(id, &addr).await;
            (id, answer)
        });
        let answers = futures_util::future::join_all(probes).await;
        let now = clock::now_ms();
        let mut status = self.status.lock();
        for (id, answer) in answers {
            let entry = status.entry(id).or_default();
            if let Some(reply) = answer {
                entry.resp_port = u16::try_from(reply.resp_port).unwrap_or(0);
                entry.state = reply.state;
                entry.leader_id = reply.leader_id;
                entry.applied_index = reply.applied_index;
                entry.last_ok_ms = now;
            }
        }
    }

    async fn probe(&self, id: NodeId, addr: &str) -> Option<StatusReply> {
        let channel = self.channels.channel(id, addr).ok()?;
        let mut client = AdminClient::new(channel);
        let mut request = Request::new(StatusRequest {
            from: self.me,
            cluster: self.cluster.clone(),
        });
        request.set_timeout(PROBE_EVERY);
        let reply = tokio::time::timeout(PROBE_EVERY, client.status(request))
            .await
            .ok()?
            .ok()?
            .into_inner();
        (reply.error.is_empty() && reply.node_id == id).then_some(reply)
    }
}

/// Whether a failed call certainly never reached the peer's handler: the connection could
/// not be made. tonic reports that as `Unavailable` with the connector's message.
fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let message = status.message().to_ascii_lowercase();
    // A name that does not resolve (a dead container's) was never connected to either.
    [
        "connect error",
        "trying to connect",
        "connection refused",
        "dns error",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Refuses (`PermissionDenied`) a call from a node that is not a member of this node's
/// cell, logging the sender's id and address (see `raft::grpc`'s module documentation).
pub fn admit_member(
    node: &Node,
    rpc: &'static str,
    from: NodeId,
    addr: Option<std::net::SocketAddr>,
) -> Result<(), Status> {
    match node.raft.sender_refusal(from) {
        None => Ok(()),
        Some(reason) => {
            let addr = addr.map(|a| a.to_string()).unwrap_or_default();
            tracing::warn!(from, %addr, rpc, "refused node-to-node traffic from a non-member");
            Err(Status::permission_denied(reason))
        }
    }
}

/// Probes every member once a second until the node stops.
pub async fn probe_loop(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    loop {
        node.peers.probe_all().await;
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

/// The `Forward` and `Admin` services of a node.
pub struct NodeService {
    node: Arc<Node>,
}

impl NodeService {
    fn refused(&self, cluster: &str) -> Option<String> {
        refusal(
            self.node.config.node_id,
            self.node.raft.cluster_name(),
            cluster,
            0,
        )
    }

    /// The leader hint when this node does not lead.
    fn leader_hint(&self) -> Option<(u64, String)> {
        let metrics = self.node.raft.metrics();
        let me = self.node.config.node_id;
        if metrics.current_leader == Some(me) && metrics.state == openraft::ServerState::Leader {
            return None;
        }
        let leader = metrics.current_leader.unwrap_or(0);
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((leader, addr))
    }
}

#[tonic::async_trait]
impl forward_server::Forward for NodeService {
    async fn execute(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let addr = request.remote_addr();
        let request = request.into_inner();
        let refuse = |error: String| {
            Ok(Response::new(ForwardReply {
                error,
                ..ForwardReply::default()
            }))
        };
        if let Some(reason) = self.refused(&request.cluster) {
            return refuse(reason);
        }
        admit_member(&self.node, "forward", request.from, addr)?;
        let ops: Vec<Op> = match decode(&request.ops) {
            Ok(ops) => ops,
            Err(e) => return refuse(format!("undecodable writes: {e}")),
        };
        if let Some((leader_id, leader_addr)) = self.leader_hint() {
            return Ok(Response::new(ForwardReply {
                leader_id,
                leader_addr,
                ..ForwardReply::default()
            }));
        }
        let frames = match self
            .node
            .propose_local(&ops, COMMIT_WAIT, &mut super::CommitTimer::default())
            .await
        {
            super::Proposal::Replies(frames) => frames,
            super::Proposal::NotProposed(_) => {
                // Leadership lost, or no quorum heard from yet: the sender tries again.
                let (leader_id, leader_addr) = self.leader_hint().unwrap_or_default();
                return Ok(Response::new(ForwardReply {
                    leader_id,
                    leader_addr,
                    ..ForwardReply::default()
                }));
            }
            // The sender takes any failure after sending as an unknown outcome and sends the
            // same session-numbered batch again.
            super::Proposal::Lost(reason) => return Err(Status::aborted(reason)),
            super::Proposal::Failed(reason) => return refuse(reason),
        };
        match encode(&frames) {
            Ok(bytes) => Ok(Response::new(ForwardReply {
                frames: Bytes::from(bytes),
                ..ForwardReply::default()
            })),
            Err(e) => Err(Status::internal(format!("cannot encode replies: {e}"))),
        }
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        let addr = request.remote_addr();
        let request = request.into_inner();
        if let Some(error) = self.refused(&request.cluster) {
            return Ok(Response::new(ReadIndexReply {
                error,
                ..ReadIndexReply::default()
            }));
        }
        admit_member(&self.node, "read_index", request.from, addr)?;
        if let Some((leader_id, leader_addr)) = self.leader_hint() {
            return Ok(Response::new(ReadIndexReply {
                leader_id,
                leader_addr,
                ..ReadIndexReply::default()
            }));
        }
        let reply = match self
            .node
            .raft
            .raft
            .get_read_linearizer(ReadPolicy::ReadIndex)
            .await
        {
            Ok(linearizer) => match encode(linearizer.read_log_id().log_id()) {
                Ok(bytes) => ReadIndexReply {
                    read_log_id: Bytes::from(bytes),
                    time_ms: self.node.cell_now_ms(&self.node.keyspace.read()),
                    ..ReadIndexReply::default()
                },
                Err(e) => return Err(Status::internal(format!("cannot encode: {e}"))),
            },
            Err(e) => match self.leader_hint() {
                Some((leader_id, leader_addr)) => ReadIndexReply {
                    leader_id,
                    leader_addr,
                    ..ReadIndexReply::default()
                },
                None => return Err(Status::unavailable(e.to_string())),
            },
        };
        Ok(Response::new(reply))
    }
}

impl NodeService {
    /// Refuses another cell's call (an empty name accepts any), else runs `change`.
    async fn membership(&self, cluster: &str, change: Change) -> Response<AdminReply> {
        if !cluster.is_empty() {
            if let Some(error) = self.refused(cluster) {
                return Response::new(AdminReply {
                    error,
                    ..AdminReply::default()
                });
            }
        }
        Response::new(admin::run(&self.node, change).await)
    }
}

#[tonic::async_trait]
impl admin_server::Admin for NodeService {
    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let request = request.into_inner();
        if request.node_id == 0 || request.addr.is_empty() {
            return Ok(Response::new(AdminReply {
                error: "a node needs an id of 1 or more and a Raft address".to_string(),
                ..AdminReply::default()
            }));
        }
        let change = Change::Add {
            id: request.node_id,
            addr: request.addr,
        };
        Ok(self.membership(&request.cluster, change).await)
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let request = request.into_inner();
        let change = Change::Remove {
            id: request.node_id,
        };
        Ok(self.membership(&request.cluster, change).await)
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let request = request.into_inner();
        let change = Change::Transfer {
            id: request.node_id,
        };
        Ok(self.membership(&request.cluster, change).await)
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let request = request.into_inner();
        if !request.cluster.is_empty() {
            if let Some(error) = self.refused(&request.cluster) {
                return Ok(Response::new(AdminReply {
                    error,
                    ..AdminReply::default()
                }));
            }
        }
        Ok(Response::new(admin::snapshot(&self.node, request).await))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let request = request.into_inner();
        if !request.cluster.is_empty() {
            if let Some(error) = self.refused(&request.cluster) {
                return Ok(Response::new(StatusReply {
                    error,
                    ..StatusReply::default()
                }));
            }
        }
        let node = &self.node;
        let metrics = node.raft.metrics();
        let membership = metrics.membership_config.membership();
        let applied = metrics.last_applied.as_ref().map_or(0, |l| l.index);
        Ok(Response::new(StatusReply {
            node_id: node.config.node_id,
            resp_port: u32::from(node.resp_addr.port()),
            raft_addr: node
                .raft
                .member_addr(node.config.node_id)
                .unwrap_or_default(),
            state: format!("{:?}", metrics.state),
            term: metrics.current_term,
            leader_id: metrics.current_leader.unwrap_or(0),
            commit_index: metrics
                .local_committed
                .as_ref()
                .map_or(0, |l| l.index)
                .max(applied),
            applied_index: applied,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            error: String::new(),
            cluster: node.raft.cluster_name().to_string(),
        }))
    }
}

/// Where the node-to-node listener listens: a bound socket in a normal build; under madsim,
/// the address the simulated server binds itself.
#[cfg(not(madsim))]
pub type RaftListener = tokio::net::TcpListener;
/// Where the node-to-node listener listens (simulated build).
#[cfg(madsim)]
pub type RaftListener = std::net::SocketAddr;

/// Binds the node-to-node port; returns the listener and the address bound.
#[cfg(not(madsim))]
pub async fn bind(addr: &str) -> std::io::Result<(RaftListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Binds the node-to-node port (simulated build: the address must be an IP and port).
#[cfg(madsim)]
pub async fn bind(addr: &str) -> std::io::Result<(RaftListener, std::net::SocketAddr)> {
    let parsed: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok((parsed, parsed))
}

/// The gRPC server builder: with `tls-replication`, mutual TLS (the handshake refuses a peer
/// without a certificate signed by the CA).
fn server_builder(
    tls: Option<&crate::tls::PeerTls>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let builder = tonic::transport::Server::builder();
    match tls {
        None => Ok(builder),
        #[cfg(not(madsim))]
        Some(tls) => builder.tls_config(tls.server.clone()),
        #[cfg(madsim)]
        Some(tls) => match *tls {},
    }
}

/// Serves the `Raft`, `Forward`, `Admin` and `Fanout` services on `listener` until the node
/// stops.
pub async fn serve(node: Arc<Node>, listener: RaftListener) {
    let mut shutdown = node.shutdown_signal();
    let signal = async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    let service = Arc::new(NodeService { node: node.clone() });
    let builder = match server_builder(node.raft.peer_tls()) {
        Ok(builder) => builder,
        Err(e) => {
            tracing::error!(error = %e, "node-to-node TLS settings refused");
            return;
        }
    };
    #[cfg(feature = "fault-injection")]
    let mut builder = builder.layer(tonic::service::interceptor::InterceptorLayer::new(
        crate::fault::refuse_when_isolated,
    ));
    #[cfg(not(feature = "fault-injection"))]
    let mut builder = builder;
    let router = builder
        .add_service(node.raft.service().into_server())
        .add_service(
            ForwardServer::from_arc(service.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(AdminServer::from_arc(service))
        .add_service(FanoutServer::new(super::fanout::FanoutService {
            node: node.clone(),
        }));
    #[cfg(not(madsim))]
    let served = {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        router.serve_with_incoming_shutdown(incoming, signal).await
    };
    #[cfg(madsim)]
    let served = router.serve_with_shutdown(listener, signal).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "node-to-node listener failed");
    }
}

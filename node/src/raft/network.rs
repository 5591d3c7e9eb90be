//! The Raft network of a cell, client side: [`GrpcNetwork`], openraft's network factory over
//! the `Raft` gRPC service of `cellkv-proto`, and [`PeerChannels`], the one cached channel per
//! peer that Raft traffic, forwarded writes and status probes share.
//!
//! Every RPC carries openraft's own request serialized with postcard (see [`super::grpc`]),
//! and has a deadline: openraft's `RPCOption::hard_ttl` for one call, scaled by the number of
//! chunks for a snapshot. Failures are mapped to what openraft should do next:
//! - no answer within the deadline: `Timeout` (retried soon);
//! - the peer cannot be reached, or refused the call (another cell, another node id, its Raft
//!   stopped, an unknown service): `Unreachable`, so openraft backs off before retrying;
//! - a transient transport failure (a reset stream, a resource limit) or a payload that does
//!   not decode: `NetworkError`, retried at once.
//!
//! openraft 0.10's `RaftNetworkV2` errors carry no remote-error type (its `RemoteError` is
//! over `Infallible`), so a remote refusal is reported as `Unreachable` with the peer's text.
//!
//! Channels connect lazily and reconnect by themselves after a failure (tonic's channel
//! re-dials on the next call), so a restarted peer is reached again without any bookkeeping
//! here. A one-member cell uses the same network and simply never calls it.
//!
//! With `tls-replication yes` every channel is TLS (`https://`): the peer's certificate must
//! be signed by the CA and name the host of its address in the membership, and this node
//! presents its own certificate, which the peer checks the same way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cellkv_proto::v1::raft_client::RaftClient;
use cellkv_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::grpc::{decode, encode};
use crate::raft::{NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// Snapshot bytes per streamed chunk when openraft does not say (it passes
/// `snapshot_max_chunk_size`, 3 MiB by default, under gRPC's 4 MiB message default).
const DEFAULT_CHUNK: usize = 1024 * 1024;

/// Largest message a node accepts from a peer: an append may carry many entries with values
/// up to `proto-max-bulk-len` each, and a forwarded reply may be as large.
pub const MAX_MESSAGE: usize = usize::MAX;

/// How long a channel may take to establish its TCP connection; an RPC's own deadline is
/// usually shorter and wins.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One gRPC channel per peer node, created on first use and kept; shared by Raft
/// replication, forwarding and status probes. Clones share the cache.
#[derive(Clone, Default)]
pub struct PeerChannels {
    inner: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
    tls: Option<crate::tls::PeerTls>,
}

impl std::fmt::Debug for PeerChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<(NodeId, String)> = self
            .inner
            .lock()
            .iter()
            .map(|(id, (addr, _))| (*id, addr.clone()))
            .collect();
        f.debug_struct("PeerChannels")
            .field("peers", &peers)
            .finish()
    }
}

impl PeerChannels {
    /// An empty cache; with `tls`, every channel is mutual TLS.
    pub fn new(tls: Option<crate::tls::PeerTls>) -> PeerChannels {
        PeerChannels {
            inner: Arc::default(),
            tls,
        }
    }

    /// The endpoint for `addr`: plain, or TLS with this node's identity.
    fn endpoint(&self, id: NodeId, addr: &str) -> Result<Endpoint, String> {
        let invalid =
            |e: tonic::transport::Error| format!("node {id} has an invalid address '{addr}': {e}");
        match &self.tls {
            None => Endpoint::from_shared(format!("http://{addr}")).map_err(invalid),
            #[cfg(not(madsim))]
            Some(tls) => Endpoint::from_shared(format!("https://{addr}"))
                .map_err(invalid)?
                .tls_config(tls.client.clone())
                .map_err(|e| format!("TLS settings for node {id}: {e}")),
            #[cfg(madsim)]
            Some(tls) => match *tls {},
        }
    }

    /// The channel to node `id` at `addr` (`HOST:PORT`). A node whose address changed gets a
    /// new channel; the old one closes when its last user drops it.
    pub fn channel(&self, id: NodeId, addr: &str) -> Result<Channel, String> {
        if crate::fault::isolated() {
            return Err(crate::fault::refusal());
        }
        let mut peers = self.inner.lock();
        if let Some((known, channel)) = peers.get(&id) {
            if known == addr {
                return Ok(channel.clone());
            }
        }
        let endpoint = self
            .endpoint(id, addr)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A peer that vanished without closing its connections (power loss, partition)
            // is noticed by the keep-alive, and the next call dials afresh.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        peers.insert(id, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

/// openraft's network factory: one [`GrpcPeer`] per replication stream or vote target.
#[derive(Clone, Debug)]
pub struct GrpcNetwork {
    me: NodeId,
    cluster: Arc<str>,
    channels: PeerChannels,
}

impl GrpcNetwork {
    /// The network of node `me` in cell `cluster`, over `channels`.
    pub fn new(me: NodeId, cluster: &str, channels: PeerChannels) -> GrpcNetwork {
        GrpcNetwork {
            me,
            cluster: cluster.into(),
            channels,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = GrpcPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GrpcPeer {
        let client = self.channels.channel(target, &node.addr).map(|channel| {
            RaftClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        });
        GrpcPeer {
            me: self.me,
            target,
            cluster: self.cluster.clone(),
            client,
        }
    }
}

/// The connection to one peer that openraft sends its RPCs through.
pub struct GrpcPeer {
    me: NodeId,
    target: NodeId,
    cluster: Arc<str>,
    /// The client, or why none could be made (an unusable address).
    client: Result<RaftClient<Channel>, String>,
}

/// Which unary RPC of the `Raft` service to call.
#[derive(Clone, Copy, Debug)]
enum Unary {
    AppendEntries,
    Vote,
    PreVote,
    TransferLeader,
}

impl Unary {
    fn rpc_type(self) -> RPCTypes {
        match self {
            Unary::AppendEntries => RPCTypes::AppendEntries,
            Unary::Vote | Unary::PreVote => RPCTypes::Vote,
            Unary::TransferLeader => RPCTypes::TransferLeader,
        }
    }
}

/// How a failed call should be reported to openraft.
enum Failure {
    Timeout(Duration),
    Unreachable(String),
    Network(String),
}

impl Failure {
    fn from_status(status: &tonic::Status, ttl: Duration) -> Failure {
        use tonic::Code;
        let text = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Code::DeadlineExceeded => Failure::Timeout(ttl),
            // Transient: a fresh attempt may well succeed right away.
            Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal
            | Code::DataLoss => Failure::Network(text),
            // Cannot connect, connection lost, or the peer does not serve this call.
            _ => Failure::Unreachable(text),
        }
    }
}

impl GrpcPeer {
    fn timeout(&self, action: RPCTypes, ttl: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.me,
            target: self.target,
            timeout: ttl,
        }
    }

    fn rpc_error(&self, action: RPCTypes, failure: Failure) -> RPCError<TypeConfig> {
        match failure {
            Failure::Timeout(ttl) => RPCError::Timeout(self.timeout(action, ttl)),
            Failure::Unreachable(text) => RPCError::Unreachable(Unreachable::from_string(format!(
                "node {}: {action}: {text}",
                self.target
            ))),
            Failure::Network(text) => RPCError::Network(NetworkError::from_string(format!(
                "node {}: {action}: {text}",
                self.target
            ))),
        }
    }

    fn streaming_error(&self, failure: Failure) -> StreamingError<TypeConfig> {
        match self.rpc_error(RPCTypes::InstallSnapshot, failure) {
            RPCError::Timeout(e) => StreamingError::Timeout(e),
            RPCError::Unreachable(e) => StreamingError::Unreachable(e),
            RPCError::Network(e) => StreamingError::Network(e),
            RPCError::RemoteError(e) => StreamingError::Unreachable(Unreachable::new(&e)),
        }
    }

    /// Reads a reply: the decoded payload, or the peer's refusal.
    fn read_reply<Resp: DeserializeOwned>(reply: RaftReply) -> Result<Resp, Failure> {
        if !reply.error.is_empty() {
            return Err(Failure::Unreachable(format!("refused: {}", reply.error)));
        }
        decode(&reply.payload).map_err(|e| Failure::Network(format!("bad reply: {e}")))
    }

    /// Sends one unary RPC with deadline `option.hard_ttl()`.
    async fn unary<Req, Resp>(
        &mut self,
        which: Unary,
        rpc: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let action = which.rpc_type();
        let ttl = option.hard_ttl();
        let result = self.call(which, rpc, ttl).await;
        result.map_err(|failure| self.rpc_error(action, failure))
    }

    async fn call<Req, Resp>(
        &mut self,
        which: Unary,
        rpc: &Req,
        ttl: Duration,
    ) -> Result<Resp, Failure>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        if crate::fault::isolated() {
            return Err(Failure::Unreachable(crate::fault::refusal()));
        }
        let mut client = self.client.clone().map_err(Failure::Unreachable)?;
        let payload = encode(rpc).map_err(|e| Failure::Network(format!("encode: {e}")))?;
        let mut request = tonic::Request::new(RaftRequest {
            payload: Bytes::from(payload),
            from: self.me,
            cluster: self.cluster.to_string(),
            to: self.target,
        });
        // The peer gives up too when the caller no longer waits.
        request.set_timeout(ttl);
        let call = async move {
            match which {
                Unary::AppendEntries => client.append_entries(request).await,
                Unary::Vote => client.vote(request).await,
                Unary::PreVote => client.pre_vote(request).await,
                Unary::TransferLeader => client.transfer_leader(request).await,
            }
        };
        match tokio::time::timeout(ttl, call).await {
            Err(_) => Err(Failure::Timeout(ttl)),
            Ok(Err(status)) => Err(Failure::from_status(&status, ttl)),
            Ok(Ok(reply)) => Self::read_reply(reply.into_inner()),
        }
    }

    /// Streams `snapshot` in chunks, each chunk allowed `ttl`, plus `ttl` for the install.
    async fn send_snapshot(
        &mut self,
        vote: &Vote,
        snapshot: Snapshot,
        ttl: Duration,
        chunk_size: usize,
    ) -> Result<SnapshotResponse<TypeConfig>, Failure> {
        if crate::fault::isolated() {
            return Err(Failure::Unreachable(crate::fault::refusal()));
        }
        let mut client = self.client.clone().map_err(Failure::Unreachable)?;
        let vote = Bytes::from(encode(vote).map_err(|e| Failure::Network(e.to_string()))?);
        let meta =
            Bytes::from(encode(&snapshot.meta).map_err(|e| Failure::Network(e.to_string()))?);
        let data = Bytes::from(snapshot.snapshot.into_inner());
        let chunk_size = chunk_size.max(1);
        let count = data.len().div_ceil(chunk_size).max(1);
        let chunks: Vec<SnapshotChunk> = (0..count)
            .map(|i| {
                let start = i * chunk_size;
                let end = (start + chunk_size).min(data.len());
                SnapshotChunk {
                    vote: if i == 0 { vote.clone() } else { Bytes::new() },
                    meta: if i == 0 { meta.clone() } else { Bytes::new() },
                    offset: start as u64,
                    data: data.slice(start..end),
                    done: i + 1 == count,
                    from: self.me,
                    cluster: self.cluster.to_string(),
                    to: self.target,
                }
            })
            .collect();
        let deadline = ttl.saturating_mul(u32::try_from(count + 1).unwrap_or(u32::MAX));
        let mut request = tonic::Request::new(futures_util::stream::iter(chunks));
        request.set_timeout(deadline);
        match tokio::time::timeout(deadline, client.install_snapshot(request)).await {
            Err(_) => Err(Failure::Timeout(deadline)),
            Ok(Err(status)) => Err(Failure::from_status(&status, deadline)),
            Ok(Ok(reply)) => Self::read_reply(reply.into_inner()),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcPeer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::AppendEntries, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::PreVote, &rpc, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(Unary::TransferLeader, &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let chunk_size = option.snapshot_chunk_size().unwrap_or(DEFAULT_CHUNK);
        let ttl = option.hard_ttl();
        let send = self.send_snapshot(&vote, snapshot, ttl, chunk_size);
        let outcome = tokio::select! {
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            outcome = send => outcome,
        };
        outcome.map_err(|failure| self.streaming_error(failure))
    }
}

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
//! Replication (openraft's `stream_append`) runs over one `AppendStream` call per
//! replication session instead of one call per append: requests that carry new entries go out
//! as openraft produces them, without waiting for the answers to earlier ones, and the
//! answers come back in order on the same stream. Each answer must arrive within the deadline
//! counted from when its request was sent; a stream with nothing outstanding may stay idle
//! (the channel's HTTP/2 keep-alive notices a dead peer).
//!
//! A request that reaches no further in the log than one still unanswered (an append without
//! entries, which only carries the leader's commit index) waits until the earlier ones are
//! answered. openraft pairs an answer with the requests it sent by log position and takes the
//! newest one's sending time as the moment the follower last confirmed this leader, which
//! read-index reads rely on: an older answer must not vouch for a later request at the same
//! position (sim seed 175, with both in flight, let a deposed leader serve a stale read).
//!
//! Channels connect lazily and reconnect by themselves after a failure (tonic's channel
//! re-dials on the next call), so a restarted peer is reached again without any bookkeeping
//! here. A one-member cell uses the same network and simply never calls it.
//!
//! With `tls-replication yes` every channel is TLS (`https://`): the peer's certificate must
//! be signed by the CA and name the host of its address in the membership, and this node
//! presents its own certificate, which the peer checks the same way.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cellkv_proto::v1::raft_client::RaftClient;
use cellkv_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use futures_util::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use super::grpc::{decode, encode};
use crate::raft::{LogId, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

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
            streams_unsupported: false,
        }
    }
}

/// The connection to one peer that openraft sends its RPCs through.
#[derive(Clone)]
pub struct GrpcPeer {
    me: NodeId,
    target: NodeId,
    cluster: Arc<str>,
    /// The client, or why none could be made (an unusable address).
    client: Result<RaftClient<Channel>, String>,
    /// The peer answered `AppendStream` with "unimplemented" (a version from before the
    /// stream, met during a rolling upgrade): replicate to it one unary call per append.
    streams_unsupported: bool,
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

    /// Opens a replication stream that sends `input` as openraft produces it. Returns the
    /// answers, when each request still unanswered was sent (oldest first), and the stream's
    /// lifeline: dropping it stops taking requests from `input`, so that a session openraft
    /// has given up on cannot take entries meant for the next one. `None` when `input` ended
    /// before its first request.
    ///
    /// The call opens only once the first request is there: openraft waits out its backoff
    /// after a failure while producing a request, so a peer that cannot be reached is dialled
    /// at that pace rather than as fast as connections fail.
    async fn open_append_stream<S>(
        &mut self,
        input: S,
        ttl: Duration,
    ) -> Result<Option<(Streaming<RaftReply>, InFlight, oneshot::Sender<()>)>, Failure>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + 'static,
    {
        if crate::fault::isolated() {
            return Err(Failure::Unreachable(crate::fault::refusal()));
        }
        let mut client = self.client.clone().map_err(Failure::Unreachable)?;
        let in_flight = InFlight::default();
        let (lifeline, dropped) = oneshot::channel::<()>();
        let (me, target, cluster) = (self.me, self.target, self.cluster.clone());
        let (gate, stamp) = (in_flight.clone(), in_flight.clone());
        let requests = input
            .then(move |rpc| {
                let gate = gate.clone();
                async move {
                    gate.none_reaching(reach(&rpc)).await;
                    rpc
                }
            })
            .take_until(dropped)
            .map(move |rpc| match encode(&rpc) {
                Ok(payload) => {
                    stamp.sent(reach(&rpc));
                    Some(RaftRequest {
                        payload: Bytes::from(payload),
                        from: me,
                        cluster: cluster.to_string(),
                        to: target,
                    })
                }
                Err(e) => {
                    // The answers must match the requests one for one, so the stream ends
                    // here; openraft opens another for what was not answered.
                    tracing::error!(target, error = %e, "cannot encode an append; ending the stream");
                    None
                }
            })
            .take_while(|request| std::future::ready(request.is_some()))
            .filter_map(std::future::ready);
        let mut requests = Box::pin(requests);
        let Some(first) = requests.next().await else {
            return Ok(None);
        };
        if crate::fault::isolated() {
            return Err(Failure::Unreachable(crate::fault::refusal()));
        }
        let requests = futures_util::stream::once(std::future::ready(first)).chain(requests);
        match tokio::time::timeout(ttl, client.append_stream(tonic::Request::new(requests))).await {
            Err(_) => Err(Failure::Timeout(ttl)),
            Ok(Err(status)) => {
                if status.code() == tonic::Code::Unimplemented {
                    tracing::info!(
                        target,
                        "peer has no append stream; replicating call by call"
                    );
                    self.streams_unsupported = true;
                }
                Err(Failure::from_status(&status, ttl))
            }
            Ok(Ok(replies)) => Ok(Some((replies.into_inner(), in_flight, lifeline))),
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

/// How far in the log an append reaches: its last entry, or without entries the position
/// it follows.
fn reach(rpc: &AppendEntriesRequest<TypeConfig>) -> Option<LogId> {
    rpc.entries
        .last()
        .map(|entry| entry.log_id)
        .or(rpc.prev_log_id)
}

/// An unanswered request of a replication stream: when it was handed to the transport, and
/// how far it reaches.
type Unanswered = (tokio::time::Instant, Option<LogId>);

/// The requests of a replication stream still unanswered, oldest first.
#[derive(Clone)]
struct InFlight {
    appends: Arc<Mutex<VecDeque<Unanswered>>>,
    /// Counts answers, to wake a request waiting for earlier ones.
    answers: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for InFlight {
    fn default() -> InFlight {
        InFlight {
            appends: Arc::default(),
            answers: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl InFlight {
    fn sent(&self, reach: Option<LogId>) {
        self.appends
            .lock()
            .push_back((tokio::time::Instant::now(), reach));
    }

    fn answered(&self) {
        self.appends.lock().pop_front();
        self.answers.send_modify(|count| *count += 1);
    }

    fn oldest(&self) -> Option<tokio::time::Instant> {
        self.appends.lock().front().map(|(sent, _)| *sent)
    }

    /// Waits until no unanswered request reaches `reach` or further.
    async fn none_reaching(&self, reach: Option<LogId>) {
        let mut answers = self.answers.subscribe();
        while self.appends.lock().iter().any(|(_, sent)| *sent >= reach) {
            if answers.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The next answer on a replication stream: `None` when the peer ended the stream; a
/// timeout when the oldest unanswered request waited longer than `ttl`.
async fn next_append_answer(
    replies: &mut Streaming<RaftReply>,
    sent: &InFlight,
    ttl: Duration,
) -> Result<Option<StreamAppendResult<TypeConfig>>, Failure> {
    loop {
        if crate::fault::isolated() {
            return Err(Failure::Unreachable(crate::fault::refusal()));
        }
        let oldest = sent.oldest();
        // With nothing outstanding the stream may idle; waking every `ttl` keeps the fault
        // injector's switch and newly sent requests' deadlines noticed.
        let wake = oldest.unwrap_or_else(tokio::time::Instant::now) + ttl;
        tokio::select! {
            biased;
            reply = replies.next() => {
                return match reply {
                    None => Ok(None),
                    Some(Err(status)) => Err(Failure::from_status(&status, ttl)),
                    Some(Ok(reply)) => {
                        sent.answered();
                        GrpcPeer::read_reply(reply).map(Some)
                    }
                };
            }
            () = tokio::time::sleep_until(wake) => {
                if oldest.is_some() && sent.oldest() == oldest {
                    return Err(Failure::Timeout(ttl));
                }
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcPeer {
    type SnapshotData = SnapshotData;

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        if self.streams_unsupported {
            return openraft::network::stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let ttl = option.hard_ttl();
            let opened = self
                .open_append_stream(input, ttl)
                .await
                .map_err(|failure| self.rpc_error(RPCTypes::AppendEntries, failure))?;
            let Some((replies, sent, lifeline)) = opened else {
                let nothing: BoxStream<'s, _> = Box::pin(futures_util::stream::empty());
                return Ok(nothing);
            };
            let peer = self.clone();
            let answers = futures_util::stream::unfold(
                Some((replies, sent, peer, lifeline)),
                move |state| async move {
                    let (mut replies, sent, peer, lifeline) = state?;
                    match next_append_answer(&mut replies, &sent, ttl).await {
                        Ok(Some(answer)) => {
                            Some((Ok(answer), Some((replies, sent, peer, lifeline))))
                        }
                        Ok(None) => None,
                        Err(failure) => {
                            let error = peer.rpc_error(RPCTypes::AppendEntries, failure);
                            Some((Err(error), None))
                        }
                    }
                },
            );
            let answers: BoxStream<'s, _> = Box::pin(answers);
            Ok(answers)
        })
    }

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

#[cfg(all(test, not(madsim)))]
mod tests {
    //! The replication stream's client side against a scripted peer on loopback.

    use std::pin::Pin;

    use cellkv_proto::v1::raft_server;
    use openraft::entry::RaftEntry;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::raft::Entry;
    use crate::storage::test_log_id as log_id;

    /// How the scripted peer answers a replication stream.
    #[derive(Clone, Copy)]
    enum Script {
        /// Holds its answers until three requests arrived, then answers them in order with
        /// each one's last log id.
        AnswerInThrees,
        /// Reads every request and never answers.
        Silent,
        /// Refuses the first request.
        Refuse,
        /// A version from before the stream: only the unary call, which accepts every
        /// append.
        UnaryOnly,
        /// Answers each request a while after it arrived, one at a time, and logs what it
        /// received and answered.
        Slowly,
    }

    /// What a scripted peer received ("got N": a request reaching index N) and answered
    /// ("answered N"), in order.
    type Events = Arc<Mutex<Vec<String>>>;

    struct ScriptedPeer(Script, Events);

    fn unimplemented<T>() -> Result<Response<T>, Status> {
        Err(Status::unimplemented("scripted peer"))
    }

    #[tonic::async_trait]
    impl raft_server::Raft for ScriptedPeer {
        async fn append_entries(
            &self,
            request: Request<RaftRequest>,
        ) -> Result<Response<RaftReply>, Status> {
            if !matches!(self.0, Script::UnaryOnly) {
                return unimplemented();
            }
            let _: AppendEntriesRequest<TypeConfig> =
                decode(&request.into_inner().payload).expect("an append");
            // openraft reads a full success as "up to the last entry sent".
            let answer = AppendEntriesResponse::<TypeConfig>::Success;
            Ok(Response::new(RaftReply {
                payload: Bytes::from(encode(&answer).expect("encodes")),
                error: String::new(),
            }))
        }

        type AppendStreamStream = Pin<Box<dyn Stream<Item = Result<RaftReply, Status>> + Send>>;

        async fn append_stream(
            &self,
            request: Request<Streaming<RaftRequest>>,
        ) -> Result<Response<Self::AppendStreamStream>, Status> {
            if matches!(self.0, Script::UnaryOnly) {
                return unimplemented();
            }
            let mut incoming = request.into_inner();
            let (script, events) = (self.0, self.1.clone());
            let (answers, answered) = mpsc::channel::<Result<RaftReply, Status>>(16);
            tokio::spawn(async move {
                let mut held = Vec::new();
                let mut slow_queue = None;
                while let Ok(Some(request)) = incoming.message().await {
                    let rpc: AppendEntriesRequest<TypeConfig> =
                        decode(&request.payload).expect("an append");
                    match script {
                        Script::Silent | Script::UnaryOnly => {}
                        Script::Slowly => {
                            let index = reach(&rpc).map_or(0, |id| id.index);
                            events.lock().push(format!("got {index}"));
                            let queue = slow_queue.get_or_insert_with(|| {
                                answer_slowly(answers.clone(), events.clone())
                            });
                            let _ = queue.send(rpc);
                        }
                        Script::Refuse => {
                            let refusal = RaftReply {
                                payload: Bytes::new(),
                                error: "not a member".into(),
                            };
                            let _ = answers.send(Ok(refusal)).await;
                            return;
                        }
                        Script::AnswerInThrees => {
                            held.push(rpc);
                            if held.len() < 3 {
                                continue;
                            }
                            for rpc in held.drain(..) {
                                let answer: StreamAppendResult<TypeConfig> =
                                    Ok(rpc.entries.last().map(|entry| entry.log_id));
                                let reply = RaftReply {
                                    payload: Bytes::from(encode(&answer).expect("encodes")),
                                    error: String::new(),
                                };
                                let _ = answers.send(Ok(reply)).await;
                            }
                        }
                    }
                }
            });
            let answers = futures_util::stream::unfold(answered, |mut answered| async move {
                answered.recv().await.map(|answer| (answer, answered))
            });
            Ok(Response::new(Box::pin(answers)))
        }

        async fn vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unimplemented()
        }

        async fn pre_vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
            unimplemented()
        }

        async fn transfer_leader(
            &self,
            _: Request<RaftRequest>,
        ) -> Result<Response<RaftReply>, Status> {
            unimplemented()
        }

        async fn install_snapshot(
            &self,
            _: Request<Streaming<SnapshotChunk>>,
        ) -> Result<Response<RaftReply>, Status> {
            unimplemented()
        }
    }

    /// Answers the appends queued into the returned sender one at a time, each 200 ms after
    /// the one before, logging each answer.
    fn answer_slowly(
        answers: mpsc::Sender<Result<RaftReply, Status>>,
        events: Events,
    ) -> mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>> {
        let (queue, mut queued) = mpsc::unbounded_channel::<AppendEntriesRequest<TypeConfig>>();
        tokio::spawn(async move {
            while let Some(rpc) = queued.recv().await {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let index = reach(&rpc).map_or(0, |id| id.index);
                events.lock().push(format!("answered {index}"));
                let answer: StreamAppendResult<TypeConfig> = Ok(reach(&rpc));
                let reply = RaftReply {
                    payload: Bytes::from(encode(&answer).expect("encodes")),
                    error: String::new(),
                };
                let _ = answers.send(Ok(reply)).await;
            }
        });
        queue
    }

    /// Serves `script` on a free loopback port; returns openraft's client for it.
    async fn peer_with(script: Script) -> GrpcPeer {
        peer_logging(script, Events::default()).await
    }

    /// As [`peer_with`], the peer logging into `events`.
    async fn peer_logging(script: Script, events: Events) -> GrpcPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(raft_server::RaftServer::new(ScriptedPeer(script, events)))
                .serve_with_incoming(incoming)
                .await;
        });
        let mut network = GrpcNetwork::new(1, "test-cell", PeerChannels::new(None));
        network.new_client(2, &BasicNode { addr }).await
    }

    /// An append of the one blank entry at `index`.
    fn append(index: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: openraft::impls::Vote::new_committed(1, 1),
            prev_log_id: (index > 1).then(|| log_id(index - 1)),
            entries: vec![Entry::new_blank(log_id(index))],
            leader_commit: None,
        }
    }

    /// The appends sent into a replication stream as the test hands them over.
    fn fed() -> (
        mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>>,
        impl Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    ) {
        let (feed, fed) = mpsc::unbounded_channel();
        let input = futures_util::stream::unfold(fed, |mut fed| async move {
            fed.recv().await.map(|rpc| (rpc, fed))
        });
        (feed, Box::pin(input))
    }

    const WAIT: Duration = Duration::from_secs(10);

    type Answers<'s> = BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>;

    /// Opens a replication stream to `peer` with append 1 already fed; returns the feed for
    /// more and the answers.
    async fn opened(
        peer: &mut GrpcPeer,
        ttl: Duration,
    ) -> (
        mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>>,
        Answers<'_>,
    ) {
        let (feed, input) = fed();
        feed.send(append(1)).expect("fed");
        let answers = peer
            .stream_append(input, RPCOption::new(ttl))
            .await
            .expect("stream opened");
        (feed, answers)
    }

    /// The next item of `answers`, which must come within [`WAIT`].
    async fn next_item(
        answers: &mut Answers<'_>,
    ) -> Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>> {
        tokio::time::timeout(WAIT, answers.next())
            .await
            .expect("an item in time")
            .expect("an item, not the end of the stream")
    }

    #[tokio::test]
    async fn appends_go_out_before_earlier_ones_are_answered_and_answers_keep_their_order() {
        let mut peer = peer_with(Script::AnswerInThrees).await;
        let (feed, input) = fed();
        for index in 1..=3 {
            feed.send(append(index)).expect("fed");
        }
        let mut answers = peer
            .stream_append(input, RPCOption::new(Duration::from_secs(5)))
            .await
            .expect("stream opened");
        // The peer answers only once it holds all three: a transport that waited for each
        // answer before sending the next request would never get one.
        let mut got: Vec<Option<LogId>> = Vec::new();
        for _ in 0..3 {
            let answer = next_item(&mut answers)
                .await
                .expect("no transport error")
                .expect("appended");
            got.push(answer);
        }
        assert_eq!(got, vec![Some(log_id(1)), Some(log_id(2)), Some(log_id(3))]);
    }

    #[tokio::test]
    async fn an_append_without_entries_waits_for_the_answers_before_it() {
        let events = Events::default();
        let mut peer = peer_logging(Script::Slowly, events.clone()).await;
        let (feed, mut answers) = opened(&mut peer, Duration::from_secs(5)).await;
        feed.send(append(2)).expect("fed");
        // Only the leader's commit index, at the position the second append reaches.
        let commit = AppendEntriesRequest {
            vote: openraft::impls::Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(2)),
            entries: Vec::new(),
            leader_commit: Some(log_id(2)),
        };
        feed.send(commit).expect("fed");
        feed.send(append(3)).expect("fed");
        let mut got = Vec::new();
        for _ in 0..4 {
            let answer = next_item(&mut answers)
                .await
                .expect("no transport error")
                .expect("appended");
            got.push(answer.map(|id| id.index));
        }
        assert_eq!(got, vec![Some(1), Some(2), Some(2), Some(3)]);
        let events = events.lock().clone();
        let position = |event: &str| {
            events
                .iter()
                .position(|e| e == event)
                .unwrap_or_else(|| panic!("no '{event}' in {events:?}"))
        };
        assert!(
            position("got 2") < position("answered 1"),
            "appends with entries are pipelined: {events:?}"
        );
        let commit_arrival = events
            .iter()
            .enumerate()
            .filter(|(_, e)| *e == "got 2")
            .nth(1)
            .map(|(at, _)| at)
            .unwrap_or_else(|| panic!("the commit-only append never arrived: {events:?}"));
        assert!(
            commit_arrival > position("answered 2"),
            "the commit-only append was sent while the append it shares a position with was \
             unanswered: {events:?}"
        );
    }

    #[tokio::test]
    async fn an_unanswered_append_times_out_after_its_deadline() {
        let mut peer = peer_with(Script::Silent).await;
        let (_feed, mut answers) = opened(&mut peer, Duration::from_millis(200)).await;
        let outcome = next_item(&mut answers).await;
        assert!(matches!(outcome, Err(RPCError::Timeout(_))), "{outcome:?}");
        assert!(
            answers.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test]
    async fn an_idle_stream_does_not_time_out() {
        let mut peer = peer_with(Script::Slowly).await;
        let (_feed, mut answers) = opened(&mut peer, Duration::from_millis(300)).await;
        let first = tokio::time::timeout(WAIT, answers.next()).await;
        assert!(
            matches!(first, Ok(Some(Ok(Ok(_))))),
            "answered within its deadline: {first:?}"
        );
        let waited = tokio::time::timeout(Duration::from_millis(1000), answers.next()).await;
        assert!(
            waited.is_err(),
            "nothing else was sent, so nothing is late: {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_session_that_ends_before_its_first_append_opens_no_call() {
        let mut peer = peer_with(Script::Refuse).await;
        let (feed, input) = fed();
        drop(feed);
        let mut answers = peer
            .stream_append(input, RPCOption::new(Duration::from_secs(5)))
            .await
            .expect("nothing to fail");
        assert!(answers.next().await.is_none());
    }

    #[tokio::test]
    async fn a_peer_without_the_stream_gets_unary_appends_after_the_first_refusal() {
        let mut peer = peer_with(Script::UnaryOnly).await;
        let option = || RPCOption::new(Duration::from_secs(5));
        let (feed, input) = fed();
        feed.send(append(1)).expect("fed");
        let first = peer.stream_append(input, option()).await.map(drop);
        assert!(
            matches!(first, Err(RPCError::Unreachable(_))),
            "the first session learns the peer is older"
        );
        let (feed, input) = fed();
        feed.send(append(1)).expect("fed");
        let mut answers = peer.stream_append(input, option()).await.expect("opened");
        for index in 1..=2 {
            if index > 1 {
                feed.send(append(index)).expect("fed");
            }
            let answer = next_item(&mut answers)
                .await
                .expect("no transport error")
                .expect("appended");
            assert_eq!(answer, Some(log_id(index)));
        }
    }

    #[tokio::test]
    async fn a_stream_given_up_on_stops_taking_requests() {
        let mut peer = peer_with(Script::Silent).await;
        let (feed, answers) = opened(&mut peer, Duration::from_secs(5)).await;
        drop(answers);
        tokio::time::timeout(WAIT, feed.closed())
            .await
            .expect("the requests' source is let go");
    }

    #[tokio::test]
    async fn a_refused_append_ends_the_stream_as_unreachable() {
        let mut peer = peer_with(Script::Refuse).await;
        let (_feed, mut answers) = opened(&mut peer, Duration::from_secs(5)).await;
        let outcome = next_item(&mut answers).await;
        match outcome {
            Err(RPCError::Unreachable(e)) => {
                assert!(e.to_string().contains("not a member"), "{e}")
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(answers.next().await.is_none());
    }
}

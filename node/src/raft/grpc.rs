//! The Raft network of a cell, server side: [`RaftService`], the `Raft` gRPC service of
//! `cellkv-proto` that hands peers' RPCs to this node's openraft, and the payload codec both
//! sides share ([`encode`], [`decode`]).
//!
//! Payloads are openraft's own request and response types serialized with postcard, so the
//! .proto file does not follow openraft's message layout. A request is refused, with a reply
//! whose `error` is set, when it names another cell or another node id than this one (a
//! misconfigured `--peers` must not mix two cells' votes), or when its payload does not
//! decode; the caller reports that to openraft as `Unreachable` and backs off.
//!
//! Only members may speak: a call whose sender id is not in this node's current membership
//! (voters and learners) is refused with `PermissionDenied` and logged with the sender's id
//! and address ([`sender_refusal`]), so a removed node that campaigns on an old directory,
//! or a stray process, cannot move this node's term or log. Two exceptions keep the cell
//! live: a pristine node (no membership yet) accepts the members its `--peers` lists, since
//! that is how the node forming the cell, or the leader adding it, first reaches it; and an
//! append or snapshot that brings log entries past this node's last one, or an append whose
//! leader has committed past it (by index, or from a later leader's term, see
//! [`newer_term`] and [`append_newest`]), is accepted from a leader this node does not know
//! yet (a follower that missed the entries adding that leader). With `tls-replication` the
//! transport has already checked the caller's certificate against the CA before any of this
//! runs.
//!
//! Appends arrive either one per unary call or as a replication stream (`AppendStream`, see
//! [`RaftService::append_stream`]): every request on a stream passes the same checks as a
//! unary one, in order, and the first refused request ends the stream after the replies to
//! the requests before it.
//!
//! A snapshot arrives as a client stream: the first chunk carries the leader's vote and the
//! snapshot's metadata, every chunk its offset, the last one `done`. Chunks must arrive in
//! order and without gaps; the assembled bytes are installed with
//! `Raft::install_full_snapshot`.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cellkv_proto::v1::raft_server;
use cellkv_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::raft::{LogId, NodeId, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};

type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
type TransferLeaderRequest = openraft::raft::TransferLeaderRequest<TypeConfig>;

/// Serializes a payload (an openraft message) for the wire.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Deserializes a payload written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Why this node refuses an RPC, if it does: another cell's traffic, or traffic meant for
/// another node id (0 = the sender does not check).
pub fn refusal(me: NodeId, cluster: &str, request_cluster: &str, to: NodeId) -> Option<String> {
    if request_cluster != cluster {
        return Some(format!(
            "node {me} belongs to cluster '{cluster}', not '{request_cluster}'"
        ));
    }
    if to != 0 && to != me {
        return Some(format!(
            "this is node {me}, not node {to}: check the peers lists"
        ));
    }
    None
}

/// Whether a call from node `from` may be served, from what this node knows: `is_member`
/// (in the current membership), `pristine` (no membership at all yet), `listed` (in this
/// node's `--peers`) and `brings_news` (the request carries log entries or a snapshot past
/// this node's last log index).
pub fn admits(
    from: NodeId,
    is_member: bool,
    pristine: bool,
    listed: bool,
    brings_news: bool,
) -> bool {
    from != 0 && (is_member || (pristine && listed) || brings_news)
}

/// Why a call from node `from` is refused, if it is: see [`admits`]. `brings_news` is only
/// ever true for appends and snapshots.
pub fn sender_refusal(
    raft: &Raft,
    me: NodeId,
    configured: &[NodeId],
    from: NodeId,
    brings_news: impl FnOnce(Option<u64>) -> bool,
) -> Option<String> {
    let (is_member, pristine, last_log) = {
        let metrics = raft.metrics();
        let m = openraft_rt::WatchReceiver::borrow_watched(&metrics);
        let membership = m.membership_config.membership();
        let is_member = membership.nodes().any(|(id, _)| *id == from);
        let known = (
            is_member,
            membership.nodes().next().is_none(),
            m.last_log_index,
        );
        known
    };
    let listed = configured.contains(&from);
    if admits(from, is_member, pristine, listed, brings_news(last_log)) {
        return None;
    }
    Some(format!(
        "node {me} refuses node {from}: not a member of its cell"
    ))
}

/// Whether a log position lies past this node's last log index.
fn past(index: Option<u64>, last_log: Option<u64>) -> bool {
    match (index, last_log) {
        (Some(index), Some(last)) => index > last,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether log position `newest` comes from a later leader than this node's last entry: a
/// follower cut off while it led (or followed a leader that was cut off) may hold a longer
/// log of entries that were never committed, and the leader that overwrites them may be one
/// it never heard of, whose entries have lower indexes but a newer term (sim seed 5130).
fn newer_term(newest: Option<&LogId>, own_last: Option<&LogId>) -> bool {
    match (newest, own_last) {
        (Some(newest), Some(own)) => newest.leader_id > own.leader_id,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The newest log position an append vouches for: its last entry, its previous log id, or
/// the leader's commit index, whichever lies furthest. The commit index counts because a
/// leader this node never heard of probes for the point where their logs meet with appends
/// that carry no entries and earlier positions; when this node missed entries the cell
/// committed, only the commit index tells that the leader is ahead (sim seed 11: a follower
/// behind the entries adding the leader refused its probes and heartbeats for good, and
/// the joint membership change that needed its vote never finished).
fn append_newest(rpc: &AppendEntriesRequest) -> Option<LogId> {
    [
        rpc.entries.last().map(|e| e.log_id),
        rpc.prev_log_id,
        rpc.leader_commit,
    ]
    .into_iter()
    .flatten()
    .max_by_key(|id| id.index)
}

/// The address a call came from, for the refusal log line.
fn caller<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The tonic server wrapper of [`RaftService`] (the simulated flavour names its interceptor).
#[cfg(not(madsim))]
pub type RaftServer = raft_server::RaftServer<RaftService>;
/// The tonic server wrapper of [`RaftService`] (the simulated flavour names its interceptor).
#[cfg(madsim)]
pub type RaftServer = raft_server::RaftServer<RaftService, tonic::codegen::IdentityInterceptor>;

/// The `Raft` gRPC service of one node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    me: NodeId,
    cluster: String,
    /// The members `--peers` lists, admitted while this node is pristine.
    configured: Vec<NodeId>,
    /// Turns true when this node's Raft shuts down, which ends its replication streams.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl RaftService {
    /// The service for node `me` of cell `cluster`, driving `raft`; `configured` are the
    /// ids `--peers` lists; `stopping` turns true when `raft` shuts down.
    pub fn new(
        raft: Raft,
        me: NodeId,
        cluster: &str,
        configured: Vec<NodeId>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> RaftService {
        RaftService {
            raft,
            me,
            cluster: cluster.to_string(),
            configured,
            stopping,
        }
    }

    /// Refuses (`PermissionDenied`) a call from a non-member, logging who it was. `newest` is
    /// the newest log position the call vouches for ([`append_newest`]; a snapshot's last
    /// log id), `None` for calls that carry none.
    async fn check_sender(
        &self,
        rpc: &'static str,
        from: NodeId,
        addr: &str,
        newest: Option<LogId>,
    ) -> Result<(), Status> {
        let newest_index = newest.map(|id| id.index);
        let Some(reason) = sender_refusal(&self.raft, self.me, &self.configured, from, |last| {
            past(newest_index, last)
        }) else {
            return Ok(());
        };
        // Only now, on the rare path, ask the core for this node's last log id.
        if from != 0 && newest.is_some() {
            let own_last = self
                .raft
                .with_raft_state(|state| state.log_ids.last().cloned())
                .await;
            if let Ok(own_last) = own_last {
                if newer_term(newest.as_ref(), own_last.as_ref()) {
                    return Ok(());
                }
            }
        }
        tracing::warn!(from, %addr, rpc, "refused raft traffic from a non-member");
        Err(Status::permission_denied(reason))
    }

    /// The tonic server wrapper, with message limits fit for large appends and snapshots.
    pub fn into_server(self) -> RaftServer {
        raft_server::RaftServer::new(self)
            .max_decoding_message_size(super::network::MAX_MESSAGE)
            .max_encoding_message_size(super::network::MAX_MESSAGE)
    }

    /// Checks and decodes a unary request, runs `handle`, encodes its answer.
    async fn answer<Req, Resp, Fut>(
        &self,
        name: &'static str,
        request: Request<RaftRequest>,
        newest: impl FnOnce(&Req) -> Option<LogId>,
        handle: impl FnOnce(Raft, Req) -> Fut,
    ) -> Result<Response<RaftReply>, Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        Fut: std::future::Future<Output = Result<Resp, String>>,
    {
        let addr = caller(&request);
        let rpc = match self.admit(name, &addr, request.into_inner(), newest).await {
            Ok(rpc) => rpc,
            Err(Refused::Reply(reason)) => return Ok(Response::new(error_reply(reason))),
            Err(Refused::Status(status)) => return Err(status),
        };
        Ok(Response::new(self.run(rpc, handle).await))
    }

    /// The checks every request passes, unary or streamed: the cell and node id it names,
    /// its payload, and its sender (see [`Self::check_sender`]; `newest` is the log position
    /// the decoded request vouches for).
    async fn admit<Req: DeserializeOwned>(
        &self,
        name: &'static str,
        addr: &str,
        request: RaftRequest,
        newest: impl FnOnce(&Req) -> Option<LogId>,
    ) -> Result<Req, Refused> {
        if let Some(reason) = refusal(self.me, &self.cluster, &request.cluster, request.to) {
            tracing::warn!(from = request.from, %reason, rpc = name, "refused a raft rpc");
            return Err(Refused::Reply(reason));
        }
        let rpc: Req = decode(&request.payload)
            .map_err(|e| Refused::Reply(format!("undecodable request: {e}")))?;
        self.check_sender(name, request.from, addr, newest(&rpc))
            .await
            .map_err(Refused::Status)?;
        Ok(rpc)
    }

    async fn run<Req, Resp, Fut>(
        &self,
        rpc: Req,
        handle: impl FnOnce(Raft, Req) -> Fut,
    ) -> RaftReply
    where
        Resp: Serialize,
        Fut: std::future::Future<Output = Result<Resp, String>>,
    {
        reply_with(handle(self.raft.clone(), rpc).await)
    }

    /// Checks and decodes one request of a replication stream: a unary call's checks, and
    /// the fault injector's switch, which a stream opened before the cut would otherwise
    /// outlive. `Err` is why the request is refused.
    async fn admit_streamed_append(
        &self,
        addr: &str,
        request: RaftRequest,
    ) -> Result<AppendEntriesRequest, String> {
        if crate::fault::isolated() {
            return Err(crate::fault::refusal());
        }
        self.admit("append_stream", addr, request, append_newest)
            .await
            .map_err(|refused| match refused {
                Refused::Reply(reason) => reason,
                Refused::Status(status) => status.message().to_string(),
            })
    }

    /// Receives a streamed snapshot and installs it.
    async fn receive_snapshot(
        &self,
        addr: String,
        mut stream: Streaming<SnapshotChunk>,
    ) -> Result<RaftReply, Status> {
        let mut header: Option<(Vote, SnapshotMeta)> = None;
        let mut data: Vec<u8> = Vec::new();
        loop {
            let Some(chunk) = stream.message().await? else {
                return Ok(error_reply(
                    "snapshot stream ended before its last chunk".into(),
                ));
            };
            if header.is_none() {
                if let Some(reason) = refusal(self.me, &self.cluster, &chunk.cluster, chunk.to) {
                    tracing::warn!(from = chunk.from, %reason, "refused a snapshot");
                    return Ok(error_reply(reason));
                }
                let vote: Vote = match decode(&chunk.vote) {
                    Ok(vote) => vote,
                    Err(e) => return Ok(error_reply(format!("undecodable vote: {e}"))),
                };
                let meta: SnapshotMeta = match decode(&chunk.meta) {
                    Ok(meta) => meta,
                    Err(e) => return Ok(error_reply(format!("undecodable metadata: {e}"))),
                };
                self.check_sender("install_snapshot", chunk.from, &addr, meta.last_log_id)
                    .await?;
                tracing::info!(from = chunk.from, last_log_id = ?meta.last_log_id, "receiving a snapshot");
                header = Some((vote, meta));
            }
            if chunk.offset != data.len() as u64 {
                return Ok(error_reply(format!(
                    "snapshot chunk at offset {} after {} bytes",
                    chunk.offset,
                    data.len()
                )));
            }
            data.extend_from_slice(&chunk.data);
            if chunk.done {
                break;
            }
        }
        let Some((vote, meta)) = header else {
            return Ok(error_reply("snapshot without a header".into()));
        };
        let snapshot = Snapshot {
            meta,
            snapshot: Cursor::new(data),
        };
        let installed = self.raft.install_full_snapshot(vote, snapshot).await;
        Ok(reply_with(
            installed.map_err(|fatal| format!("raft stopped: {fatal}")),
        ))
    }
}

/// Why a request was refused: answered with a reply whose `error` says why (another cell,
/// another node id, an undecodable payload), or with a gRPC status (a non-member sender).
enum Refused {
    Reply(String),
    Status(Status),
}

/// The reply carrying `outcome`: the encoded response, or the error text.
fn reply_with<T: Serialize>(outcome: Result<T, String>) -> RaftReply {
    match outcome.and_then(|response| {
        encode(&response).map_err(|e| format!("cannot encode the response: {e}"))
    }) {
        Ok(payload) => RaftReply {
            payload: Bytes::from(payload),
            error: String::new(),
        },
        Err(e) => error_reply(e),
    }
}

fn error_reply(error: String) -> RaftReply {
    RaftReply {
        payload: Bytes::new(),
        error,
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.answer(
            "append_entries",
            request,
            append_newest,
            |raft, rpc| async move { raft.append_entries(rpc).await.map_err(|e| e.to_string()) },
        )
        .await
    }

    type AppendStreamStream = Pin<Box<dyn Stream<Item = Result<RaftReply, Status>> + Send>>;

    /// Hands the admitted requests to openraft's pipelined `Raft::stream_append`, which
    /// answers them in order; a refused request ends the input, and its refusal follows the
    /// replies to the requests before it.
    async fn append_stream(
        &self,
        request: Request<Streaming<RaftRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let addr = caller(&request);
        let refused: Arc<parking_lot::Mutex<Option<String>>> = Arc::default();
        let admitted = futures_util::stream::unfold(
            (request.into_inner(), self.clone(), addr, refused.clone()),
            |(mut incoming, mut service, addr, refused)| async move {
                // A follower's next append may be far off while the leader is idle; a node
                // that shuts down ends the stream now, so nothing waits on it.
                let next = tokio::select! {
                    biased;
                    _ = service.stopping.wait_for(|stopping| *stopping) => return None,
                    next = incoming.message() => next,
                };
                let request = match next {
                    Ok(Some(request)) => request,
                    Ok(None) => return None,
                    Err(status) => {
                        tracing::debug!(%addr, %status, "raft append stream broke");
                        return None;
                    }
                };
                match service.admit_streamed_append(&addr, request).await {
                    Ok(rpc) => Some((rpc, (incoming, service, addr, refused))),
                    Err(reason) => {
                        *refused.lock() = Some(reason);
                        None
                    }
                }
            },
        );
        let replies = self.raft.stream_append(admitted).map(|result| {
            Ok(reply_with(
                result.map_err(|fatal| format!("raft stopped: {fatal}")),
            ))
        });
        let refusal = futures_util::stream::once(async move { refused.lock().take() })
            .filter_map(|reason| async move { reason.map(|reason| Ok(error_reply(reason))) });
        Ok(Response::new(Box::pin(replies.chain(refusal))))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.answer(
            "vote",
            request,
            |_: &VoteRequest| None,
            |raft, rpc| async move { raft.vote(rpc).await.map_err(|e| e.to_string()) },
        )
        .await
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.answer(
            "pre_vote",
            request,
            |_: &VoteRequest| None,
            |raft, rpc| async move { raft.pre_vote(rpc).await.map_err(|e| e.to_string()) },
        )
        .await
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.answer(
            "transfer_leader",
            request,
            |_: &TransferLeaderRequest| None,
            |raft, rpc| async move {
                raft.handle_transfer_leader(rpc)
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let addr = caller(&request);
        self.receive_snapshot(addr, request.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_cells_and_other_ids() {
        assert_eq!(refusal(2, "cellkv", "cellkv", 2), None);
        assert_eq!(refusal(2, "cellkv", "cellkv", 0), None, "0 = unchecked");
        let other_cell = refusal(2, "cellkv", "cell-b", 2).expect("refused");
        assert!(other_cell.contains("'cell-b'"), "{other_cell}");
        let other_id = refusal(2, "cellkv", "cellkv", 3).expect("refused");
        assert!(other_id.contains("not node 3"), "{other_id}");
    }

    #[test]
    fn only_members_are_admitted_but_a_joining_node_can_be_reached() {
        // (from, is_member, pristine, listed, brings_news)
        assert!(admits(2, true, false, false, false), "a member");
        assert!(
            !admits(9, false, false, true, false),
            "listed but not a member any more"
        );
        assert!(!admits(9, false, false, false, false), "a stranger");
        assert!(
            admits(1, false, true, true, false),
            "pristine: the listed former"
        );
        assert!(
            !admits(9, false, true, false, false),
            "pristine: an unlisted caller"
        );
        assert!(
            admits(4, false, false, false, true),
            "a leader this node lags behind"
        );
        assert!(!admits(0, true, true, true, true), "no sender id");
        assert!(past(Some(5), Some(4)) && past(Some(1), None));
        let id = |term: u64, node_id: u64, index: u64| {
            LogId::new(
                openraft::vote::leader_id_adv::LeaderId { term, node_id },
                index,
            )
        };
        // Seed 5130's shape: this node led term 3 alone and appended up to index 110; the
        // leader of term 5 it never heard of overwrites from index 100.
        assert!(newer_term(Some(&id(5, 20, 100)), Some(&id(3, 19, 110))));
        assert!(!newer_term(Some(&id(3, 19, 100)), Some(&id(3, 19, 110))));
        assert!(!newer_term(Some(&id(2, 1, 200)), Some(&id(3, 19, 110))));
        assert!(newer_term(Some(&id(1, 1, 1)), None));
        assert!(!newer_term(None, Some(&id(3, 19, 110))) && !newer_term(None, None));
        assert!(!past(Some(4), Some(4)) && !past(None, Some(4)) && !past(None, None));
    }

    /// Seed 11's shape: a follower whose log ends at index 394 of term 9 never heard of the
    /// leader of term 11, which has committed up to 428 and probes with an empty append
    /// whose previous log id lies inside the follower's log.
    #[test]
    fn a_probe_from_a_leader_ahead_vouches_for_its_commit_index() {
        let id = |term: u64, index: u64| {
            LogId::new(
                openraft::vote::leader_id_adv::LeaderId { term, node_id: 4 },
                index,
            )
        };
        let vote = openraft::impls::Vote::new_committed(11, 4);
        let probe = AppendEntriesRequest {
            vote,
            prev_log_id: Some(id(9, 390)),
            entries: Vec::new(),
            leader_commit: Some(id(11, 428)),
        };
        let newest = append_newest(&probe);
        assert_eq!(newest, Some(id(11, 428)));
        assert!(past(newest.map(|id| id.index), Some(394)));
        let caught_up = AppendEntriesRequest {
            leader_commit: Some(id(9, 380)),
            ..probe
        };
        assert_eq!(
            append_newest(&caught_up),
            Some(id(9, 390)),
            "nothing past the follower's log: the previous log id, as before"
        );
        assert!(!past(Some(390), Some(394)));
    }
}

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
//! A snapshot arrives as a client stream: the first chunk carries the leader's vote and the
//! snapshot's metadata, every chunk its offset, the last one `done`. Chunks must arrive in
//! order and without gaps; the assembled bytes are installed with
//! `Raft::install_full_snapshot`.

use std::io::Cursor;

use bytes::Bytes;
use cellkv_proto::v1::raft_server;
use cellkv_proto::v1::{RaftReply, RaftRequest, SnapshotChunk};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::raft::{NodeId, Raft, Snapshot, SnapshotMeta, Vote};

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

/// The tonic server wrapper of [`RaftService`] (the simulated flavour names its interceptor).
#[cfg(not(madsim))]
pub type RaftServer = raft_server::RaftServer<RaftService>;
/// The tonic server wrapper of [`RaftService`] (the simulated flavour names its interceptor).
#[cfg(madsim)]
pub type RaftServer = raft_server::RaftServer<RaftService, tonic::codegen::IdentityInterceptor>;

/// The `Raft` gRPC service of one node.
pub struct RaftService {
    raft: Raft,
    me: NodeId,
    cluster: String,
}

impl RaftService {
    /// The service for node `me` of cell `cluster`, driving `raft`.
    pub fn new(raft: Raft, me: NodeId, cluster: &str) -> RaftService {
        RaftService {
            raft,
            me,
            cluster: cluster.to_string(),
        }
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
        request: RaftRequest,
        handle: impl FnOnce(Raft, Req) -> Fut,
    ) -> RaftReply
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        Fut: std::future::Future<Output = Result<Resp, String>>,
    {
        if let Some(reason) = refusal(self.me, &self.cluster, &request.cluster, request.to) {
            tracing::warn!(from = request.from, %reason, "refused a raft rpc");
            return error_reply(reason);
        }
        let rpc: Req = match decode(&request.payload) {
            Ok(rpc) => rpc,
            Err(e) => return error_reply(format!("undecodable request: {e}")),
        };
        match handle(self.raft.clone(), rpc).await {
            Ok(response) => match encode(&response) {
                Ok(payload) => RaftReply {
                    payload: Bytes::from(payload),
                    error: String::new(),
                },
                Err(e) => error_reply(format!("cannot encode the response: {e}")),
            },
            Err(e) => error_reply(e),
        }
    }

    /// Receives a streamed snapshot and installs it.
    async fn receive_snapshot(
        &self,
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
        Ok(
            match self.raft.install_full_snapshot(vote, snapshot).await {
                Ok(response) => match encode(&response) {
                    Ok(payload) => RaftReply {
                        payload: Bytes::from(payload),
                        error: String::new(),
                    },
                    Err(e) => error_reply(format!("cannot encode the response: {e}")),
                },
                Err(fatal) => error_reply(format!("raft stopped: {fatal}")),
            },
        )
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
        let reply = self
            .answer(request.into_inner(), |raft, rpc| async move {
                raft.append_entries(rpc).await.map_err(|e| e.to_string())
            })
            .await;
        Ok(Response::new(reply))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let reply = self
            .answer(request.into_inner(), |raft, rpc| async move {
                raft.vote(rpc).await.map_err(|e| e.to_string())
            })
            .await;
        Ok(Response::new(reply))
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let reply = self
            .answer(request.into_inner(), |raft, rpc| async move {
                raft.pre_vote(rpc).await.map_err(|e| e.to_string())
            })
            .await;
        Ok(Response::new(reply))
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let reply = self
            .answer(request.into_inner(), |raft, rpc| async move {
                raft.handle_transfer_leader(rpc)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
        Ok(Response::new(reply))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        self.receive_snapshot(request.into_inner())
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
}

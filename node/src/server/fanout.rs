//! Pub/sub across a cell: a bare `PUBLISH` is delivered to this node's subscribers at once
//! and queued for every other member, which delivers it to its own (`Fanout.Deliver`).
//!
//! Messages published inside `EXEC` or a script never come here: they are part of a log
//! entry, and every node delivers them when it applies the entry. A bare `PUBLISH` stays
//! out of the log, as in Redis Cluster, where it is broadcast on the bus: it costs no
//! consensus round, and a message for a node that is down is lost, as one for a
//! disconnected subscriber is in Redis.
//!
//! Order: each member has one queue and one sender task that sends batches one at a time,
//! so the messages published on one node reach each other node in the order they were
//! published. A member that cannot be reached has its batch dropped after a deadline; a
//! queue that fills up (a member far behind) drops new messages rather than grow without
//! bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cellkv_proto::v1::fanout_client::FanoutClient;
use cellkv_proto::v1::fanout_server;
use cellkv_proto::v1::{DeliverReply, DeliverRequest, Published};
use openraft_rt::WatchReceiver;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::Node;
use crate::raft::grpc::refusal;
use crate::raft::NodeId;

/// Messages waiting for one member before new ones are dropped.
const QUEUE_LIMIT: usize = 100_000;
/// Most messages in one `Deliver` call.
const BATCH_LIMIT: usize = 1_000;
/// Deadline of one `Deliver` call.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// The outgoing side: one queue per other member, created as members appear.
#[derive(Default)]
pub struct Fanout {
    queues: Mutex<BTreeMap<NodeId, mpsc::Sender<Published>>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("members", &self.queues.lock().len())
            .finish()
    }
}

impl Fanout {
    /// Queues a message published on this node for every other member of the cell.
    pub fn publish(&self, node: &Arc<Node>, channel: &Bytes, message: &Bytes) {
        let me = node.config.node_id;
        // Borrowed, not cloned: this runs for every PUBLISH.
        let metrics = node.raft.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let mut queues = self.queues.lock();
        for (id, member) in membership.nodes() {
            if *id == me {
                continue;
            }
            let queue = queues.entry(*id).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
                tokio::spawn(send_loop(node.clone(), *id, member.addr.clone(), rx));
                tx
            });
            let published = Published {
                channel: channel.clone(),
                message: message.clone(),
            };
            if queue.try_send(published).is_err() {
                tracing::warn!(member = id, "pub/sub fan-out queue full: message dropped");
            }
        }
    }
}

/// Sends one member its messages, a batch at a time, in order.
async fn send_loop(node: Arc<Node>, id: NodeId, addr: String, mut rx: mpsc::Receiver<Published>) {
    let me = node.config.node_id;
    let cluster = node.raft.cluster_name().to_string();
    while let Some(first) = rx.recv().await {
        let mut messages = vec![first];
        while messages.len() < BATCH_LIMIT {
            match rx.try_recv() {
                Ok(next) => messages.push(next),
                Err(_) => break,
            }
        }
        let count = messages.len();
        let channel = match node.raft.channels().channel(id, &addr) {
            Ok(channel) => channel,
            Err(error) => {
                tracing::warn!(member = id, %error, "pub/sub fan-out: no channel");
                continue;
            }
        };
        let mut request = Request::new(DeliverRequest {
            messages,
            from: me,
            cluster: cluster.clone(),
        });
        request.set_timeout(DELIVER_TIMEOUT);
        match FanoutClient::new(channel).deliver(request).await {
            Ok(reply) if reply.get_ref().error.is_empty() => {}
            Ok(reply) => {
                tracing::warn!(member = id, error = %reply.get_ref().error, count, "pub/sub fan-out refused")
            }
            Err(status) => {
                tracing::debug!(member = id, %status, count, "pub/sub fan-out not delivered")
            }
        }
    }
}

/// The receiving side: delivers another member's messages to this node's subscribers.
pub struct FanoutService {
    /// The node whose subscribers get the messages.
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl fanout_server::Fanout for FanoutService {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverReply>, Status> {
        let addr = request.remote_addr();
        let request = request.into_inner();
        let me = self.node.config.node_id;
        if let Some(error) = refusal(me, self.node.raft.cluster_name(), &request.cluster, 0) {
            return Ok(Response::new(DeliverReply { error }));
        }
        super::peers::admit_member(&self.node, "deliver", request.from, addr)?;
        for published in &request.messages {
            self.node
                .pubsub
                .publish(&published.channel, &published.message);
        }
        Ok(Response::new(DeliverReply::default()))
    }
}

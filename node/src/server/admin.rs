//! Membership and maintenance calls of the `Admin` gRPC service: add a node, remove a node,
//! move leadership, build a snapshot. (`Status` lives with the probes in `peers`.)
//!
//! Membership changes run on the leader. A follower that receives one forwards it to the
//! leader it knows of (waiting up to `cluster-wait-timeout` for one) and relays the answer, so
//! a tool may talk to any member. Removing the leader moves leadership to the most caught-up
//! other voter first; the new leader then removes the old one.
//!
//! A change interrupted between its two entries (leadership moved, or the call that drove it
//! gave up) leaves the cell in joint consensus, which openraft does not leave by itself: the
//! second entry is proposed by the call, not by Raft's core. The leader finishes such a change
//! itself after a grace period (`finish_left_joint`), and the next add-node or remove-node
//! first finishes it too (`finish_joint`).
//!
//! Node ids are never reused: an id that is in the membership, or was in any membership this
//! node applied (kept across log purges in the snapshot header, see `raft::snapshot`), is
//! refused by `AddNode`. The one exception is a learner left behind by an `AddNode` that timed
//! out before its catch-up finished: adding it again with the same address finishes the job.
//!
//! Every wait here has a deadline, and so has every forwarded call.

use std::collections::BTreeSet;
use std::time::Duration;

use cellkv_proto::v1::admin_client::AdminClient;
use cellkv_proto::v1::{
    AddNodeRequest, AdminReply, RemoveNodeRequest, SnapshotRequest, TransferLeaderRequest,
};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::Request;

use super::{clock, Node};
use crate::raft::NodeId;

/// How long a new learner may take to catch up before it is made a voter.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a membership entry may take to commit.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long leadership may take to move.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long building a snapshot may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of a call forwarded to the leader: the longest membership change plus margin.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before looking at the leader again after leadership moved under a call.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a leader leaves a joint configuration alone before finishing it: the call that
/// proposed it proposes the second entry as soon as the first commits, and two proposals of
/// the same change would make one of them fail.
const JOINT_GRACE: Duration = Duration::from_secs(2);
/// Proposals a leader makes at finishing a joint configuration before it leaves that to a
/// later look (its next change of metrics) or to the next add-node or remove-node.
const JOINT_FINISH_ATTEMPTS: u32 = 20;

/// A membership call.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add node `id` at Raft address `addr`.
    Add {
        /// The new node's id.
        id: NodeId,
        /// Its Raft address.
        addr: String,
    },
    /// Remove node `id`.
    Remove {
        /// The node to remove.
        id: NodeId,
    },
    /// Make node `id` the leader.
    Transfer {
        /// The node to lead.
        id: NodeId,
    },
}

/// What one step on the leader came to.
enum Step {
    /// Finished: the message for the caller.
    Done(String),
    /// Failed for good.
    Failed(String),
    /// Leadership moved (or must move first): look for the leader again.
    Again,
}

/// Runs `change` on the leader (here, or forwarded) and answers the caller.
pub async fn run(node: &Node, change: Change) -> AdminReply {
    let deadline = clock::now_ms().saturating_add(FORWARD_TIMEOUT.as_millis() as u64);
    let me = node.config.node_id;
    loop {
        let metrics = node.raft.metrics();
        let leads = metrics.state == ServerState::Leader && metrics.current_leader == Some(me);
        let step = if leads {
            on_leader(node, &change).await
        } else {
            let leader = match node.peers.route().await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    // This node leads by Raft's word but has not taken office yet.
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(text) => return failed(node, text),
            };
            return forward(node, leader, &change).await;
        };
        match step {
            Step::Done(message) => return reply(node, String::new(), message),
            Step::Failed(error) => return failed(node, error),
            Step::Again if clock::now_ms() >= deadline => {
                return failed(node, "leadership kept moving; try again".to_string())
            }
            Step::Again => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// One attempt at `change` on this node, which leads.
async fn on_leader(node: &Node, change: &Change) -> Step {
    let raft = &node.raft.raft;
    let me = node.config.node_id;
    let metrics = node.raft.metrics();
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if matches!(change, Change::Add { .. } | Change::Remove { .. }) {
        // The leader's own finisher is at it: wait for it rather than propose the same change.
        if node
            .joint_finisher
            .load(std::sync::atomic::Ordering::Acquire)
            && membership.get_joint_config().len() > 1
        {
            return Step::Again;
        }
        if let Some(step) = finish_joint(node, &membership).await {
            return step;
        }
    }
    match change {
        Change::Add { id, addr } => {
            if voters.contains(id) {
                return Step::Failed(format!("node {id} is already a voter"));
            }
            match membership.get_node(id) {
                Some(known) if known.addr != *addr => {
                    return Step::Failed(format!(
                        "node {id} is already a learner at {}, not {addr}",
                        known.addr
                    ))
                }
                // A learner left by an add-node that did not finish: finish it.
                Some(_) => {}
                None => {
                    if node.raft.ever_members().contains(id) {
                        return Step::Failed(format!(
                            "node id {id} was a member of this cell before; node ids are never \
                             reused, give the node a new id"
                        ));
                    }
                    if let Some((other, _)) = membership.nodes().find(|(_, n)| n.addr == *addr) {
                        return Step::Failed(format!("{addr} is the address of node {other}"));
                    }
                }
            }
            tracing::info!(node_id = id, %addr, "adding a learner and waiting for it to catch up");
            let added = tokio::time::timeout(
                CATCH_UP_TIMEOUT,
                raft.add_learner(*id, BasicNode::new(addr), true),
            )
            .await;
            match added {
                Err(_) => {
                    return Step::Failed(format!(
                        "node {id} was added as a learner but did not catch up within \
                         {CATCH_UP_TIMEOUT:?}; check that it runs and is reachable at {addr}, \
                         then run add-node again"
                    ))
                }
                Ok(Err(e)) if e.forward_to_leader().is_some() => return Step::Again,
                Ok(Err(e)) => return Step::Failed(format!("adding node {id} failed: {e}")),
                Ok(Ok(_)) => {}
            }
            let ids = BTreeSet::from([*id]);
            match change_membership(node, ChangeMembers::AddVoterIds(ids)).await {
                Ok(()) => Step::Done(format!("node {id} caught up and is now a voter")),
                Err(step) => step,
            }
        }
        Change::Remove { id } => {
            if membership.get_node(id).is_none() {
                return Step::Failed(format!("node {id} is not a member"));
            }
            if !voters.contains(id) {
                let ids = BTreeSet::from([*id]);
                return match change_membership(node, ChangeMembers::RemoveNodes(ids)).await {
                    Ok(()) => Step::Done(format!("learner {id} removed")),
                    Err(step) => step,
                };
            }
            if voters.len() == 1 {
                return Step::Failed(format!(
                    "node {id} is the only voter; a cell cannot remove its last voter"
                ));
            }
            if *id == me {
                // Hand leadership to the most caught-up other voter; it removes this node.
                let matched = metrics.replication.clone().unwrap_or_default();
                let Some(successor) = voters
                    .iter()
                    .filter(|v| **v != me)
                    .max_by_key(|v| matched.get(*v).cloned().flatten().map(|l| l.index))
                    .copied()
                else {
                    return Step::Failed("no other voter to hand leadership to".to_string());
                };
                return match transfer(node, successor).await {
                    Ok(()) => Step::Again,
                    Err(text) => Step::Failed(format!(
                        "removing the leader needs leadership moved first: {text}"
                    )),
                };
            }
            let ids = BTreeSet::from([*id]);
            match change_membership(node, ChangeMembers::RemoveVoters(ids)).await {
                Ok(()) => Step::Done(format!("node {id} removed")),
                Err(step) => step,
            }
        }
        Change::Transfer { id } => {
            if *id == me {
                return Step::Done(format!("node {me} already leads"));
            }
            if !voters.contains(id) {
                return Step::Failed(format!("node {id} is not a voter"));
            }
            match transfer(node, *id).await {
                Ok(()) => Step::Done(format!("node {id} leads")),
                Err(text) => Step::Failed(text),
            }
        }
    }
}

/// Finishes a change left in joint consensus, if there is one: leadership that moved between
/// a change's two entries leaves the cell in its joint configuration (openraft does not go on
/// by itself), where every commit needs a majority of both voter sets and where the change's
/// voters look like voters already, so a retried add-node would be refused. The change goes
/// on to the configuration it was heading for; `None` when there was nothing to finish.
async fn finish_joint(
    node: &Node,
    membership: &openraft::Membership<NodeId, BasicNode>,
) -> Option<Step> {
    let joint = membership.get_joint_config();
    if joint.len() < 2 {
        return None;
    }
    let target = joint.last().cloned().unwrap_or_default();
    tracing::info!(voters = ?target, "finishing a membership change left in joint consensus");
    Some(
        match change_membership(node, ChangeMembers::ReplaceAllVoters(target)).await {
            Ok(()) => Step::Again,
            Err(step) => step,
        },
    )
}

/// Run on the leader while its membership is joint: finishes the change an earlier leader or
/// an abandoned call left half done, so the cell does not go on needing a majority of both
/// voter sets for every commit until an operator notices. It acts only on a joint
/// configuration that is applied and has stayed the last one for [`JOINT_GRACE`], so a call
/// still driving its change is not raced. Stops when this node no longer leads, the
/// membership is uniform, or after [`JOINT_FINISH_ATTEMPTS`] proposals.
pub(crate) async fn finish_left_joint(node: std::sync::Arc<Node>) {
    let mut attempts = 0;
    let mut settled_since: Option<(Option<crate::raft::LogId>, u64)> = None;
    while attempts < JOINT_FINISH_ATTEMPTS && node.is_leader() {
        let metrics = node.raft.metrics();
        let stored = &metrics.membership_config;
        if stored.membership().get_joint_config().len() < 2 {
            break;
        }
        let at = *stored.log_id();
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        let now = clock::now_ms();
        let ripe = match settled_since {
            Some((seen, since)) if seen == at => {
                now.saturating_sub(since) >= JOINT_GRACE.as_millis() as u64
            }
            _ => {
                // A new joint entry (or the first look): its grace starts once it is applied.
                if at.is_some_and(|id| id.index <= applied) {
                    settled_since = Some((at, now));
                }
                false
            }
        };
        if ripe {
            attempts += 1;
            let membership = stored.membership().clone();
            match finish_joint(&node, &membership).await {
                None | Some(Step::Done(_)) => break,
                // Finished (the next look finds it uniform) or leadership is moving.
                Some(Step::Again) => {}
                Some(Step::Failed(reason)) => {
                    tracing::info!(attempts, %reason, "the joint configuration is not finished yet");
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    node.joint_finisher
        .store(false, std::sync::atomic::Ordering::Release);
}

/// Proposes a membership change and waits until it is committed.
async fn change_membership(
    node: &Node,
    change: ChangeMembers<NodeId, BasicNode>,
) -> Result<(), Step> {
    let what = format!("{change:?}");
    match tokio::time::timeout(
        CHANGE_TIMEOUT,
        node.raft.raft.change_membership(change, false),
    )
    .await
    {
        Err(_) => Err(Step::Failed(format!(
            "the membership change {what} did not commit within {CHANGE_TIMEOUT:?}; check \
             `cluster status`"
        ))),
        Ok(Err(e)) if e.forward_to_leader().is_some() => Err(Step::Again),
        Ok(Err(e)) => Err(Step::Failed(format!("membership change failed: {e}"))),
        Ok(Ok(response)) => {
            tracing::info!(change = %what, "membership changed");
            // The reply describes the cell from the metrics, which follow the commit a moment
            // later: wait for them, so the caller sees the membership it asked for.
            let index = response.log_id.index;
            let _ = node
                .raft
                .raft
                .wait(Some(CHANGE_TIMEOUT))
                .metrics(
                    |m| {
                        m.membership_config
                            .log_id()
                            .as_ref()
                            .is_some_and(|l| l.index >= index)
                    },
                    "the metrics show the new membership",
                )
                .await;
            Ok(())
        }
    }
}

/// Asks this node (the leader) to hand leadership to `to` and waits until `to` leads.
async fn transfer(node: &Node, to: NodeId) -> Result<(), String> {
    let raft = &node.raft.raft;
    raft.trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| format!("raft stopped: {e}"))?;
    raft.wait(Some(TRANSFER_TIMEOUT))
        .metrics(
            |m| m.current_leader == Some(to),
            "leadership moved to the target",
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("node {to} did not take over within {TRANSFER_TIMEOUT:?}: {e}"))
}

/// Sends `change` to `leader` and relays its answer.
async fn forward(node: &Node, leader: NodeId, change: &Change) -> AdminReply {
    let Some(addr) = node.raft.member_addr(leader) else {
        return failed(node, format!("the leader, node {leader}, is not a member"));
    };
    let channel = match node.raft.channels().channel(leader, &addr) {
        Ok(channel) => channel,
        Err(e) => return failed(node, e),
    };
    let mut client = AdminClient::new(channel);
    let cluster = node.raft.cluster_name().to_string();
    let answer = match change.clone() {
        Change::Add { id, addr } => {
            let mut request = Request::new(AddNodeRequest {
                node_id: id,
                addr,
                cluster,
            });
            request.set_timeout(FORWARD_TIMEOUT);
            tokio::time::timeout(FORWARD_TIMEOUT, client.add_node(request)).await
        }
        Change::Remove { id } => {
            let mut request = Request::new(RemoveNodeRequest {
                node_id: id,
                cluster,
            });
            request.set_timeout(FORWARD_TIMEOUT);
            tokio::time::timeout(FORWARD_TIMEOUT, client.remove_node(request)).await
        }
        Change::Transfer { id } => {
            let mut request = Request::new(TransferLeaderRequest {
                node_id: id,
                cluster,
            });
            request.set_timeout(FORWARD_TIMEOUT);
            tokio::time::timeout(FORWARD_TIMEOUT, client.transfer_leader(request)).await
        }
    };
    match answer {
        Err(_) => failed(
            node,
            format!("the leader, node {leader}, did not answer within {FORWARD_TIMEOUT:?}"),
        ),
        Ok(Err(status)) => failed(
            node,
            format!("the leader, node {leader}: {}", status.message()),
        ),
        Ok(Ok(reply)) => reply.into_inner(),
    }
}

/// Builds a snapshot on this node now and waits until it covers what was applied.
pub async fn snapshot(node: &Node, _request: SnapshotRequest) -> AdminReply {
    let raft = &node.raft.raft;
    let applied = node.raft.metrics().last_applied.map(|l| l.index);
    let Some(applied) = applied else {
        return reply(node, String::new(), "nothing applied yet".to_string());
    };
    if let Err(e) = raft.trigger().snapshot().await {
        return failed(node, format!("raft stopped: {e}"));
    }
    let built = raft
        .wait(Some(SNAPSHOT_TIMEOUT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= applied),
            "a snapshot covers the applied index",
        )
        .await;
    match built {
        Ok(_) => reply(
            node,
            String::new(),
            format!("snapshot built up to index {applied}"),
        ),
        Err(e) => failed(
            node,
            format!("no snapshot within {SNAPSHOT_TIMEOUT:?}: {e}"),
        ),
    }
}

fn failed(node: &Node, error: String) -> AdminReply {
    reply(node, error, String::new())
}

/// A reply with the cell as this node sees it now.
fn reply(node: &Node, error: String, message: String) -> AdminReply {
    let metrics = node.raft.metrics();
    let membership = metrics.membership_config.membership();
    AdminReply {
        error,
        message,
        leader_id: metrics.current_leader.unwrap_or(0),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        snapshot_index: metrics.snapshot.map_or(0, |s| s.index),
    }
}

//! `cellkv-cli ready`: whether a node can serve clients right now, for readiness probes
//! (Kubernetes, compose health checks, rolling restarts).
//!
//! A node is ready when its cell has a leader and the node has caught up with it:
//! - the leader itself is ready (everything committed is applied there first);
//! - a follower is ready when its link to the leader is up and, within a short wait, it has
//!   applied everything the leader had committed when asked. The leader is asked over RESP at
//!   the address the follower reports for it (`master_host:master_port` of `INFO
//!   replication`), so the check needs nothing but the RESP ports.
//!
//! The decisions are pure functions of `INFO replication` fields ([`leader_of`],
//! [`caught_up`]), so they are tested without a cell.

use crate::info::{field, parse_info};

/// Who this node follows, read from its own `INFO replication`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leader {
    /// This node leads.
    Itself {
        /// Its node id.
        node_id: u64,
    },
    /// Another node leads, reachable over RESP at `addr`.
    Other {
        /// The leader's node id.
        leader_id: u64,
        /// The leader's RESP address, `host:port` (IPv6 hosts in brackets).
        addr: String,
    },
}

/// Reads who leads from a node's `INFO replication` text; `Err` says why the node is not
/// ready (no leader, link down, the leader's address not known yet).
pub fn leader_of(info_text: &str) -> Result<Leader, String> {
    let fields = parse_info(info_text);
    let number = |name: &str| -> Option<i64> { field(&fields, name)?.trim().parse().ok() };
    let node_id = number("raft_node_id").ok_or("INFO has no raft_node_id")?;
    let leader_id = match number("raft_leader_id") {
        Some(id) if id > 0 => id as u64,
        _ => return Err("the cell has no leader".to_string()),
    };
    if leader_id == node_id as u64 {
        return if field(&fields, "role") == Some("master") {
            Ok(Leader::Itself { node_id: leader_id })
        } else {
            Err(format!("node {node_id} is taking or leaving leadership"))
        };
    }
    if field(&fields, "master_link_status") != Some("up") {
        return Err(format!("the link to the leader, node {leader_id}, is down"));
    }
    let host = field(&fields, "master_host").unwrap_or("");
    let port = number("master_port").unwrap_or(0);
    if host.is_empty() || port <= 0 {
        return Err(format!(
            "the address of the leader, node {leader_id}, is not known yet"
        ));
    }
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Leader::Other { leader_id, addr })
}

/// The leader's commit index from the leader's own `INFO replication`; `Err` when the node
/// asked no longer leads.
pub fn leader_commit(info_text: &str, leader_id: u64) -> Result<u64, String> {
    let fields = parse_info(info_text);
    let id: Option<u64> = field(&fields, "raft_node_id").and_then(|v| v.parse().ok());
    if field(&fields, "role") != Some("master") || id != Some(leader_id) {
        return Err(format!("node {leader_id} no longer leads"));
    }
    field(&fields, "raft_commit_index")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "the leader's INFO has no raft_commit_index".to_string())
}

/// This node's applied index from its `INFO replication`.
pub fn applied_index(info_text: &str) -> Option<u64> {
    field(&parse_info(info_text), "raft_applied_index")?
        .parse()
        .ok()
}

/// Whether a node that has applied `applied` has caught up with a leader that had committed
/// `leader_commit`.
pub fn caught_up(applied: u64, leader_commit: u64) -> bool {
    applied >= leader_commit
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLLOWER: &str =
        "# Replication\r\nrole:slave\r\nmaster_host:node1\r\nmaster_port:6379\r\n\
        master_link_status:up\r\nraft_node_id:2\r\nraft_state:Follower\r\nraft_leader_id:1\r\n\
        raft_commit_index:40\r\nraft_applied_index:40\r\n";

    /// A follower with its link up names the leader's RESP address; brackets for IPv6.
    #[test]
    fn follower_names_its_leader() {
        assert_eq!(
            leader_of(FOLLOWER),
            Ok(Leader::Other {
                leader_id: 1,
                addr: "node1:6379".to_string()
            })
        );
        let v6 = FOLLOWER.replace("master_host:node1", "master_host:fd00::1");
        assert_eq!(
            leader_of(&v6),
            Ok(Leader::Other {
                leader_id: 1,
                addr: "[fd00::1]:6379".to_string()
            })
        );
        assert_eq!(applied_index(FOLLOWER), Some(40));
    }

    /// No leader, a link down or an unknown leader port: not ready, with the reason.
    #[test]
    fn not_ready_without_a_usable_leader() {
        let none = FOLLOWER.replace("raft_leader_id:1", "raft_leader_id:-1");
        assert_eq!(leader_of(&none), Err("the cell has no leader".to_string()));
        let down = FOLLOWER.replace("master_link_status:up", "master_link_status:down");
        assert!(leader_of(&down).expect_err("link down").contains("is down"));
        let no_port = FOLLOWER.replace("master_port:6379", "master_port:0");
        assert!(leader_of(&no_port)
            .expect_err("no port")
            .contains("not known yet"));
    }

    /// The leader is ready by itself, but not while its role still says otherwise.
    #[test]
    fn the_leader_is_ready() {
        let leader =
            "role:master\r\nraft_node_id:1\r\nraft_leader_id:1\r\nraft_commit_index:41\r\n";
        assert_eq!(leader_of(leader), Ok(Leader::Itself { node_id: 1 }));
        assert_eq!(leader_commit(leader, 1), Ok(41));
        assert!(leader_commit(leader, 3).is_err(), "asked for node 3");
        let moving = leader.replace("role:master", "role:slave");
        assert!(leader_of(&moving).is_err());
        assert!(leader_commit(&moving, 1).is_err());
    }

    #[test]
    fn caught_up_means_applied_the_leaders_commit() {
        assert!(caught_up(41, 41));
        assert!(caught_up(42, 41));
        assert!(!caught_up(40, 41));
    }
}

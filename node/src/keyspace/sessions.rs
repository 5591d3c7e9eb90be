//! Client sessions: what makes a write that is sent again apply once (the Raft thesis's
//! "linearizable semantics", §6.3).
//!
//! Every batch of writes a connection proposes carries the connection's [`ClientId`] and a
//! sequence number that grows by one per batch, and a connection has one batch in flight at
//! a time. Apply remembers, per client, the last sequence number it applied and the replies
//! it gave. When the leader dies with a batch in flight, the node serving the client sends the
//! same batch (same id and number) to the next leader: if the first copy was committed after
//! all, apply answers the copy with the remembered replies instead of running it again. So an
//! element popped by a `BRPOP` whose leader died is still handed to its client, and an `INCR`
//! counts once.
//!
//! The table is replicated state (it is in every snapshot) and is pruned deterministically:
//! a client not heard from for [`SESSION_TTL_MS`] of replicated time is forgotten, checked
//! every [`PRUNE_EVERY`] log entries. Retries stop long before that (`cluster-wait-timeout`).

use serde::{Deserialize, Serialize};

use crate::resp::Frame;

/// How long (replicated clock) a client's last replies are kept after its last write.
pub const SESSION_TTL_MS: u64 = 10 * 60 * 1000;
/// Prune the table when the applied index is a multiple of this.
pub const PRUNE_EVERY: u64 = 4096;

/// Who proposed a batch: one connection of one run of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientId {
    /// The node the client is connected to.
    pub node: u64,
    /// That node's run: differs on every start, so connection numbers never collide.
    pub boot: u64,
    /// The connection on that run (the node's own tasks use 0).
    pub conn: u64,
}

/// The last batch applied for one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSession {
    /// Its sequence number.
    pub seq: u64,
    /// The replies it got, one per write.
    pub replies: Vec<Frame>,
    /// Replicated time of that batch.
    pub last_ms: u64,
}

/// What apply should do with a batch.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Not applied before: run it.
    Run,
    /// Applied already: here are the replies it got.
    Replay(Vec<Frame>),
    /// Older than the last batch applied for this client, whose replies are gone. Cannot
    /// happen while a connection keeps one batch in flight; refused rather than run twice.
    Stale,
}

/// Every known client's last applied batch.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    clients: imbl::OrdMap<ClientId, ClientSession>,
}

impl Sessions {
    /// Decides whether batch `seq` of `client` runs.
    pub fn admit(&self, client: &ClientId, seq: u64) -> Admission {
        match self.clients.get(client) {
            Some(last) if last.seq == seq => Admission::Replay(last.replies.clone()),
            Some(last) if last.seq > seq => Admission::Stale,
            _ => Admission::Run,
        }
    }

    /// Remembers the replies batch `seq` of `client` got.
    pub fn record(&mut self, client: ClientId, seq: u64, replies: Vec<Frame>, now_ms: u64) {
        self.clients.insert(
            client,
            ClientSession {
                seq,
                replies,
                last_ms: now_ms,
            },
        );
    }

    /// Forgets clients idle for longer than [`SESSION_TTL_MS`] at replicated time `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(SESSION_TTL_MS);
        let idle: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, session)| session.last_ms < horizon)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.clients.remove(&id);
        }
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The table as a list, for snapshots.
    pub fn to_list(&self) -> Vec<(ClientId, ClientSession)> {
        self.clients
            .iter()
            .map(|(id, session)| (*id, session.clone()))
            .collect()
    }

    /// The table from a snapshot's list.
    pub fn from_list(list: Vec<(ClientId, ClientSession)>) -> Sessions {
        Sessions {
            clients: list.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(conn: u64) -> ClientId {
        ClientId {
            node: 2,
            boot: 77,
            conn,
        }
    }

    #[test]
    fn a_batch_runs_once_and_its_copy_gets_the_same_replies() {
        let mut sessions = Sessions::default();
        assert_eq!(sessions.admit(&client(1), 1), Admission::Run);
        sessions.record(client(1), 1, vec![Frame::Integer(5)], 1_000);
        assert_eq!(
            sessions.admit(&client(1), 1),
            Admission::Replay(vec![Frame::Integer(5)])
        );
        assert_eq!(sessions.admit(&client(1), 2), Admission::Run);
        // Another connection's numbers are its own.
        assert_eq!(sessions.admit(&client(2), 1), Admission::Run);
    }

    #[test]
    fn an_older_batch_is_refused_not_run() {
        let mut sessions = Sessions::default();
        sessions.record(client(1), 3, vec![Frame::ok()], 1_000);
        assert_eq!(sessions.admit(&client(1), 2), Admission::Stale);
    }

    #[test]
    fn idle_clients_are_forgotten_after_the_ttl_only() {
        let mut sessions = Sessions::default();
        sessions.record(client(1), 1, vec![Frame::ok()], 1_000);
        sessions.record(client(2), 1, vec![Frame::ok()], 5_000);
        sessions.prune(1_000 + SESSION_TTL_MS);
        assert_eq!(sessions.len(), 2);
        sessions.prune(1_001 + SESSION_TTL_MS);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.admit(&client(1), 1), Admission::Run);
        let restored = Sessions::from_list(sessions.to_list());
        assert_eq!(
            restored.admit(&client(2), 1),
            Admission::Replay(vec![Frame::ok()])
        );
    }
}

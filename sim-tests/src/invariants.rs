//! Raft invariants, sampled from every running member while the simulation runs:
//!
//! - **one leader per leader id**: no two members ever lead with the same leader id. cellkv
//!   runs openraft's "advanced" leader ids (term, node id), in which two candidates may both
//!   win the same term (the higher node id supersedes), so "one leader per term" is not a
//!   Raft invariant here; two leaders of one term are counted, not failed;
//! - **committed entries are never lost or changed**: every entry a member has applied
//!   (hence committed) has the same log id and the same payload on every member that holds
//!   that index, now and later, crashes included;
//! - **applied ≤ committed** on every member;
//! - **identical state for the same index**: two keyspaces that applied the same index have
//!   the same contents (compared by a hash of their snapshot bytes);
//! - **memory stays bounded**: with a `maxmemory`, no member's data set ever exceeds it by
//!   more than one write's growth ([`MEMORY_SLACK`]).

use std::collections::BTreeMap;

use cellkv_node::raft::LogId;

use crate::cluster::Cell;

/// What the monitor has learnt so far, and what went wrong.
#[derive(Default)]
pub struct Monitor {
    leaders: BTreeMap<(u64, u64), u64>,
    /// Terms seen with two leaders (allowed by advanced leader ids).
    pub shared_terms: std::collections::BTreeSet<u64>,
    committed: BTreeMap<u64, (LogId, u64)>,
    /// Per member: the highest applied index whose entries were compared.
    checked: BTreeMap<u64, u64>,
    /// Keyspace hash per applied index, and the member it came from.
    digests: BTreeMap<u64, (u64, u64)>,
    /// Per member: the applied index last hashed.
    hashed: BTreeMap<u64, u64>,
    /// Broken invariants, in the order found.
    pub violations: Vec<String>,
    /// Samples taken.
    pub samples: u64,
}

/// How far past `maxmemory` one growing write may take the data set: apply refuses growth
/// only once memory is over the limit, so the last write admitted may overshoot by its own
/// size (a 400-byte cache value, a queue push, an unacked receipt, with their overheads).
pub const MEMORY_SLACK: u64 = 2048;

/// A hash of a keyspace's full contents.
pub fn keyspace_digest(keyspace: &cellkv_node::keyspace::Keyspace) -> u64 {
    let mut bytes = Vec::new();
    match keyspace.write_snapshot(&mut bytes) {
        Ok(()) => xxhash_rust::xxh3::xxh3_64(&bytes),
        Err(_) => 0,
    }
}

impl Monitor {
    fn violation(&mut self, text: String) {
        if self.violations.len() < 20 {
            self.violations.push(text);
        }
    }

    /// Looks at every running member once.
    pub fn sample(&mut self, cell: &Cell, now_ms: u64) {
        self.samples += 1;
        for member in &cell.members {
            let Some(node) = member.node() else { continue };
            let id = member.id;
            let metrics = node.raft.metrics();
            if metrics.state == openraft::ServerState::Leader {
                let term = metrics.current_term;
                let leader_id = (term, metrics.vote.leader_id().node_id);
                match self.leaders.get(&leader_id) {
                    Some(&other) if other != id => self.violation(format!(
                        "t={now_ms}ms: two leaders with leader id {leader_id:?}: n{other} and n{id}"
                    )),
                    Some(_) => {}
                    None => {
                        self.leaders.insert(leader_id, id);
                    }
                }
                if self
                    .leaders
                    .keys()
                    .any(|&(t, n)| t == term && n != leader_id.1)
                {
                    self.shared_terms.insert(term);
                }
            }
            let applied = metrics.last_applied.map_or(0, |l| l.index);
            let committed = metrics.local_committed.map_or(0, |l| l.index);
            if applied > committed {
                self.violation(format!(
                    "t={now_ms}ms: n{id} applied {applied} beyond committed {committed}"
                ));
            }
            let from = self.checked.get(&id).copied().unwrap_or(0).min(applied);
            for index in from + 1..=applied {
                let Some(entry) = member.disk.entry(index) else {
                    continue;
                };
                let payload = xxhash_rust::xxh3::xxh3_64(format!("{:?}", entry.payload).as_bytes());
                match self.committed.get(&index) {
                    Some(&(known, hash)) if known != entry.log_id || hash != payload => {
                        self.violation(format!(
                            "t={now_ms}ms: committed entry {index} was {known} (payload {hash:x}) but n{id} applied {} (payload {payload:x})",
                            entry.log_id
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.committed.insert(index, (entry.log_id, payload));
                    }
                }
            }
            self.checked.insert(id, applied);
            let (index, digest) = {
                let keyspace = node.keyspace.read();
                let limit = keyspace.memory().maxmemory;
                let used = keyspace.used_memory();
                if limit > 0 && used > limit + MEMORY_SLACK {
                    self.violation(format!(
                        "t={now_ms}ms: n{id} holds {used} bytes, over maxmemory {limit} by more than one write"
                    ));
                }
                let index = keyspace.applied_index();
                if self.hashed.get(&id) == Some(&index) {
                    continue;
                }
                (index, keyspace_digest(&keyspace))
            };
            self.hashed.insert(id, index);
            match self.digests.get(&index) {
                Some(&(d, other)) if d != digest => self.violation(format!(
                    "t={now_ms}ms: n{id} and n{other} applied up to {index} but their keyspaces differ"
                )),
                Some(_) => {}
                None => {
                    self.digests.insert(index, (digest, id));
                }
            }
        }
    }
}

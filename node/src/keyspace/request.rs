//! The payload of one Raft log entry: what the leader proposes and every replica applies.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One client command as it arrived: the name first, then its arguments, all binary-safe.
pub type Args = Vec<Bytes>;

/// One log entry's payload. Apply is a pure function of (keyspace, request, log index).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The proposing leader's wall clock in milliseconds since the Unix epoch. TTLs become
    /// absolute expiry times from this stamp; apply never reads a clock of its own.
    pub time_ms: u64,
    /// What to do.
    pub op: Op,
}

/// The operations a log entry can carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// One client write command, run in database `db`.
    Command {
        /// Database index (`SELECT`).
        db: u32,
        /// The command and its arguments.
        args: Args,
    },
    /// Deletes of keys the leader found past their expiry; apply deletes each only if it is
    /// still expired at this entry's time, so a key re-set in between survives.
    Expire {
        /// Database index.
        db: u32,
        /// Candidate keys.
        keys: Vec<Bytes>,
    },
}

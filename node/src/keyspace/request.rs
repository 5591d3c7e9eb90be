//! The payload of one Raft log entry: what the leader proposes and every replica applies.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::memory::MemorySettings;
use super::sessions::ClientId;

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
    /// A `MULTI`/`EXEC` transaction: applied atomically, or not at all (a null reply) when
    /// a watched key changed since it was watched (DESIGN.md rule 5).
    Exec {
        /// Database the transaction starts in (a queued `SELECT` moves it).
        db: u32,
        /// The keys watched by the connection.
        watches: Vec<Watch>,
        /// The queued commands, each with its name first.
        commands: Vec<Args>,
    },
    /// One connection's batch of writes, applied in order and at most once however often it
    /// is proposed (see `sessions`). The reply is an array with one reply per write.
    Client {
        /// Who sent it.
        client: ClientId,
        /// The batch's number among that client's batches.
        seq: u64,
        /// The writes, each a `Command`, `Exec` or `Expire` (a nested `Client` is refused).
        ops: Vec<Op>,
    },
    /// Deletes of keys the leader found past their expiry; apply deletes each only if it is
    /// still expired at this entry's time, so a key re-set in between survives.
    Expire {
        /// Database index.
        db: u32,
        /// Candidate keys.
        keys: Vec<Bytes>,
    },
    /// A leader's configured `maxmemory` settings, proposed when it takes office: applied
    /// only if the settings in force came from a different configuration (`origin`), so a
    /// `CONFIG SET` made since survives leaders that start with the same configuration.
    MemoryAtStart(MemorySettings),
    /// `CONFIG SET` of replicated options (`maxmemory`, `maxmemory-policy`, ...), as
    /// (name, value) pairs already validated by the node that took the command.
    ConfigSet {
        /// Option names (lower case) and values.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// Keys the leader chose to free memory (`maxmemory-policy`); apply deletes each only if
    /// its policy still allows it.
    Evict {
        /// Database index.
        db: u32,
        /// The victims.
        keys: Vec<Bytes>,
    },
    /// A change to the replicated ACL users (appended last, so older logs still decode).
    Acl(AclOp),
    /// A `Command` or `Exec` run on behalf of a restricted ACL user: every command a script
    /// calls and every queued command of the transaction is checked against that user's
    /// rules as they stand when the entry applies (the same on every replica).
    AsUser {
        /// The user's name; a user deleted meanwhile may run nothing.
        user: String,
        /// What to run.
        op: Box<Op>,
    },
    /// The writes of several connections that the leader gathered into one entry (appended
    /// last, so older logs still decode): each applies in order as if it were an entry of
    /// its own at this index and time; the reply is an array with one reply per op.
    /// Batches do not nest.
    Batch(Vec<Op>),
}

/// A change to the ACL users. Passwords are already hashed (`#<sha256>`) by the node that
/// proposed it: no plaintext password is ever in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AclOp {
    /// `ACL SETUSER name rules...` (and `CONFIG SET requirepass`, on the default user).
    SetUser {
        /// The user.
        name: String,
        /// Its rules, in order; all apply or none.
        rules: Vec<Bytes>,
    },
    /// `ACL DELUSER names...`.
    DelUser {
        /// The users.
        names: Vec<String>,
    },
    /// The `aclfile` and `requirepass` a node started with: replaces every user, unless the
    /// same digest was loaded last (so a restart keeps runtime changes).
    Load {
        /// SHA-256 over the users' rules.
        digest: String,
        /// Each user's rules from nothing.
        users: Vec<(String, Vec<Bytes>)>,
    },
}

/// One watched key: the transaction aborts if it changed after `since_index`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// Database of the key.
    pub db: u32,
    /// The key.
    pub key: Bytes,
    /// The applied index the watching node had reached when `WATCH` ran.
    pub since_index: u64,
    /// The time that node judged expiry by when `WATCH` ran: a key alive then and expired
    /// by the `EXEC` counts as changed, as in Redis.
    pub watched_at_ms: u64,
}

//! The deterministic state machine: sixteen databases of typed values with expiry.
//!
//! Only apply mutates it, as a pure function of (keyspace, request, log index): no clock,
//! no randomness, no I/O. Cloning is O(1) (persistent maps), which lets a snapshot serialize
//! a frozen view in the background while apply goes on.
//!
//! Keys are ordered by a fixed 64-bit hash of their bytes and then by the bytes, so a
//! `SCAN` cursor is simply the hash to resume from: stable while keys come and go, and the
//! same on every replica.

mod bits;
mod compact;
mod db;
pub mod encoding;
mod events;
mod functions;
mod generic;
pub mod glob;
mod hash_fields;
mod hashes;
mod lists;
mod lua_libs;
pub mod memory;
mod request;
mod scripting;
pub mod sessions;
mod sets;
mod snapshot;
mod sorted_set;
mod strings;
mod transaction;
mod zsets;

pub use compact::CompactBytes;
pub use db::{slot_of, Db};
pub use events::{Event, EventSink, BLOCKED};
pub use hash_fields::HashFields;
pub use request::{AclOp, Args, Op, Request, Watch};
pub use snapshot::SnapshotError;
pub use sorted_set::{Score, SortedSet};
pub(crate) use transaction::rules_changed;

use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::{self, Handler, Resolved};
use crate::resp::Frame;

pub(crate) use bits::*;
pub(crate) use functions::*;
pub(crate) use generic::*;
pub(crate) use hashes::*;
pub(crate) use lists::*;
pub(crate) use scripting::*;
pub(crate) use sets::*;
pub(crate) use strings::*;
pub(crate) use zsets::*;

/// Number of databases (`SELECT 0..15`), fixed as Redis's default.
pub const DATABASES: u32 = 16;

/// Largest string value (`proto-max-bulk-len`'s default); fixed so apply stays deterministic.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

/// The keyspace shared between apply (writer) and the read path (readers).
pub type SharedKeyspace = Arc<parking_lot::RwLock<Keyspace>>;

/// A stored value. Collections are persistent structures, so cloning an entry (which a
/// snapshot's frozen view forces on the next write to it) costs O(1), not O(size).
///
/// Collection elements must be owned copies ([`owned`]), never slices of a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A string (also integers and floats, as in Redis); an owned copy, never a view into
    /// a request.
    Str(CompactBytes),
    /// A list; never empty while stored.
    List(Box<imbl::Vector<Bytes>>),
    /// A hash of field to value, in field order; never empty while stored.
    Hash(Box<HashFields>),
    /// A set, in member order; never empty while stored.
    Set(Box<imbl::OrdSet<CompactBytes>>),
    /// A sorted set; never empty while stored.
    ZSet(Box<SortedSet>),
}

impl Value {
    /// A string value holding a copy of `bytes`.
    pub fn string(bytes: &[u8]) -> Value {
        Value::Str(CompactBytes::copy(bytes))
    }

    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether a blocked client may be waiting for this kind of value to appear.
    fn can_unblock(&self) -> bool {
        matches!(self, Value::List(_) | Value::ZSet(_))
    }

    /// Whether this is a collection left with no element (which Redis never keeps).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// An owned copy of request bytes, for storing: a slice of a connection's read buffer would
/// pin the whole buffer for as long as the element lives.
pub fn owned(bytes: &Bytes) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// A value with its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in ms since the epoch, if any: the niche of `NonZeroU64` keeps it
    /// to 8 bytes (see [`Entry::expires_at`]).
    expires: Option<NonZeroU64>,
    /// Last access and access frequency on this node (`OBJECT IDLETIME|FREQ`, eviction
    /// ranking): local metadata, not replicated (see `memory::Access`).
    pub access: memory::Access,
    /// Log index of the last change, for `WATCH` (DESIGN.md rule 5).
    pub version: u64,
}

impl Entry {
    /// An entry written at `now_ms` by log entry `version`.
    pub fn new(value: Value, expires_at: Option<u64>, now_ms: u64, version: u64) -> Entry {
        let mut entry = Entry {
            value,
            expires: None,
            access: memory::Access::new(now_ms),
            version,
        };
        entry.set_expires_at(expires_at);
        entry
    }

    /// Absolute expiry in ms since the epoch, if any.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires.map(NonZeroU64::get)
    }

    /// Sets or clears the expiry. A deadline of 0 is stored as 1 ms: both are long past,
    /// and 0 has no representation of its own.
    pub fn set_expires_at(&mut self, at: Option<u64>) {
        self.expires = at.and_then(|at| NonZeroU64::new(at.max(1)));
    }

    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at().is_some_and(|at| at <= now_ms)
    }
}

/// All databases and the replicated clock.
#[derive(Clone, Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
    /// The highest entry time applied so far: time never runs backwards across leaders.
    clock_ms: u64,
    /// The last log index applied (0 before any), the horizon of a `WATCH`.
    applied_index: u64,
    /// Scripts by the hex SHA1 of their body (`SCRIPT LOAD`, `EVAL`): replicated state.
    scripts: imbl::OrdMap<String, Bytes>,
    /// `FUNCTION LOAD` libraries by name: replicated state.
    libraries: imbl::OrdMap<String, Library>,
    /// Each client's last applied batch, so a batch proposed twice applies once.
    sessions: sessions::Sessions,
    /// `maxmemory` and the eviction policies, as last set through the log.
    memory: memory::MemorySettings,
    /// Keys deleted by eviction entries (`evicted_keys`): the same count on every replica.
    evicted_keys: u64,
    /// The ACL users: replicated state, changed only by `Op::Acl` entries.
    acl: crate::acl::Users,
    /// What apply produced besides replies, for the node to act on (not replicated state).
    events: Vec<Event>,
    /// The user an `Op::AsUser` entry runs for, while it applies: its scripts' calls and
    /// its transaction's commands are checked against this user's rules.
    acting_user: Option<Arc<crate::acl::User>>,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            dbs: vec![Db::default(); DATABASES as usize],
            clock_ms: 0,
            applied_index: 0,
            scripts: imbl::OrdMap::new(),
            libraries: imbl::OrdMap::new(),
            sessions: sessions::Sessions::default(),
            memory: memory::MemorySettings::default(),
            evicted_keys: 0,
            acl: crate::acl::Users::default(),
            events: Vec::new(),
            acting_user: None,
        }
    }
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// Database `index`; `None` outside `0..DATABASES`.
    pub fn db(&self, index: u32) -> Option<&Db> {
        self.dbs.get(index as usize)
    }

    /// The replicated clock: the latest entry time applied.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Total keys across databases.
    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    /// The last log index applied: every change up to it is visible.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Records the index a loaded snapshot covers.
    pub fn set_applied_index(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Takes the events apply produced since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Applies one committed log entry and returns the reply for the client that proposed it.
    pub fn apply(&mut self, index: u64, request: &Request) -> Frame {
        self.clock_ms = self.clock_ms.max(request.time_ms);
        self.applied_index = self.applied_index.max(index);
        let now_ms = self.clock_ms;
        if index.is_multiple_of(sessions::PRUNE_EVERY) {
            self.sessions.prune(now_ms);
        }
        let reply = match &request.op {
            Op::Batch(ops) => Frame::Array(
                ops.iter()
                    .map(|op| self.apply_proposed(index, now_ms, op))
                    .collect(),
            ),
            op => self.apply_proposed(index, now_ms, op),
        };
        // Memory is read between entries (INFO, eviction, snapshots); inside one, a command
        // that could grow settles before it checks the limit (`refuses_growth`).
        self.settle_memory();
        reply
    }

    /// One proposal of an entry, or of a gathered batch: a connection's batch of writes runs
    /// at most once under its session number; anything else runs as it is.
    fn apply_proposed(&mut self, index: u64, now_ms: u64, op: &Op) -> Frame {
        match op {
            Op::Client { client, seq, ops } => match self.sessions.admit(client, *seq) {
                sessions::Admission::Replay(replies) => Frame::Array(replies),
                sessions::Admission::Stale => Frame::Array(
                    ops.iter()
                        .map(|_| Frame::error(command::errors::STALE_CLIENT_BATCH))
                        .collect(),
                ),
                sessions::Admission::Run => {
                    let replies: Vec<Frame> = ops
                        .iter()
                        .map(|op| self.apply_op(index, now_ms, op))
                        .collect();
                    self.sessions.record(*client, *seq, replies.clone(), now_ms);
                    Frame::Array(replies)
                }
            },
            op => self.apply_op(index, now_ms, op),
        }
    }

    /// The ACL users as applied so far.
    pub fn acl(&self) -> &crate::acl::Users {
        &self.acl
    }

    fn apply_acl(&mut self, op: &AclOp) -> Frame {
        let reply = match op {
            AclOp::SetUser { name, rules } => match self.acl.set_user(name, rules) {
                Ok(()) => Frame::ok(),
                Err((i, e)) => Frame::error(format!(
                    "ERR Error in ACL SETUSER modifier '{}': {e}",
                    rules
                        .get(i)
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                        .unwrap_or_default()
                )),
            },
            AclOp::DelUser { names } => Frame::Integer(self.acl.del_users(names) as i64),
            AclOp::Load { digest, users } => match self.acl.load(digest, users) {
                Ok(_) => Frame::ok(),
                Err(text) => Frame::error(format!("ERR {text}")),
            },
        };
        if !reply.is_error() {
            self.events.push(Event::AclChanged);
        }
        reply
    }

    /// Clients whose last batch is remembered (`INFO`).
    pub fn client_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The replicated memory settings.
    pub fn memory(&self) -> &memory::MemorySettings {
        &self.memory
    }

    /// The estimated bytes of every key in every database (`used_memory`'s dataset part).
    pub fn used_memory(&self) -> u64 {
        self.dbs.iter().map(Db::used_bytes).sum()
    }

    /// Keys deleted by eviction so far.
    pub fn evicted_keys(&self) -> u64 {
        self.evicted_keys
    }

    /// Brings [`Keyspace::used_memory`] up to date with changes made in place.
    fn settle_memory(&mut self) {
        for db in &mut self.dbs {
            if db.is_unsettled() {
                db.settle();
            }
        }
    }

    /// Whether a `maxmemory` limit is set, under which apply may refuse growing commands.
    pub(crate) fn has_memory_limit(&self) -> bool {
        self.memory.maxmemory != 0
    }

    /// Whether a growing command must be refused now (`-OOM`).
    pub(crate) fn refuses_growth(&mut self) -> bool {
        if self.memory.maxmemory == 0 {
            return false;
        }
        self.settle_memory();
        self.memory.refuses_growth(self.used_memory())
    }

    fn apply_op(&mut self, index: u64, now_ms: u64, op: &Op) -> Frame {
        match op {
            Op::Command { db, args } => {
                if *db >= DATABASES {
                    return Frame::error(command::errors::DB_INDEX_OUT_OF_RANGE);
                }
                let mut ctx = WriteCtx {
                    keyspace: self,
                    db: *db,
                    now_ms,
                    index,
                    in_transaction: false,
                };
                run_in_apply(&mut ctx, args)
            }
            Op::Exec {
                db,
                watches,
                commands,
            } => transaction::exec(self, index, now_ms, *db, watches, commands),
            // Batches do not nest: a connection's batch is its writes, each plain, and a
            // gathered batch holds proposals.
            Op::Client { .. } | Op::Batch(_) => Frame::error(command::errors::STALE_CLIENT_BATCH),
            Op::Expire { db, keys } => {
                let Some(target) = self.dbs.get_mut(*db as usize) else {
                    return Frame::Integer(0);
                };
                let mut deleted = 0;
                for name in keys {
                    if target.get_any(name).is_some_and(|e| e.is_expired(now_ms)) {
                        target.remove(name, index);
                        deleted += 1;
                    }
                }
                Frame::Integer(deleted)
            }
            Op::MemoryAtStart(settings) => {
                if self.memory.origin != settings.origin {
                    self.memory = settings.clone();
                }
                Frame::ok()
            }
            Op::ConfigSet { pairs } => {
                let mut next = self.memory.clone();
                for (name, value) in pairs {
                    if let Err(reason) = next.set(name, value) {
                        return Frame::error(format!("ERR CONFIG SET failed: {reason}"));
                    }
                }
                self.memory = next;
                Frame::ok()
            }
            Op::Evict { db, keys } => {
                let Some(target) = self.dbs.get_mut(*db as usize) else {
                    return Frame::Integer(0);
                };
                let mut evicted = 0;
                for name in keys {
                    // The leader chose from its applied state; a key whose policy stopped
                    // allowing it since (its TTL removed, the rules changed) stays.
                    let allowed = target
                        .get_any(name)
                        .is_some_and(|e| self.memory.may_evict(name, e.expires_at().is_some()));
                    if allowed {
                        target.remove(name, index);
                        evicted += 1;
                    }
                }
                self.evicted_keys += evicted;
                Frame::Integer(evicted as i64)
            }
            Op::Acl(acl) => self.apply_acl(acl),
            Op::AsUser { user, op } => {
                let acting = self
                    .acl
                    .get(user)
                    .unwrap_or_else(|| Arc::new(crate::acl::User::new(user)));
                let outer = self.acting_user.replace(acting);
                let reply = self.apply_op(index, now_ms, op);
                self.acting_user = outer;
                reply
            }
        }
    }

    /// The restricted user the entry being applied runs for, if any.
    pub(crate) fn acting_user(&self) -> Option<&crate::acl::User> {
        self.acting_user.as_deref()
    }
}

/// Checks a command run from inside an entry (a script's call, a transaction's command)
/// against the user the entry runs for; `None` when it may run.
pub(crate) fn acl_refusal(
    user: Option<&crate::acl::User>,
    spec: &'static command::CommandSpec,
    args: &[Bytes],
) -> Option<crate::acl::Denied> {
    let user = user?;
    user.check(spec, &crate::acl::full_name(spec, args), args)
        .err()
}

/// Runs one command inside apply: writes mutate, reads (inside transactions) see the state
/// as of this entry.
fn run_in_apply(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match command::resolve(args) {
        Resolved::Error(text) => Frame::Error(text),
        Resolved::Command(spec)
            if spec.flags & command::flag::DENYOOM != 0 && ctx.keyspace.refuses_growth() =>
        {
            Frame::error(memory::OOM)
        }
        Resolved::Command(spec) => match spec.handler {
            Handler::Write(run) => run(ctx, args),
            Handler::Read(run) => run(&ctx.as_read(), args),
            // Queued in a transaction: delivered to this node's subscribers once applied.
            Handler::Session(_) if spec.name == "publish" => {
                if let [_, channel, message] = args {
                    ctx.publish(channel, message);
                }
                Frame::Integer(0)
            }
            Handler::Session(_)
            | Handler::Replies(_)
            | Handler::Connection
            | Handler::Container => {
                Frame::error(format!("ERR '{}' cannot run inside a log entry", spec.name))
            }
        },
    }
}

/// A well-mixed 64-bit seed from a log index (splitmix64), for deterministic random picks.
pub fn seed_from_index(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic random source (splitmix64) for picks that must be the same on
/// every replica (`SPOP`) or merely random (`SRANDMEMBER` on the read path).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed` (see [`seed_from_index`] and [`ReadCtx::seed`]).
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        seed_from_index(self.0)
    }

    /// A number in `0..bound` (`bound` > 0), without modulo bias worth caring about.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

/// What a read handler sees: one database at one instant.
pub struct ReadCtx<'a> {
    /// The whole keyspace (for commands that span databases).
    pub keyspace: &'a Keyspace,
    /// The selected database.
    pub db: u32,
    /// The time at which expiry is judged.
    pub now_ms: u64,
    /// Seed for random picks (`RANDOMKEY`): from the log index inside apply, so replicas
    /// agree; from any source on the read path.
    pub seed: u64,
    /// Whether reading a key counts as an access to it (off under `CLIENT NO-TOUCH`).
    pub touch: bool,
    /// A restricted user whose rules a script's calls must pass; `None` checks nothing
    /// (the command itself was checked before it ran).
    pub user: Option<&'a crate::acl::User>,
}

impl ReadCtx<'_> {
    /// The selected database.
    pub fn db(&self) -> &Db {
        // `db` is validated by SELECT and by apply; fall back to an empty view rather than panic.
        static EMPTY: std::sync::LazyLock<Db> = std::sync::LazyLock::new(Db::default);
        self.keyspace.dbs.get(self.db as usize).unwrap_or(&EMPTY)
    }

    /// The live entry under `key`, recorded as accessed (for eviction's LRU and LFU ranks).
    pub fn get(&self, key: &Bytes) -> Option<&Entry> {
        let entry = self.db().get(key, self.now_ms)?;
        if self.touch {
            let settings = &self.keyspace.memory;
            entry.access.touch(
                self.now_ms,
                seed_from_index(self.seed ^ slot_of(key)),
                settings.lfu_log_factor,
                settings.lfu_decay_time,
            );
        }
        Some(entry)
    }

    /// The live entry under `key`, without counting an access (`OBJECT`, `MEMORY USAGE`).
    pub fn peek(&self, key: &Bytes) -> Option<&Entry> {
        self.db().get(key, self.now_ms)
    }
}

/// What a write handler sees inside apply.
pub struct WriteCtx<'a> {
    /// The keyspace being changed.
    pub keyspace: &'a mut Keyspace,
    /// The selected database (validated before construction).
    pub db: u32,
    /// The entry's time (replicated clock).
    pub now_ms: u64,
    /// The entry's log index: the seed of any random choice.
    pub index: u64,
    /// Running inside `EXEC`: a blocking command must answer at once instead of waiting.
    pub in_transaction: bool,
}

impl WriteCtx<'_> {
    /// A read view of the same state.
    pub fn as_read(&self) -> ReadCtx<'_> {
        ReadCtx {
            keyspace: self.keyspace,
            db: self.db,
            now_ms: self.now_ms,
            seed: seed_from_index(self.index),
            touch: true,
            user: self.keyspace.acting_user(),
        }
    }

    fn db_mut(&mut self) -> &mut Db {
        let index = (self.db as usize).min(self.keyspace.dbs.len().saturating_sub(1));
        &mut self.keyspace.dbs[index]
    }

    /// The live entry under `key`. An expired entry reads as absent and stays where it is
    /// until the leader's expiry entry or an overwrite replaces it: deleting it here would
    /// cost a second lookup on every write.
    pub fn get(&mut self, key: &Bytes) -> Option<&Entry> {
        let now_ms = self.now_ms;
        self.keyspace.dbs.get(self.db as usize)?.get(key, now_ms)
    }

    /// The live entry under `key`, to change its value in place (its expiry must be changed
    /// through [`WriteCtx::set_expiry`]). Marks the key changed for `WATCH`, and as
    /// possibly ready for clients blocked on it. A collection left empty must be removed
    /// with [`WriteCtx::remove_if_empty`].
    pub fn get_mut(&mut self, key: &Bytes) -> Option<&mut Entry> {
        let unblocks = self.get(key)?.value.can_unblock();
        if unblocks {
            self.keyspace.events.push(Event::Ready {
                db: self.db,
                key: key.clone(),
            });
        }
        let (index, now_ms) = (self.index, self.now_ms);
        self.db_mut().get_mut(key, index, now_ms)
    }

    /// The live entry under `key`, to change its value in place when the change may turn out
    /// to be none: nothing is stamped. A command that did change the value must then call
    /// [`WriteCtx::mark_changed`] (or remove an emptied collection).
    pub fn get_mut_unstamped(&mut self, key: &Bytes) -> Option<&mut Entry> {
        self.get(key)?;
        self.db_mut().get_mut_unstamped(key)
    }

    /// Stamps `key` as changed by this entry (for `WATCH` and `OBJECT IDLETIME`) and as
    /// possibly ready for clients blocked on it.
    pub fn mark_changed(&mut self, key: &Bytes) {
        self.get_mut(key);
    }

    /// Deletes `key` if it holds an empty collection; returns whether it did.
    pub fn remove_if_empty(&mut self, key: &Bytes) -> bool {
        let empty = self
            .db_mut()
            .get_any(key)
            .is_some_and(|e| e.value.is_empty_collection());
        if empty {
            self.remove(key);
        }
        empty
    }

    /// Queues a message for this node's subscribers, delivered once the entry applies.
    pub fn publish(&mut self, channel: &Bytes, message: &Bytes) {
        self.keyspace.events.push(Event::Publish {
            channel: channel.clone(),
            message: message.clone(),
        });
    }

    /// Stores `value` under `key` with the given expiry.
    ///
    /// The key is copied into storage of its own: arguments are slices of a connection's
    /// read buffer, and keeping one would pin the whole buffer in memory for as long as the
    /// key lives (and share one reference count between threads). A string value is such a
    /// copy already ([`CompactBytes`]).
    pub fn set(&mut self, key: &Bytes, value: Value, expires_at: Option<u64>) {
        let now_ms = self.now_ms;
        if value.can_unblock() {
            self.keyspace.events.push(Event::Ready {
                db: self.db,
                key: key.clone(),
            });
        }
        let key = CompactBytes::copy(key);
        let version = self.index;
        self.db_mut()
            .insert(key, Entry::new(value, expires_at, now_ms, version));
    }

    /// Replaces the value, keeping the key's expiry.
    pub fn set_keep_ttl(&mut self, key: &Bytes, value: Value) {
        let expires_at = self.get(key).and_then(|e| e.expires_at());
        self.set(key, value, expires_at);
    }

    /// Changes only the expiry of an existing key; returns whether the key existed.
    pub fn set_expiry(&mut self, key: &Bytes, expires_at: Option<u64>) -> bool {
        if self.get(key).is_none() {
            return false;
        }
        let (now_ms, index) = (self.now_ms, self.index);
        self.db_mut().update_expiry(key, expires_at, now_ms, index)
    }

    /// Deletes `key`; returns the live entry it held.
    pub fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        let (now_ms, index) = (self.now_ms, self.index);
        self.db_mut()
            .remove(key, index)
            .filter(|e| !e.is_expired(now_ms))
    }

    /// Empties the selected database.
    pub fn flush_db(&mut self) {
        let index = self.index;
        self.db_mut().clear(index);
    }

    /// Empties every database.
    pub fn flush_all(&mut self) {
        for db in &mut self.keyspace.dbs {
            db.clear(self.index);
        }
    }

    /// Stores a whole entry in another database (COPY ... DB, MOVE), stamped as changed now.
    pub fn insert_in_db(&mut self, db: u32, key: &Bytes, mut entry: Entry) {
        entry.version = self.index;
        if entry.value.can_unblock() {
            self.keyspace.events.push(Event::Ready {
                db,
                key: key.clone(),
            });
        }
        if let Some(target) = self.keyspace.dbs.get_mut(db as usize) {
            target.insert(CompactBytes::copy(key), entry);
        }
    }

    /// The live entry under `key` in another database.
    pub fn get_in_db(&self, db: u32, key: &Bytes) -> Option<&Entry> {
        self.keyspace.db(db)?.get(key, self.now_ms)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Applies `args` (space-separated, no quoting) as one command at `time_ms`.
    pub fn must_apply(ks: &mut Keyspace, time_ms: u64, line: &str) -> Frame {
        let args = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        ks.apply(
            1,
            &Request {
                time_ms,
                op: Op::Command { db: 0, args },
            },
        )
    }

    fn batch(conn: u64, seq: u64, lines: &[&str]) -> Request {
        let ops = lines
            .iter()
            .map(|line| Op::Command {
                db: 0,
                args: line
                    .split(' ')
                    .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                    .collect(),
            })
            .collect();
        Request {
            time_ms: 1_000,
            op: Op::Client {
                client: sessions::ClientId {
                    node: 1,
                    boot: 9,
                    conn,
                },
                seq,
                ops,
            },
        }
    }

    fn split(line: &str) -> Args {
        crate::resp::split_command_line(line).expect("quoting")
    }

    fn as_user(ks: &mut Keyspace, index: u64, user: &str, op: Op) -> Frame {
        ks.apply(
            index,
            &Request {
                time_ms: 1000,
                op: Op::AsUser {
                    user: user.to_string(),
                    op: Box::new(op),
                },
            },
        )
    }

    fn set_user(ks: &mut Keyspace, index: u64, line: &str) {
        let mut words = split(line);
        let name = String::from_utf8_lossy(&words.remove(0)).into_owned();
        let reply = ks.apply(
            index,
            &Request {
                time_ms: 1000,
                op: Op::Acl(AclOp::SetUser { name, rules: words }),
            },
        );
        assert_eq!(reply, Frame::ok());
    }

    #[test]
    fn a_gathered_batch_applies_each_proposal_in_order_and_refuses_nesting() {
        let mut ks = Keyspace::new();
        let first = batch(1, 1, &["set k a", "append k b"]).op;
        let second = batch(2, 1, &["append k c"]).op;
        let gathered = |ops: Vec<Op>| Request {
            time_ms: 2_000,
            op: Op::Batch(ops),
        };
        let reply = ks.apply(5, &gathered(vec![first.clone(), second]));
        assert_eq!(
            reply,
            Frame::Array(vec![
                Frame::Array(vec![Frame::ok(), Frame::Integer(2)]),
                Frame::Array(vec![Frame::Integer(3)]),
            ])
        );
        let nested = gathered(vec![Op::Batch(vec![]), first]);
        let reply = ks.apply(6, &nested);
        let Frame::Array(replies) = reply else {
            panic!("an array reply, got {reply:?}");
        };
        assert!(
            replies[0].is_error(),
            "a batch inside a batch: {:?}",
            replies[0]
        );
        assert_eq!(
            replies[1],
            Frame::Array(vec![Frame::ok(), Frame::Integer(2)]),
            "a proposal sent again is answered from its session, not run again"
        );
        let value = ks
            .db(0)
            .and_then(|db| db.get_any(b"k"))
            .map(|e| e.value.clone());
        assert_eq!(value, Some(Value::string(b"abc")));
        assert_eq!(ks.applied_index(), 6);
    }

    #[test]
    fn a_script_run_for_a_restricted_user_is_held_to_its_rules_call_by_call() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "set bff:session:x token");
        must_apply(&mut ks, 1000, "set celery:a 1");
        set_user(&mut ks, 2, "celery on nopass ~celery:* +@all");
        let script = |key: &str| Op::Command {
            db: 0,
            args: split(&format!(
                "eval \"return redis.call('get', KEYS[1])\" 1 {key}"
            )),
        };
        assert_eq!(
            as_user(&mut ks, 3, "celery", script("celery:a")),
            Frame::bulk("1")
        );
        let refused = as_user(&mut ks, 4, "celery", script("bff:session:x"));
        assert!(
            matches!(&refused, Frame::Error(e) if e.starts_with("NOPERM No permissions to access a key")),
            "{refused:?}"
        );
        // The key is declared honestly but the script reaches past it: still refused.
        let sneaky = Op::Command {
            db: 0,
            args: split("eval \"return redis.call('get', 'bff:session:x')\" 0"),
        };
        assert!(
            matches!(as_user(&mut ks, 5, "celery", sneaky.clone()), Frame::Error(e) if e.starts_with("NOPERM"))
        );
        // Without a user the same entry runs: the check comes from the entry, not the script.
        assert_eq!(
            ks.apply(
                6,
                &Request {
                    time_ms: 1000,
                    op: sneaky.clone()
                }
            ),
            Frame::bulk("token")
        );
        // A user deleted before the entry applies may run nothing.
        ks.apply(
            7,
            &Request {
                time_ms: 1000,
                op: Op::Acl(AclOp::DelUser {
                    names: vec!["celery".into()],
                }),
            },
        );
        assert!(
            matches!(as_user(&mut ks, 8, "celery", script("celery:a")), Frame::Error(e) if e.starts_with("NOPERM"))
        );
    }

    #[test]
    fn exec_checks_each_queued_command_against_the_rules_in_force_when_it_applies() {
        let mut ks = Keyspace::new();
        set_user(&mut ks, 1, "worker on nopass ~q:* +@all -flushall");
        let exec = Op::Exec {
            db: 0,
            watches: Vec::new(),
            commands: vec![split("set q:1 a"), split("set other b"), split("incr q:n")],
        };
        let Frame::Array(replies) = as_user(&mut ks, 2, "worker", exec.clone()) else {
            panic!("EXEC replies with an array");
        };
        assert_eq!(replies[0], Frame::ok());
        assert!(
            matches!(&replies[1], Frame::Error(e) if e.contains("ACLs rules changed") && e.ends_with("no permission to touch the specified keys"))
        );
        assert_eq!(replies[2], Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 1000, "exists other"), Frame::Integer(0));
        // The user loses INCR between queueing and EXEC: only that command fails.
        set_user(&mut ks, 3, "worker -incr");
        let Frame::Array(replies) = as_user(&mut ks, 4, "worker", exec) else {
            panic!("EXEC replies with an array");
        };
        assert_eq!(replies[0], Frame::ok());
        assert!(
            matches!(&replies[2], Frame::Error(e) if e.ends_with("no permission to execute the command or subcommand"))
        );
        assert_eq!(must_apply(&mut ks, 1000, "get q:n"), Frame::bulk("1"));
    }

    #[test]
    fn a_client_batch_applied_twice_changes_state_once_and_replies_the_same() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1_000, "rpush q a b");
        let first = ks.apply(2, &batch(7, 1, &["incr n", "rpop q"]));
        assert_eq!(
            first,
            Frame::Array(vec![Frame::Integer(1), Frame::Bulk(Bytes::from("b"))])
        );
        // The same batch committed again (sent to a new leader): nothing runs again.
        assert_eq!(ks.apply(3, &batch(7, 1, &["incr n", "rpop q"])), first);
        assert_eq!(
            ks.apply(4, &batch(7, 2, &["incr n"])),
            Frame::Array(vec![Frame::Integer(2)])
        );
        // An older batch arriving late is refused, not run.
        let stale = ks.apply(5, &batch(7, 1, &["incr n", "rpop q"]));
        assert!(
            matches!(&stale, Frame::Array(r) if r.iter().all(|f| matches!(f, Frame::Error(_))))
        );
        // Another connection's batch 1 is its own.
        assert_eq!(
            ks.apply(6, &batch(8, 1, &["rpop q"])),
            Frame::Array(vec![Frame::Bulk(Bytes::from("a"))])
        );
        // The table survives a snapshot: a copy applied after a restore still replays.
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let mut back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(
            back.apply(7, &batch(8, 1, &["rpop q"])),
            Frame::Array(vec![Frame::Bulk(Bytes::from("a"))])
        );
        assert_eq!(back.client_sessions(), 2);
    }

    /// The read path's view of `ks` in database 0 at `now_ms`, as a client without
    /// restrictions sees it.
    fn test_read_ctx(ks: &Keyspace, now_ms: u64) -> ReadCtx<'_> {
        ReadCtx {
            keyspace: ks,
            db: 0,
            now_ms,
            seed: 42,
            touch: true,
            user: None,
        }
    }

    /// The keyspace's replicated state as snapshot bytes, with the clock (which every
    /// applied entry may raise, and every record carries) set aside.
    fn state_bytes(ks: &Keyspace) -> Vec<u8> {
        let mut timeless = ks.clone();
        timeless.clock_ms = 0;
        let mut out = Vec::new();
        timeless.write_snapshot(&mut out).expect("snapshot");
        out
    }

    /// Holds a write's [`command::UnchangedCheck`] to its promise: when it answers, apply
    /// answers the same and changes nothing. Returns apply's reply.
    fn apply_checking_unchanged(ks: &mut Keyspace, index: u64, args: Args) -> Frame {
        let check = match command::resolve(&args) {
            Resolved::Command(spec) => spec.unchanged,
            Resolved::Error(_) => None,
        };
        let promised = check.and_then(|check| check(&test_read_ctx(ks, 1000), &args));
        let before = promised.as_ref().map(|_| state_bytes(ks));
        let line = format!("{args:?}");
        let reply = ks.apply(
            index,
            &Request {
                time_ms: 1000,
                op: Op::Command { db: 0, args },
            },
        );
        if let (Some(promised), Some(before)) = (promised, before) {
            assert_eq!(promised, reply, "{line}: unchanged check against apply");
            assert!(
                before == state_bytes(ks),
                "{line}: the unchanged check answered but apply changed the state"
            );
        }
        reply
    }

    /// Runs `(command line, RESP2 reply, RESP3 reply)` rows in order against one keyspace
    /// and compares the exact reply bytes; an empty RESP3 column means "same as RESP2".
    /// Writes go through apply (log index 1, 2, ...), reads through the read path, all at
    /// time 1000 ms in database 0. Command lines use redis-cli quoting (`""` is empty).
    /// A write with an unchanged check is held to it on the way.
    pub fn check_transcript(rows: &[(&str, &str, &str)]) {
        let mut ks = Keyspace::new();
        for (index, (line, resp2, resp3)) in rows.iter().enumerate() {
            let args = crate::resp::split_command_line(line)
                .unwrap_or_else(|| panic!("bad quoting in {line:?}"));
            let reply = match command::resolve(&args) {
                Resolved::Command(spec) if matches!(spec.handler, Handler::Read(_)) => {
                    let Handler::Read(run) = spec.handler else {
                        unreachable!()
                    };
                    run(&test_read_ctx(&ks, 1000), &args)
                }
                _ => apply_checking_unchanged(&mut ks, index as u64 + 1, args),
            };
            for (resp3_on, want) in [
                (false, *resp2),
                (true, if resp3.is_empty() { resp2 } else { resp3 }),
            ] {
                let mut out = bytes::BytesMut::new();
                crate::resp::encode(&reply, resp3_on, &mut out);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    want.replace('\n', "\r\n").replace("\r\r\n", "\r\n"),
                    "row {index}: {line} (RESP{})",
                    if resp3_on { 3 } else { 2 }
                );
            }
        }
    }

    /// Command lines over a few keys of every type, with expiries that lapse as time moves:
    /// the writes that have an unchanged check and the writes that shape the state they see.
    fn unchanged_check_lines() -> impl proptest::strategy::Strategy<Value = Vec<(u64, String)>> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec!["k0", "k1", "k2"]);
        let member = prop::sample::select(vec!["a", "b", "c"]);
        let line = (0..16usize, key.clone(), key, member.clone(), member).prop_map(
            |(form, k, other, m, n)| match form {
                0 => format!("sadd {k} {m}"),
                1 => format!("sadd {k} {m} {n}"),
                2 => format!("srem {k} {m} {n}"),
                3 => format!("hset {k} {m} v"),
                4 => format!("hdel {k} {m} {n}"),
                5 => format!("hsetnx {k} {m} w"),
                6 => format!("zadd {k} 1 {m}"),
                7 => format!("zrem {k} {m} {n}"),
                8 => format!("set {k} v"),
                9 => format!("setnx {k} w"),
                10 => format!("del {k} {other}"),
                11 => format!("unlink {k}"),
                12 => format!("pexpire {k} 3"),
                13 => format!("set {k} v px 2"),
                14 => format!("rpush {k} {m}"),
                _ => format!("srem {k} {m}"),
            },
        );
        proptest::collection::vec((0..3u64, line), 1..40)
    }

    proptest::proptest! {
        /// Whatever the state, a write's unchanged check answers only where apply, at the
        /// same time, would answer the same and leave the state as it was.
        #[test]
        fn unchanged_checks_agree_with_apply(lines in unchanged_check_lines()) {
            let mut ks = Keyspace::new();
            let mut now_ms = 1_000;
            for (index, (step, line)) in lines.into_iter().enumerate() {
                now_ms += step;
                let args = split(&line);
                let Resolved::Command(spec) = command::resolve(&args) else {
                    panic!("{line} resolves");
                };
                let promised = spec.unchanged.and_then(|check| {
                    check(&test_read_ctx(&ks, now_ms), &args)
                });
                let before = state_bytes(&ks);
                let reply = ks.apply(
                    index as u64 + 1,
                    &Request { time_ms: now_ms, op: Op::Command { db: 0, args } },
                );
                if let Some(promised) = promised {
                    proptest::prop_assert_eq!(&promised, &reply, "{}", line);
                    proptest::prop_assert!(before == state_bytes(&ks), "{} changed the state", line);
                }
            }
        }
    }

    /// Each check does answer where nothing would change, and refuses where something
    /// would (or where apply answers an error).
    #[test]
    fn unchanged_checks_answer_only_for_writes_that_change_nothing() {
        let mut ks = Keyspace::new();
        for line in [
            "sadd s a b",
            "hset h f v",
            "zadd z 1 m",
            "set str v",
            "set old v px 5",
        ] {
            must_apply(&mut ks, 1000, line);
        }
        let check = |ks: &Keyspace, now_ms: u64, line: &str| {
            let args = split(line);
            let Resolved::Command(spec) = command::resolve(&args) else {
                panic!("{line} resolves");
            };
            let check = spec
                .unchanged
                .unwrap_or_else(|| panic!("{line} has a check"));
            check(&test_read_ctx(ks, now_ms), &args)
        };
        let zero = Some(Frame::Integer(0));
        for (line, want) in [
            ("sadd s a", zero.clone()),
            ("sadd s a b a", zero.clone()),
            ("sadd s a c", None),
            ("sadd missing a", None),
            ("sadd str a", None),
            ("srem s c", zero.clone()),
            ("srem missing a", zero.clone()),
            ("srem s c a", None),
            ("srem str a", None),
            ("hdel h g", zero.clone()),
            ("hdel h g f", None),
            ("hsetnx h f w", zero.clone()),
            ("hsetnx h g w", None),
            ("zrem z n", zero.clone()),
            ("zrem z m", None),
            ("zrem str m", None),
            ("setnx str w", zero.clone()),
            ("setnx s w", zero.clone()),
            ("setnx fresh w", None),
            ("del missing other", zero.clone()),
            ("del missing str", None),
            ("unlink missing", zero.clone()),
        ] {
            assert_eq!(check(&ks, 1000, line), want, "{line}");
        }
        // An expired key still held is a change to delete (it leaves a tombstone) and no
        // longer there for SETNX.
        assert_eq!(check(&ks, 1010, "del old"), None);
        assert_eq!(check(&ks, 1010, "setnx old w"), None);
        assert_eq!(check(&ks, 1004, "setnx old w"), zero);
    }

    #[test]
    fn transcripts_compare_exact_bytes_in_both_protocols() {
        check_transcript(&[
            ("set k \"a b\"", "+OK\n", ""),
            ("get k", "$3\na b\n", ""),
            ("get missing", "$-1\n", "_\n"),
            (
                "incr k",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
        ]);
    }

    #[test]
    fn expired_keys_vanish_on_read_and_on_expire_entries() {
        let mut ks = Keyspace::new();
        assert_eq!(must_apply(&mut ks, 1000, "set k v px 100"), Frame::ok());
        let db = ks.db(0).expect("db 0");
        assert!(db.get(&Bytes::from("k"), 1099).is_some());
        assert!(db.get(&Bytes::from("k"), 1100).is_none());
        assert_eq!(db.volatile_len(), 1);
        let expire = Op::Expire {
            db: 0,
            keys: vec![Bytes::from("k")],
        };
        // Too early: the key must survive an expire entry stamped before its deadline.
        assert_eq!(
            ks.apply(
                2,
                &Request {
                    time_ms: 1050,
                    op: expire.clone()
                }
            ),
            Frame::Integer(0)
        );
        assert_eq!(
            ks.apply(
                3,
                &Request {
                    time_ms: 1200,
                    op: expire
                }
            ),
            Frame::Integer(1)
        );
        assert_eq!(ks.total_keys(), 0);
        assert_eq!(ks.db(0).map(Db::volatile_len), Some(0));
    }

    #[test]
    fn clock_never_runs_backwards() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 5000, "set a 1");
        must_apply(&mut ks, 4000, "set b 2 px 500");
        assert_eq!(ks.clock_ms(), 5000);
        let b = ks
            .db(0)
            .and_then(|d| d.get(&Bytes::from("b"), 5000))
            .and_then(|e| e.expires_at());
        assert_eq!(b, Some(5500));
    }
}

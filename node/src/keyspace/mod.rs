//! The deterministic state machine: sixteen databases of typed values with expiry.
//!
//! Only apply mutates it, as a pure function of (keyspace, request, log index): no clock,
//! no randomness, no I/O. Cloning is O(1) (persistent maps), which lets a snapshot serialize
//! a frozen view in the background while apply goes on.
//!
//! Keys are ordered by a fixed 64-bit hash of their bytes and then by the bytes, so a
//! `SCAN` cursor is simply the hash to resume from: stable while keys come and go, and the
//! same on every replica.

mod db;
mod generic;
pub mod glob;
mod request;
mod snapshot;
mod strings;

pub use db::{slot_of, Db};
pub use request::{Args, Op, Request};
pub use snapshot::SnapshotError;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::{self, Handler, Resolved};
use crate::resp::Frame;

pub(crate) use generic::*;
pub(crate) use strings::*;

/// Number of databases (`SELECT 0..15`), fixed as Redis's default.
pub const DATABASES: u32 = 16;

/// Largest string value (`proto-max-bulk-len`'s default); fixed so apply stays deterministic.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

/// The keyspace shared between apply (writer) and the read path (readers).
pub type SharedKeyspace = Arc<parking_lot::RwLock<Keyspace>>;

/// A stored value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A string (also integers and floats, as in Redis).
    Str(Bytes),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }
}

/// A value with its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in ms since the epoch, if any.
    pub expires_at: Option<u64>,
    /// Time of the last write, in the replicated clock (for `OBJECT IDLETIME`).
    pub written_at: u64,
}

impl Entry {
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// All databases and the replicated clock.
#[derive(Clone, Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
    /// The highest entry time applied so far: time never runs backwards across leaders.
    clock_ms: u64,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            dbs: vec![Db::default(); DATABASES as usize],
            clock_ms: 0,
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

    /// Applies one committed log entry and returns the reply for the client that proposed it.
    pub fn apply(&mut self, index: u64, request: &Request) -> Frame {
        self.clock_ms = self.clock_ms.max(request.time_ms);
        let now_ms = self.clock_ms;
        match &request.op {
            Op::Command { db, args } => {
                if *db >= DATABASES {
                    return Frame::error(command::errors::DB_INDEX_OUT_OF_RANGE);
                }
                let mut ctx = WriteCtx {
                    keyspace: self,
                    db: *db,
                    now_ms,
                    index,
                };
                run_in_apply(&mut ctx, args)
            }
            Op::Expire { db, keys } => {
                let Some(target) = self.dbs.get_mut(*db as usize) else {
                    return Frame::Integer(0);
                };
                let mut deleted = 0;
                for name in keys {
                    if target.get_any(name).is_some_and(|e| e.is_expired(now_ms)) {
                        target.remove(name);
                        deleted += 1;
                    }
                }
                Frame::Integer(deleted)
            }
        }
    }
}

/// Runs one command inside apply: writes mutate, reads (inside transactions) see the state
/// as of this entry.
fn run_in_apply(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match command::resolve(args) {
        Resolved::Error(text) => Frame::Error(text),
        Resolved::Command(spec) => match spec.handler {
            Handler::Write(run) => run(ctx, args),
            Handler::Read(run) => run(&ctx.as_read(), args),
            Handler::Session(_) | Handler::Container => {
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
}

impl ReadCtx<'_> {
    /// The selected database.
    pub fn db(&self) -> &Db {
        // `db` is validated by SELECT and by apply; fall back to an empty view rather than panic.
        static EMPTY: std::sync::LazyLock<Db> = std::sync::LazyLock::new(Db::default);
        self.keyspace.dbs.get(self.db as usize).unwrap_or(&EMPTY)
    }

    /// The live entry under `key`.
    pub fn get(&self, key: &Bytes) -> Option<&Entry> {
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
}

impl WriteCtx<'_> {
    /// A read view of the same state.
    pub fn as_read(&self) -> ReadCtx<'_> {
        ReadCtx {
            keyspace: self.keyspace,
            db: self.db,
            now_ms: self.now_ms,
            seed: seed_from_index(self.index),
        }
    }

    fn db_mut(&mut self) -> &mut Db {
        let index = (self.db as usize).min(self.keyspace.dbs.len().saturating_sub(1));
        &mut self.keyspace.dbs[index]
    }

    /// The live entry under `key`; an expired one is deleted on the way (deterministically,
    /// since every replica applies the same entry at the same time).
    pub fn get(&mut self, key: &Bytes) -> Option<&Entry> {
        let now_ms = self.now_ms;
        let db = self.db_mut();
        // One lookup in the common case; a second only to delete an expired key.
        if db.get_any(key)?.is_expired(now_ms) {
            db.remove(key);
            return None;
        }
        db.get_any(key)
    }

    /// Stores `value` under `key` with the given expiry.
    ///
    /// Key and value are copied into their own allocations: arguments are slices of a
    /// connection's read buffer, and keeping one would pin the whole buffer in memory for
    /// as long as the key lives (and share one reference count between threads).
    pub fn set(&mut self, key: &Bytes, value: Value, expires_at: Option<u64>) {
        let written_at = self.now_ms;
        let value = match value {
            Value::Str(s) => Value::Str(Bytes::copy_from_slice(&s)),
        };
        let key = Bytes::copy_from_slice(key);
        self.db_mut().insert(
            key,
            Entry {
                value,
                expires_at,
                written_at,
            },
        );
    }

    /// Replaces the value, keeping the key's expiry.
    pub fn set_keep_ttl(&mut self, key: &Bytes, value: Value) {
        let expires_at = self.get(key).and_then(|e| e.expires_at);
        self.set(key, value, expires_at);
    }

    /// Changes only the expiry of an existing key; returns whether the key existed.
    pub fn set_expiry(&mut self, key: &Bytes, expires_at: Option<u64>) -> bool {
        if self.get(key).is_none() {
            return false;
        }
        let written_at = self.now_ms;
        self.db_mut().update_expiry(key, expires_at, written_at)
    }

    /// Deletes `key`; returns the live entry it held.
    pub fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        let now_ms = self.now_ms;
        self.db_mut().remove(key).filter(|e| !e.is_expired(now_ms))
    }

    /// Empties the selected database.
    pub fn flush_db(&mut self) {
        self.db_mut().clear();
    }

    /// Empties every database.
    pub fn flush_all(&mut self) {
        for db in &mut self.keyspace.dbs {
            db.clear();
        }
    }

    /// Another database of the keyspace, for COPY ... DB and MOVE.
    pub fn other_db(&mut self, index: u32) -> Option<&mut Db> {
        self.keyspace.dbs.get_mut(index as usize)
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
            .and_then(|e| e.expires_at);
        assert_eq!(b, Some(5500));
    }
}

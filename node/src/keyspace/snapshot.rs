//! The keyspace's snapshot stream: a header, one length-prefixed record per key, a trailer
//! with the record count (so a truncated or corrupt file is refused on load), and then each
//! database's `WATCH` state (deletion horizon and tombstones), then the script cache, the
//! function libraries, the client sessions (`sessions`), the memory settings with the
//! eviction count (`memory`, from `CELLKV06`) and the ACL users (`acl`, from `CELLKV07`).

use std::io::{Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::memory::MemorySettings;
use super::sessions::Sessions;
use super::{CompactBytes, Db, Entry, Keyspace, Library, Value, DATABASES};

const MAGIC: &[u8; 8] = b"CELLKV07";
/// The format before the ACL users joined it (read still: such a snapshot has the default
/// user only).
const MAGIC_BEFORE_ACL: &[u8; 8] = b"CELLKV06";
/// The format before the memory settings joined it (read still).
const MAGIC_BEFORE_MEMORY: &[u8; 8] = b"CELLKV05";
/// The format before client sessions joined it (read still).
const MAGIC_BEFORE_SESSIONS: &[u8; 8] = b"CELLKV04";
/// The format before function libraries joined it: read still, so an upgraded node can
/// start from the snapshot an older one left.
const MAGIC_BEFORE_FUNCTIONS: &[u8; 8] = b"CELLKV03";
/// A record longer than this is corrupt: values are bounded by proto-max-bulk-len.
const MAX_RECORD: u32 = 1024 * 1024 * 1024;

/// Errors reading or writing a snapshot of the keyspace.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The underlying reader or writer failed.
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a snapshot this version understands.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Serialize, Deserialize)]
struct Record {
    db: u32,
    key: CompactBytes,
    value: Value,
    expires_at: Option<u64>,
    /// The access time a restored key starts with (the snapshot's replicated clock).
    written_at: u64,
    version: u64,
}

/// The ACL section: each user as the rules that rebuild it (hashed passwords only), and the
/// digest of the startup configuration last loaded.
#[derive(Serialize, Deserialize)]
struct AclState {
    loaded_digest: Option<String>,
    users: Vec<crate::acl::UserRules>,
}

#[derive(Serialize, Deserialize)]
struct MemoryState {
    settings: MemorySettings,
    evicted_keys: u64,
}

#[derive(Serialize, Deserialize)]
struct WatchState {
    forgotten_before: u64,
    tombstones: Vec<(u64, u64)>,
}

/// Writes one length-prefixed section after the key records.
fn write_section<T: Serialize>(
    out: &mut dyn Write,
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), SnapshotError> {
    buf.clear();
    *buf = postcard::to_extend(value, std::mem::take(buf))
        .map_err(|e| SnapshotError::Corrupt(format!("encode: {e}")))?;
    out.write_all(&(buf.len() as u64).to_le_bytes())?;
    out.write_all(buf)?;
    Ok(())
}

/// Reads one section written by [`write_section`]; `what` names it in errors.
fn read_section<T: serde::de::DeserializeOwned>(
    input: &mut dyn Read,
    buf: &mut Vec<u8>,
    what: &str,
) -> Result<T, SnapshotError> {
    let mut word = [0u8; 8];
    input.read_exact(&mut word)?;
    let len = u64::from_le_bytes(word);
    if len > MAX_RECORD as u64 {
        return Err(SnapshotError::Corrupt(format!("{what} of {len} bytes")));
    }
    buf.resize(len as usize, 0);
    input.read_exact(buf)?;
    postcard::from_bytes(buf).map_err(|e| SnapshotError::Corrupt(format!("{what}: {e}")))
}

impl Keyspace {
    /// Writes this keyspace as a snapshot stream.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> Result<(), SnapshotError> {
        out.write_all(MAGIC)?;
        out.write_all(&self.clock_ms.to_le_bytes())?;
        let mut count: u64 = 0;
        let mut buf = Vec::new();
        for (index, db) in self.dbs.iter().enumerate() {
            for (_, key, entry) in db.range_from(0) {
                let record = Record {
                    db: index as u32,
                    key: key.clone(),
                    value: entry.value.clone(),
                    expires_at: entry.expires_at(),
                    // Access stamps are each node's own: a snapshot holds the replicated
                    // clock instead, so every replica writes the same bytes for one index.
                    written_at: self.clock_ms,
                    version: entry.version,
                };
                buf.clear();
                buf = postcard::to_extend(&record, buf)
                    .map_err(|e| SnapshotError::Corrupt(format!("encode: {e}")))?;
                out.write_all(&(buf.len() as u32).to_le_bytes())?;
                out.write_all(&buf)?;
                count += 1;
            }
        }
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&count.to_le_bytes())?;
        for db in &self.dbs {
            let (forgotten_before, tombstones) = db.watch_state();
            let state = WatchState {
                forgotten_before,
                tombstones: tombstones.iter().map(|(s, i)| (*s, *i)).collect(),
            };
            write_section(out, &mut buf, &state)?;
        }
        let scripts: Vec<(&String, &Bytes)> = self.scripts.iter().collect();
        write_section(out, &mut buf, &scripts)?;
        let libraries: Vec<&Library> = self.libraries.values().collect();
        write_section(out, &mut buf, &libraries)?;
        write_section(out, &mut buf, &self.sessions.to_list())?;
        let memory = MemoryState {
            settings: self.memory.clone(),
            evicted_keys: self.evicted_keys,
        };
        write_section(out, &mut buf, &memory)?;
        let (loaded_digest, users) = self.acl.to_rules();
        write_section(
            out,
            &mut buf,
            &AclState {
                loaded_digest,
                users,
            },
        )?;
        Ok(())
    }

    /// Reads a keyspace back from a snapshot stream written by [`Keyspace::write_snapshot`].
    pub fn read_snapshot(input: &mut dyn Read) -> Result<Keyspace, SnapshotError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        let known = [
            MAGIC,
            MAGIC_BEFORE_ACL,
            MAGIC_BEFORE_MEMORY,
            MAGIC_BEFORE_SESSIONS,
            MAGIC_BEFORE_FUNCTIONS,
        ];
        if !known.contains(&&magic) {
            return Err(SnapshotError::Corrupt("bad magic".into()));
        }
        let mut word = [0u8; 8];
        input.read_exact(&mut word)?;
        let mut keyspace = Keyspace {
            clock_ms: u64::from_le_bytes(word),
            ..Keyspace::new()
        };
        let mut count: u64 = 0;
        let mut buf = Vec::new();
        loop {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            let len = u32::from_le_bytes(len);
            if len == 0 {
                break;
            }
            if len > MAX_RECORD {
                return Err(SnapshotError::Corrupt(format!("record of {len} bytes")));
            }
            buf.resize(len as usize, 0);
            input.read_exact(&mut buf)?;
            let record: Record = postcard::from_bytes(&buf)
                .map_err(|e| SnapshotError::Corrupt(format!("record {count}: {e}")))?;
            if record.db >= DATABASES {
                return Err(SnapshotError::Corrupt(format!("database {}", record.db)));
            }
            let db: &mut Db = &mut keyspace.dbs[record.db as usize];
            db.insert(
                record.key,
                Entry::new(
                    record.value,
                    record.expires_at,
                    record.written_at,
                    record.version,
                ),
            );
            count += 1;
        }
        input.read_exact(&mut word)?;
        if u64::from_le_bytes(word) != count {
            return Err(SnapshotError::Corrupt("record count mismatch".into()));
        }
        for db in &mut keyspace.dbs {
            let state: WatchState = read_section(input, &mut buf, "watch state")?;
            db.restore_watch_state(
                state.forgotten_before,
                state.tombstones.into_iter().collect(),
            );
        }
        let scripts: Vec<(String, Bytes)> = read_section(input, &mut buf, "script cache")?;
        keyspace.scripts = scripts.into_iter().collect();
        if &magic != MAGIC_BEFORE_FUNCTIONS {
            let libraries: Vec<Library> = read_section(input, &mut buf, "function libraries")?;
            keyspace.libraries = libraries
                .into_iter()
                .map(|library| (library.name.clone(), library))
                .collect();
        }
        if [MAGIC, MAGIC_BEFORE_ACL, MAGIC_BEFORE_MEMORY].contains(&&magic) {
            keyspace.sessions =
                Sessions::from_list(read_section(input, &mut buf, "client sessions")?);
        }
        if &magic == MAGIC || &magic == MAGIC_BEFORE_ACL {
            let memory: MemoryState = read_section(input, &mut buf, "memory settings")?;
            keyspace.memory = memory.settings;
            keyspace.evicted_keys = memory.evicted_keys;
        }
        if &magic == MAGIC {
            let acl: AclState = read_section(input, &mut buf, "acl users")?;
            keyspace.acl = crate::acl::Users::from_rules(acl.loaded_digest, acl.users);
        }
        Ok(keyspace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::must_apply;
    use crate::keyspace::SortedSet;

    #[test]
    fn snapshot_round_trips_values_expiry_and_clock() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "set a 1");
        must_apply(&mut ks, 1000, "set b 2 px 5000");
        must_apply(&mut ks, 1500, "set c 3");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.clock_ms(), 1500);
        assert_eq!(back.total_keys(), 3);
        let b = back
            .db(0)
            .and_then(|d| d.get(&Bytes::from("b"), 1500))
            .cloned();
        assert_eq!(b.and_then(|e| e.expires_at()), Some(6000));
        assert_eq!(back.db(0).map(|d| d.volatile_len()), Some(1));
    }

    #[test]
    fn snapshot_keeps_every_type_and_the_watch_state() {
        let mut ks = Keyspace::new();
        let mut list = imbl::Vector::new();
        list.push_back(Bytes::from("a"));
        let mut hash = crate::keyspace::HashFields::new();
        hash.insert(b"f", b"v");
        let set: imbl::OrdSet<CompactBytes> = [CompactBytes::from("m")].into_iter().collect();
        let mut zset = SortedSet::new();
        zset.insert(CompactBytes::from("z"), 1.5);
        let values = [
            Value::List(Box::new(list)),
            Value::Hash(Box::new(hash)),
            Value::Set(Box::new(set)),
            Value::ZSet(Box::new(zset)),
        ];
        for (i, value) in values.iter().enumerate() {
            ks.dbs[0].insert(
                CompactBytes::copy(format!("k{i}").as_bytes()),
                Entry::new(value.clone(), None, 0, 5),
            );
        }
        must_apply(&mut ks, 1, "set gone 1");
        must_apply(&mut ks, 1, "del gone");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        for (i, value) in values.iter().enumerate() {
            let got = back
                .db(0)
                .and_then(|d| d.get(format!("k{i}").as_bytes(), 0));
            assert_eq!(got.map(|e| (&e.value, e.version)), Some((value, 5)));
        }
        // The deletion above is still seen by a watch taken before it.
        assert!(back
            .db(0)
            .is_some_and(|d| d.changed_since(b"gone", 0, 0, 0)));
    }

    #[test]
    fn snapshot_keeps_the_acl_users_and_reads_the_format_before_them() {
        let mut ks = Keyspace::new();
        let rules: Vec<Bytes> = "on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~celery* +@all -@dangerous"
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let reply = ks.apply(
            1,
            &crate::keyspace::Request {
                time_ms: 1,
                op: crate::keyspace::Op::Acl(crate::keyspace::AclOp::SetUser {
                    name: "celery".into(),
                    rules,
                }),
            },
        );
        assert_eq!(reply, crate::resp::Frame::ok());
        must_apply(&mut ks, 1, "set a 1");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.acl(), ks.acl());
        let celery = back.acl().get("celery").expect("celery survives");
        assert!(celery.authenticates(b"password"));
        // A CELLKV06 snapshot is this one without the ACL section at its end.
        let mut old = Keyspace::new();
        must_apply(&mut old, 1, "set a 1");
        let mut bytes = Vec::new();
        old.write_snapshot(&mut bytes).expect("write");
        let mut section = Vec::new();
        let acl_len = {
            // The last section is the ACL one: find its length by re-encoding it.
            let (loaded_digest, users) = old.acl.to_rules();
            write_section(
                &mut section,
                &mut Vec::new(),
                &AclState {
                    loaded_digest,
                    users,
                },
            )
            .expect("encode");
            section.len()
        };
        bytes.truncate(bytes.len() - acl_len);
        bytes[..8].copy_from_slice(MAGIC_BEFORE_ACL);
        let back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read a v06 snapshot");
        assert_eq!(back.total_keys(), 1);
        assert!(!back.acl().auth_required());
        assert_eq!(back.acl().iter().count(), 1);
    }

    #[test]
    fn truncated_snapshot_is_refused() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1, "set a 1");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        for cut in [4, 12, bytes.len() - 3] {
            assert!(
                Keyspace::read_snapshot(&mut &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        bytes[0] = b'X';
        assert!(matches!(
            Keyspace::read_snapshot(&mut bytes.as_slice()),
            Err(SnapshotError::Corrupt(_))
        ));
    }
}

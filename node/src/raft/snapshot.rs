//! Snapshot bytes and where they are kept: the file format, [`SnapshotStore`] (a directory in
//! production, memory in the simulation) and [`SnapshotStats`] for INFO.
//!
//! Format of one snapshot, the same on disk and on the wire:
//! `b"CKVSNAP1"`, a little-endian `u32` header length, the postcard-encoded header (last
//! applied log id and last membership, then the set of node ids that were ever members),
//! then the keyspace exactly as `Keyspace::write_snapshot` wrote it. The id set comes after
//! the fields openraft knows, inside the counted header, so a snapshot written before it
//! existed still reads (its set is then the snapshot's membership).
//!
//! On disk a snapshot is written to a temporary file, fsynced, renamed into place and the
//! directory fsynced, so a crash leaves either the old or the new snapshot, never half of one.
//! Only the newest snapshot is kept.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::raft::{LogId, NodeId, SnapshotMeta, StoredMembership};

const MAGIC: &[u8; 8] = b"CKVSNAP1";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const EMPTY_NAME: &str = "snapshot-empty.snap";

#[derive(Serialize, Deserialize)]
struct Header {
    last_log_id: Option<LogId>,
    last_membership: StoredMembership,
}

/// Encodes the magic and the header for a snapshot described by `meta`, with `ever_members`
/// (every node id that was ever a member); the keyspace bytes follow.
pub(crate) fn encode_header(
    meta: &SnapshotMeta,
    ever_members: &BTreeSet<NodeId>,
) -> io::Result<Vec<u8>> {
    let header = Header {
        last_log_id: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
    };
    let mut encoded = postcard::to_stdvec(&header).map_err(invalid)?;
    encoded.extend(postcard::to_stdvec(ever_members).map_err(invalid)?);
    let len = u32::try_from(encoded.len()).map_err(invalid)?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + encoded.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// Decodes the header of a snapshot; returns its metadata, the ids that were ever members
/// (at least those of its membership) and where the keyspace bytes start.
pub(crate) fn decode_header(bytes: &[u8]) -> io::Result<(SnapshotMeta, BTreeSet<NodeId>, usize)> {
    let corrupt =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"));
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a cellkv snapshot (bad magic)"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 4]);
    let start = MAGIC.len() + 4;
    let end = start
        .checked_add(u32::from_le_bytes(len) as usize)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| corrupt("header runs past the end"))?;
    let (header, rest): (Header, &[u8]) =
        postcard::take_from_bytes(&bytes[start..end]).map_err(invalid)?;
    let mut ever: BTreeSet<NodeId> = if rest.is_empty() {
        BTreeSet::new()
    } else {
        postcard::from_bytes(rest).map_err(invalid)?
    };
    ever.extend(
        header
            .last_membership
            .membership()
            .nodes()
            .map(|(id, _)| *id),
    );
    let meta = SnapshotMeta {
        last_log_id: header.last_log_id,
        last_membership: header.last_membership,
    };
    Ok((meta, ever, end))
}

fn invalid<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Counters about snapshots, read by INFO. Shared between the state machine and whoever
/// holds the [`crate::raft::RaftHandle`].
#[derive(Debug, Default)]
pub struct SnapshotStats {
    built: AtomicU64,
    installed: AtomicU64,
    /// Last log index covered by the current snapshot, plus one; 0 = no snapshot.
    next_index: AtomicU64,
    size: AtomicU64,
}

impl SnapshotStats {
    /// Snapshots this node built since it started.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Snapshots this node received from a leader and installed since it started.
    pub fn installed(&self) -> u64 {
        self.installed.load(Ordering::Relaxed)
    }

    /// Last log index the current snapshot covers, if there is one.
    pub fn last_index(&self) -> Option<u64> {
        self.next_index.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Size in bytes of the current snapshot.
    pub fn last_size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub(crate) fn record_current(&self, last_log_id: Option<LogId>, size: usize) {
        let next = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        self.next_index.store(next, Ordering::Relaxed);
        self.size.store(size as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_built(&self) {
        self.built.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_installed(&self) {
        self.installed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the current snapshot is kept. Clones share it, so the simulation can keep a clone of a
/// memory store as the node's disk across a restart.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Mutex<Backing>>,
}

#[derive(Debug)]
enum Backing {
    Dir {
        path: PathBuf,
        /// Last log index of the snapshot file in place (`Some(None)` = an empty snapshot).
        current: Option<Option<u64>>,
    },
    Memory {
        current: Option<(Option<u64>, Vec<u8>)>,
    },
}

impl SnapshotStore {
    /// Snapshots as files in directory `path` (created if missing). Leftovers of an interrupted
    /// write and snapshots older than the newest are removed.
    pub fn dir(path: impl Into<PathBuf>) -> io::Result<SnapshotStore> {
        let path = path.into();
        fs::create_dir_all(&path)?;
        let mut newest: Option<Option<u64>> = None;
        let mut found = Vec::new();
        for dirent in fs::read_dir(&path)? {
            let dirent = dirent?;
            let name = dirent.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                fs::remove_file(dirent.path())?;
                continue;
            }
            if let Some(index) = parse_name(name) {
                found.push((index, dirent.path()));
                if newest.is_none_or(|n| index > n) {
                    newest = Some(index);
                }
            }
        }
        for (index, file) in found {
            if Some(index) != newest {
                fs::remove_file(file)?;
            }
        }
        Ok(SnapshotStore {
            inner: Arc::new(Mutex::new(Backing::Dir {
                path,
                current: newest,
            })),
        })
    }

    /// Snapshots in memory: for tests and the simulation.
    pub fn memory() -> SnapshotStore {
        SnapshotStore {
            inner: Arc::new(Mutex::new(Backing::Memory { current: None })),
        }
    }

    /// The bytes of the current snapshot, if any. Blocking file I/O.
    pub(crate) fn load(&self) -> io::Result<Option<Vec<u8>>> {
        let backing = self.inner.lock();
        match &*backing {
            Backing::Dir { path, current } => match current {
                None => Ok(None),
                Some(index) => fs::read(path.join(file_name(*index))).map(Some),
            },
            Backing::Memory { current } => Ok(current.as_ref().map(|(_, bytes)| bytes.clone())),
        }
    }

    /// Makes `bytes`, a snapshot up to `last_log_id`, the current one, unless a newer snapshot
    /// is already in place (a slow build racing an install). Blocking file I/O.
    pub(crate) fn save(&self, last_log_id: Option<LogId>, bytes: &[u8]) -> io::Result<bool> {
        let index = last_log_id.map(|id| id.index);
        let mut backing = self.inner.lock();
        match &mut *backing {
            Backing::Dir { path, current } => {
                if current.is_some_and(|c| c > index) {
                    return Ok(false);
                }
                let name = file_name(index);
                let tmp = path.join(format!(".{name}.tmp"));
                let mut file = fs::File::create(&tmp)?;
                file.write_all(bytes)?;
                file.sync_all()?;
                drop(file);
                fs::rename(&tmp, path.join(&name))?;
                sync_dir(path)?;
                if let Some(old) = current.filter(|&old| old != index) {
                    fs::remove_file(path.join(file_name(old)))?;
                }
                *current = Some(index);
                Ok(true)
            }
            Backing::Memory { current } => {
                if current.as_ref().is_some_and(|(c, _)| *c > index) {
                    return Ok(false);
                }
                *current = Some((index, bytes.to_vec()));
                Ok(true)
            }
        }
    }
}

fn file_name(index: Option<u64>) -> String {
    match index {
        None => EMPTY_NAME.to_string(),
        Some(index) => format!("{PREFIX}{index:020}{SUFFIX}"),
    }
}

fn parse_name(name: &str) -> Option<Option<u64>> {
    if name == EMPTY_NAME {
        return Some(None);
    }
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Some)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&file_name(None)), Some(None));
        assert_eq!(parse_name(&file_name(Some(42))), Some(Some(42)));
        assert_eq!(parse_name(&file_name(Some(u64::MAX))), Some(Some(u64::MAX)));
        assert_eq!(parse_name("snapshot-12.snap"), None);
        assert_eq!(parse_name("other"), None);
    }

    #[test]
    fn header_round_trip_and_corruption() {
        let meta = SnapshotMeta::default();
        let ever = BTreeSet::from([1, 2, 7]);
        let mut bytes = encode_header(&meta, &ever).expect("encode");
        let header_len = bytes.len();
        bytes.extend_from_slice(b"body");
        let (decoded, decoded_ever, at) = decode_header(&bytes).expect("decode");
        assert_eq!(decoded, meta);
        assert_eq!(decoded_ever, ever);
        assert_eq!(at, header_len);
        assert!(decode_header(b"garbage!").is_err());
        assert!(decode_header(&bytes[..header_len - 1]).is_err());
    }

    /// A header written before the id set existed reads, with the membership's ids as the set.
    #[test]
    fn header_without_the_id_set_reads() {
        let leader = openraft::vote::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        };
        let membership = openraft::Membership::new_with_defaults(
            vec![BTreeSet::from([1, 3])],
            [] as [NodeId; 0],
        );
        let header = Header {
            last_log_id: Some(LogId::new(leader, 4)),
            last_membership: StoredMembership::new(Some(LogId::new(leader, 2)), membership),
        };
        let encoded = postcard::to_stdvec(&header).expect("encode");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::try_from(encoded.len()).expect("len").to_le_bytes());
        bytes.extend_from_slice(&encoded);
        bytes.extend_from_slice(b"body");
        let (meta, ever, at) = decode_header(&bytes).expect("decode");
        assert_eq!(meta.last_log_id, header.last_log_id);
        assert_eq!(ever, BTreeSet::from([1, 3]));
        assert_eq!(&bytes[at..], b"body");
    }

    #[test]
    fn dir_store_keeps_only_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::dir(dir.path()).expect("open");
        assert!(store.load().expect("load").is_none());
        let leader = openraft::vote::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        };
        let id = |index| LogId::new(leader, index);
        assert!(store.save(Some(id(5)), b"five").expect("save"));
        assert!(store.save(Some(id(9)), b"nine").expect("save"));
        assert!(!store.save(Some(id(7)), b"seven").expect("save older"));
        assert_eq!(store.load().expect("load").as_deref(), Some(&b"nine"[..]));
        fs::write(dir.path().join(".junk.tmp"), b"x").expect("write junk");

        let reopened = SnapshotStore::dir(dir.path()).expect("reopen");
        assert_eq!(
            reopened.load().expect("load").as_deref(),
            Some(&b"nine"[..])
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|d| d.expect("dirent").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(file_name(Some(9)))]);
    }
}

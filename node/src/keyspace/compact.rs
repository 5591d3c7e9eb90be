//! The byte strings the keyspace stores for keys and string values ([`CompactBytes`]).
//!
//! Most keys and many values are a few bytes long; a `Bytes` handle (32 bytes) plus its own
//! heap allocation would cost more than the text itself. A `CompactBytes` is 24 bytes and
//! holds up to [`INLINE`] bytes in place; a longer string lives in one owned `Bytes` behind a
//! box, so replies can still share it without copying. Its one spare tag byte lets
//! `Value` stay 24 bytes as well.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The longest string held in place, without a heap allocation.
pub const INLINE: usize = 22;

/// An immutable byte string, stored in place when short (see the module doc).
#[derive(Clone)]
pub struct CompactBytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    // Boxed rather than held directly: a bare `Bytes` would make every handle 32 bytes.
    Heap(Box<Bytes>),
}

impl CompactBytes {
    /// An owned copy of `bytes`: never a view into a caller's (connection's) buffer.
    pub fn copy(bytes: &[u8]) -> CompactBytes {
        match Self::inline(bytes) {
            Some(short) => short,
            None => CompactBytes(Repr::Heap(Box::new(Bytes::copy_from_slice(bytes)))),
        }
    }

    /// Takes `bytes` the caller built for storing (not a slice of a request): short ones
    /// are copied in place, long ones kept as they are.
    pub fn from_owned(bytes: Bytes) -> CompactBytes {
        match Self::inline(&bytes) {
            Some(short) => short,
            None => CompactBytes(Repr::Heap(Box::new(bytes))),
        }
    }

    fn inline(bytes: &[u8]) -> Option<CompactBytes> {
        let len = bytes.len();
        if len > INLINE {
            return None;
        }
        let mut data = [0u8; INLINE];
        data[..len].copy_from_slice(bytes);
        Some(CompactBytes(Repr::Inline {
            len: len as u8,
            data,
        }))
    }

    /// The empty string.
    pub fn new() -> CompactBytes {
        CompactBytes(Repr::Inline {
            len: 0,
            data: [0; INLINE],
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            // `len` is at most INLINE by construction; `get` keeps a bad one from panicking.
            Repr::Inline { len, data } => data.get(..*len as usize).unwrap_or(data),
            Repr::Heap(bytes) => bytes,
        }
    }

    /// The bytes as a `Bytes` for a reply: shared when on the heap, copied when short.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Heap(bytes) => Bytes::clone(bytes),
        }
    }

    /// Gives the bytes up, leaving the empty string (for changes in place: a long string
    /// comes out without a copy, so it can be made mutable if nothing else shares it).
    pub fn take_bytes(&mut self) -> Bytes {
        let taken = std::mem::take(self);
        match taken.0 {
            Repr::Inline { len, data } => {
                Bytes::copy_from_slice(data.get(..len as usize).unwrap_or(&data))
            }
            Repr::Heap(bytes) => *bytes,
        }
    }

    /// Whether the string is held in place (no heap allocation of its own).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for CompactBytes {
    fn default() -> Self {
        CompactBytes::new()
    }
}

impl std::ops::Deref for CompactBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

// Lookups in a collection of `CompactBytes` by a request's `&[u8]`: `Ord` above compares
// the same bytes, as `Borrow` requires.
impl std::borrow::Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl PartialOrd for CompactBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CompactBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}

impl From<&str> for CompactBytes {
    fn from(text: &str) -> Self {
        CompactBytes::copy(text.as_bytes())
    }
}

// Serialized exactly as `Bytes` is (a byte string), so snapshots keep their format.
impl Serialize for CompactBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for CompactBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Bytes::deserialize(deserializer).map(CompactBytes::from_owned)
    }
}

#[cfg(test)]
mod tests {
    use imbl::OrdSet;

    use super::*;

    /// A collection of `CompactBytes` is searched by a request's `&[u8]` (`Borrow`): that is
    /// only sound if the order of `CompactBytes` is the order of their bytes, whether held
    /// in place or on the heap.
    #[test]
    fn ordered_and_found_by_their_bytes_in_place_or_on_the_heap() {
        let texts: Vec<Vec<u8>> = ["", "a", "ab", "b", "element:42", "element:420"]
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .chain([vec![b'a'; INLINE], vec![b'a'; INLINE + 1], vec![b'b'; 100]])
            .collect();
        let set: OrdSet<CompactBytes> = texts.iter().map(|t| CompactBytes::copy(t)).collect();
        assert!(set.iter().any(|m| m.is_inline()) && set.iter().any(|m| !m.is_inline()));
        let mut sorted = texts.clone();
        sorted.sort();
        let in_set: Vec<&[u8]> = set.iter().map(|m| m.as_slice()).collect();
        let expected: Vec<&[u8]> = sorted.iter().map(|t| t.as_slice()).collect();
        assert_eq!(in_set, expected);
        for text in &texts {
            assert!(set.contains(text.as_slice()), "{text:?} not found");
        }
        assert!(!set.contains(&b"element:4"[..]));
        assert!(!set.contains(&[b'a'; INLINE + 2][..]));
    }

    /// Sets were `OrdSet<Bytes>` in snapshots written before their members were
    /// `CompactBytes`: both encode alike, so old snapshots load.
    #[test]
    fn a_set_encodes_as_it_did_with_bytes_members() {
        let texts = ["a", "element:42", "a member longer than twenty-two bytes"];
        let old: OrdSet<Bytes> = texts.iter().map(|t| Bytes::from(*t)).collect();
        let new: OrdSet<CompactBytes> = texts.iter().map(|t| CompactBytes::from(*t)).collect();
        let encoded = postcard::to_allocvec(&old).expect("encode");
        assert_eq!(postcard::to_allocvec(&new).expect("encode"), encoded);
        let decoded: OrdSet<CompactBytes> = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(decoded, new);
    }
}

//! Hash commands (HSET, HGET, HINCRBY, HSCAN, HRANDFIELD...), and the helpers that hashes
//! and sets share: random picks of distinct or repeated elements, and the `*SCAN` cursor
//! over a collection kept in byte order.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{glob, Entry, HashFields as Fields, ReadCtx, Rng, Value, WriteCtx};
use crate::command::errors as err;
use crate::command::{parse_f64, parse_i64};
use crate::resp::Frame;

macro_rules! try_frame {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(frame) => return frame,
        }
    };
}

/// The hash in `entry`, if any; `Err` carries WRONGTYPE for other types.
fn hash_of(entry: Option<&Entry>) -> Result<Option<&Fields>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// The hash under `key` for a read.
fn read_hash<'a>(ctx: &'a ReadCtx<'_>, key: &Bytes) -> Result<Option<&'a Fields>, Frame> {
    hash_of(ctx.get(key))
}

/// The hash under `key` to change in place, created empty when missing. The caller must
/// leave it non-empty (or call `remove_if_empty`). Check the type first: this marks the
/// key changed for WATCH.
fn hash_mut<'a>(ctx: &'a mut WriteCtx<'_>, key: &Bytes) -> Option<&'a mut Fields> {
    if ctx.get(key).is_none() {
        ctx.set(key, Value::Hash(Box::default()), None);
    }
    match ctx.get_mut(key).map(|e| &mut e.value) {
        Some(Value::Hash(h)) => Some(h),
        _ => None,
    }
}

/// Type check for a write: `Ok(true)` when the hash exists, `Ok(false)` when missing.
fn check_hash(ctx: &mut WriteCtx<'_>, key: &Bytes) -> Result<bool, Frame> {
    hash_of(ctx.get(key)).map(|h| h.is_some())
}

/// Stores the field/value pairs in `pairs`; returns how many fields are new.
fn set_pairs(ctx: &mut WriteCtx<'_>, key: &Bytes, pairs: &[Bytes]) -> Result<i64, Frame> {
    check_hash(ctx, key)?;
    let Some(hash) = hash_mut(ctx, key) else {
        return Err(Frame::error(err::WRONGTYPE));
    };
    let mut created = 0;
    for pair in pairs.chunks_exact(2) {
        if hash.insert(&pair[0], &pair[1]) {
            created += 1;
        }
    }
    Ok(created)
}

/// HSET key field value [field value ...]
pub fn hset(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if !args.len().is_multiple_of(2) {
        return Frame::error(err::wrong_arity("hset"));
    }
    Frame::Integer(try_frame!(set_pairs(ctx, &args[1], &args[2..])))
}

/// HMSET key field value [field value ...]: HSET answering OK.
pub fn hmset(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if !args.len().is_multiple_of(2) {
        return Frame::error(err::wrong_arity("hmset"));
    }
    try_frame!(set_pairs(ctx, &args[1], &args[2..]));
    Frame::ok()
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let (key, field) = (&args[1], &args[2]);
    if try_frame!(hash_of(ctx.get(key))).is_some_and(|h| h.contains_key(field)) {
        return Frame::Integer(0);
    }
    if let Some(hash) = hash_mut(ctx, key) {
        hash.insert(field, &args[3]);
    }
    Frame::Integer(1)
}

/// HSETNX whose field is already set.
pub fn hsetnx_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let hash = read_hash(ctx, &args[1]).ok()??;
    hash.contains_key(&args[2]).then_some(Frame::Integer(0))
}

/// HGET key field
pub fn hget(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    try_frame!(read_hash(ctx, &args[1]))
        .and_then(|h| h.get(&args[2]))
        .map_or(Frame::Null, bulk)
}

/// HMGET key field [field ...]: unlike MGET, a key of another type is an error.
pub fn hmget(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Array(
        args[2..]
            .iter()
            .map(|f| hash.and_then(|h| h.get(f)).map_or(Frame::Null, bulk))
            .collect(),
    )
}

/// HDEL key field [field ...]
pub fn hdel(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let fields = &args[2..];
    // Only a delete that removes something counts as a change (for WATCH), as in Redis.
    let any =
        try_frame!(hash_of(ctx.get(key))).is_some_and(|h| fields.iter().any(|f| h.contains_key(f)));
    if !any {
        return Frame::Integer(0);
    }
    let mut deleted = 0;
    if let Some(hash) = hash_mut(ctx, key) {
        for field in fields {
            if hash.remove(field) {
                deleted += 1;
            }
        }
    }
    ctx.remove_if_empty(key);
    Frame::Integer(deleted)
}

/// HDEL that deletes nothing: no hash there, or none of the fields in it.
pub fn hdel_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let hash = read_hash(ctx, &args[1]).ok()?;
    let absent = hash.is_none_or(|h| !args[2..].iter().any(|f| h.contains_key(f)));
    absent.then_some(Frame::Integer(0))
}

/// HEXISTS key field
pub fn hexists(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Integer(hash.is_some_and(|h| h.contains_key(&args[2])) as i64)
}

/// HLEN key
pub fn hlen(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Integer(hash.map_or(0, |h| h.len() as i64))
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Integer(
        hash.and_then(|h| h.get(&args[2]))
            .map_or(0, |v| v.len() as i64),
    )
}

/// HKEYS key
pub fn hkeys(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Array(hash.into_iter().flat_map(|h| h.keys()).map(bulk).collect())
}

/// HVALS key
pub fn hvals(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Array(
        hash.into_iter()
            .flat_map(|h| h.values())
            .map(bulk)
            .collect(),
    )
}

/// HGETALL key: a map in RESP3, a flat field/value array in RESP2.
pub fn hgetall(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let hash = try_frame!(read_hash(ctx, &args[1]));
    Frame::Map(
        hash.into_iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| (bulk(k), bulk(v)))
            .collect(),
    )
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(delta) = parse_i64(&args[3]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let (key, field) = (&args[1], &args[2]);
    let current = match try_frame!(hash_of(ctx.get(key))).and_then(|h| h.get(field)) {
        None => 0,
        Some(raw) => match parse_i64(raw) {
            Some(n) => n,
            None => return Frame::error(err::HASH_NOT_INTEGER),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Frame::error(err::INCR_OVERFLOW);
    };
    let mut buf = itoa::Buffer::new();
    let text = buf.format(next);
    if let Some(hash) = hash_mut(ctx, key) {
        hash.insert(field, text.as_bytes());
    }
    Frame::Integer(next)
}

/// HINCRBYFLOAT key field increment
pub fn hincrbyfloat(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(delta) = parse_f64(&args[3]) else {
        return Frame::error(err::NOT_FLOAT);
    };
    if !delta.is_finite() {
        return Frame::error(err::NAN_OR_INFINITY);
    }
    let (key, field) = (&args[1], &args[2]);
    let current = match try_frame!(hash_of(ctx.get(key))).and_then(|h| h.get(field)) {
        None => 0.0,
        // A stored "inf" reads as a float, as in Redis; the sum check below refuses it.
        Some(raw) => match parse_f64(raw) {
            Some(v) => v,
            None => return Frame::error(err::HASH_NOT_FLOAT),
        },
    };
    let next = current + delta;
    if !next.is_finite() {
        return Frame::error(err::INCR_NAN);
    }
    // The same text as INCRBYFLOAT: shortest round-trip digits, never an exponent (see
    // strings.rs and docs/compatibility.md on doubles versus Redis's long doubles).
    let text = Bytes::from(format!("{next}"));
    if let Some(hash) = hash_mut(ctx, key) {
        hash.insert(field, &text);
    }
    Frame::Bulk(text)
}

// ---------------------------------------------------------------------------------------
// Random picks, shared with sets.

/// Largest number of repeated picks a negative count may ask for. Redis streams such a
/// reply however large it is; here a reply is built in memory first, so
/// `SRANDMEMBER key -10000000000` must be refused rather than exhaust the node.
pub(super) const MAX_REPEATED_PICKS: u64 = 1_000_000;

/// The count argument of SRANDMEMBER / HRANDFIELD: any integer but `i64::MIN`, with
/// Redis's messages.
pub(super) fn parse_random_count(raw: &[u8]) -> Result<i64, Frame> {
    match parse_i64(raw) {
        None => Err(Frame::error(err::NOT_INTEGER)),
        Some(i64::MIN) => Err(Frame::error(err::out_of_range_between(-i64::MAX, i64::MAX))),
        Some(n) => Ok(n),
    }
}

/// `count` distinct positions in `0..len` (`count` <= `len`), ascending (Floyd's
/// sampling: exactly `count` draws whatever the ratio).
pub(super) fn distinct_positions(rng: &mut Rng, len: usize, count: usize) -> Vec<usize> {
    let mut chosen = BTreeSet::new();
    for j in len.saturating_sub(count)..len {
        let t = rng.below(j as u64 + 1) as usize;
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// The items of `iter` at the ascending `positions`, in one pass.
pub(super) fn items_at<T>(iter: impl Iterator<Item = T>, positions: &[usize]) -> Vec<T> {
    let mut wanted = positions.iter().peekable();
    let mut out = Vec::with_capacity(positions.len());
    for (i, item) in iter.enumerate() {
        let Some(&&next) = wanted.peek() else {
            break;
        };
        if i == next {
            out.push(item);
            wanted.next();
        }
    }
    out
}

/// `count` items of `iter` (of length `len` > 0) drawn with repeats, in draw order, in
/// one pass over the collection (which has no index to jump to a position).
pub(super) fn items_with_repeats<T: Clone>(
    rng: &mut Rng,
    iter: impl Iterator<Item = T>,
    len: usize,
    count: usize,
) -> Vec<T> {
    let draws: Vec<usize> = (0..count).map(|_| rng.below(len as u64) as usize).collect();
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_unstable_by_key(|&i| draws.get(i).copied().unwrap_or(0));
    let mut out: Vec<Option<T>> = vec![None; count];
    let mut next = order.iter().peekable();
    for (position, item) in iter.enumerate() {
        while let Some(&&slot) = next.peek() {
            if draws.get(slot) != Some(&position) {
                break;
            }
            if let Some(cell) = out.get_mut(slot) {
                *cell = Some(item.clone());
            }
            next.next();
        }
        if next.peek().is_none() {
            break;
        }
    }
    out.into_iter().flatten().collect()
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let mut rng = Rng::new(ctx.seed);
    if args.len() < 3 {
        let Some(hash) = try_frame!(read_hash(ctx, &args[1])) else {
            return Frame::Null;
        };
        let pick = rng.below(hash.len() as u64) as usize;
        return hash.keys().nth(pick).map_or(Frame::Null, bulk);
    }
    let count = try_frame!(parse_random_count(&args[2]));
    let with_values = match args.get(3) {
        None => false,
        Some(word) if args.len() == 4 && word.eq_ignore_ascii_case(b"withvalues") => true,
        Some(_) => return Frame::error(err::SYNTAX),
    };
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Frame::error(err::OUT_OF_RANGE);
    }
    let Some(hash) = try_frame!(read_hash(ctx, &args[1])) else {
        return Frame::Array(Vec::new());
    };
    let len = hash.len();
    let picks: Vec<(&[u8], &[u8])> = if count < 0 {
        let wanted = count.unsigned_abs();
        if wanted > MAX_REPEATED_PICKS {
            return Frame::error(err::OUT_OF_RANGE);
        }
        items_with_repeats(&mut rng, hash.iter(), len, wanted as usize)
    } else if count as u64 >= len as u64 {
        hash.iter().collect()
    } else {
        let positions = distinct_positions(&mut rng, len, count as usize);
        items_at(hash.iter(), &positions)
    };
    if with_values {
        pairs(picks.into_iter().map(|(k, v)| (bulk(k), bulk(v))).collect())
    } else {
        Frame::Array(picks.into_iter().map(|(k, _)| bulk(k)).collect())
    }
}

/// A reply copy of a stored element: packed hash fields have no `Bytes` of their own.
fn bulk(element: &[u8]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(element))
}

/// Field/value pairs: flat in RESP2, `[field, value]` arrays in RESP3 (HRANDFIELD
/// WITHVALUES), as Redis 7.2 sends them.
fn pairs(items: Vec<(Frame, Frame)>) -> Frame {
    Frame::Pairs(items)
}

// ---------------------------------------------------------------------------------------
// *SCAN over a collection, shared with sets.

/// Collections this small answer a whole `*SCAN` in one reply with cursor 0, as Redis does
/// for its compact encodings (128 is Redis's `hash-max-listpack-entries` and
/// `set-max-listpack-entries` default).
const SCAN_IN_ONE_REPLY: usize = 128;

/// Options of HSCAN / SSCAN.
pub(super) struct ScanOptions<'a> {
    pattern: Option<&'a Bytes>,
    count: usize,
}

/// Parses a `*SCAN` cursor as Redis does (an unsigned 64-bit decimal).
pub(super) fn parse_cursor(raw: &[u8]) -> Result<u64, Frame> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Frame::error(err::INVALID_CURSOR))
}

/// Parses `[MATCH pattern] [COUNT count]` (TYPE belongs to SCAN alone).
pub(super) fn parse_scan_options(args: &[Bytes]) -> Result<ScanOptions<'_>, Frame> {
    let mut opts = ScanOptions {
        pattern: None,
        count: 10,
    };
    let mut i = 0;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(Frame::error(err::SYNTAX));
        };
        if args[i].eq_ignore_ascii_case(b"count") {
            match parse_i64(value) {
                None => return Err(Frame::error(err::NOT_INTEGER)),
                Some(n) if n < 1 => return Err(Frame::error(err::SYNTAX)),
                Some(n) => opts.count = n as usize,
            }
        } else if args[i].eq_ignore_ascii_case(b"match") {
            // `*` matches everything: skip the per-element match, as Redis does.
            opts.pattern = (value.as_ref() != b"*").then_some(value);
        } else {
            return Err(Frame::error(err::SYNTAX));
        }
        i += 2;
    }
    Ok(opts)
}

/// The cursor of an element: the first 8 bytes of its name, zero-padded, big-endian.
///
/// Why this scheme: a cursor must be a number, must stay valid while the collection
/// changes between calls, and must let every element present for the whole iteration be
/// returned. Element order is byte order, and this prefix never decreases along it, so
/// "resume at the first element whose prefix is >= cursor" is a position in the element
/// space, not an index: inserts and deletes elsewhere cannot shift it. A call only stops
/// between two elements with different prefixes, so nothing before the cursor is left
/// unreturned and nothing after it was returned already (no repeats unless a client
/// reuses a cursor). Elements sharing one 8-byte prefix are never split, so `COUNT` is a
/// hint that can be exceeded, as Redis's is.
fn cursor_of(element: &[u8]) -> u64 {
    let mut prefix = [0u8; 8];
    let n = element.len().min(8);
    prefix[..n].copy_from_slice(&element[..n]);
    u64::from_be_bytes(prefix)
}

/// The smallest byte string whose prefix is `cursor`: its bytes without trailing zeros.
/// Every element at or after it in byte order has a prefix >= `cursor`, and every element
/// before it a smaller one.
fn cursor_start(cursor: u64) -> Vec<u8> {
    let bytes = cursor.to_be_bytes();
    let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..len].to_vec()
}

/// One `*SCAN` step over `len` elements; `from(start)` iterates the elements at or after
/// `start` in byte order as (element, optional value). Returns the reply.
pub(super) fn scan_step<'a, I>(
    len: usize,
    cursor: u64,
    opts: &ScanOptions<'_>,
    from: impl FnOnce(&[u8]) -> I,
) -> Frame
where
    I: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    let (start, budget) = if len <= SCAN_IN_ONE_REPLY {
        (Vec::new(), usize::MAX)
    } else {
        (cursor_start(cursor), opts.count)
    };
    let mut found = Vec::new();
    let mut next_cursor = 0;
    let mut last_prefix = None;
    for (visited, (element, value)) in from(&start).enumerate() {
        let prefix = cursor_of(element);
        if visited >= budget && last_prefix != Some(prefix) {
            next_cursor = prefix;
            break;
        }
        last_prefix = Some(prefix);
        if opts
            .pattern
            .is_some_and(|p| !glob::matches(p, element, false))
        {
            continue;
        }
        found.push(bulk(element));
        if let Some(value) = value {
            found.push(bulk(value));
        }
    }
    Frame::Array(vec![
        Frame::bulk(next_cursor.to_string()),
        Frame::Array(found),
    ])
}

/// The reply of a `*SCAN` on a missing key.
pub(super) fn empty_scan() -> Frame {
    Frame::Array(vec![Frame::bulk("0"), Frame::Array(Vec::new())])
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: a flat field/value array in both
/// protocols, as Redis 7.2 replies.
pub fn hscan(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let cursor = try_frame!(parse_cursor(&args[2]));
    let Some(hash) = try_frame!(read_hash(ctx, &args[1])) else {
        return empty_scan();
    };
    let opts = try_frame!(parse_scan_options(&args[3..]));
    scan_step(hash.len(), cursor, &opts, |start| {
        hash.range_from(start).map(|(k, v)| (k, Some(v)))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use crate::keyspace::tests::check_transcript;

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\n";

    /// HSET counts new fields (a field named twice counts once, the last value wins),
    /// HMSET answers OK, HSETNX only creates; odd argument counts are arity errors.
    #[test]
    fn hset_hmset_hsetnx() {
        check_transcript(&[
            ("hset h a 1 b 2", ":2\n", ""),
            ("hset h a 10 c 3", ":1\n", ""),
            ("hset h d 1 d 2", ":1\n", ""),
            ("hget h d", "$1\n2\n", ""),
            ("hget h a", "$2\n10\n", ""),
            (
                "hset h a",
                "-ERR wrong number of arguments for 'hset' command\n",
                "",
            ),
            (
                "hset h a 1 b",
                "-ERR wrong number of arguments for 'hset' command\n",
                "",
            ),
            ("hmset h a 1 e 5", "+OK\n", ""),
            (
                "hmset h a 1 e",
                "-ERR wrong number of arguments for 'hmset' command\n",
                "",
            ),
            ("hlen h", ":5\n", ""),
            ("hsetnx h a 99", ":0\n", ""),
            ("hsetnx h z 26", ":1\n", ""),
            ("hsetnx new f v", ":1\n", ""),
            ("hget new f", "$1\nv\n", ""),
            ("hget h z", "$2\n26\n", ""),
            ("hset h \"\" empty", ":1\n", ""),
            ("hget h \"\"", "$5\nempty\n", ""),
            ("set s x", "+OK\n", ""),
            ("hset s a 1", WRONGTYPE, ""),
            ("hmset s a 1", WRONGTYPE, ""),
            ("hsetnx s a 1", WRONGTYPE, ""),
            ("type h", "+hash\n", ""),
        ]);
    }

    /// HGET, HMGET, HEXISTS, HLEN, HSTRLEN on present, missing and wrong-type keys.
    #[test]
    fn hash_reads() {
        check_transcript(&[
            ("hset h f hello n 12", ":2\n", ""),
            ("hget h f", "$5\nhello\n", ""),
            ("hget h nofield", "$-1\n", "_\n"),
            ("hget nokey f", "$-1\n", "_\n"),
            (
                "hmget h f nofield n",
                "*3\n$5\nhello\n$-1\n$2\n12\n",
                "*3\n$5\nhello\n_\n$2\n12\n",
            ),
            ("hmget nokey a b", "*2\n$-1\n$-1\n", "*2\n_\n_\n"),
            ("hexists h f", ":1\n", ""),
            ("hexists h nofield", ":0\n", ""),
            ("hexists nokey f", ":0\n", ""),
            ("hlen h", ":2\n", ""),
            ("hlen nokey", ":0\n", ""),
            ("hstrlen h f", ":5\n", ""),
            ("hstrlen h nofield", ":0\n", ""),
            ("hstrlen nokey f", ":0\n", ""),
            ("set s x", "+OK\n", ""),
            ("hget s f", WRONGTYPE, ""),
            ("hmget s f", WRONGTYPE, ""),
            ("hexists s f", WRONGTYPE, ""),
            ("hlen s", WRONGTYPE, ""),
            ("hstrlen s f", WRONGTYPE, ""),
        ]);
    }

    /// HKEYS and HVALS are arrays, HGETALL a map in RESP3 and a flat array in RESP2, all in
    /// field order; a missing key is empty in each shape.
    #[test]
    fn hkeys_hvals_hgetall() {
        check_transcript(&[
            ("hset h b 2 a 1 c 3", ":3\n", ""),
            ("hkeys h", "*3\n$1\na\n$1\nb\n$1\nc\n", ""),
            ("hvals h", "*3\n$1\n1\n$1\n2\n$1\n3\n", ""),
            (
                "hgetall h",
                "*6\n$1\na\n$1\n1\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n",
                "%3\n$1\na\n$1\n1\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n",
            ),
            ("hkeys nokey", "*0\n", ""),
            ("hvals nokey", "*0\n", ""),
            ("hgetall nokey", "*0\n", "%0\n"),
            ("set s x", "+OK\n", ""),
            ("hkeys s", WRONGTYPE, ""),
            ("hvals s", WRONGTYPE, ""),
            ("hgetall s", WRONGTYPE, ""),
        ]);
    }

    /// HDEL counts removed fields (a field named twice counts once) and deletes the key
    /// with its last field.
    #[test]
    fn hdel_removes_the_key_with_its_last_field() {
        check_transcript(&[
            ("hset h a 1 b 2 c 3", ":3\n", ""),
            ("hdel h a a nofield", ":1\n", ""),
            ("hdel h nofield", ":0\n", ""),
            ("hdel nokey a", ":0\n", ""),
            ("hdel h b c", ":2\n", ""),
            ("exists h", ":0\n", ""),
            ("type h", "+none\n", ""),
            ("set s x", "+OK\n", ""),
            ("hdel s a", WRONGTYPE, ""),
        ]);
    }

    /// HINCRBY with Redis's errors: a bad increment, a field that is not an integer,
    /// overflow both ways; the key and field are created at 0.
    #[test]
    fn hincrby() {
        check_transcript(&[
            ("hincrby h n 5", ":5\n", ""),
            ("hincrby h n -7", ":-2\n", ""),
            ("hget h n", "$2\n-2\n", ""),
            (
                "hincrby h n x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            (
                "hincrby h n 1.5",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("hset h s abc f 1.5 sp \" 1\"", ":3\n", ""),
            ("hincrby h s 1", "-ERR hash value is not an integer\n", ""),
            ("hincrby h f 1", "-ERR hash value is not an integer\n", ""),
            ("hincrby h sp 1", "-ERR hash value is not an integer\n", ""),
            ("hset h big 9223372036854775806", ":1\n", ""),
            ("hincrby h big 1", ":9223372036854775807\n", ""),
            (
                "hincrby h big 1",
                "-ERR increment or decrement would overflow\n",
                "",
            ),
            ("hset h small -9223372036854775807", ":1\n", ""),
            ("hincrby h small -1", ":-9223372036854775808\n", ""),
            (
                "hincrby h small -1",
                "-ERR increment or decrement would overflow\n",
                "",
            ),
            ("hget h small", "$20\n-9223372036854775808\n", ""),
            ("set s x", "+OK\n", ""),
            ("hincrby s n 1", WRONGTYPE, ""),
            // The increment is parsed before the key's type is looked at, as in Redis.
            (
                "hincrby s n x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
        ]);
    }

    /// HINCRBYFLOAT formats as INCRBYFLOAT does and answers Redis's four errors.
    #[test]
    fn hincrbyfloat() {
        check_transcript(&[
            ("hincrbyfloat h f 10.5", "$4\n10.5\n", ""),
            ("hincrbyfloat h f 0.1", "$4\n10.6\n", ""),
            ("hincrbyfloat h f -5.6", "$1\n5\n", ""),
            ("hincrbyfloat h f 5.0e3", "$4\n5005\n", ""),
            ("hget h f", "$4\n5005\n", ""),
            ("hset h i 3", ":1\n", ""),
            ("hincrbyfloat h i 1.25", "$4\n4.25\n", ""),
            (
                "hincrbyfloat h f abc",
                "-ERR value is not a valid float\n",
                "",
            ),
            (
                "hincrbyfloat h f nan",
                "-ERR value is not a valid float\n",
                "",
            ),
            (
                "hincrbyfloat h f inf",
                "-ERR value is NaN or Infinity\n",
                "",
            ),
            (
                "hincrbyfloat h f -inf",
                "-ERR value is NaN or Infinity\n",
                "",
            ),
            ("hset h s abc", ":1\n", ""),
            ("hincrbyfloat h s 1", "-ERR hash value is not a float\n", ""),
            ("hset h big 1e308", ":1\n", ""),
            (
                "hincrbyfloat h big 1e308",
                "-ERR increment would produce NaN or Infinity\n",
                "",
            ),
            ("hset h infv inf", ":1\n", ""),
            (
                "hincrbyfloat h infv 1",
                "-ERR increment would produce NaN or Infinity\n",
                "",
            ),
            ("set s x", "+OK\n", ""),
            ("hincrbyfloat s f 1", WRONGTYPE, ""),
        ]);
    }

    /// HRANDFIELD: one field or nil; counts in both directions, WITHVALUES, and Redis's
    /// count errors. Picks come from the read seed, so the transcript is fixed.
    #[test]
    fn hrandfield() {
        check_transcript(&[
            ("hrandfield nokey", "$-1\n", "_\n"),
            ("hrandfield nokey 3", "*0\n", ""),
            ("hrandfield nokey -3 withvalues", "*0\n", ""),
            ("hset h a 1 b 2 c 3", ":3\n", ""),
            ("hrandfield h 0", "*0\n", ""),
            ("hrandfield h 0 withvalues", "*0\n", ""),
            // A count at least the size answers the whole hash.
            ("hrandfield h 3", "*3\n$1\na\n$1\nb\n$1\nc\n", ""),
            ("hrandfield h 10 withvalues", "*6\n$1\na\n$1\n1\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n", "*3\n*2\n$1\na\n$1\n1\n*2\n$1\nb\n$1\n2\n*2\n$1\nc\n$1\n3\n"),
            // Random picks (read seed 42): distinct below the size, repeats when negative.
            ("hrandfield h", "$1\na\n", ""),
            ("hrandfield h 2", "*2\n$1\na\n$1\nc\n", ""),
            ("hrandfield h 2 withvalues", "*4\n$1\na\n$1\n1\n$1\nc\n$1\n3\n", "*2\n*2\n$1\na\n$1\n1\n*2\n$1\nc\n$1\n3\n"),
            ("hrandfield h -5", "*5\n$1\na\n$1\na\n$1\nb\n$1\na\n$1\nc\n", ""),
            ("hrandfield h -2 withvalues", "*4\n$1\na\n$1\n1\n$1\na\n$1\n1\n", "*2\n*2\n$1\na\n$1\n1\n*2\n$1\na\n$1\n1\n"),
            ("hrandfield h x", "-ERR value is not an integer or out of range\n", ""),
            (
                "hrandfield h -9223372036854775808",
                "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\n",
                "",
            ),
            ("hrandfield h -9223372036854775807 withvalues", "-ERR value is out of range\n", ""),
            ("hrandfield h 4611686018427387904 withvalues", "-ERR value is out of range\n", ""),
            ("hrandfield h -1000001", "-ERR value is out of range\n", ""),
            ("hrandfield h 1 values", "-ERR syntax error\n", ""),
            ("hrandfield h 1 withvalues x", "-ERR syntax error\n", ""),
            ("set s x", "+OK\n", ""),
            ("hrandfield s", WRONGTYPE, ""),
            ("hrandfield s 1", WRONGTYPE, ""),
        ]);
    }

    /// HSCAN on a small hash answers everything with cursor 0; MATCH filters; a missing
    /// key answers an empty scan before options are parsed, as in Redis.
    #[test]
    fn hscan_small() {
        check_transcript(&[
            ("hscan nokey 0", "*2\n$1\n0\n*0\n", ""),
            ("hscan nokey 0 bogus", "*2\n$1\n0\n*0\n", ""),
            ("hset h a 1 b 2 ab 3", ":3\n", ""),
            (
                "hscan h 0",
                "*2\n$1\n0\n*6\n$1\na\n$1\n1\n$2\nab\n$1\n3\n$1\nb\n$1\n2\n",
                "",
            ),
            (
                "hscan h 0 match a* count 1",
                "*2\n$1\n0\n*4\n$1\na\n$1\n1\n$2\nab\n$1\n3\n",
                "",
            ),
            ("hscan h 0 match zz", "*2\n$1\n0\n*0\n", ""),
            ("hscan h x", "-ERR invalid cursor\n", ""),
            ("hscan h -1", "-ERR invalid cursor\n", ""),
            ("hscan h 0 count 0", "-ERR syntax error\n", ""),
            (
                "hscan h 0 count x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("hscan h 0 type hash", "-ERR syntax error\n", ""),
            ("hscan h 0 match", "-ERR syntax error\n", ""),
            ("set s x", "+OK\n", ""),
            ("hscan s 0", WRONGTYPE, ""),
        ]);
    }

    use super::{cursor_of, cursor_start, distinct_positions, items_with_repeats};
    use crate::keyspace::tests::must_apply;
    use crate::keyspace::{Keyspace, Rng};
    use crate::resp::Frame;
    use bytes::Bytes;
    use std::collections::HashSet;

    /// Runs `hscan`/`sscan` lines until the cursor is 0; returns every element name seen
    /// (with values skipped for hashes) and the number of calls. `between` runs after each
    /// call, to change the collection mid-iteration.
    pub(crate) fn must_scan_all(
        ks: &mut Keyspace,
        command: &str,
        count: usize,
        with_values: bool,
        mut between: impl FnMut(&mut Keyspace, usize),
    ) -> (Vec<Bytes>, usize) {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let reply = must_apply(ks, 1000, &format!("{command} {cursor} count {count}"));
            let Frame::Array(parts) = reply else {
                panic!("scan reply {reply:?}")
            };
            let [Frame::Bulk(next), Frame::Array(items)] = parts.as_slice() else {
                panic!("scan parts {parts:?}")
            };
            let step = if with_values { 2 } else { 1 };
            for item in items.iter().step_by(step) {
                let Frame::Bulk(name) = item else {
                    panic!("item {item:?}")
                };
                seen.push(name.clone());
            }
            calls += 1;
            between(ks, calls);
            cursor = String::from_utf8(next.to_vec()).expect("utf8");
            if cursor == "0" {
                return (seen, calls);
            }
            assert!(calls < 100_000, "scan does not terminate");
        }
    }

    /// The cursor of an element never decreases along byte order, and the start of a
    /// cursor sorts at or before every element with that cursor.
    #[test]
    fn cursor_prefix_is_monotone_in_byte_order() {
        let mut names: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\0".to_vec(),
            b"\0\0\0\0\0\0\0\0\x01".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"ab".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\xff".to_vec(),
            b"abcdefgi".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        ];
        names.sort();
        for pair in names.windows(2) {
            assert!(cursor_of(&pair[0]) <= cursor_of(&pair[1]), "{pair:?}");
        }
        for name in &names {
            let start = cursor_start(cursor_of(name));
            assert!(start.as_slice() <= name.as_slice(), "{name:?}");
            assert_eq!(cursor_of(&start), cursor_of(name));
        }
    }

    /// A large hash is scanned in steps of about COUNT fields; fields sharing an 8-byte
    /// prefix stay in one step; every field comes back exactly once.
    #[test]
    fn hscan_large_hash_visits_every_field_once() {
        let mut ks = Keyspace::new();
        for chunk in (0..1000).collect::<Vec<_>>().chunks(100) {
            let pairs: Vec<String> = chunk.iter().map(|i| format!("f{i} v{i}")).collect();
            must_apply(&mut ks, 1000, &format!("hset h {}", pairs.join(" ")));
        }
        let (seen, calls) = must_scan_all(&mut ks, "hscan h", 20, true, |_, _| {});
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 1000);
        assert!(calls > 10, "only {calls} calls for 1000 fields at COUNT 20");
        // Shared prefixes: "field:0000".."field:0999" fall in ten 8-byte groups.
        for i in 0..1000 {
            must_apply(&mut ks, 1000, &format!("hset g field:{i:04} x"));
        }
        let (seen, calls) = must_scan_all(&mut ks, "hscan g", 5, true, |_, _| {});
        assert_eq!(seen.len(), 1000);
        assert_eq!(calls, 10);
    }

    /// Fields added and removed between calls never make the scan miss a field that was
    /// there throughout, nor return one twice.
    #[test]
    fn hscan_survives_changes_between_calls() {
        let mut ks = Keyspace::new();
        for i in 0..600 {
            must_apply(&mut ks, 1000, &format!("hset h stay:{i} v"));
            must_apply(&mut ks, 1000, &format!("hset h gone:{i} v"));
        }
        let (seen, _) = must_scan_all(&mut ks, "hscan h", 25, true, |ks, call| {
            for j in 0..20 {
                let n = call * 20 + j;
                must_apply(ks, 1000, &format!("hdel h gone:{n}"));
                must_apply(ks, 1000, &format!("hset h new:{n} v"));
            }
        });
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a field came back twice");
        for i in 0..600 {
            assert!(
                unique.contains(&Bytes::from(format!("stay:{i}"))),
                "stay:{i} missed"
            );
        }
    }

    /// Distinct picks are distinct, ascending and in range; repeated picks have the count
    /// asked for and cover the collection.
    #[test]
    fn random_positions() {
        let mut rng = Rng::new(7);
        for (len, count) in [(10, 0), (10, 1), (10, 9), (10, 10), (1000, 999), (1000, 3)] {
            let picks = distinct_positions(&mut rng, len, count);
            assert_eq!(picks.len(), count);
            assert!(picks.windows(2).all(|w| w[0] < w[1]));
            assert!(picks.iter().all(|&p| p < len));
        }
        let items = items_with_repeats(&mut rng, 0..5usize, 5, 1000);
        assert_eq!(items.len(), 1000);
        assert_eq!(items.iter().collect::<HashSet<_>>().len(), 5);
    }
}

//! Set commands: membership, random picks (SPOP deterministic inside apply), the algebra
//! (SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD) and SSCAN.

use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdSet;

use super::hashes::{
    distinct_positions, empty_scan, items_at, items_with_repeats, parse_cursor, parse_random_count,
    parse_scan_options, scan_step, MAX_REPEATED_PICKS,
};
use super::{seed_from_index, CompactBytes, Entry, ReadCtx, Rng, Value, WriteCtx};
use crate::command::errors as err;
use crate::command::parse_i64;
use crate::resp::Frame;

macro_rules! try_frame {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(frame) => return frame,
        }
    };
}

/// Members are copies of the request's bytes; one of up to 22 bytes sits inside the set's
/// tree node, so comparing it during a lookup reads no other memory.
type Members = OrdSet<CompactBytes>;

/// The set in `entry`, if any; `Err` carries WRONGTYPE for other types.
fn set_of(entry: Option<&Entry>) -> Result<Option<&Members>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// The set under `key` for a read.
fn read_set<'a>(ctx: &'a ReadCtx<'_>, key: &Bytes) -> Result<Option<&'a Members>, Frame> {
    set_of(ctx.get(key))
}

/// The existing set under `key`, to change in place (marks the key changed for WATCH).
fn set_mut<'a>(ctx: &'a mut WriteCtx<'_>, key: &Bytes) -> Option<&'a mut Members> {
    match ctx.get_mut(key).map(|e| &mut e.value) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

fn members_frame(members: impl IntoIterator<Item = CompactBytes>) -> Frame {
    Frame::Set(
        members
            .into_iter()
            .map(|mut m| Frame::Bulk(m.take_bytes()))
            .collect(),
    )
}

/// SADD key member [member ...]
pub fn sadd(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let members = &args[2..];
    // Adding only members already there changes nothing (and must not touch WATCH).
    let adds = match try_frame!(set_of(ctx.get(key))) {
        None => {
            let set: Members = members.iter().map(|m| CompactBytes::copy(m)).collect();
            let added = set.len() as i64;
            ctx.set(key, Value::Set(Box::new(set)), None);
            return Frame::Integer(added);
        }
        Some(set) => members.iter().any(|m| !set.contains(&m[..])),
    };
    let mut added = 0;
    if adds {
        if let Some(set) = set_mut(ctx, key) {
            for member in members {
                if set.insert(CompactBytes::copy(member)).is_none() {
                    added += 1;
                }
            }
        }
    }
    Frame::Integer(added)
}

/// SADD that adds nothing: every member is already in the set.
pub fn sadd_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let set = read_set(ctx, &args[1]).ok()??;
    args[2..]
        .iter()
        .all(|m| set.contains(&m[..]))
        .then_some(Frame::Integer(0))
}

/// SREM that removes nothing: no set there, or none of the members in it.
pub fn srem_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let set = read_set(ctx, &args[1]).ok()?;
    let absent = set.is_none_or(|s| !args[2..].iter().any(|m| s.contains(&m[..])));
    absent.then_some(Frame::Integer(0))
}

/// SREM key member [member ...]
pub fn srem(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let members = &args[2..];
    let any = try_frame!(set_of(ctx.get(key)))
        .is_some_and(|s| members.iter().any(|m| s.contains(&m[..])));
    if !any {
        return Frame::Integer(0);
    }
    let mut removed = 0;
    if let Some(set) = set_mut(ctx, key) {
        for member in members {
            if set.remove(&member[..]).is_some() {
                removed += 1;
            }
        }
    }
    ctx.remove_if_empty(key);
    Frame::Integer(removed)
}

/// SMEMBERS key: a set in RESP3.
pub fn smembers(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let set = try_frame!(read_set(ctx, &args[1]));
    Frame::Set(
        set.into_iter()
            .flat_map(|s| s.iter())
            .map(|m| Frame::Bulk(m.to_bytes()))
            .collect(),
    )
}

/// SISMEMBER key member
pub fn sismember(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let set = try_frame!(read_set(ctx, &args[1]));
    Frame::Integer(set.is_some_and(|s| s.contains(&args[2][..])) as i64)
}

/// SMISMEMBER key member [member ...]
pub fn smismember(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let set = try_frame!(read_set(ctx, &args[1]));
    Frame::Array(
        args[2..]
            .iter()
            .map(|m| Frame::Integer(set.is_some_and(|s| s.contains(&m[..])) as i64))
            .collect(),
    )
}

/// SCARD key
pub fn scard(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let set = try_frame!(read_set(ctx, &args[1]));
    Frame::Integer(set.map_or(0, |s| s.len() as i64))
}

/// SPOP key [count]
///
/// The pick is a state change, so it must be the same on every replica (DESIGN.md rule 2):
/// it draws from a generator seeded by the entry's log index, never from the node.
pub fn spop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return Frame::error(err::SYNTAX);
    }
    let key = &args[1];
    let count = match args.get(2) {
        None => None,
        Some(raw) => match parse_i64(raw) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return Frame::error(err::MUST_BE_POSITIVE),
        },
    };
    let mut rng = Rng::new(seed_from_index(ctx.index));
    let picked: Vec<CompactBytes> = {
        let Some(set) = try_frame!(set_of(ctx.get(key))) else {
            return match count {
                None => Frame::Null,
                Some(_) => Frame::Set(Vec::new()),
            };
        };
        let len = set.len();
        match count {
            None => set
                .iter()
                .nth(rng.below(len as u64) as usize)
                .cloned()
                .into_iter()
                .collect(),
            Some(0) => return Frame::Set(Vec::new()),
            Some(n) if n >= len as u64 => set.iter().cloned().collect(),
            Some(n) => {
                let positions = distinct_positions(&mut rng, len, n as usize);
                items_at(set.iter(), &positions)
                    .into_iter()
                    .cloned()
                    .collect()
            }
        }
    };
    if let Some(set) = set_mut(ctx, key) {
        for member in &picked {
            set.remove(member);
        }
    }
    ctx.remove_if_empty(key);
    match count {
        None => picked
            .into_iter()
            .next()
            .map_or(Frame::Null, |mut m| Frame::Bulk(m.take_bytes())),
        Some(_) => members_frame(picked),
    }
}

/// SRANDMEMBER key [count]: random picks on the read path, from the context's seed.
pub fn srandmember(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return Frame::error(err::SYNTAX);
    }
    let mut rng = Rng::new(ctx.seed);
    let Some(raw) = args.get(2) else {
        let Some(set) = try_frame!(read_set(ctx, &args[1])) else {
            return Frame::Null;
        };
        let pick = rng.below(set.len() as u64) as usize;
        return set
            .iter()
            .nth(pick)
            .map_or(Frame::Null, |m| Frame::Bulk(m.to_bytes()));
    };
    let count = try_frame!(parse_random_count(raw));
    let Some(set) = try_frame!(read_set(ctx, &args[1])) else {
        return Frame::Array(Vec::new());
    };
    let len = set.len();
    let picks: Vec<&CompactBytes> = if count < 0 {
        let wanted = count.unsigned_abs();
        if wanted > MAX_REPEATED_PICKS {
            return Frame::error(err::OUT_OF_RANGE);
        }
        items_with_repeats(&mut rng, set.iter(), len, wanted as usize)
    } else if count as u64 >= len as u64 {
        set.iter().collect()
    } else {
        let positions = distinct_positions(&mut rng, len, count as usize);
        items_at(set.iter(), &positions)
    };
    Frame::Array(
        picks
            .into_iter()
            .map(|m| Frame::Bulk(m.to_bytes()))
            .collect(),
    )
}

/// SMOVE source destination member
pub fn smove(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    // Redis answers 0 for a missing source before it looks at the destination's type.
    let Some(in_src) = try_frame!(set_of(ctx.get(src))).map(|s| s.contains(&member[..])) else {
        return Frame::Integer(0);
    };
    let dst_exists = try_frame!(set_of(ctx.get(dst))).is_some();
    if src == dst {
        return Frame::Integer(in_src as i64);
    }
    if !in_src {
        return Frame::Integer(0);
    }
    if let Some(set) = set_mut(ctx, src) {
        set.remove(&member[..]);
    }
    ctx.remove_if_empty(src);
    if dst_exists {
        if let Some(set) = set_mut(ctx, dst) {
            set.insert(CompactBytes::copy(member));
        }
    } else {
        ctx.set(
            dst,
            Value::Set(Box::new(OrdSet::unit(CompactBytes::copy(member)))),
            None,
        );
    }
    Frame::Integer(1)
}

/// The sets under `keys` (an empty one for a missing key), or WRONGTYPE if any key holds
/// another type: Redis checks every key before computing anything.
fn sets_of<'a>(ctx: &'a ReadCtx<'_>, keys: &[Bytes]) -> Result<Vec<Option<&'a Members>>, Frame> {
    keys.iter().map(|k| read_set(ctx, k)).collect()
}

/// The sets to intersect, smallest first (its members are the candidates, probed in the
/// others); `None` when one is missing, which makes the intersection empty.
fn smallest_first<'a>(sets: &[Option<&'a Members>]) -> Option<Vec<&'a Members>> {
    let mut present = sets.iter().copied().collect::<Option<Vec<&Members>>>()?;
    present.sort_by_key(|s| s.len());
    Some(present)
}

/// The members of the intersection, lazily.
fn intersect<'a>(sets: &'a [&'a Members]) -> impl Iterator<Item = &'a CompactBytes> + 'a {
    let (smallest, others) = match sets.split_first() {
        Some((first, rest)) => (Some(*first), rest),
        None => (None, sets),
    };
    smallest
        .into_iter()
        .flat_map(|s| s.iter())
        .filter(move |m| others.iter().all(|s| s.contains(*m)))
}

fn intersection(sets: &[Option<&Members>]) -> Members {
    match smallest_first(sets) {
        None => Members::new(),
        // One set is its own intersection: an O(1) clone.
        Some(present) if present.len() == 1 => {
            present.first().map_or_else(Members::new, |s| (*s).clone())
        }
        Some(present) => intersect(&present).cloned().collect(),
    }
}

fn union(sets: &[Option<&Members>]) -> Members {
    let mut present: Vec<&Members> = sets.iter().flatten().copied().collect();
    // Start from a clone of the largest: O(1), and only the others' members are inserted.
    present.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let Some((largest, others)) = present.split_first() else {
        return Members::new();
    };
    let mut out = (*largest).clone();
    for set in others {
        for member in set.iter() {
            out.insert(member.clone());
        }
    }
    out
}

fn difference(sets: &[Option<&Members>]) -> Members {
    let Some((Some(first), others)) = sets.split_first() else {
        return Members::new();
    };
    let others: Vec<&Members> = others.iter().flatten().copied().collect();
    // Either filter the first set, or clone it and remove the others' members, whichever
    // touches fewer elements.
    let probe_cost = first.len().saturating_mul(others.len());
    let remove_cost: usize = others.iter().map(|s| s.len()).sum();
    if probe_cost <= remove_cost {
        first
            .iter()
            .filter(|m| !others.iter().any(|s| s.contains(*m)))
            .cloned()
            .collect()
    } else {
        let mut out = (*first).clone();
        for set in others {
            for member in set.iter() {
                out.remove(member);
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

fn compute(ctx: &ReadCtx<'_>, op: SetOp, keys: &[Bytes]) -> Result<Members, Frame> {
    let sets = sets_of(ctx, keys)?;
    Ok(match op {
        SetOp::Inter => intersection(&sets),
        SetOp::Union => union(&sets),
        SetOp::Diff => difference(&sets),
    })
}

fn read_op(ctx: &ReadCtx<'_>, args: &[Bytes], op: SetOp) -> Frame {
    members_frame(try_frame!(compute(ctx, op, &args[1..])))
}

/// Stores the result at the destination, replacing any value of any type and dropping its
/// TTL; an empty result deletes the destination.
fn store_op(ctx: &mut WriteCtx<'_>, args: &[Bytes], op: SetOp) -> Frame {
    let result = try_frame!(compute(&ctx.as_read(), op, &args[2..]));
    let dst = &args[1];
    if result.is_empty() {
        ctx.remove(dst);
        return Frame::Integer(0);
    }
    let len = result.len() as i64;
    ctx.set(dst, Value::Set(Box::new(result)), None);
    Frame::Integer(len)
}

/// SINTER key [key ...]
pub fn sinter(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    read_op(ctx, args, SetOp::Inter)
}

/// SUNION key [key ...]
pub fn sunion(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    read_op(ctx, args, SetOp::Union)
}

/// SDIFF key [key ...]
pub fn sdiff(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    read_op(ctx, args, SetOp::Diff)
}

/// SINTERSTORE destination key [key ...]
pub fn sinterstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    store_op(ctx, args, SetOp::Inter)
}

/// SUNIONSTORE destination key [key ...]
pub fn sunionstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    store_op(ctx, args, SetOp::Union)
}

/// SDIFFSTORE destination key [key ...]
pub fn sdiffstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    store_op(ctx, args, SetOp::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Frame::error(err::NUMKEYS_POSITIVE),
    };
    let available = args.len() as u64 - 2;
    if numkeys > available {
        return Frame::error(err::NUMKEYS_TOO_MANY);
    }
    let keys_end = 2 + numkeys as usize;
    let mut limit = 0usize;
    let mut i = keys_end;
    while i < args.len() {
        match args.get(i + 1) {
            Some(value) if args[i].eq_ignore_ascii_case(b"limit") => match parse_i64(value) {
                Some(n) if n >= 0 => limit = usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Frame::error(err::LIMIT_NEGATIVE),
            },
            _ => return Frame::error(err::SYNTAX),
        }
        i += 2;
    }
    let sets = try_frame!(sets_of(ctx, &args[2..keys_end]));
    let Some(present) = smallest_first(&sets) else {
        return Frame::Integer(0);
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    Frame::Integer(intersect(&present).take(limit).count() as i64)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub fn sscan(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let cursor = try_frame!(parse_cursor(&args[2]));
    let Some(set) = try_frame!(read_set(ctx, &args[1])) else {
        return empty_scan();
    };
    let opts = try_frame!(parse_scan_options(&args[3..]));
    scan_step(set.len(), cursor, &opts, |start| {
        set.range::<_, [u8]>((Bound::Included(start), Bound::Unbounded))
            .map(|m| (m.as_ref(), None))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use bytes::Bytes;

    use crate::keyspace::hashes::tests::must_scan_all;
    use crate::keyspace::tests::{check_transcript, must_apply};
    use crate::keyspace::{Keyspace, Op, Request};
    use crate::resp::Frame;

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\n";

    /// SADD counts new members (duplicates in one call count once), SREM counts removed
    /// ones and deletes the key with its last member.
    #[test]
    fn sadd_srem() {
        check_transcript(&[
            ("sadd s a b a", ":2\n", ""),
            ("sadd s b c", ":1\n", ""),
            ("sadd s a", ":0\n", ""),
            ("scard s", ":3\n", ""),
            ("type s", "+set\n", ""),
            ("srem s a a nomember", ":1\n", ""),
            ("srem s nomember", ":0\n", ""),
            ("srem nokey a", ":0\n", ""),
            ("srem s b c", ":2\n", ""),
            ("exists s", ":0\n", ""),
            ("set str x", "+OK\n", ""),
            ("sadd str a", WRONGTYPE, ""),
            ("srem str a", WRONGTYPE, ""),
        ]);
    }

    /// SMEMBERS is a set in RESP3; SISMEMBER, SMISMEMBER and SCARD are integers; a missing
    /// key is an empty set.
    #[test]
    fn membership_reads() {
        check_transcript(&[
            ("sadd s b a c", ":3\n", ""),
            (
                "smembers s",
                "*3\n$1\na\n$1\nb\n$1\nc\n",
                "~3\n$1\na\n$1\nb\n$1\nc\n",
            ),
            ("smembers nokey", "*0\n", "~0\n"),
            ("sismember s a", ":1\n", ""),
            ("sismember s z", ":0\n", ""),
            ("sismember nokey a", ":0\n", ""),
            ("smismember s a z c", "*3\n:1\n:0\n:1\n", ""),
            ("smismember nokey a b", "*2\n:0\n:0\n", ""),
            ("scard s", ":3\n", ""),
            ("scard nokey", ":0\n", ""),
            ("set str x", "+OK\n", ""),
            ("smembers str", WRONGTYPE, ""),
            ("sismember str a", WRONGTYPE, ""),
            ("smismember str a", WRONGTYPE, ""),
            ("scard str", WRONGTYPE, ""),
        ]);
    }

    /// SPOP: nil or a member; with a count a set reply (RESP3 `~`); a count at least the
    /// size pops everything and deletes the key. Picks are seeded by the log index, so the
    /// transcript is fixed.
    #[test]
    fn spop() {
        check_transcript(&[
            ("spop nokey", "$-1\n", "_\n"),
            ("spop nokey 2", "*0\n", "~0\n"),
            ("sadd s a b c d e", ":5\n", ""),
            ("spop s 0", "*0\n", "~0\n"),
            ("spop s", "$1\na\n", ""),
            ("spop s 2", "*2\n$1\nd\n$1\ne\n", "~2\n$1\nd\n$1\ne\n"),
            ("scard s", ":2\n", ""),
            ("spop s 5", "*2\n$1\nb\n$1\nc\n", "~2\n$1\nb\n$1\nc\n"),
            ("exists s", ":0\n", ""),
            ("sadd t x", ":1\n", ""),
            ("spop t", "$1\nx\n", ""),
            ("exists t", ":0\n", ""),
            (
                "spop s -1",
                "-ERR value is out of range, must be positive\n",
                "",
            ),
            (
                "spop s x",
                "-ERR value is out of range, must be positive\n",
                "",
            ),
            ("spop s 1 2", "-ERR syntax error\n", ""),
            ("set str x", "+OK\n", ""),
            ("spop str", WRONGTYPE, ""),
            ("spop str 1", WRONGTYPE, ""),
            // The count is checked before the key, as in Redis.
            (
                "spop str -1",
                "-ERR value is out of range, must be positive\n",
                "",
            ),
        ]);
    }

    fn apply_at(ks: &mut Keyspace, index: u64, line: &str) -> Frame {
        let args = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        ks.apply(
            index,
            &Request {
                time_ms: 1000,
                op: Op::Command { db: 0, args },
            },
        )
    }

    fn members(ks: &mut Keyspace, key: &str) -> HashSet<Bytes> {
        match apply_at(ks, 1, &format!("smembers {key}")) {
            Frame::Set(items) => items
                .into_iter()
                .map(|f| match f {
                    Frame::Bulk(b) => b,
                    other => panic!("member {other:?}"),
                })
                .collect(),
            other => panic!("smembers {other:?}"),
        }
    }

    /// Two replicas applying the same SPOP at the same log index pop the same members,
    /// and the popped members are gone; another index picks independently.
    #[test]
    fn spop_is_deterministic_per_log_index() {
        let fill: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let fill = format!("sadd s {}", fill.join(" "));
        let mut replicas = [Keyspace::new(), Keyspace::new()];
        for ks in &mut replicas {
            apply_at(ks, 1, &fill);
        }
        let mut firsts = Vec::new();
        for index in 2..40 {
            let [a, b] = &mut replicas;
            let line = if index % 2 == 0 { "spop s" } else { "spop s 3" };
            let (pa, pb) = (apply_at(a, index, line), apply_at(b, index, line));
            assert_eq!(pa, pb, "replicas disagree at index {index}");
            let popped: Vec<Bytes> = match pa {
                Frame::Bulk(m) => vec![m],
                Frame::Set(items) => items
                    .into_iter()
                    .map(|f| match f {
                        Frame::Bulk(b) => b,
                        other => panic!("{other:?}"),
                    })
                    .collect(),
                other => panic!("spop {other:?}"),
            };
            assert!(index % 2 == 0 || popped.len() == 3);
            let left = members(a, "s");
            for m in &popped {
                assert!(!left.contains(m), "{m:?} popped but still there");
            }
            firsts.push(popped[0].clone());
        }
        assert_eq!(
            members(&mut replicas[0], "s"),
            members(&mut replicas[1], "s")
        );
        assert_eq!(members(&mut replicas[0], "s").len(), 200 - 19 - 19 * 3);
        // Not a constant pick: different indexes pop from different places.
        assert!(firsts.iter().collect::<HashSet<_>>().len() > 10);
    }

    /// SRANDMEMBER: nil or a member; counts in both directions; errors as Redis's.
    #[test]
    fn srandmember() {
        check_transcript(&[
            ("srandmember nokey", "$-1\n", "_\n"),
            ("srandmember nokey 3", "*0\n", ""),
            ("srandmember nokey -3", "*0\n", ""),
            ("sadd s a b c", ":3\n", ""),
            ("srandmember s 0", "*0\n", ""),
            ("srandmember s 3", "*3\n$1\na\n$1\nb\n$1\nc\n", ""),
            ("srandmember s 100", "*3\n$1\na\n$1\nb\n$1\nc\n", ""),
            ("srandmember s", "$1\na\n", ""),
            ("srandmember s 2", "*2\n$1\na\n$1\nc\n", ""),
            ("srandmember s -4", "*4\n$1\na\n$1\na\n$1\nb\n$1\na\n", ""),
            ("srandmember s x", "-ERR value is not an integer or out of range\n", ""),
            (
                "srandmember s -9223372036854775808",
                "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\n",
                "",
            ),
            ("srandmember s -1000001", "-ERR value is out of range\n", ""),
            ("srandmember s 1 2", "-ERR syntax error\n", ""),
            ("set str x", "+OK\n", ""),
            ("srandmember str", WRONGTYPE, ""),
            ("srandmember str 2", WRONGTYPE, ""),
        ]);
    }

    /// SMOVE: moves, creates the destination, deletes an emptied source; a missing source
    /// answers 0 before the destination's type is checked; same key is a membership test.
    #[test]
    fn smove() {
        check_transcript(&[
            ("sadd src a b", ":2\n", ""),
            ("smove src dst a", ":1\n", ""),
            ("smembers dst", "*1\n$1\na\n", "~1\n$1\na\n"),
            ("smove src dst z", ":0\n", ""),
            ("smove src dst b", ":1\n", ""),
            ("exists src", ":0\n", ""),
            ("smembers dst", "*2\n$1\na\n$1\nb\n", "~2\n$1\na\n$1\nb\n"),
            ("sadd src a", ":1\n", ""),
            ("smove src dst a", ":1\n", ""),
            ("scard dst", ":2\n", ""),
            ("smove dst dst a", ":1\n", ""),
            ("smove dst dst z", ":0\n", ""),
            ("set str x", "+OK\n", ""),
            ("smove nokey str a", ":0\n", ""),
            ("smove dst str a", WRONGTYPE, ""),
            ("smove str dst a", WRONGTYPE, ""),
            ("scard dst", ":2\n", ""),
        ]);
    }

    /// SINTER, SUNION, SDIFF: a missing key is an empty set, WRONGTYPE anywhere fails the
    /// whole command (even after a missing key).
    #[test]
    fn set_algebra() {
        check_transcript(&[
            ("sadd a 1 2 3 4", ":4\n", ""),
            ("sadd b 3 4 5", ":3\n", ""),
            ("sadd c 4 6", ":2\n", ""),
            ("sinter a b", "*2\n$1\n3\n$1\n4\n", "~2\n$1\n3\n$1\n4\n"),
            ("sinter a b c", "*1\n$1\n4\n", "~1\n$1\n4\n"),
            ("sinter a nokey", "*0\n", "~0\n"),
            (
                "sinter a",
                "*4\n$1\n1\n$1\n2\n$1\n3\n$1\n4\n",
                "~4\n$1\n1\n$1\n2\n$1\n3\n$1\n4\n",
            ),
            (
                "sunion b c",
                "*4\n$1\n3\n$1\n4\n$1\n5\n$1\n6\n",
                "~4\n$1\n3\n$1\n4\n$1\n5\n$1\n6\n",
            ),
            (
                "sunion nokey c nokey2",
                "*2\n$1\n4\n$1\n6\n",
                "~2\n$1\n4\n$1\n6\n",
            ),
            ("sunion nokey", "*0\n", "~0\n"),
            ("sdiff a b", "*2\n$1\n1\n$1\n2\n", "~2\n$1\n1\n$1\n2\n"),
            (
                "sdiff a b c nokey",
                "*2\n$1\n1\n$1\n2\n",
                "~2\n$1\n1\n$1\n2\n",
            ),
            ("sdiff nokey a", "*0\n", "~0\n"),
            ("sdiff a a", "*0\n", "~0\n"),
            ("set str x", "+OK\n", ""),
            ("sinter a str", WRONGTYPE, ""),
            ("sinter nokey str", WRONGTYPE, ""),
            ("sunion a str", WRONGTYPE, ""),
            ("sdiff nokey str", WRONGTYPE, ""),
            ("sdiff str", WRONGTYPE, ""),
        ]);
    }

    /// The STORE forms overwrite any type, drop the TTL, may name a source as the
    /// destination, and delete the destination on an empty result.
    #[test]
    fn set_algebra_store() {
        check_transcript(&[
            ("sadd a 1 2 3", ":3\n", ""),
            ("sadd b 2 3 4", ":3\n", ""),
            ("set dst x ex 100", "+OK\n", ""),
            ("sinterstore dst a b", ":2\n", ""),
            ("type dst", "+set\n", ""),
            ("ttl dst", ":-1\n", ""),
            ("smembers dst", "*2\n$1\n2\n$1\n3\n", "~2\n$1\n2\n$1\n3\n"),
            ("sunionstore dst a b", ":4\n", ""),
            ("sdiffstore dst a b", ":1\n", ""),
            ("smembers dst", "*1\n$1\n1\n", "~1\n$1\n1\n"),
            ("sunionstore a a b", ":4\n", ""),
            ("scard a", ":4\n", ""),
            ("sinterstore dst a nokey", ":0\n", ""),
            ("exists dst", ":0\n", ""),
            ("sadd dst z", ":1\n", ""),
            ("sdiffstore dst b a", ":0\n", ""),
            ("exists dst", ":0\n", ""),
            ("sadd dst z", ":1\n", ""),
            ("sunionstore dst nokey", ":0\n", ""),
            ("exists dst", ":0\n", ""),
            ("set str x", "+OK\n", ""),
            ("sadd dst z", ":1\n", ""),
            ("sinterstore dst a str", WRONGTYPE, ""),
            ("sunionstore dst str", WRONGTYPE, ""),
            ("sdiffstore dst a str", WRONGTYPE, ""),
            // A failed store leaves the destination alone.
            ("smembers dst", "*1\n$1\nz\n", "~1\n$1\nz\n"),
            ("sunionstore str a", ":4\n", ""),
            ("type str", "+set\n", ""),
        ]);
    }

    /// SINTERCARD with LIMIT and Redis's numkeys and LIMIT errors.
    #[test]
    fn sintercard() {
        check_transcript(&[
            ("sadd a 1 2 3 4", ":4\n", ""),
            ("sadd b 2 3 4 5", ":4\n", ""),
            ("sintercard 2 a b", ":3\n", ""),
            ("sintercard 2 a b limit 2", ":2\n", ""),
            ("sintercard 2 a b limit 0", ":3\n", ""),
            ("sintercard 2 a b LIMIT 10", ":3\n", ""),
            ("sintercard 1 a", ":4\n", ""),
            ("sintercard 2 a nokey", ":0\n", ""),
            (
                "sintercard 0 a",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            (
                "sintercard -1 a",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            (
                "sintercard x a",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            (
                "sintercard 3 a b",
                "-ERR Number of keys can't be greater than number of args\n",
                "",
            ),
            (
                "sintercard 2 a b limit -1",
                "-ERR LIMIT can't be negative\n",
                "",
            ),
            (
                "sintercard 2 a b limit x",
                "-ERR LIMIT can't be negative\n",
                "",
            ),
            ("sintercard 2 a b limit", "-ERR syntax error\n", ""),
            ("sintercard 2 a b bogus 1", "-ERR syntax error\n", ""),
            ("sintercard 1 a b", "-ERR syntax error\n", ""),
            ("set str x", "+OK\n", ""),
            ("sintercard 2 a str", WRONGTYPE, ""),
            ("sintercard 2 nokey str", WRONGTYPE, ""),
        ]);
    }

    /// SSCAN on a small set answers everything with cursor 0; errors as HSCAN's.
    #[test]
    fn sscan_small() {
        check_transcript(&[
            ("sscan nokey 0", "*2\n$1\n0\n*0\n", ""),
            ("sadd s b a ab", ":3\n", ""),
            ("sscan s 0", "*2\n$1\n0\n*3\n$1\na\n$2\nab\n$1\nb\n", ""),
            ("sscan s 0 match a*", "*2\n$1\n0\n*2\n$1\na\n$2\nab\n", ""),
            (
                "sscan s 0 MATCH * COUNT 1",
                "*2\n$1\n0\n*3\n$1\na\n$2\nab\n$1\nb\n",
                "",
            ),
            ("sscan s x", "-ERR invalid cursor\n", ""),
            ("sscan s 0 count 0", "-ERR syntax error\n", ""),
            ("sscan s 0 novalues", "-ERR syntax error\n", ""),
            ("set str x", "+OK\n", ""),
            ("sscan str 0", WRONGTYPE, ""),
        ]);
    }

    /// A large set is scanned in steps, each member once, while members come and go.
    #[test]
    fn sscan_large_set_survives_changes() {
        let mut ks = Keyspace::new();
        for i in 0..500 {
            must_apply(&mut ks, 1000, &format!("sadd s keep:{i} drop:{i}"));
        }
        let (seen, calls) = must_scan_all(&mut ks, "sscan s", 30, false, |ks, call| {
            must_apply(ks, 1000, &format!("srem s drop:{call}"));
            must_apply(ks, 1000, &format!("sadd s added:{call}"));
        });
        assert!(calls > 5);
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a member came back twice");
        for i in 0..500 {
            assert!(
                unique.contains(&Bytes::from(format!("keep:{i}"))),
                "keep:{i} missed"
            );
        }
    }
}

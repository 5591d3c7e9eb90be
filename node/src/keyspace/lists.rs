//! List commands: pushes and pops at both ends, ranges, edits in the middle, moves between
//! lists, and the apply side of the blocking pops.
//!
//! A blocking command (`BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`) runs inside apply
//! like any write: it validates its arguments as Redis does, serves itself at once when one
//! of its lists has an element, and otherwise answers the [`BLOCKED`] marker, which the
//! connection turns into a wait (or, inside `EXEC`, the null reply Redis gives a blocking
//! command that may not block).

use bytes::Bytes;

use super::{owned, Entry, ReadCtx, Value, WriteCtx, BLOCKED};
use crate::command::errors as err;
use crate::command::parse_i64;
use crate::resp::Frame;

/// A stored list.
type List = imbl::Vector<Bytes>;

macro_rules! try_frame {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(frame) => return frame,
        }
    };
}

/// Which end of a list an operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The head (`LEFT`, index 0).
    Left,
    /// The tail (`RIGHT`, index -1).
    Right,
}

/// `LEFT` or `RIGHT`, case-insensitively; anything else is a syntax error, as in Redis.
fn parse_end(raw: &[u8]) -> Result<End, Frame> {
    if raw.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if raw.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(Frame::error(err::SYNTAX))
    }
}

/// The list in `entry`, if any; `Err` carries WRONGTYPE for other types.
fn list_of(entry: Option<&Entry>) -> Result<Option<&List>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::List(list)) => Ok(Some(list)),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// The list under `key` for a read.
fn read_list<'a>(ctx: &'a ReadCtx<'_>, key: &Bytes) -> Result<Option<&'a List>, Frame> {
    list_of(ctx.get(key))
}

/// Length of the list under `key` inside apply (deleting it first if it expired).
fn write_list_len(ctx: &mut WriteCtx<'_>, key: &Bytes) -> Result<Option<usize>, Frame> {
    Ok(list_of(ctx.get(key))?.map(|l| l.len()))
}

/// The list under `key` to edit in place; the caller has checked that it is one. Marks the
/// key changed (WATCH, blocked clients), so call it only when something changes.
fn list_mut<'a>(ctx: &'a mut WriteCtx<'_>, key: &Bytes) -> Option<&'a mut List> {
    match ctx.get_mut(key).map(|e| &mut e.value) {
        Some(Value::List(list)) => Some(list),
        _ => None,
    }
}

fn bulk_array(items: impl IntoIterator<Item = Bytes>) -> Frame {
    Frame::Array(items.into_iter().map(Frame::Bulk).collect())
}

/// Redis's clamp of an inclusive `start..=end` range with negative indexes counting from
/// the end; `None` when the range is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// A single index, negative counting from the end; `None` outside the list.
fn clamp_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let index = if index < 0 { index + len } else { index };
    (0..len).contains(&index).then_some(index as usize)
}

/// Pops up to `count` elements from one end of the list under `key` (which must be a
/// list), in pop order, and deletes the key if that emptied it.
fn pop_n(ctx: &mut WriteCtx<'_>, key: &Bytes, end: End, count: usize) -> Vec<Bytes> {
    let Some(list) = list_mut(ctx, key) else {
        return Vec::new();
    };
    let count = count.min(list.len());
    let popped: Vec<Bytes> = match end {
        End::Left => {
            let rest = list.split_off(count);
            std::mem::replace(list, rest).into_iter().collect()
        }
        End::Right => {
            let tail = list.split_off(list.len() - count);
            tail.into_iter().rev().collect()
        }
    };
    ctx.remove_if_empty(key);
    popped
}

/// Pushes `elements` one by one at `end` of the list under `key`, creating it when
/// missing unless `only_if_exists`; the new length, or WRONGTYPE.
fn push_elements(
    ctx: &mut WriteCtx<'_>,
    key: &Bytes,
    elements: &[Bytes],
    end: End,
    only_if_exists: bool,
) -> Frame {
    match try_frame!(write_list_len(ctx, key)) {
        None if only_if_exists => Frame::Integer(0),
        None => {
            let mut list = List::new();
            for element in elements {
                push_one(&mut list, owned(element), end);
            }
            let len = list.len();
            ctx.set(key, Value::List(Box::new(list)), None);
            Frame::Integer(len as i64)
        }
        Some(_) => {
            let Some(list) = list_mut(ctx, key) else {
                return Frame::error(err::WRONGTYPE);
            };
            for element in elements {
                push_one(list, owned(element), end);
            }
            Frame::Integer(list.len() as i64)
        }
    }
}

fn push_one(list: &mut List, element: Bytes, end: End) {
    match end {
        End::Left => list.push_front(element),
        End::Right => list.push_back(element),
    }
}

/// LPUSH key element [element ...]
pub fn lpush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    push_elements(ctx, &args[1], &args[2..], End::Left, false)
}

/// RPUSH key element [element ...]
pub fn rpush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    push_elements(ctx, &args[1], &args[2..], End::Right, false)
}

/// LPUSHX key element [element ...]
pub fn lpushx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    push_elements(ctx, &args[1], &args[2..], End::Left, true)
}

/// RPUSHX key element [element ...]
pub fn rpushx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    push_elements(ctx, &args[1], &args[2..], End::Right, true)
}

/// LPOP key [count]
pub fn lpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    pop_command(ctx, args, End::Left, "lpop")
}

/// RPOP key [count]
pub fn rpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    pop_command(ctx, args, End::Right, "rpop")
}

/// LPOP/RPOP: without a count one bulk (null when missing); with a count an array (a null
/// array when missing, an empty one for a count of 0).
fn pop_command(ctx: &mut WriteCtx<'_>, args: &[Bytes], end: End, name: &str) -> Frame {
    // The table's arity is "at least 2"; Redis itself refuses more than one count.
    if args.len() > 3 {
        return Frame::error(err::wrong_arity(name));
    }
    let count = match args.get(2) {
        None => None,
        Some(raw) => match parse_i64(raw) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Frame::error(err::MUST_BE_POSITIVE),
        },
    };
    let key = &args[1];
    if try_frame!(write_list_len(ctx, key)).is_none() {
        return match count {
            None => Frame::Null,
            Some(_) => Frame::NullArray,
        };
    }
    match count {
        Some(0) => Frame::Array(Vec::new()),
        Some(n) => bulk_array(pop_n(ctx, key, end, n)),
        None => pop_n(ctx, key, end, 1)
            .into_iter()
            .next()
            .map_or(Frame::Null, Frame::Bulk),
    }
}

/// LLEN key
pub fn llen(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let list = try_frame!(read_list(ctx, &args[1]));
    Frame::Integer(list.map_or(0, |l| l.len() as i64))
}

/// LINDEX key index: the key is looked up before the index is parsed, as in Redis.
pub fn lindex(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(list) = try_frame!(read_list(ctx, &args[1])) else {
        return Frame::Null;
    };
    let Some(index) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    clamp_index(index, list.len())
        .and_then(|i| list.get(i))
        .map_or(Frame::Null, |e| Frame::Bulk(e.clone()))
}

/// LRANGE key start stop
pub fn lrange(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let Some(list) = try_frame!(read_list(ctx, &args[1])) else {
        return Frame::Array(Vec::new());
    };
    match clamp_range(start, end, list.len()) {
        None => Frame::Array(Vec::new()),
        Some((start, end)) => bulk_array(list.skip(start).take(end - start + 1)),
    }
}

/// LSET key index element
pub fn lset(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let Some(len) = try_frame!(write_list_len(ctx, key)) else {
        return Frame::error(err::NO_SUCH_KEY);
    };
    let Some(index) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let Some(index) = clamp_index(index, len) else {
        return Frame::error(err::INDEX_OUT_OF_RANGE);
    };
    if let Some(list) = list_mut(ctx, key) {
        list.set(index, owned(&args[3]));
    }
    Frame::ok()
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot, 0
/// without the key.
pub fn linsert(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Frame::error(err::SYNTAX);
    };
    let key = &args[1];
    let Some(list) = try_frame!(list_of(ctx.get(key))) else {
        return Frame::Integer(0);
    };
    let Some(at) = list.iter().position(|e| *e == args[3]) else {
        return Frame::Integer(-1);
    };
    let Some(list) = list_mut(ctx, key) else {
        return Frame::Integer(0);
    };
    list.insert(if after { at + 1 } else { at }, owned(&args[4]));
    Frame::Integer(list.len() as i64)
}

/// LREM key count element: removes up to `count` matches from the head (all for 0, from
/// the tail for a negative count).
pub fn lrem(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(count) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let key = &args[1];
    let Some(list) = try_frame!(list_of(ctx.get(key))) else {
        return Frame::Integer(0);
    };
    // Redis 7.2 negates the count in a C long, so i64::MIN stays negative and never
    // matches the number removed: it removes every match, as 0 does.
    let limit = match count {
        0 | i64::MIN => usize::MAX,
        n => n.unsigned_abs().min(usize::MAX as u64) as usize,
    };
    let element = &args[3];
    let matching = |(_, e): &(usize, &Bytes)| *e == element;
    let doomed: Vec<usize> = if count < 0 {
        let mut at: Vec<usize> = list
            .iter()
            .enumerate()
            .rev()
            .filter(matching)
            .take(limit)
            .map(|(i, _)| i)
            .collect();
        at.reverse();
        at
    } else {
        list.iter()
            .enumerate()
            .filter(matching)
            .take(limit)
            .map(|(i, _)| i)
            .collect()
    };
    if doomed.is_empty() {
        return Frame::Integer(0);
    }
    let Some(list) = list_mut(ctx, key) else {
        return Frame::Integer(0);
    };
    let mut next = doomed.iter().peekable();
    let kept: List = std::mem::take(list)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| {
            if next.peek() == Some(&i) {
                next.next();
                false
            } else {
                true
            }
        })
        .map(|(_, e)| e)
        .collect();
    *list = kept;
    ctx.remove_if_empty(key);
    Frame::Integer(doomed.len() as i64)
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let key = &args[1];
    let Some(len) = try_frame!(write_list_len(ctx, key)) else {
        return Frame::ok();
    };
    // Redis marks the key changed even when nothing is trimmed.
    if let Some(list) = list_mut(ctx, key) {
        *list = match clamp_range(start, end, len) {
            None => List::new(),
            Some((start, end)) => list.skip(start).take(end - start + 1),
        };
    }
    ctx.remove_if_empty(key);
    Frame::ok()
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let mut rank: i64 = 1;
    let mut count: Option<u64> = None;
    let mut maxlen: u64 = 0;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let name = option.to_ascii_uppercase();
        let value = match name.as_slice() {
            b"RANK" | b"COUNT" | b"MAXLEN" => options.next(),
            _ => None,
        };
        let Some(value) = value else {
            return Frame::error(err::SYNTAX);
        };
        let parsed = parse_i64(value);
        match name.as_slice() {
            b"RANK" => {
                rank = match parsed {
                    None => return Frame::error(err::NOT_INTEGER),
                    Some(i64::MIN) => {
                        return Frame::error(err::out_of_range_between(-i64::MAX, i64::MAX))
                    }
                    Some(0) => return Frame::error(err::LPOS_RANK_ZERO),
                    Some(n) => n,
                }
            }
            b"COUNT" => match parsed {
                Some(n) if n >= 0 => count = Some(n as u64),
                _ => return Frame::error(err::LPOS_COUNT_NEGATIVE),
            },
            _ => match parsed {
                Some(n) if n >= 0 => maxlen = n as u64,
                _ => return Frame::error(err::LPOS_MAXLEN_NEGATIVE),
            },
        }
    }
    let Some(list) = try_frame!(read_list(ctx, &args[1])) else {
        return match count {
            Some(_) => Frame::Array(Vec::new()),
            None => Frame::Null,
        };
    };
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs();
    let len = list.len();
    let scanned: Box<dyn Iterator<Item = &Bytes>> = if from_tail {
        Box::new(list.iter().rev())
    } else {
        Box::new(list.iter())
    };
    let limit = if maxlen == 0 {
        usize::MAX
    } else {
        maxlen.min(usize::MAX as u64) as usize
    };
    let element = &args[2];
    let mut matches: u64 = 0;
    let mut found = Vec::new();
    for (scanned_index, item) in scanned.take(limit).enumerate() {
        if item != element {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        let index = if from_tail {
            len - 1 - scanned_index
        } else {
            scanned_index
        } as i64;
        match count {
            None => return Frame::Integer(index),
            Some(count) => {
                found.push(Frame::Integer(index));
                if count != 0 && matches - rank + 1 >= count {
                    break;
                }
            }
        }
    }
    match count {
        Some(_) => Frame::Array(found),
        None => Frame::Null,
    }
}

/// Pops one element from `src` at `from` and pushes it onto `dst` at `to` (the same list
/// rotates): the element, a null when `src` is missing, WRONGTYPE when either key holds
/// another type (checked before anything moves).
fn move_element(ctx: &mut WriteCtx<'_>, src: &Bytes, dst: &Bytes, from: End, to: End) -> Frame {
    if try_frame!(write_list_len(ctx, src)).is_none() {
        return Frame::Null;
    }
    let dst_exists = try_frame!(write_list_len(ctx, dst)).is_some();
    let Some(list) = list_mut(ctx, src) else {
        return Frame::Null;
    };
    let popped = match from {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    };
    let Some(element) = popped else {
        return Frame::Null;
    };
    // The source is still in place (even if empty), so a move onto itself finds it.
    if dst_exists {
        if let Some(target) = list_mut(ctx, dst) {
            push_one(target, element.clone(), to);
        }
    } else {
        ctx.set(
            dst,
            Value::List(Box::new(List::unit(element.clone()))),
            None,
        );
    }
    ctx.remove_if_empty(src);
    Frame::Bulk(element)
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let from = try_frame!(parse_end(&args[3]));
    let to = try_frame!(parse_end(&args[4]));
    move_element(ctx, &args[1], &args[2], from, to)
}

/// RPOPLPUSH source destination
pub fn rpoplpush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    move_element(ctx, &args[1], &args[2], End::Right, End::Left)
}

/// The parsed tail of `LMPOP`/`BLMPOP`: `numkeys key... LEFT|RIGHT [COUNT count]`.
struct Mpop<'a> {
    keys: &'a [Bytes],
    end: End,
    count: usize,
}

/// Parses from the `numkeys` argument at `numkeys_at`, with Redis's checks in its order.
fn parse_mpop(args: &[Bytes], numkeys_at: usize) -> Result<Mpop<'_>, Frame> {
    let numkeys = match args.get(numkeys_at).and_then(|raw| parse_i64(raw)) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(Frame::error(err::NUMKEYS_POSITIVE)),
    };
    let end_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&at| at < args.len())
        .ok_or_else(|| Frame::error(err::SYNTAX))?;
    let end = parse_end(&args[end_at])?;
    let mut count = None;
    let mut rest = args[end_at + 1..].iter();
    while let Some(option) = rest.next() {
        match rest.as_slice().first() {
            Some(_) if count.is_none() && option.eq_ignore_ascii_case(b"count") => {
                let raw = rest.next().map(|r| parse_i64(r));
                count = match raw {
                    Some(Some(n)) if n >= 1 => Some(n as usize),
                    _ => return Err(Frame::error(err::COUNT_POSITIVE)),
                };
            }
            _ => return Err(Frame::error(err::SYNTAX)),
        }
    }
    Ok(Mpop {
        keys: &args[numkeys_at + 1..end_at],
        end,
        count: count.unwrap_or(1),
    })
}

/// The first key among `keys` holding a non-empty list, in argument order; WRONGTYPE if a
/// key of another type comes before it.
fn first_ready<'a>(ctx: &mut WriteCtx<'_>, keys: &'a [Bytes]) -> Result<Option<&'a Bytes>, Frame> {
    for key in keys {
        if write_list_len(ctx, key)?.is_some_and(|len| len > 0) {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// Pops for `LMPOP`/`BLMPOP` from the first ready key: `[key, [elements]]`, or `None`
/// when no key has an element.
fn mpop_from_first(ctx: &mut WriteCtx<'_>, mpop: &Mpop<'_>) -> Result<Option<Frame>, Frame> {
    let Some(key) = first_ready(ctx, mpop.keys)? else {
        return Ok(None);
    };
    let popped = pop_n(ctx, key, mpop.end, mpop.count);
    Ok(Some(Frame::Array(vec![
        Frame::Bulk(key.clone()),
        bulk_array(popped),
    ])))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let mpop = try_frame!(parse_mpop(args, 1));
    try_frame!(mpop_from_first(ctx, &mpop)).unwrap_or(Frame::NullArray)
}

/// What a blocking command answers when none of its keys can serve it: inside `EXEC` the
/// null Redis gives a command that may not block, otherwise the marker that makes the
/// connection wait.
fn nothing_to_serve(ctx: &WriteCtx<'_>, null: Frame) -> Frame {
    if ctx.in_transaction {
        null
    } else {
        Frame::Error(BLOCKED.to_string())
    }
}

/// BLPOP key [key ...] timeout
pub fn blpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    blocking_pop(ctx, args, End::Left)
}

/// BRPOP key [key ...] timeout
pub fn brpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    blocking_pop(ctx, args, End::Right)
}

/// BLPOP/BRPOP: `[key, element]` from the first non-empty list.
fn blocking_pop(ctx: &mut WriteCtx<'_>, args: &[Bytes], end: End) -> Frame {
    let Some((timeout, keys)) = args[1..].split_last() else {
        return Frame::error(err::SYNTAX);
    };
    try_frame!(check_timeout(ctx, timeout));
    let Some(key) = try_frame!(first_ready(ctx, keys)) else {
        return nothing_to_serve(ctx, Frame::NullArray);
    };
    let mut popped = pop_n(ctx, key, end, 1).into_iter();
    match popped.next() {
        Some(element) => Frame::Array(vec![Frame::Bulk(key.clone()), Frame::Bulk(element)]),
        None => nothing_to_serve(ctx, Frame::NullArray),
    }
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let from = try_frame!(parse_end(&args[3]));
    let to = try_frame!(parse_end(&args[4]));
    try_frame!(check_timeout(ctx, &args[5]));
    blocking_move(ctx, &args[1], &args[2], from, to)
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    try_frame!(check_timeout(ctx, &args[3]));
    blocking_move(ctx, &args[1], &args[2], End::Right, End::Left)
}

/// BLMOVE/BRPOPLPUSH once the arguments are valid: only the source decides whether to
/// wait; the destination's type is checked when there is something to move.
fn blocking_move(ctx: &mut WriteCtx<'_>, src: &Bytes, dst: &Bytes, from: End, to: End) -> Frame {
    match try_frame!(write_list_len(ctx, src)) {
        Some(len) if len > 0 => move_element(ctx, src, dst, from, to),
        _ => nothing_to_serve(ctx, Frame::Null),
    }
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: the timeout is checked
/// after the rest, as Redis does.
pub fn blmpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let mpop = try_frame!(parse_mpop(args, 2));
    try_frame!(check_timeout(ctx, &args[1]));
    match try_frame!(mpop_from_first(ctx, &mpop)) {
        Some(reply) => reply,
        None => nothing_to_serve(ctx, Frame::NullArray),
    }
}

fn check_timeout(ctx: &WriteCtx<'_>, raw: &[u8]) -> Result<u64, Frame> {
    blocking_timeout_ms(raw, ctx.now_ms).map_err(Frame::error)
}

/// A blocking command's timeout argument (seconds, a float) as whole milliseconds, rounded
/// up; 0 means wait forever. Checked as Redis 7.2 does, with its error texts: not a float
/// (nor NaN), not negative, and not so large that `now_ms` plus it would overflow.
pub fn blocking_timeout_ms(raw: &[u8], now_ms: u64) -> Result<u64, &'static str> {
    let seconds = parse_long_double(raw).ok_or(err::TIMEOUT_NOT_FLOAT)?;
    let ms = seconds * 1000.0;
    // 2^63: the first value above i64::MAX that a double can hold.
    if ms >= 9_223_372_036_854_775_808.0 {
        return Err(err::TIMEOUT_OUT_OF_RANGE);
    }
    let ms = ms.ceil();
    if ms < 0.0 {
        return Err(err::TIMEOUT_NEGATIVE);
    }
    let ms = ms as u64;
    if ms > 0 && ms > (i64::MAX as u64).saturating_sub(now_ms) {
        return Err(err::TIMEOUT_OUT_OF_RANGE);
    }
    Ok(ms)
}

/// Largest finite x87 long double, as the significant digits of `0.d... x 10^4933`.
const LDBL_MAX_DIGITS: &[u8] = b"118973149535723176502";
/// Half the smallest long double subnormal (below it `strtold` underflows to zero), as the
/// significant digits of `0.d... x 10^-4950`.
const LDBL_HALF_MIN_DIGITS: &[u8] = b"182259976594123730126";

/// What Redis's `string2ld` (`strtold` on x86-64) accepts: decimal or hexadecimal floats,
/// `inf`/`infinity`, an optional sign; no spaces, no NaN, no overflow or underflow to zero
/// of an 80-bit long double, under 5 KiB. The value comes back as the nearest double, a
/// magnitude past the double range as an infinity and a nonzero value below it as the
/// smallest positive double, so its sign and rounding stay right for a timeout.
fn parse_long_double(raw: &[u8]) -> Option<f64> {
    if raw.is_empty() || raw.len() >= 5 * 1024 {
        return None;
    }
    let (negative, body) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, raw),
    };
    let lower = body.to_ascii_lowercase();
    let magnitude = if lower == b"inf" || lower == b"infinity" {
        f64::INFINITY
    } else if let Some(hex) = lower.strip_prefix(b"0x") {
        parse_hex_float(hex)?
    } else {
        parse_decimal_float(&lower)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Splits `digits [. digits] [marker [sign] decimal-digits]` into integer digits,
/// fraction digits and exponent (saturated); `None` unless the whole input has that shape
/// with at least one mantissa digit.
fn split_float(text: &[u8], is_digit: fn(&u8) -> bool, marker: u8) -> Option<(&[u8], &[u8], i64)> {
    let int_len = text.iter().take_while(|b| is_digit(b)).count();
    let (int, rest) = text.split_at(int_len);
    let (frac, rest) = match rest.split_first() {
        Some((b'.', after)) => {
            let frac_len = after.iter().take_while(|b| is_digit(b)).count();
            after.split_at(frac_len)
        }
        _ => (&rest[..0], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exponent = match rest.split_first() {
        None => 0,
        Some((m, exp)) if *m == marker => {
            let (negative, digits) = match exp.split_first() {
                Some((b'-', d)) => (true, d),
                Some((b'+', d)) => (false, d),
                _ => (false, exp),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = digits.iter().fold(0i64, |acc, d| {
                acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            if negative {
                -value
            } else {
                value
            }
        }
        Some(_) => return None,
    };
    Some((int, frac, exponent))
}

/// The significant digits (from the first nonzero one) and the exponent `e` such that
/// the value is `0.digits x base^e`, counting one `base` per digit; `None` for zero.
fn significand(int: &[u8], frac: &[u8], exponent: i64, per_digit: i64) -> Option<(Vec<u8>, i64)> {
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let first = all.iter().position(|&d| d != b'0')?;
    let point = int.len() as i64 - first as i64;
    Some((
        all[first..].to_vec(),
        point.saturating_mul(per_digit).saturating_add(exponent),
    ))
}

/// Compares two digit strings as the fractions `0.a` and `0.b`.
fn cmp_fraction(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    let digit = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(b'0');
    (0..len)
        .map(|i| digit(a, i).cmp(&digit(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

fn parse_decimal_float(text: &[u8]) -> Option<f64> {
    let (int, frac, exponent) = split_float(text, u8::is_ascii_digit, b'e')?;
    let Some((digits, e)) = significand(int, frac, exponent, 1) else {
        return Some(0.0);
    };
    use std::cmp::Ordering::{Greater, Less};
    if e > 4933 || (e == 4933 && cmp_fraction(&digits, LDBL_MAX_DIGITS) == Greater) {
        return None;
    }
    if e < -4950 || (e == -4950 && cmp_fraction(&digits, LDBL_HALF_MIN_DIGITS) == Less) {
        return None;
    }
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    Some(if value == 0.0 {
        f64::MIN_POSITIVE
    } else {
        value
    })
}

fn parse_hex_float(text: &[u8]) -> Option<f64> {
    let (int, frac, exponent) = split_float(text, u8::is_ascii_hexdigit, b'p')?;
    // Each hex digit is four bits; the digit's own top bit puts the bound within 3 bits of
    // the truth, which is as close as an argument this absurd deserves.
    let Some((digits, e)) = significand(int, frac, exponent, 4) else {
        return Some(0.0);
    };
    if e > 16384 {
        return None;
    }
    if e < -16445 {
        return None;
    }
    let mut mantissa = 0f64;
    for &d in digits.iter().take(16) {
        let nibble = (d as char).to_digit(16).unwrap_or(0);
        mantissa = mantissa * 16.0 + f64::from(nibble);
    }
    let shift = e - 4 * digits.len().min(16) as i64;
    let value = mantissa * 2f64.powi(shift.clamp(-2000, 2000) as i32);
    Some(if value == 0.0 {
        f64::MIN_POSITIVE
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::check_transcript;

    /// The timeout argument: Redis's float syntax, its three errors, rounding up to a ms.
    #[test]
    fn timeouts_parse_like_strtold() {
        let ok = |s: &str| blocking_timeout_ms(s.as_bytes(), 1_000);
        assert_eq!(ok("0"), Ok(0));
        assert_eq!(ok("1"), Ok(1000));
        assert_eq!(ok("1.5"), Ok(1500));
        assert_eq!(ok("0.0001"), Ok(1));
        assert_eq!(ok(".5"), Ok(500));
        assert_eq!(ok("5."), Ok(5000));
        assert_eq!(ok("+2"), Ok(2000));
        assert_eq!(ok("1e1"), Ok(10_000));
        assert_eq!(ok("1E-3"), Ok(1));
        assert_eq!(ok("0x10"), Ok(16_000));
        assert_eq!(ok("0x1p-1"), Ok(500));
        assert_eq!(ok("0X.8P1"), Ok(1000));
        // Rounds toward zero from below: -0.1 ms is 0, "forever", as in Redis.
        assert_eq!(ok("-0.0001"), Ok(0));
        assert_eq!(ok("-0"), Ok(0));
        assert_eq!(ok("1e-400"), Ok(1));
        assert_eq!(ok("0e99999"), Ok(0));
        for bad in [
            "",
            " 1",
            "1 ",
            "abc",
            "1e",
            "1e+",
            ".",
            "0x",
            "0xg",
            "nan",
            "NaN",
            "1,5",
            "--1",
            "1e5000",
            "1e-5000",
            "-1e5000",
            "0x1p20000",
            "1\0",
        ] {
            assert_eq!(ok(bad), Err(err::TIMEOUT_NOT_FLOAT), "{bad:?}");
        }
        assert_eq!(ok(&"1".repeat(5120)), Err(err::TIMEOUT_NOT_FLOAT));
        for negative in ["-1", "-0.001", "-inf", "-1e400"] {
            assert_eq!(ok(negative), Err(err::TIMEOUT_NEGATIVE), "{negative:?}");
        }
        for huge in ["inf", "+Infinity", "1e400", "9223372036854775.808", "1e17"] {
            assert_eq!(ok(huge), Err(err::TIMEOUT_OUT_OF_RANGE), "{huge:?}");
        }
        // The deadline (now + timeout) must fit in an i64.
        let late = i64::MAX as u64 - 1_000;
        assert_eq!(blocking_timeout_ms(b"1", late), Ok(1_000));
        assert_eq!(
            blocking_timeout_ms(b"1.001", late),
            Err(err::TIMEOUT_OUT_OF_RANGE)
        );
        assert_eq!(blocking_timeout_ms(b"0", i64::MAX as u64), Ok(0));
    }

    const WRONG: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\n";
    const NOT_INT: &str = "-ERR value is not an integer or out of range\n";
    const SYNTAX: &str = "-ERR syntax error\n";
    const NULL: (&str, &str) = ("$-1\n", "_\n");
    const NULL_ARRAY: (&str, &str) = ("*-1\n", "_\n");
    const BLOCKED_REPLY: &str = "-\0BLOCKED\n";
    const NOT_FLOAT: &str = "-ERR timeout is not a float or out of range\n";
    const NEGATIVE: &str = "-ERR timeout is negative\n";

    /// LPUSH/RPUSH/LPUSHX/RPUSHX: order of several elements, X forms on a missing key.
    #[test]
    fn pushes() {
        check_transcript(&[
            ("lpush l a b c", ":3\n", ""),
            ("lrange l 0 -1", "*3\n$1\nc\n$1\nb\n$1\na\n", ""),
            ("rpush l d e", ":5\n", ""),
            (
                "lrange l 0 -1",
                "*5\n$1\nc\n$1\nb\n$1\na\n$1\nd\n$1\ne\n",
                "",
            ),
            ("lpushx missing a", ":0\n", ""),
            ("rpushx missing a b", ":0\n", ""),
            ("exists missing", ":0\n", ""),
            ("lpushx l x y", ":7\n", ""),
            ("rpushx l z", ":8\n", ""),
            ("lrange l 0 1", "*2\n$1\ny\n$1\nx\n", ""),
            ("lindex l -1", "$1\nz\n", ""),
            ("type l", "+list\n", ""),
            ("rpush empty \"\"", ":1\n", ""),
            ("lindex empty 0", "$0\n\n", ""),
            ("rpush bin \"a\\x00b\"", ":1\n", ""),
            ("lindex bin 0", "$3\na\0b\n", ""),
            ("set s v", "+OK\n", ""),
            ("lpush s a", WRONG, ""),
            ("rpush s a", WRONG, ""),
            ("lpushx s a", WRONG, ""),
            ("rpushx s a", WRONG, ""),
            (
                "lpush l",
                "-ERR wrong number of arguments for 'lpush' command\n",
                "",
            ),
        ]);
    }

    /// LPOP/RPOP with and without a count, the null rules of both protocols.
    #[test]
    fn pops() {
        let must_be_positive = "-ERR value is out of range, must be positive\n";
        check_transcript(&[
            ("rpush l a b c d e", ":5\n", ""),
            ("lpop l", "$1\na\n", ""),
            ("rpop l", "$1\ne\n", ""),
            ("lpop l 2", "*2\n$1\nb\n$1\nc\n", ""),
            ("lpop l 0", "*0\n", ""),
            ("rpop l 5", "*1\n$1\nd\n", ""),
            ("exists l", ":0\n", ""),
            ("lpop l", NULL.0, NULL.1),
            ("rpop l", NULL.0, NULL.1),
            ("lpop l 1", NULL_ARRAY.0, NULL_ARRAY.1),
            ("rpop l 0", NULL_ARRAY.0, NULL_ARRAY.1),
            ("lpop l -1", must_be_positive, ""),
            ("rpop l x", must_be_positive, ""),
            (
                "lpop l 1 2",
                "-ERR wrong number of arguments for 'lpop' command\n",
                "",
            ),
            (
                "RPOP l 1 2",
                "-ERR wrong number of arguments for 'rpop' command\n",
                "",
            ),
            ("rpush l a b c", ":3\n", ""),
            ("rpop l 2", "*2\n$1\nc\n$1\nb\n", ""),
            ("lpop l 9223372036854775807", "*1\n$1\na\n", ""),
            ("set s v", "+OK\n", ""),
            ("lpop s", WRONG, ""),
            ("rpop s 1", WRONG, ""),
            ("lpop s 0", WRONG, ""),
            ("lpop s -1", must_be_positive, ""),
        ]);
    }

    /// LLEN and LINDEX, including indexes past either end and the lookup-first order.
    #[test]
    fn llen_and_lindex() {
        check_transcript(&[
            ("llen l", ":0\n", ""),
            ("rpush l a b c", ":3\n", ""),
            ("llen l", ":3\n", ""),
            ("lindex l 0", "$1\na\n", ""),
            ("lindex l -1", "$1\nc\n", ""),
            ("lindex l -3", "$1\na\n", ""),
            ("lindex l -4", NULL.0, NULL.1),
            ("lindex l 3", NULL.0, NULL.1),
            ("lindex l 9223372036854775807", NULL.0, NULL.1),
            ("lindex l -9223372036854775808", NULL.0, NULL.1),
            ("lindex l x", NOT_INT, ""),
            // Redis looks the key up before it parses the index.
            ("lindex missing x", NULL.0, NULL.1),
            ("set s v", "+OK\n", ""),
            ("llen s", WRONG, ""),
            ("lindex s 0", WRONG, ""),
            ("lindex s x", WRONG, ""),
        ]);
    }

    /// LRANGE: negative and out-of-range bounds, empty ranges, parse-first order.
    #[test]
    fn lrange() {
        let all = "*4\n$1\na\n$1\nb\n$1\nc\n$1\nd\n";
        check_transcript(&[
            ("rpush l a b c d", ":4\n", ""),
            ("lrange l 0 -1", all, ""),
            ("lrange l 1 2", "*2\n$1\nb\n$1\nc\n", ""),
            ("lrange l -2 -1", "*2\n$1\nc\n$1\nd\n", ""),
            ("lrange l -100 100", all, ""),
            ("lrange l 0 0", "*1\n$1\na\n", ""),
            ("lrange l 2 1", "*0\n", ""),
            ("lrange l 4 10", "*0\n", ""),
            ("lrange l -1 -2", "*0\n", ""),
            ("lrange l 0 -5", "*0\n", ""),
            ("lrange missing 0 -1", "*0\n", ""),
            ("lrange l a 1", NOT_INT, ""),
            ("lrange missing 0 x", NOT_INT, ""),
            ("set s v", "+OK\n", ""),
            ("lrange s 0 -1", WRONG, ""),
            ("lrange s x 0", NOT_INT, ""),
        ]);
    }

    /// LSET: missing key before a bad index, index range errors.
    #[test]
    fn lset() {
        check_transcript(&[
            ("lset missing 0 x", "-ERR no such key\n", ""),
            ("lset missing x x", "-ERR no such key\n", ""),
            ("rpush l a b c", ":3\n", ""),
            ("lset l 0 A", "+OK\n", ""),
            ("lset l -1 C", "+OK\n", ""),
            ("lrange l 0 -1", "*3\n$1\nA\n$1\nb\n$1\nC\n", ""),
            ("lset l 3 x", "-ERR index out of range\n", ""),
            ("lset l -4 x", "-ERR index out of range\n", ""),
            ("lset l x y", NOT_INT, ""),
            ("set s v", "+OK\n", ""),
            ("lset s 0 x", WRONG, ""),
            ("lset s x x", WRONG, ""),
        ]);
    }

    /// LINSERT: both sides, first matching pivot, missing pivot and key, syntax first.
    #[test]
    fn linsert() {
        check_transcript(&[
            ("linsert missing before a x", ":0\n", ""),
            ("linsert missing middle a x", SYNTAX, ""),
            ("rpush l a b c", ":3\n", ""),
            ("linsert l before a x", ":4\n", ""),
            ("linsert l AFTER c y", ":5\n", ""),
            ("linsert l after b z", ":6\n", ""),
            ("linsert l before nope q", ":-1\n", ""),
            (
                "lrange l 0 -1",
                "*6\n$1\nx\n$1\na\n$1\nb\n$1\nz\n$1\nc\n$1\ny\n",
                "",
            ),
            ("rpush d a a", ":2\n", ""),
            ("linsert d after a b", ":3\n", ""),
            ("lrange d 0 -1", "*3\n$1\na\n$1\nb\n$1\na\n", ""),
            ("set s v", "+OK\n", ""),
            ("linsert s before a x", WRONG, ""),
            ("linsert s around a x", SYNTAX, ""),
        ]);
    }

    /// LREM from the head, from the tail, all; the key goes with its last element.
    #[test]
    fn lrem() {
        check_transcript(&[
            ("rpush l a b a c a b a", ":7\n", ""),
            ("lrem l 2 a", ":2\n", ""),
            (
                "lrange l 0 -1",
                "*5\n$1\nb\n$1\nc\n$1\na\n$1\nb\n$1\na\n",
                "",
            ),
            ("lrem l -1 a", ":1\n", ""),
            ("lrange l 0 -1", "*4\n$1\nb\n$1\nc\n$1\na\n$1\nb\n", ""),
            ("lrem l 0 b", ":2\n", ""),
            ("lrem l 0 nope", ":0\n", ""),
            ("lrange l 0 -1", "*2\n$1\nc\n$1\na\n", ""),
            ("rpush l a a", ":4\n", ""),
            ("lrem l -9223372036854775808 a", ":3\n", ""),
            ("lrem l 1 c", ":1\n", ""),
            ("exists l", ":0\n", ""),
            ("lrem missing 1 a", ":0\n", ""),
            ("lrem missing x a", NOT_INT, ""),
            ("set s v", "+OK\n", ""),
            ("lrem s 1 a", WRONG, ""),
            ("lrem s x a", NOT_INT, ""),
        ]);
    }

    /// LTRIM: ranges like LRANGE's; an empty range deletes the key.
    #[test]
    fn ltrim() {
        check_transcript(&[
            ("ltrim missing 0 1", "+OK\n", ""),
            ("ltrim missing x 1", NOT_INT, ""),
            ("rpush l a b c d e", ":5\n", ""),
            ("ltrim l 1 -2", "+OK\n", ""),
            ("lrange l 0 -1", "*3\n$1\nb\n$1\nc\n$1\nd\n", ""),
            ("ltrim l -100 100", "+OK\n", ""),
            ("llen l", ":3\n", ""),
            ("ltrim l 1 1", "+OK\n", ""),
            ("lrange l 0 -1", "*1\n$1\nc\n", ""),
            ("ltrim l 1 0", "+OK\n", ""),
            ("exists l", ":0\n", ""),
            ("rpush l a b", ":2\n", ""),
            ("ltrim l 5 10", "+OK\n", ""),
            ("exists l", ":0\n", ""),
            ("set s v", "+OK\n", ""),
            ("ltrim s 0 1", WRONG, ""),
            ("ltrim s 0 x", NOT_INT, ""),
        ]);
    }

    /// LPOS: RANK from either end, COUNT (0 = all), MAXLEN, and every error, options
    /// checked before the key.
    #[test]
    fn lpos() {
        let rank_zero = "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\n";
        check_transcript(&[
            ("rpush l a b c 1 2 3 c c", ":8\n", ""),
            ("lpos l c", ":2\n", ""),
            ("lpos l c RANK 2", ":6\n", ""),
            ("lpos l c rank -1", ":7\n", ""),
            ("lpos l c rank -2", ":6\n", ""),
            ("lpos l c count 0", "*3\n:2\n:6\n:7\n", ""),
            ("lpos l c count 2", "*2\n:2\n:6\n", ""),
            ("lpos l c rank 2 count 0", "*2\n:6\n:7\n", ""),
            ("lpos l c rank -1 count 2", "*2\n:7\n:6\n", ""),
            ("lpos l c maxlen 1", NULL.0, NULL.1),
            ("lpos l c maxlen 3", ":2\n", ""),
            ("lpos l c count 0 maxlen 7", "*2\n:2\n:6\n", ""),
            ("lpos l c rank -1 maxlen 1", ":7\n", ""),
            ("lpos l c rank 1 rank 3", ":7\n", ""),
            ("lpos l x", NULL.0, NULL.1),
            ("lpos l x count 5", "*0\n", ""),
            ("lpos l c rank 9", NULL.0, NULL.1),
            ("lpos l c rank 9 count 1", "*0\n", ""),
            ("lpos missing c", NULL.0, NULL.1),
            ("lpos missing c count 1", "*0\n", ""),
            ("lpos l c rank 0", rank_zero, ""),
            ("lpos missing c rank 0", rank_zero, ""),
            ("lpos l c rank x", NOT_INT, ""),
            (
                "lpos l c rank -9223372036854775808",
                "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\n",
                "",
            ),
            ("lpos l c count -1", "-ERR COUNT can't be negative\n", ""),
            ("lpos l c count x", "-ERR COUNT can't be negative\n", ""),
            ("lpos l c maxlen -1", "-ERR MAXLEN can't be negative\n", ""),
            ("lpos l c maxlen 1.5", "-ERR MAXLEN can't be negative\n", ""),
            ("lpos l c rank", SYNTAX, ""),
            ("lpos l c foo 1", SYNTAX, ""),
            ("set s v", "+OK\n", ""),
            ("lpos s c", WRONG, ""),
            ("lpos s c rank 0", rank_zero, ""),
        ]);
    }

    /// LMOVE and RPOPLPUSH: all four directions, rotation onto the same key, types checked
    /// before anything moves, the source deleted with its last element.
    #[test]
    fn moves() {
        check_transcript(&[
            ("rpush src a b c", ":3\n", ""),
            ("lmove src dst left right", "$1\na\n", ""),
            ("lmove src dst RIGHT LEFT", "$1\nc\n", ""),
            ("lrange dst 0 -1", "*2\n$1\nc\n$1\na\n", ""),
            ("rpoplpush src dst", "$1\nb\n", ""),
            ("exists src", ":0\n", ""),
            ("lmove src dst left left", NULL.0, NULL.1),
            ("rpoplpush src dst", NULL.0, NULL.1),
            ("lmove dst dst left right", "$1\nb\n", ""),
            ("lrange dst 0 -1", "*3\n$1\nc\n$1\na\n$1\nb\n", ""),
            ("rpoplpush dst dst", "$1\nb\n", ""),
            ("lrange dst 0 -1", "*3\n$1\nb\n$1\nc\n$1\na\n", ""),
            ("lmove dst dst right right", "$1\na\n", ""),
            ("lrange dst 0 -1", "*3\n$1\nb\n$1\nc\n$1\na\n", ""),
            ("rpush one x", ":1\n", ""),
            ("lmove one one right left", "$1\nx\n", ""),
            ("lrange one 0 -1", "*1\n$1\nx\n", ""),
            ("lmove one other left left", "$1\nx\n", ""),
            ("exists one", ":0\n", ""),
            ("lrange other 0 -1", "*1\n$1\nx\n", ""),
            ("lmove src dst up left", SYNTAX, ""),
            ("lmove src dst left down", SYNTAX, ""),
            ("set s v", "+OK\n", ""),
            ("lmove s dst left left", WRONG, ""),
            ("lmove dst s left left", WRONG, ""),
            ("lrange dst 0 -1", "*3\n$1\nb\n$1\nc\n$1\na\n", ""),
            ("lmove missing s left left", NULL.0, NULL.1),
            ("rpoplpush dst s", WRONG, ""),
            ("rpoplpush s dst", WRONG, ""),
            ("lmove s dst sideways left", SYNTAX, ""),
        ]);
    }

    /// LMPOP: first non-empty key in order, COUNT, and every error in Redis's order.
    #[test]
    fn lmpop() {
        let numkeys = "-ERR numkeys should be greater than 0\n";
        let count = "-ERR count should be greater than 0\n";
        check_transcript(&[
            ("lmpop 2 a b left", NULL_ARRAY.0, NULL_ARRAY.1),
            ("rpush b 1 2 3", ":3\n", ""),
            ("lmpop 2 a b left", "*2\n$1\nb\n*1\n$1\n1\n", ""),
            (
                "lmpop 2 a b right count 5",
                "*2\n$1\nb\n*2\n$1\n3\n$1\n2\n",
                "",
            ),
            ("exists b", ":0\n", ""),
            ("rpush a x y", ":2\n", ""),
            ("rpush b z", ":1\n", ""),
            ("lmpop 2 a b RIGHT COUNT 1", "*2\n$1\na\n*1\n$1\ny\n", ""),
            ("lmpop 0 a left", numkeys, ""),
            ("lmpop -1 a left", numkeys, ""),
            ("lmpop x a left", numkeys, ""),
            ("lmpop 3 a b left", SYNTAX, ""),
            ("lmpop 9223372036854775807 a left", SYNTAX, ""),
            ("lmpop 1 a middle", SYNTAX, ""),
            ("lmpop 1 a left count 0", count, ""),
            ("lmpop 1 a left count -1", count, ""),
            ("lmpop 1 a left count x", count, ""),
            ("lmpop 1 a left count", SYNTAX, ""),
            ("lmpop 1 a left count 1 count 1", SYNTAX, ""),
            ("lmpop 1 a left foo", SYNTAX, ""),
            ("set s v", "+OK\n", ""),
            ("lmpop 2 s a left", WRONG, ""),
            ("lmpop 2 a s left", "*2\n$1\na\n*1\n$1\nx\n", ""),
            ("lmpop 2 missing s left", WRONG, ""),
            ("lmpop 1 s left count 0", count, ""),
            (
                "lmpop 1",
                "-ERR wrong number of arguments for 'lmpop' command\n",
                "",
            ),
        ]);
    }

    /// BLPOP/BRPOP in apply: served at once from the first non-empty list, the marker
    /// when none is, the timeout checked first.
    #[test]
    fn blpop_and_brpop_in_apply() {
        check_transcript(&[
            ("rpush l a b c", ":3\n", ""),
            ("blpop missing l 0", "*2\n$1\nl\n$1\na\n", ""),
            ("brpop l 1.5", "*2\n$1\nl\n$1\nc\n", ""),
            ("blpop l 0", "*2\n$1\nl\n$1\nb\n", ""),
            ("exists l", ":0\n", ""),
            ("blpop l 0", BLOCKED_REPLY, ""),
            ("brpop l missing 0.5", BLOCKED_REPLY, ""),
            ("blpop l x", NOT_FLOAT, ""),
            ("blpop l -1", NEGATIVE, ""),
            ("brpop l inf", "-ERR timeout is out of range\n", ""),
            ("set s v", "+OK\n", ""),
            ("blpop s 0", WRONG, ""),
            ("blpop s x", NOT_FLOAT, ""),
            ("rpush l2 q", ":1\n", ""),
            ("blpop missing s l2 0", WRONG, ""),
            ("brpop l2 s 0", "*2\n$2\nl2\n$1\nq\n", ""),
            (
                "blpop l",
                "-ERR wrong number of arguments for 'blpop' command\n",
                "",
            ),
        ]);
    }

    /// BLMOVE/BRPOPLPUSH in apply: only the source decides whether to wait.
    #[test]
    fn blmove_and_brpoplpush_in_apply() {
        check_transcript(&[
            ("rpush src a b", ":2\n", ""),
            ("blmove src dst left right 0", "$1\na\n", ""),
            ("brpoplpush src dst 0", "$1\nb\n", ""),
            ("exists src", ":0\n", ""),
            ("lrange dst 0 -1", "*2\n$1\nb\n$1\na\n", ""),
            ("blmove src dst left right 0", BLOCKED_REPLY, ""),
            ("brpoplpush src dst 1", BLOCKED_REPLY, ""),
            ("blmove src dst up right 0", SYNTAX, ""),
            ("blmove src dst up right x", SYNTAX, ""),
            ("blmove src dst left right -1", NEGATIVE, ""),
            ("blmove src dst left right abc", NOT_FLOAT, ""),
            ("brpoplpush src dst abc", NOT_FLOAT, ""),
            ("set s v", "+OK\n", ""),
            ("blmove s dst left left 0", WRONG, ""),
            ("brpoplpush s dst 0", WRONG, ""),
            ("blmove src s left left 0", BLOCKED_REPLY, ""),
            ("blmove dst s left left 0", WRONG, ""),
            ("lrange dst 0 -1", "*2\n$1\nb\n$1\na\n", ""),
            ("blmove dst dst left right 0", "$1\nb\n", ""),
            ("lrange dst 0 -1", "*2\n$1\na\n$1\nb\n", ""),
        ]);
    }

    /// BLMPOP in apply: LMPOP's checks first, then the timeout, then the keys.
    #[test]
    fn blmpop_in_apply() {
        check_transcript(&[
            ("blmpop 0 2 a b left", BLOCKED_REPLY, ""),
            ("rpush b 1 2 3", ":3\n", ""),
            (
                "blmpop 0 2 a b left count 2",
                "*2\n$1\nb\n*2\n$1\n1\n$1\n2\n",
                "",
            ),
            ("blmpop 1.5 1 b right", "*2\n$1\nb\n*1\n$1\n3\n", ""),
            ("exists b", ":0\n", ""),
            ("blmpop x 1 b left", NOT_FLOAT, ""),
            ("blmpop -1 1 b left", NEGATIVE, ""),
            (
                "blmpop x 0 b left",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            ("blmpop x 1 b middle", SYNTAX, ""),
            (
                "blmpop x 1 b left count 0",
                "-ERR count should be greater than 0\n",
                "",
            ),
            ("blmpop 0 2 b left", SYNTAX, ""),
            ("set s v", "+OK\n", ""),
            ("blmpop 0 1 s left", WRONG, ""),
            ("blmpop 0 2 missing s left", WRONG, ""),
        ]);
    }

    /// Inside EXEC a blocking command that cannot be served answers at once with the null
    /// Redis gives (a null array for the pops, a null for the moves) and never the marker.
    #[test]
    fn blocking_commands_inside_exec_answer_null() {
        use crate::keyspace::{Keyspace, Op, Request};
        let commands = [
            "blpop l 0",
            "brpop l m 0",
            "blmpop 0 1 l left",
            "blmove l d left left 0",
            "brpoplpush l d 0",
            "blpop l x",
            "rpush l a",
            "blpop l 0",
            "blmove l d left left 0",
            "rpush l b",
            "brpoplpush l d 0",
            "blmpop 0 2 l d right count 9",
        ];
        let mut ks = Keyspace::new();
        let reply = ks.apply(
            1,
            &Request {
                time_ms: 1000,
                op: Op::Exec {
                    db: 0,
                    watches: vec![],
                    commands: commands
                        .iter()
                        .map(|line| {
                            line.split(' ')
                                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                                .collect()
                        })
                        .collect(),
                },
            },
        );
        let resp2 = "*12\n*-1\n*-1\n*-1\n$-1\n$-1\n-ERR timeout is not a float or out of range\n\
                     :1\n*2\n$1\nl\n$1\na\n$-1\n:1\n$1\nb\n*2\n$1\nd\n*1\n$1\nb\n";
        let resp3 = "*12\n_\n_\n_\n_\n_\n-ERR timeout is not a float or out of range\n\
                     :1\n*2\n$1\nl\n$1\na\n_\n:1\n$1\nb\n*2\n$1\nd\n*1\n$1\nb\n";
        for (resp3_on, want) in [(false, resp2), (true, resp3)] {
            let mut out = bytes::BytesMut::new();
            crate::resp::encode(&reply, resp3_on, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), want.replace('\n', "\r\n"));
        }
        assert_eq!(ks.total_keys(), 0);
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(-1, -2, 3), None);
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(clamp_range(0, -1, 0), None);
        assert_eq!(clamp_index(-1, 3), Some(2));
        assert_eq!(clamp_index(-4, 3), None);
        assert_eq!(clamp_index(3, 3), None);
        assert_eq!(clamp_index(i64::MIN, 3), None);
    }
}

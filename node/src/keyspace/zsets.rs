//! Sorted-set commands: members with scores, read and changed by rank, score and
//! lexicographic ranges, popped (also by the blocking commands' apply side), combined
//! (union, intersection, difference, sets counting as score 1) and scanned, with Redis
//! 7.2's replies and error texts.
//!
//! Numbers parse as Redis parses them: scores and weights as `string2d` (C's `strtod` over
//! the whole argument), range bounds as `strtod` over a C string with `(` for an exclusive
//! bound. A write works on an O(1) copy of the persistent set and stores it back only when
//! something changed, so a command that changes nothing leaves the key's version (WATCH)
//! alone, as Redis does.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Bound;

use bytes::Bytes;

use super::{glob, CompactBytes, Entry, ReadCtx, Rng, SortedSet, Value, WriteCtx, BLOCKED};
use crate::command::errors as err;
use crate::command::parse_i64;
use crate::resp::{format_double, Frame};

macro_rules! try_frame {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(frame) => return frame,
        }
    };
}

/// Sets up to this size answer `ZSCAN` in one reply, as Redis does for its listpack
/// encoding (`zset-max-listpack-entries`).
const SCAN_WHOLE_UP_TO: usize = 128;

// ---------------------------------------------------------------------------------------
// Number parsing, as C does it

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What C's `strtod` reads at the start of `text`.
struct Strtod {
    value: f64,
    /// Bytes consumed; 0 when no number was found (C then points back at the start).
    used: usize,
    /// `errno == ERANGE`: a finite number too large for a double, or a non-zero one that
    /// rounded to zero.
    range_error: bool,
}

fn starts_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word))
}

/// `strtod` in the C locale: leading spaces, a sign, then `inf`/`infinity`/`nan`, a hex
/// float (`0x1.8p3`) or a decimal one (`1.5e3`, `.5`, `1.`).
fn strtod(text: &[u8]) -> Strtod {
    let none = Strtod {
        value: 0.0,
        used: 0,
        range_error: false,
    };
    let mut i = text.iter().take_while(|&&b| is_c_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let rest = text.get(i..).unwrap_or_default();
    let sign = |v: f64| if negative { -v } else { v };
    if starts_with_ignore_case(rest, b"inf") {
        let len = if starts_with_ignore_case(rest, b"infinity") {
            8
        } else {
            3
        };
        return Strtod {
            value: sign(f64::INFINITY),
            used: i + len,
            range_error: false,
        };
    }
    if starts_with_ignore_case(rest, b"nan") {
        return Strtod {
            value: f64::NAN,
            used: i + 3 + nan_payload_len(rest.get(3..).unwrap_or_default()),
            range_error: false,
        };
    }
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((value, len, range_error)) = hex_float(&rest[2..]) {
            return Strtod {
                value: sign(value),
                used: i + 2 + len,
                range_error,
            };
        }
    }
    let int_digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = int_digits;
    let mut digits = int_digits;
    if rest.get(end) == Some(&b'.') {
        let frac = rest
            .get(end + 1..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        digits += frac;
        if digits > 0 {
            end += 1 + frac;
        }
    }
    if digits == 0 {
        return none;
    }
    let nonzero = rest[..end].iter().any(|&b| matches!(b, b'1'..=b'9'));
    if matches!(rest.get(end), Some(b'e' | b'E')) {
        let mut k = end + 1;
        if matches!(rest.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        let exp_digits = rest
            .get(k..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if exp_digits > 0 {
            end = k + exp_digits;
        }
    }
    // Only ASCII digits, '.', 'e' and a sign were taken: Rust's grammar accepts all of it.
    let magnitude: f64 = std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    Strtod {
        value: sign(magnitude),
        used: i + end,
        range_error: magnitude.is_infinite() || (magnitude == 0.0 && nonzero),
    }
}

/// Length of a `(n-char-sequence)` after `nan`, 0 when there is none.
fn nan_payload_len(after: &[u8]) -> usize {
    if after.first() != Some(&b'(') {
        return 0;
    }
    let inner = after[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if after.get(1 + inner) == Some(&b')') {
        inner + 2
    } else {
        0
    }
}

/// A hex float's value, length and range error, after its `0x`; `None` without a hex digit
/// (C then reads just the `0`).
fn hex_float(s: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mantissa: u64 = 0;
    let mut exp2: i64 = 0;
    let mut digits = 0;
    let mut i = 0;
    let mut seen_point = false;
    while let Some(&b) = s.get(i) {
        if b == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(d) = (b as char).to_digit(16) else {
            break;
        };
        digits += 1;
        if mantissa < 1 << 59 {
            mantissa = mantissa * 16 + d as u64;
            if seen_point {
                exp2 -= 4;
            }
        } else if !seen_point {
            // Digits past the precision only scale the value.
            exp2 += 4;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut k = i + 1;
        let negative = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let start = k;
        let mut e: i64 = 0;
        while let Some(d) = s.get(k).filter(|b| b.is_ascii_digit()) {
            e = e.saturating_mul(10).saturating_add((d - b'0') as i64);
            k += 1;
        }
        if k > start {
            exp2 = exp2.saturating_add(if negative { -e } else { e });
            i = k;
        }
    }
    let exp = exp2.clamp(-2000, 2000) as i32;
    let value = mantissa as f64 * 2f64.powi(exp);
    let range_error = value.is_infinite() || (value == 0.0 && mantissa != 0);
    Some((value, i, range_error))
}

/// A score, increment or weight argument, as Redis's `string2d`: the whole argument must be
/// a number, without leading space, not NaN, not out of a double's range.
fn parse_score(raw: &[u8]) -> Option<f64> {
    if raw.first().is_none_or(|&b| is_c_space(b)) {
        return None;
    }
    let read = strtod(raw);
    (read.used == raw.len() && !read.range_error && !read.value.is_nan()).then_some(read.value)
}

/// One bound of a score range: `strtod` over the argument as a C string (it ends at a NUL
/// byte), after an optional `(` marking it exclusive. An empty bound reads as 0, as in Redis.
fn parse_score_bound(raw: &[u8]) -> Option<(f64, bool)> {
    let c_string = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let (text, exclusive) = match c_string.split_first() {
        Some((b'(', rest)) => (rest, true),
        _ => (c_string, false),
    };
    let read = strtod(text);
    (read.used == text.len() && !read.value.is_nan()).then_some((read.value, exclusive))
}

// ---------------------------------------------------------------------------------------
// Ranges

/// A range of scores, bounds included unless marked exclusive.
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    min_exclusive: bool,
    max: f64,
    max_exclusive: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Frame> {
        match (parse_score_bound(min), parse_score_bound(max)) {
            (Some((min, min_exclusive)), Some((max, max_exclusive))) => Ok(ScoreRange {
                min,
                min_exclusive,
                max,
                max_exclusive,
            }),
            _ => Err(Frame::error(err::SCORE_RANGE)),
        }
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

/// One bound of a lexicographic range.
#[derive(Clone, Debug)]
enum LexBound {
    /// `-`: below every string.
    Min,
    /// `+`: above every string.
    Max,
    /// `[member`.
    Inclusive(Bytes),
    /// `(member`.
    Exclusive(Bytes),
}

impl LexBound {
    fn parse(raw: &[u8]) -> Option<LexBound> {
        // Redis reads `-` and `+` as C strings: a NUL right after them ends the argument.
        let alone = raw.get(1).is_none_or(|&b| b == 0);
        match raw.split_first()? {
            (b'-', _) if alone => Some(LexBound::Min),
            (b'+', _) if alone => Some(LexBound::Max),
            (b'[', rest) => Some(LexBound::Inclusive(Bytes::copy_from_slice(rest))),
            (b'(', rest) => Some(LexBound::Exclusive(Bytes::copy_from_slice(rest))),
            _ => None,
        }
    }

    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }

    fn text(&self) -> Option<&Bytes> {
        match self {
            LexBound::Inclusive(b) | LexBound::Exclusive(b) => Some(b),
            LexBound::Min | LexBound::Max => None,
        }
    }
}

/// A range of members by byte order, meaningful when every score is equal.
#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, Frame> {
        match (LexBound::parse(min), LexBound::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Frame::error(err::LEX_RANGE)),
        }
    }

    fn above_min(&self, member: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => member >= &b[..],
            LexBound::Exclusive(b) => member > &b[..],
        }
    }

    fn below_max(&self, member: &[u8]) -> bool {
        match &self.max {
            LexBound::Max => true,
            LexBound::Min => false,
            LexBound::Inclusive(b) => member <= &b[..],
            LexBound::Exclusive(b) => member < &b[..],
        }
    }

    /// Whether no string can be in the range (Redis's `sdscmplex` test).
    fn is_empty(&self) -> bool {
        use LexBound::{Max, Min};
        let order = match (&self.min, &self.max) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (a, b) => a.text().cmp(&b.text()),
        };
        order == Ordering::Greater
            || (order == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
    }
}

type Item<'a> = (&'a CompactBytes, f64);

/// Redis's walk over a range: from the first member in range (the last when `reverse`),
/// skip `offset` members without looking at them, then take members while they are in
/// range, at most `limit` (negative: no limit).
fn walk<'a>(
    mut candidates: impl Iterator<Item = Item<'a>>,
    in_range: impl Fn(&Item<'a>) -> bool,
    offset: i64,
    limit: i64,
) -> Vec<Item<'a>> {
    let Some(first) = candidates.next().filter(|item| in_range(item)) else {
        return Vec::new();
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    std::iter::once(first)
        .chain(candidates)
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take_while(|item| in_range(item))
        .take(limit)
        .collect()
}

/// An offset Redis answers with an empty range before looking at the set.
fn offset_out_of_set(zset: &SortedSet, offset: i64) -> bool {
    offset < 0 || (offset > 0 && offset >= zset.len() as i64)
}

/// Members with scores in `range`, ascending (descending when `reverse`).
fn by_score<'a>(
    zset: &'a SortedSet,
    range: &ScoreRange,
    reverse: bool,
    offset: i64,
    limit: i64,
) -> Vec<Item<'a>> {
    if offset_out_of_set(zset, offset) {
        return Vec::new();
    }
    let range = *range;
    if reverse {
        let start = zset
            .iter_score_down_from(range.max, range.max_exclusive)
            .skip_while(move |(_, s)| !range.below_max(*s));
        walk(start, |(_, s)| range.above_min(*s), offset, limit)
    } else {
        // An exclusive `+inf` minimum starts at `+inf` itself: skip what is not above it.
        let start = zset
            .iter_score_from(range.min, range.min_exclusive)
            .skip_while(move |(_, s)| !range.above_min(*s));
        walk(start, |(_, s)| range.below_max(*s), offset, limit)
    }
}

/// Members in the lexicographic `range`, as Redis walks it: from the first member (in score
/// order) at or above the minimum, while below the maximum (mirrored when `reverse`).
fn by_lex<'a>(
    zset: &'a SortedSet,
    range: &LexRange,
    reverse: bool,
    offset: i64,
    limit: i64,
) -> Vec<Item<'a>> {
    if offset_out_of_set(zset, offset) || range.is_empty() {
        return Vec::new();
    }
    let (Some((first, first_score)), Some((last, last_score))) = (zset.first(), zset.last()) else {
        return Vec::new();
    };
    if !range.above_min(last) || !range.below_max(first) {
        return Vec::new();
    }
    // When every score is equal (the case lexicographic ranges are meant for) the order is
    // the byte order, so the start can be found by seeking instead of scanning.
    let same_scores = first_score == last_score;
    if reverse {
        let start: Box<dyn Iterator<Item = Item<'a>> + 'a> = match range.max.text() {
            Some(bound) if same_scores => Box::new(zset.iter_rev_to((first_score, &bound[..]))),
            _ => Box::new(zset.iter().rev()),
        };
        let start = start.skip_while(|(m, _)| !range.below_max(m));
        walk(start, |(m, _)| range.above_min(m), offset, limit)
    } else {
        let start: Box<dyn Iterator<Item = Item<'a>> + 'a> = match range.min.text() {
            Some(bound) if same_scores => Box::new(zset.iter_from((first_score, &bound[..]))),
            _ => Box::new(zset.iter()),
        };
        let start = start.skip_while(|(m, _)| !range.above_min(m));
        walk(start, |(m, _)| range.below_max(m), offset, limit)
    }
}

/// Members by rank from `start` to `end` (inclusive, negative counting from the end),
/// ascending or, when `reverse`, ranked from the highest score.
fn by_rank(zset: &SortedSet, start: i64, end: i64, reverse: bool) -> Vec<Item<'_>> {
    let len = zset.len() as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return Vec::new();
    }
    let end = end.min(len - 1);
    let count = (end - start + 1) as usize;
    // The same members in ascending ranks.
    let (low, high) = if reverse {
        (len - 1 - end, len - 1 - start)
    } else {
        (start, end)
    };
    // Ranks cost a walk here (no subtree sizes): walk from the nearer end.
    let mut items: Vec<Item<'_>> = if low <= len - 1 - high {
        zset.iter().skip(low as usize).take(count).collect()
    } else {
        let mut items: Vec<Item<'_>> = zset
            .iter()
            .rev()
            .skip((len - 1 - high) as usize)
            .take(count)
            .collect();
        items.reverse();
        items
    };
    if reverse {
        items.reverse();
    }
    items
}

// ---------------------------------------------------------------------------------------
// Shared helpers

/// The sorted set in `entry`: `Ok(None)` for a missing key, WRONGTYPE for another type.
fn zset_of(entry: Option<&Entry>) -> Result<Option<&SortedSet>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(&**z)),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// Runs `edit` on the sorted set under `key` in place (a working copy would share every node
/// with the stored set, and each change would copy its path through both trees). `edit`
/// returns its result and whether it changed the set: a change stamps the key for `WATCH`
/// and wakes blocked clients, and an emptied set is deleted. `Ok(None)` when there is no key.
fn edit_zset<R>(
    ctx: &mut WriteCtx<'_>,
    key: &Bytes,
    edit: impl FnOnce(&mut SortedSet) -> (R, bool),
) -> Result<Option<R>, Frame> {
    if zset_of(ctx.get(key))?.is_none() {
        return Ok(None);
    }
    let Some(Entry {
        value: Value::ZSet(zset),
        ..
    }) = ctx.get_mut_unstamped(key)
    else {
        return Ok(None);
    };
    let (result, changed) = edit(zset);
    let emptied = zset.is_empty();
    if emptied {
        ctx.remove(key);
    } else if changed {
        ctx.mark_changed(key);
    }
    Ok(Some(result))
}

/// A `*STORE` command's result replaces `dst` whatever it held (its expiry goes too), or
/// deletes it when empty; the reply is the stored size.
fn store_result(ctx: &mut WriteCtx<'_>, dst: &Bytes, zset: SortedSet) -> Frame {
    let len = zset.len();
    if zset.is_empty() {
        ctx.remove(dst);
    } else {
        ctx.set(dst, Value::ZSet(Box::new(zset)), None);
    }
    Frame::Integer(len as i64)
}

/// Members alone, or with their scores: flat in RESP2, `[member, score]` pairs in RESP3.
fn members_reply<'a>(items: impl IntoIterator<Item = Item<'a>>, withscores: bool) -> Frame {
    let items = items.into_iter();
    if withscores {
        Frame::Pairs(
            items
                .map(|(m, s)| (Frame::Bulk(m.to_bytes()), Frame::Double(s)))
                .collect(),
        )
    } else {
        Frame::Array(items.map(|(m, _)| Frame::Bulk(m.to_bytes())).collect())
    }
}

/// `[member, score]` arrays in both protocols (ZMPOP, BZMPOP).
fn nested_pairs(items: Vec<(Bytes, f64)>) -> Frame {
    Frame::Array(
        items
            .into_iter()
            .map(|(m, s)| Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)]))
            .collect(),
    )
}

fn pop(zset: &mut SortedSet, max: bool, count: usize) -> Vec<(Bytes, f64)> {
    (0..count)
        .map_while(|_| if max { zset.pop_max() } else { zset.pop_min() })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Adding and removing

#[derive(Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What one score-member pair did.
enum Added {
    /// Newly added with this score.
    New(f64),
    /// Score changed to this.
    Updated(f64),
    /// Already there with this very score (an INCR of 0 too): processed, nothing changed.
    Same(f64),
    /// Skipped by NX, XX, GT or LT.
    Skipped,
}

/// `zsetAdd`: applies one pair under the flags; `None` when an increment makes NaN.
fn add_one(zset: &mut SortedSet, score: f64, member: &Bytes, flags: AddFlags) -> Option<Added> {
    let Some(current) = zset.score(member) else {
        if flags.xx {
            return Some(Added::Skipped);
        }
        zset.insert(CompactBytes::copy(member), score);
        return Some(Added::New(score));
    };
    if flags.nx {
        return Some(Added::Skipped);
    }
    let score = if flags.incr { score + current } else { score };
    if score.is_nan() {
        return None;
    }
    if (flags.lt && score >= current) || (flags.gt && score <= current) {
        return Some(Added::Skipped);
    }
    if score == current {
        return Some(Added::Same(score));
    }
    zset.insert(CompactBytes::copy(member), score);
    Some(Added::Updated(score))
}

/// What a ZADD did.
struct Tally {
    added: i64,
    updated: i64,
    processed: i64,
    last_score: f64,
}

/// Applies every pair; `None` when an increment makes NaN (before anything changed, since
/// INCR takes a single pair).
fn add_all(zset: &mut SortedSet, scored: &[(f64, &Bytes)], flags: AddFlags) -> Option<Tally> {
    let mut tally = Tally {
        added: 0,
        updated: 0,
        processed: 0,
        last_score: 0.0,
    };
    for &(score, member) in scored {
        match add_one(zset, score, member, flags)? {
            Added::New(s) => {
                (tally.added, tally.processed, tally.last_score) =
                    (tally.added + 1, tally.processed + 1, s)
            }
            Added::Updated(s) => {
                (tally.updated, tally.processed, tally.last_score) =
                    (tally.updated + 1, tally.processed + 1, s)
            }
            Added::Same(s) => (tally.processed, tally.last_score) = (tally.processed + 1, s),
            Added::Skipped => {}
        }
    }
    Some(tally)
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, false)
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, true)
}

fn zadd_generic(ctx: &mut WriteCtx<'_>, args: &[Bytes], incr: bool) -> Frame {
    let mut flags = AddFlags {
        incr,
        ..AddFlags::default()
    };
    // Options come first; the first word that is not one starts the pairs (ZINCRBY goes
    // through the same loop, so `ZINCRBY key nx member` is a syntax error there too).
    let mut at = 2;
    while let Some(word) = args.get(at) {
        let flag = match word.to_ascii_lowercase().as_slice() {
            b"nx" => &mut flags.nx,
            b"xx" => &mut flags.xx,
            b"gt" => &mut flags.gt,
            b"lt" => &mut flags.lt,
            b"ch" => &mut flags.ch,
            b"incr" => &mut flags.incr,
            _ => break,
        };
        *flag = true;
        at += 1;
    }
    let pairs = args.get(at..).unwrap_or_default();
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Frame::error(err::SYNTAX);
    }
    if flags.nx && flags.xx {
        return Frame::error(err::ZADD_NX_XX);
    }
    if (flags.gt || flags.lt) && (flags.nx || (flags.gt && flags.lt)) {
        return Frame::error(err::ZADD_GT_LT_NX);
    }
    if flags.incr && pairs.len() > 2 {
        return Frame::error(err::ZADD_INCR_PAIRS);
    }
    let mut scored = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let Some(score) = parse_score(&pair[0]) else {
            return Frame::error(err::NOT_FLOAT);
        };
        scored.push((score, &pair[1]));
    }
    let key = &args[1];
    let edited = try_frame!(edit_zset(ctx, key, |zset| {
        let tally = add_all(zset, &scored, flags);
        let changed = matches!(&tally, Some(t) if t.added + t.updated > 0);
        (tally, changed)
    }));
    let tally = match edited {
        Some(tally) => tally,
        None if flags.xx => {
            return if flags.incr {
                Frame::Null
            } else {
                Frame::Integer(0)
            }
        }
        None => {
            let mut zset = SortedSet::new();
            let tally = add_all(&mut zset, &scored, flags);
            if !zset.is_empty() {
                ctx.set(key, Value::ZSet(Box::new(zset)), None);
            }
            tally
        }
    };
    // Only an INCR can make NaN, and it has a single pair: nothing changed.
    let Some(Tally {
        added,
        updated,
        processed,
        last_score,
    }) = tally
    else {
        return Frame::error(err::SCORE_NAN);
    };
    if flags.incr {
        if processed > 0 {
            Frame::Double(last_score)
        } else {
            Frame::Null
        }
    } else {
        Frame::Integer(if flags.ch { added + updated } else { added })
    }
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let deleted = try_frame!(edit_zset(ctx, key, |zset| {
        let mut deleted = 0;
        for member in &args[2..] {
            if zset.remove(member).is_some() {
                deleted += 1;
            }
            if zset.is_empty() {
                break;
            }
        }
        (deleted, deleted > 0)
    }));
    Frame::Integer(deleted.unwrap_or(0))
}

/// ZREM that removes nothing: no sorted set there, or none of the members in it.
pub fn zrem_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let zset = zset_of(ctx.get(&args[1])).ok()?;
    let absent = zset.is_none_or(|z| args[2..].iter().all(|m| z.score(m).is_none()));
    absent.then_some(Frame::Integer(0))
}

/// The range of a ZREMRANGEBY* or ZRANGE command.
#[derive(Clone, Debug)]
enum RangeSpec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// How a range is given, before the arguments settle it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeBy {
    Auto,
    Rank,
    Score,
    Lex,
}

fn parse_spec(by: RangeBy, min: &[u8], max: &[u8]) -> Result<RangeSpec, Frame> {
    match by {
        RangeBy::Score => Ok(RangeSpec::Score(ScoreRange::parse(min, max)?)),
        RangeBy::Lex => Ok(RangeSpec::Lex(LexRange::parse(min, max)?)),
        RangeBy::Auto | RangeBy::Rank => match (parse_i64(min), parse_i64(max)) {
            (Some(start), Some(end)) => Ok(RangeSpec::Rank(start, end)),
            _ => Err(Frame::error(err::NOT_INTEGER)),
        },
    }
}

fn remove_range(ctx: &mut WriteCtx<'_>, args: &[Bytes], by: RangeBy) -> Frame {
    let spec = try_frame!(parse_spec(by, &args[2], &args[3]));
    let key = &args[1];
    let removed = try_frame!(edit_zset(ctx, key, |zset| {
        let doomed: Vec<CompactBytes> = match &spec {
            RangeSpec::Rank(start, end) => by_rank(zset, *start, *end, false),
            RangeSpec::Score(range) => by_score(zset, range, false, 0, -1),
            RangeSpec::Lex(range) => by_lex(zset, range, false, 0, -1),
        }
        .into_iter()
        .map(|(m, _)| m.clone())
        .collect();
        for member in &doomed {
            zset.remove(member);
        }
        (doomed.len(), !doomed.is_empty())
    }));
    Frame::Integer(removed.unwrap_or(0) as i64)
}

/// ZREMRANGEBYRANK key start stop
pub fn zremrangebyrank(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    remove_range(ctx, args, RangeBy::Rank)
}

/// ZREMRANGEBYSCORE key min max
pub fn zremrangebyscore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    remove_range(ctx, args, RangeBy::Score)
}

/// ZREMRANGEBYLEX key min max
pub fn zremrangebylex(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    remove_range(ctx, args, RangeBy::Lex)
}

// ---------------------------------------------------------------------------------------
// Reading members and scores

/// ZCARD key
pub fn zcard(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let zset = try_frame!(zset_of(ctx.get(&args[1])));
    Frame::Integer(zset.map_or(0, |z| z.len() as i64))
}

/// ZSCORE key member
pub fn zscore(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let zset = try_frame!(zset_of(ctx.get(&args[1])));
    zset.and_then(|z| z.score(&args[2]))
        .map_or(Frame::Null, Frame::Double)
}

/// ZMSCORE key member [member ...]: a missing key reads as an empty set.
pub fn zmscore(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let zset = try_frame!(zset_of(ctx.get(&args[1])));
    Frame::Array(
        args[2..]
            .iter()
            .map(|m| {
                zset.and_then(|z| z.score(m))
                    .map_or(Frame::Null, Frame::Double)
            })
            .collect(),
    )
}

/// ZRANK key member [WITHSCORE]
pub fn zrank(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    rank_generic(ctx, args, false)
}

/// ZREVRANK key member [WITHSCORE]
pub fn zrevrank(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    rank_generic(ctx, args, true)
}

fn rank_generic(ctx: &ReadCtx<'_>, args: &[Bytes], reverse: bool) -> Frame {
    if args.len() > 4 {
        return Frame::error(err::wrong_arity(if reverse { "zrevrank" } else { "zrank" }));
    }
    let withscore = match args.get(3) {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"withscore") => true,
        Some(_) => return Frame::error(err::SYNTAX),
    };
    let missing = if withscore {
        Frame::NullArray
    } else {
        Frame::Null
    };
    let Some(zset) = try_frame!(zset_of(ctx.get(&args[1]))) else {
        return missing;
    };
    let Some((rank, score)) = zset.rank(&args[2]) else {
        return missing;
    };
    let rank = if reverse { zset.len() - 1 - rank } else { rank } as i64;
    if withscore {
        Frame::Array(vec![Frame::Integer(rank), Frame::Double(score)])
    } else {
        Frame::Integer(rank)
    }
}

/// ZCOUNT key min max
pub fn zcount(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let range = try_frame!(ScoreRange::parse(&args[2], &args[3]));
    let zset = try_frame!(zset_of(ctx.get(&args[1])));
    Frame::Integer(zset.map_or(0, |z| by_score(z, &range, false, 0, -1).len() as i64))
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let range = try_frame!(LexRange::parse(&args[2], &args[3]));
    let zset = try_frame!(zset_of(ctx.get(&args[1])));
    Frame::Integer(zset.map_or(0, |z| by_lex(z, &range, false, 0, -1).len() as i64))
}

/// A parsed ZRANGE-family request.
struct RangeQuery {
    spec: RangeSpec,
    reverse: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

/// Parses `<src> <min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT offset count]` from
/// `args[src_at]` on, with Redis's checks in Redis's order; the legacy commands fix `by` and
/// `reverse` up front, so those words are syntax errors for them.
fn parse_range(
    args: &[Bytes],
    src_at: usize,
    store: bool,
    mut by: RangeBy,
    mut reverse: Option<bool>,
) -> Result<RangeQuery, Frame> {
    let mut withscores = false;
    let (mut offset, mut limit) = (0, -1);
    let mut j = src_at + 3;
    while let Some(word) = args.get(j) {
        let left = args.len() - j - 1;
        if !store && word.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if word.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (parse_i64(&args[j + 1]), parse_i64(&args[j + 2])) {
                (Some(o), Some(l)) => (offset, limit) = (o, l),
                _ => return Err(Frame::error(err::NOT_INTEGER)),
            }
            j += 2;
        } else if reverse.is_none() && word.eq_ignore_ascii_case(b"rev") {
            reverse = Some(true);
        } else if by == RangeBy::Auto && word.eq_ignore_ascii_case(b"bylex") {
            by = RangeBy::Lex;
        } else if by == RangeBy::Auto && word.eq_ignore_ascii_case(b"byscore") {
            by = RangeBy::Score;
        } else {
            return Err(Frame::error(err::SYNTAX));
        }
        j += 1;
    }
    let reverse = reverse.unwrap_or(false);
    if by == RangeBy::Auto {
        by = RangeBy::Rank;
    }
    // Redis tests the count, not whether LIMIT was given: `LIMIT 0 -1` passes by rank.
    if limit != -1 && by == RangeBy::Rank {
        return Err(Frame::error(err::LIMIT_NEEDS_BY));
    }
    if withscores && by == RangeBy::Lex {
        return Err(Frame::error(err::WITHSCORES_BYLEX));
    }
    let (mut min, mut max) = (&args[src_at + 1], &args[src_at + 2]);
    // Reversed score and lex ranges are written max first.
    if reverse && by != RangeBy::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    Ok(RangeQuery {
        spec: parse_spec(by, min, max)?,
        reverse,
        withscores,
        offset,
        limit,
    })
}

fn run_range<'a>(zset: &'a SortedSet, query: &RangeQuery) -> Vec<Item<'a>> {
    match &query.spec {
        RangeSpec::Rank(start, end) => by_rank(zset, *start, *end, query.reverse),
        RangeSpec::Score(range) => by_score(zset, range, query.reverse, query.offset, query.limit),
        RangeSpec::Lex(range) => by_lex(zset, range, query.reverse, query.offset, query.limit),
    }
}

fn range_read(ctx: &ReadCtx<'_>, args: &[Bytes], by: RangeBy, reverse: Option<bool>) -> Frame {
    let query = try_frame!(parse_range(args, 1, false, by, reverse));
    match try_frame!(zset_of(ctx.get(&args[1]))) {
        None => Frame::Array(Vec::new()),
        Some(zset) => members_reply(run_range(zset, &query), query.withscores),
    }
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
pub fn zrange(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Auto, None)
}

/// ZREVRANGE key start stop [WITHSCORES]
pub fn zrevrange(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Rank, Some(true))
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
pub fn zrangebyscore(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Score, Some(false))
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
pub fn zrevrangebyscore(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Score, Some(true))
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
pub fn zrangebylex(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Lex, Some(false))
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
pub fn zrevrangebylex(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    range_read(ctx, args, RangeBy::Lex, Some(true))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
pub fn zrangestore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let query = try_frame!(parse_range(args, 2, true, RangeBy::Auto, None));
    let result = {
        let read = ctx.as_read();
        let zset = try_frame!(zset_of(read.get(&args[2])));
        let mut result = SortedSet::new();
        for (member, score) in zset.map(|z| run_range(z, &query)).unwrap_or_default() {
            result.insert(member.clone(), score);
        }
        result
    };
    store_result(ctx, &args[1], result)
}

// ---------------------------------------------------------------------------------------
// Popping, blocking or not

/// ZPOPMIN key [count]
pub fn zpopmin(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    zpop(ctx, args, false)
}

/// ZPOPMAX key [count]
pub fn zpopmax(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    zpop(ctx, args, true)
}

fn zpop(ctx: &mut WriteCtx<'_>, args: &[Bytes], max: bool) -> Frame {
    if args.len() > 3 {
        return Frame::error(err::SYNTAX);
    }
    let count = match args.get(2) {
        None => None,
        Some(raw) => match parse_i64(raw) {
            Some(n) if n >= 0 => Some(n),
            _ => return Frame::error(err::MUST_BE_POSITIVE),
        },
    };
    let key = &args[1];
    if zset_of(ctx.get(key)).is_ok_and(|z| z.is_none()) {
        return Frame::Array(Vec::new());
    }
    if count == Some(0) {
        try_frame!(zset_of(ctx.get(key)));
        return Frame::Array(Vec::new());
    }
    let wanted = count.map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let Some(popped) = try_frame!(edit_zset(ctx, key, |zset| {
        let popped = pop(zset, max, wanted);
        let changed = !popped.is_empty();
        (popped, changed)
    })) else {
        return Frame::Array(Vec::new());
    };
    match count {
        // A plain pop answers one flat pair in either protocol.
        None => Frame::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Frame::Bulk(m), Frame::Double(s)])
                .collect(),
        ),
        Some(_) => Frame::Pairs(
            popped
                .into_iter()
                .map(|(m, s)| (Frame::Bulk(m), Frame::Double(s)))
                .collect(),
        ),
    }
}

/// A blocking command's timeout, checked as the list commands check it (one parser for both,
/// Redis's `getTimeoutFromObjectOrReply`).
fn check_timeout(raw: &[u8], now_ms: u64) -> Result<(), Frame> {
    super::blocking_timeout_ms(raw, now_ms)
        .map(|_| ())
        .map_err(Frame::error)
}

/// What a blocking command answers when no key can serve it: inside MULTI a blocking
/// command never blocks (Redis answers a null array); otherwise the marker the connection
/// turns into a wait.
fn blocked(ctx: &WriteCtx<'_>) -> Frame {
    if ctx.in_transaction {
        Frame::NullArray
    } else {
        Frame::Error(BLOCKED.to_string())
    }
}

/// BZPOPMIN key [key ...] timeout
pub fn bzpopmin(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    bzpop(ctx, args, false)
}

/// BZPOPMAX key [key ...] timeout
pub fn bzpopmax(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    bzpop(ctx, args, true)
}

fn bzpop(ctx: &mut WriteCtx<'_>, args: &[Bytes], max: bool) -> Frame {
    let Some((timeout, keys)) = args.get(1..).and_then(<[Bytes]>::split_last) else {
        return Frame::error(err::wrong_arity(if max { "bzpopmax" } else { "bzpopmin" }));
    };
    try_frame!(check_timeout(timeout, ctx.now_ms));
    for key in keys {
        let popped = try_frame!(edit_zset(ctx, key, |zset| {
            let popped = pop(zset, max, 1).pop();
            let changed = popped.is_some();
            (popped, changed)
        }));
        let Some(Some((member, score))) = popped else {
            continue;
        };
        return Frame::Array(vec![
            Frame::Bulk(key.clone()),
            Frame::Bulk(member),
            Frame::Double(score),
        ]);
    }
    blocked(ctx)
}

/// The keys, end and count of ZMPOP/BZMPOP.
struct MultiPop<'a> {
    keys: &'a [Bytes],
    max: bool,
    count: usize,
}

/// `numkeys key [key ...] MIN|MAX [COUNT count]` from `args[numkeys_at]` on.
fn parse_multi_pop(args: &[Bytes], numkeys_at: usize) -> Result<MultiPop<'_>, Frame> {
    let numkeys = match parse_i64(&args[numkeys_at]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(Frame::error(err::NUMKEYS_POSITIVE)),
    };
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&at| at < args.len())
        .ok_or_else(|| Frame::error(err::SYNTAX))?;
    let max = match args[where_at].to_ascii_lowercase().as_slice() {
        b"min" => false,
        b"max" => true,
        _ => return Err(Frame::error(err::SYNTAX)),
    };
    let mut count = None;
    let mut j = where_at + 1;
    while let Some(word) = args.get(j) {
        match args.get(j + 1) {
            Some(raw) if count.is_none() && word.eq_ignore_ascii_case(b"count") => {
                count = match parse_i64(raw) {
                    Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => return Err(Frame::error(err::COUNT_POSITIVE)),
                };
                j += 2;
            }
            _ => return Err(Frame::error(err::SYNTAX)),
        }
    }
    Ok(MultiPop {
        keys: &args[numkeys_at + 1..where_at],
        max,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first key holding a sorted set: `Ok(None)` when none does.
fn multi_pop(ctx: &mut WriteCtx<'_>, request: &MultiPop<'_>) -> Result<Option<Frame>, Frame> {
    for key in request.keys {
        let Some(popped) = edit_zset(ctx, key, |zset| {
            let popped = pop(zset, request.max, request.count);
            let changed = !popped.is_empty();
            (popped, changed)
        })?
        else {
            continue;
        };
        return Ok(Some(Frame::Array(vec![
            Frame::Bulk(key.clone()),
            nested_pairs(popped),
        ])));
    }
    Ok(None)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let request = try_frame!(parse_multi_pop(args, 1));
    try_frame!(multi_pop(ctx, &request)).unwrap_or(Frame::NullArray)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub fn bzmpop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let request = try_frame!(parse_multi_pop(args, 2));
    try_frame!(check_timeout(&args[1], ctx.now_ms));
    match try_frame!(multi_pop(ctx, &request)) {
        Some(reply) => reply,
        None => blocked(ctx),
    }
}

// ---------------------------------------------------------------------------------------
// Union, intersection, difference

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// `zunionInterAggregate`: a sum of `+inf` and `-inf` counts as 0; a NaN value never
    /// wins a MIN or MAX.
    fn fold(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

/// One input: a sorted set, a set (every member scored 1) or a missing key (empty).
enum Input<'a> {
    Missing,
    Sorted(&'a SortedSet),
    Plain(&'a imbl::OrdSet<CompactBytes>),
}

impl<'a> Input<'a> {
    fn len(&self) -> usize {
        match self {
            Input::Missing => 0,
            Input::Sorted(z) => z.len(),
            Input::Plain(s) => s.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::Missing => None,
            Input::Sorted(z) => z.score(member),
            Input::Plain(s) => s.contains(member).then_some(1.0),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Item<'a>> + 'a> {
        match *self {
            Input::Missing => Box::new(std::iter::empty()),
            Input::Sorted(z) => Box::new(z.iter()),
            Input::Plain(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

/// What a union, intersection or difference produced.
enum Combined {
    /// Members and scores in Redis's order: by score (where -0 equals 0), then member.
    Members(Vec<(CompactBytes, f64)>, bool),
    /// ZINTERCARD's count.
    Count(usize),
}

/// `zunionInterDiffGenericCommand`: reads `numkeys key [key ...]` from `args[numkeys_at]`
/// and the options Redis allows for `op` (WEIGHTS and AGGREGATE except for a difference,
/// WITHSCORES only when replying, LIMIT only for a count), in Redis's order of checks.
fn combine(
    ctx: &ReadCtx<'_>,
    args: &[Bytes],
    numkeys_at: usize,
    op: SetOp,
    store: bool,
    count_only: bool,
) -> Result<Combined, Frame> {
    let Some(numkeys) = parse_i64(&args[numkeys_at]) else {
        return Err(Frame::error(err::NOT_INTEGER));
    };
    if numkeys < 1 {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Err(Frame::error(err::at_least_one_key(&name)));
    }
    let first_key = numkeys_at + 1;
    if numkeys > (args.len() - first_key) as i64 {
        return Err(Frame::error(err::SYNTAX));
    }
    let numkeys = numkeys as usize;
    let mut inputs = Vec::with_capacity(numkeys);
    for key in &args[first_key..first_key + numkeys] {
        inputs.push(match ctx.get(key).map(|e| &e.value) {
            None => Input::Missing,
            Some(Value::ZSet(z)) => Input::Sorted(z),
            Some(Value::Set(s)) => Input::Plain(s),
            Some(_) => return Err(Frame::error(err::WRONGTYPE)),
        });
    }
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = first_key + numkeys;
    while let Some(word) = args.get(j) {
        let remaining = args.len() - j;
        let weighted = op != SetOp::Diff && !count_only;
        if weighted && remaining > numkeys && word.eq_ignore_ascii_case(b"weights") {
            for (weight, raw) in weights.iter_mut().zip(&args[j + 1..]) {
                *weight = parse_score(raw).ok_or_else(|| Frame::error(err::WEIGHT_NOT_FLOAT))?;
            }
            j += 1 + numkeys;
        } else if weighted && remaining >= 2 && word.eq_ignore_ascii_case(b"aggregate") {
            aggregate = match args[j + 1].to_ascii_lowercase().as_slice() {
                b"sum" => Aggregate::Sum,
                b"min" => Aggregate::Min,
                b"max" => Aggregate::Max,
                _ => return Err(Frame::error(err::SYNTAX)),
            };
            j += 2;
        } else if !store && !count_only && word.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if count_only && remaining >= 2 && word.eq_ignore_ascii_case(b"limit") {
            limit = match parse_i64(&args[j + 1]) {
                Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Err(Frame::error(err::LIMIT_NEGATIVE)),
            };
            j += 2;
        } else {
            return Err(Frame::error(err::SYNTAX));
        }
    }
    let mut sources: Vec<(Input<'_>, f64)> = inputs.into_iter().zip(weights).collect();
    if op != SetOp::Diff {
        // Smallest first, as Redis orders them (a stable sort, as glibc's qsort is here),
        // so sums add up in the same order.
        sources.sort_by_key(|(input, _)| input.len());
    }
    let weighted = |value: f64, weight: f64| {
        let score = value * weight;
        if score.is_nan() {
            0.0
        } else {
            score
        }
    };
    let mut members: Vec<(CompactBytes, f64)> = Vec::new();
    let Some(((first, first_weight), rest)) = sources.split_first() else {
        return Ok(Combined::Members(members, withscores));
    };
    match op {
        SetOp::Inter => {
            let mut count = 0;
            for (member, score) in first.iter() {
                let mut total = weighted(score, *first_weight);
                let mut everywhere = true;
                for (input, weight) in rest {
                    match input.score(member.as_slice()) {
                        Some(value) => aggregate.fold(&mut total, value * weight),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if !everywhere {
                    continue;
                }
                if count_only {
                    count += 1;
                    if limit > 0 && count >= limit {
                        break;
                    }
                } else {
                    members.push((member.clone(), total));
                }
            }
            if count_only {
                return Ok(Combined::Count(count));
            }
        }
        SetOp::Union => {
            let mut totals: HashMap<&[u8], Item<'_>> = HashMap::new();
            for (input, weight) in &sources {
                for (member, score) in input.iter() {
                    let score = weighted(score, *weight);
                    totals
                        .entry(member.as_slice())
                        .and_modify(|(_, total)| aggregate.fold(total, score))
                        .or_insert((member, score));
                }
            }
            members = totals.into_values().map(|(m, s)| (m.clone(), s)).collect();
        }
        SetOp::Diff => {
            for (member, score) in first.iter() {
                if rest
                    .iter()
                    .all(|(input, _)| input.score(member.as_slice()).is_none())
                {
                    members.push((member.clone(), score));
                }
            }
        }
    }
    members.sort_by(|(m1, s1), (m2, s2)| {
        s1.partial_cmp(s2)
            .unwrap_or(Ordering::Equal)
            .then_with(|| m1.cmp(m2))
    });
    Ok(Combined::Members(members, withscores))
}

fn combine_read(ctx: &ReadCtx<'_>, args: &[Bytes], op: SetOp, count_only: bool) -> Frame {
    match try_frame!(combine(ctx, args, 1, op, false, count_only)) {
        Combined::Count(n) => Frame::Integer(n as i64),
        Combined::Members(members, withscores) => {
            members_reply(members.iter().map(|(m, s)| (m, *s)), withscores)
        }
    }
}

fn combine_store(ctx: &mut WriteCtx<'_>, args: &[Bytes], op: SetOp) -> Frame {
    let combined = try_frame!(combine(&ctx.as_read(), args, 2, op, true, false));
    let mut result = SortedSet::new();
    if let Combined::Members(members, _) = combined {
        for (member, score) in members {
            result.insert(member, score);
        }
    }
    store_result(ctx, &args[1], result)
}

/// ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zunion(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    combine_read(ctx, args, SetOp::Union, false)
}

/// ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zinter(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    combine_read(ctx, args, SetOp::Inter, false)
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]
pub fn zdiff(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    combine_read(ctx, args, SetOp::Diff, false)
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    combine_read(ctx, args, SetOp::Inter, true)
}

/// ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
pub fn zunionstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    combine_store(ctx, args, SetOp::Union)
}

/// ZINTERSTORE dst numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
pub fn zinterstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    combine_store(ctx, args, SetOp::Inter)
}

/// ZDIFFSTORE dst numkeys key [key ...]
pub fn zdiffstore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    combine_store(ctx, args, SetOp::Diff)
}

// ---------------------------------------------------------------------------------------
// Scanning and random members

/// The first eight bytes of `member`, zero-padded, as a big-endian number: ordered as the
/// members are, so a ZSCAN cursor can say where to resume.
fn cursor_of(member: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    for (dst, src) in head.iter_mut().zip(member) {
        *dst = *src;
    }
    u64::from_be_bytes(head)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
///
/// A set of up to 128 members comes whole with cursor 0, as from Redis's listpack
/// encoding. A larger one is walked in member order; the cursor is the first eight bytes
/// of the member to resume at, and a call never stops between members sharing those
/// bytes, so every member present for the whole scan is returned at least once.
pub fn zscan(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(cursor) = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Frame::error(err::INVALID_CURSOR);
    };
    let Some(zset) = try_frame!(zset_of(ctx.get(&args[1]))) else {
        return Frame::Array(vec![Frame::bulk("0"), Frame::Array(Vec::new())]);
    };
    let mut pattern: Option<&Bytes> = None;
    let mut count = 10usize;
    let mut i = 3;
    while let Some(word) = args.get(i) {
        let Some(value) = args.get(i + 1) else {
            return Frame::error(err::SYNTAX);
        };
        if word.eq_ignore_ascii_case(b"count") {
            match parse_i64(value) {
                None => return Frame::error(err::NOT_INTEGER),
                Some(n) if n < 1 => return Frame::error(err::SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if word.eq_ignore_ascii_case(b"match") {
            pattern = Some(value);
        } else {
            return Frame::error(err::SYNTAX);
        }
        i += 2;
    }
    let wanted = |member: &CompactBytes| pattern.is_none_or(|p| glob::matches(p, member, false));
    let mut found = Vec::new();
    let mut push = |member: &CompactBytes, score: f64| {
        found.push(Frame::Bulk(member.to_bytes()));
        found.push(Frame::bulk(format_double(score)));
    };
    let mut next = 0u64;
    if zset.len() <= SCAN_WHOLE_UP_TO {
        for (member, score) in zset.iter().filter(|(m, _)| wanted(m)) {
            push(member, score);
        }
    } else {
        // The shortest string with the cursor's eight bytes (zero padding dropped): every
        // member of that group sorts at or after it, every earlier group before it.
        let head = cursor.to_be_bytes();
        let len = 8 - head.iter().rev().take_while(|&&b| b == 0).count();
        let from = &head[..len];
        let mut last = None;
        let members = zset
            .by_member()
            .range::<_, [u8]>((Bound::Included(from), Bound::Unbounded));
        for (visited, (member, score)) in members.enumerate() {
            let group = cursor_of(member);
            if visited >= count && last != Some(group) {
                next = group;
                break;
            }
            last = Some(group);
            if wanted(member) {
                push(member, *score);
            }
        }
    }
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(found)])
}

/// ZRANDMEMBER key [count [WITHSCORES]]
///
/// A negative count may repeat members, in random order; a count at least the size returns
/// the whole set from the highest score down (Redis walks sets backwards there); a smaller
/// positive count returns distinct members in ascending order.
pub fn zrandmember(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let mut rng = Rng::new(ctx.seed);
    let Some(raw_count) = args.get(2) else {
        let Some(zset) = try_frame!(zset_of(ctx.get(&args[1]))) else {
            return Frame::Null;
        };
        let pick = rng.below(zset.len() as u64) as usize;
        return zset
            .iter()
            .nth(pick)
            .map_or(Frame::Null, |(m, _)| Frame::Bulk(m.to_bytes()));
    };
    let count = match parse_i64(raw_count) {
        None => return Frame::error(err::NOT_INTEGER),
        Some(i64::MIN) => return Frame::error(err::out_of_range_between(-i64::MAX, i64::MAX)),
        Some(n) => n,
    };
    let withscores = match args.get(3) {
        _ if args.len() > 4 => return Frame::error(err::SYNTAX),
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"withscores") => true,
        Some(_) => return Frame::error(err::SYNTAX),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Frame::error(err::OUT_OF_RANGE);
    }
    let Some(zset) = try_frame!(zset_of(ctx.get(&args[1]))) else {
        return Frame::Array(Vec::new());
    };
    let size = zset.len();
    let wanted = count.unsigned_abs();
    if wanted == 0 {
        return Frame::Array(Vec::new());
    }
    if count < 0 || wanted == 1 {
        let all: Vec<Item<'_>> = zset.iter().collect();
        let picks = (0..wanted).filter_map(|_| all.get(rng.below(size as u64) as usize).copied());
        return members_reply(picks, withscores);
    }
    if wanted >= size as u64 {
        return members_reply(zset.iter().rev(), withscores);
    }
    // Floyd's sampling: `wanted` distinct ranks, each subset equally likely.
    let wanted = wanted as usize;
    let mut ranks = std::collections::BTreeSet::new();
    for top in size - wanted..size {
        let pick = rng.below(top as u64 + 1) as usize;
        if !ranks.insert(pick) {
            ranks.insert(top);
        }
    }
    let chosen = zset
        .iter()
        .enumerate()
        .filter(|(rank, _)| ranks.contains(rank))
        .map(|(_, item)| item);
    members_reply(chosen, withscores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::{check_transcript, must_apply};
    use crate::keyspace::{Keyspace, Op, Request};

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\n";
    const SYNTAX: &str = "-ERR syntax error\n";
    const NOT_INTEGER: &str = "-ERR value is not an integer or out of range\n";
    const NOT_FLOAT: &str = "-ERR value is not a valid float\n";
    const SCORE_RANGE: &str = "-ERR min or max is not a float\n";
    const LEX_RANGE: &str = "-ERR min or max not valid string range item\n";

    /// Scores parse as `string2d`, range bounds as `strtod` over a C string.
    #[test]
    fn numbers_parse_as_redis_parses_them() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1.8p1"), Some(3.0));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"5."), Some(5.0));
        assert_eq!(parse_score(b"1e3"), Some(1000.0));
        assert_eq!(parse_score(b"1e-310"), Some(1e-310));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"abc",
            b"1e400",
            b"1e-400",
            b"1\x002",
            b"0x",
            b"1e",
            b".",
        ] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_score_bound(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_score_bound(b"-inf"), Some((f64::NEG_INFINITY, false)));
        // strtod skips leading space and reads an empty string as 0.
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"("), Some((0.0, true)));
        // A NUL ends a C string.
        assert_eq!(parse_score_bound(b"3\0junk"), Some((3.0, false)));
        assert_eq!(parse_score_bound(b"1e400"), Some((f64::INFINITY, false)));
        for bad in [&b"x"[..], b"1 ", b"((1", b"nan", b" "] {
            assert_eq!(parse_score_bound(bad), None);
        }
    }

    /// ZADD's options, their conflicts in Redis's order, INCR, NaN and WRONGTYPE.
    #[test]
    fn zadd_and_zincrby() {
        check_transcript(&[
            ("zadd z 1 a 2 b", ":2\n", ""),
            ("zadd z 1 a 3 c", ":1\n", ""),
            // a updated, c unchanged, d added.
            ("zadd z ch 5 a 3 c 4 d", ":2\n", ""),
            ("zadd z nx 10 a 6 e", ":1\n", ""),
            ("zadd z xx 10 a 7 f", ":0\n", ""),
            ("zscore z a", "$2\n10\n", ",10\n"),
            ("zscore z f", "$-1\n", "_\n"),
            ("zadd z gt ch 5 a 11 b", ":1\n", ""),
            ("zadd z lt ch 5 a 11 b", ":1\n", ""),
            ("zadd z xx gt 20 zz", ":0\n", ""),
            // GT and LT only hold back existing members.
            ("zadd z gt 1 new", ":1\n", ""),
            ("zrange z 0 -1 withscores", "*12\n$3\nnew\n$1\n1\n$1\nc\n$1\n3\n$1\nd\n$1\n4\n$1\na\n$1\n5\n$1\ne\n$1\n6\n$1\nb\n$2\n11\n", "*6\n*2\n$3\nnew\n,1\n*2\n$1\nc\n,3\n*2\n$1\nd\n,4\n*2\n$1\na\n,5\n*2\n$1\ne\n,6\n*2\n$1\nb\n,11\n"),
            ("zadd z nx xx 1 a", "-ERR XX and NX options at the same time are not compatible\n", ""),
            ("zadd z gt lt 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible\n", ""),
            ("zadd z nx gt 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible\n", ""),
            ("zadd z incr 1 a 2 b", "-ERR INCR option supports a single increment-element pair\n", ""),
            ("zadd z nx 1", SYNTAX, ""),
            ("zadd z 1 a 2", SYNTAX, ""),
            // The pair count is checked before the option conflicts.
            ("zadd z nx xx 1", SYNTAX, ""),
            ("zadd z abc a", NOT_FLOAT, ""),
            ("zadd z nan a", NOT_FLOAT, ""),
            ("zadd z \" 1\" a", NOT_FLOAT, ""),
            ("zadd z 1e400 a", NOT_FLOAT, ""),
            ("zadd z 1 a x b", NOT_FLOAT, ""),
            ("zadd z 0x10 hex", ":1\n", ""),
            ("zscore z hex", "$2\n16\n", ",16\n"),
            ("zadd z incr 5 a", "$2\n10\n", ",10\n"),
            ("zadd z nx incr 1 a", "$-1\n", "_\n"),
            ("zadd z xx incr 1 missing", "$-1\n", "_\n"),
            ("zadd z gt incr -1 a", "$-1\n", "_\n"),
            ("zadd z +inf i", ":1\n", ""),
            ("zadd z incr -inf i", "-ERR resulting score is not a number (NaN)\n", ""),
            ("zscore z i", "$3\ninf\n", ",inf\n"),
            ("zadd z -inf j", ":1\n", ""),
            ("zscore z j", "$4\n-inf\n", ",-inf\n"),
            ("zincrby z 2.5 a", "$4\n12.5\n", ",12.5\n"),
            ("zincrby z 0 a", "$4\n12.5\n", ",12.5\n"),
            ("zincrby fresh 0.1 m", "$3\n0.1\n", ",0.1\n"),
            ("zincrby fresh 0.2 m", "$19\n0.30000000000000004\n", ",0.30000000000000004\n"),
            ("zincrby z abc a", NOT_FLOAT, ""),
            ("zincrby z nx a", SYNTAX, ""),
            ("zadd nokey xx 1 a", ":0\n", ""),
            ("exists nokey", ":0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zadd s 1 a", WRONGTYPE, ""),
            ("zadd s nx xx 1 a", "-ERR XX and NX options at the same time are not compatible\n", ""),
            ("zadd s abc a", NOT_FLOAT, ""),
            ("zincrby s 1 a", WRONGTYPE, ""),
            ("zadd big 1e20 a 1.5e-7 b 123456789 c -0 d", ":4\n", ""),
            ("zmscore big a b c d", "*4\n$5\n1e+20\n$6\n1.5e-7\n$9\n123456789\n$1\n0\n", "*4\n,1e+20\n,1.5e-7\n,123456789\n,0\n"),
            ("type big", "+zset\n", ""),
        ]);
    }

    /// ZSCORE, ZMSCORE, ZCARD, ZRANK and ZREVRANK with WITHSCORE (7.2).
    #[test]
    fn scores_cards_and_ranks() {
        check_transcript(&[
            ("zadd z 1 a 2 b 3 c 4 d 5 e", ":5\n", ""),
            ("zcard z", ":5\n", ""),
            ("zcard missing", ":0\n", ""),
            (
                "zmscore z a nosuch e",
                "*3\n$1\n1\n$-1\n$1\n5\n",
                "*3\n,1\n_\n,5\n",
            ),
            ("zmscore missing a", "*1\n$-1\n", "*1\n_\n"),
            ("zscore missing a", "$-1\n", "_\n"),
            ("zrank z c", ":2\n", ""),
            ("zrank z a", ":0\n", ""),
            ("zrevrank z a", ":4\n", ""),
            ("zrank z c withscore", "*2\n:2\n$1\n3\n", "*2\n:2\n,3\n"),
            ("zrevrank z e WITHSCORE", "*2\n:0\n$1\n5\n", "*2\n:0\n,5\n"),
            ("zrank z nosuch", "$-1\n", "_\n"),
            ("zrank z nosuch withscore", "*-1\n", "_\n"),
            ("zrank missing a", "$-1\n", "_\n"),
            ("zrevrank missing a withscore", "*-1\n", "_\n"),
            ("zrank z a foo", SYNTAX, ""),
            (
                "zrank z a withscore x",
                "-ERR wrong number of arguments for 'zrank' command\n",
                "",
            ),
            (
                "zrevrank z a withscore x",
                "-ERR wrong number of arguments for 'zrevrank' command\n",
                "",
            ),
            (
                "zrank z",
                "-ERR wrong number of arguments for 'zrank' command\n",
                "",
            ),
            ("set s x", "+OK\n", ""),
            ("zcard s", WRONGTYPE, ""),
            ("zscore s a", WRONGTYPE, ""),
            ("zmscore s a", WRONGTYPE, ""),
            ("zrank s a", WRONGTYPE, ""),
            ("zrank s a foo", SYNTAX, ""),
        ]);
    }

    /// ZRANGE by rank, score and lex, REV, LIMIT (negative count = all, negative offset =
    /// nothing), WITHSCORES in both protocols, and every option error in Redis's order.
    #[test]
    fn zrange_in_all_its_forms() {
        check_transcript(&[
            ("zadd z 1 a 2 b 3 c 4 d 5 e", ":5\n", ""),
            ("zrange z 0 -1", "*5\n$1\na\n$1\nb\n$1\nc\n$1\nd\n$1\ne\n", ""),
            ("zrange z 0 1 withscores", "*4\n$1\na\n$1\n1\n$1\nb\n$1\n2\n", "*2\n*2\n$1\na\n,1\n*2\n$1\nb\n,2\n"),
            ("zrange z -2 -1", "*2\n$1\nd\n$1\ne\n", ""),
            ("zrange z 3 100", "*2\n$1\nd\n$1\ne\n", ""),
            ("zrange z 4 2", "*0\n", ""),
            ("zrange z -100 0", "*1\n$1\na\n", ""),
            ("zrange z 5 5", "*0\n", ""),
            ("zrange z 0 0 rev", "*1\n$1\ne\n", ""),
            ("zrange z 1 2 rev withscores", "*4\n$1\nd\n$1\n4\n$1\nc\n$1\n3\n", "*2\n*2\n$1\nd\n,4\n*2\n$1\nc\n,3\n"),
            ("zrevrange z 0 1 withscores", "*4\n$1\ne\n$1\n5\n$1\nd\n$1\n4\n", "*2\n*2\n$1\ne\n,5\n*2\n$1\nd\n,4\n"),
            ("zrevrange z -1 -1", "*1\n$1\na\n", ""),
            ("zrange z (1 3 byscore", "*2\n$1\nb\n$1\nc\n", ""),
            ("zrange z -inf +inf byscore limit 1 2", "*2\n$1\nb\n$1\nc\n", ""),
            // Celery's unacked_index query.
            ("zrange z +inf -inf byscore rev limit 0 2", "*2\n$1\ne\n$1\nd\n", ""),
            ("zrange z 4 0 byscore rev limit 1 2 withscores", "*4\n$1\nc\n$1\n3\n$1\nb\n$1\n2\n", "*2\n*2\n$1\nc\n,3\n*2\n$1\nb\n,2\n"),
            ("zrange z +inf -inf byscore rev limit 0 -5", "*5\n$1\ne\n$1\nd\n$1\nc\n$1\nb\n$1\na\n", ""),
            ("zrange z -inf +inf byscore limit -1 2", "*0\n", ""),
            ("zrange z -inf +inf byscore limit 5 2", "*0\n", ""),
            ("zrange z -inf +inf byscore limit 4 0", "*0\n", ""),
            ("zrange z 2 (4 byscore withscores", "*4\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n", "*2\n*2\n$1\nb\n,2\n*2\n$1\nc\n,3\n"),
            ("zrange z (5 +inf byscore", "*0\n", ""),
            ("zrange z (3 (3 byscore", "*0\n", ""),
            ("zrange z 3 3 byscore", "*1\n$1\nc\n", ""),
            ("zrange z 4 2 byscore", "*0\n", ""),
            ("zrange z \"\" 1 byscore", "*1\n$1\na\n", ""),
            ("zrange z 0 -1 limit 0 1", "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\n", ""),
            // Redis tests the count: LIMIT with count -1 passes by rank.
            ("zrange z 0 0 limit 3 -1", "*1\n$1\na\n", ""),
            ("zrange z [a [c bylex withscores", "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\n", ""),
            ("zrange z a c bylex", LEX_RANGE, ""),
            ("zrange z x 1 byscore", SCORE_RANGE, ""),
            ("zrange z 1 2x byscore", SCORE_RANGE, ""),
            ("zrange z a 1", NOT_INTEGER, ""),
            ("zrange z 0 1 foo", SYNTAX, ""),
            ("zrange z 0 1 limit 1", SYNTAX, ""),
            ("zrange z 0 1 byscore bylex", SYNTAX, ""),
            ("zrange z 0 1 rev rev", SYNTAX, ""),
            ("zrange z 0 1 byscore limit x 1", NOT_INTEGER, ""),
            ("zrange z 0 1 byscore limit 0 y", NOT_INTEGER, ""),
            ("zrangebyscore z 1 2 rev", SYNTAX, ""),
            ("zrangebyscore z 1 2 byscore", SYNTAX, ""),
            ("zrangebyscore z -inf +inf withscores limit 1 1", "*2\n$1\nb\n$1\n2\n", "*1\n*2\n$1\nb\n,2\n"),
            ("zrevrangebyscore z 4 2", "*3\n$1\nd\n$1\nc\n$1\nb\n", ""),
            ("zrevrangebyscore z (4 (2", "*1\n$1\nc\n", ""),
            ("zrevrangebyscore z +inf -inf limit 1 1", "*1\n$1\nd\n", ""),
            ("zrevrange z 0 0 limit 0 1", "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\n", ""),
            ("zrevrange z 0 0 byscore", SYNTAX, ""),
            ("zrange missing 0 -1", "*0\n", ""),
            ("zrange missing 0 -1 withscores", "*0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zrange s 0 -1", WRONGTYPE, ""),
            ("zrange s x y", NOT_INTEGER, ""),
            ("zrangebyscore s a b", SCORE_RANGE, ""),
        ]);
    }

    /// Infinite scores order at the ends and bound ranges like any other score.
    #[test]
    fn infinite_scores() {
        check_transcript(&[
            ("zadd z -inf lo 0 mid +inf hi", ":3\n", ""),
            (
                "zrange z 0 -1 withscores",
                "*6\n$2\nlo\n$4\n-inf\n$3\nmid\n$1\n0\n$2\nhi\n$3\ninf\n",
                "*3\n*2\n$2\nlo\n,-inf\n*2\n$3\nmid\n,0\n*2\n$2\nhi\n,inf\n",
            ),
            ("zrangebyscore z -inf -inf", "*1\n$2\nlo\n", ""),
            ("zrangebyscore z (-inf (+inf", "*1\n$3\nmid\n", ""),
            ("zrangebyscore z (inf +inf", "*0\n", ""),
            ("zrangebyscore z +inf +inf", "*1\n$2\nhi\n", ""),
            ("zrevrangebyscore z +inf (0", "*1\n$2\nhi\n", ""),
            ("zrevrangebyscore z (+inf -inf", "*2\n$3\nmid\n$2\nlo\n", ""),
            ("zcount z -inf +inf", ":3\n", ""),
            ("zcount z (-inf (inf", ":1\n", ""),
            ("zcount z -0 0", ":1\n", ""),
            ("zcount z (-0 +inf", ":1\n", ""),
            ("zremrangebyscore z +inf +inf", ":1\n", ""),
            ("zrange z 0 -1", "*2\n$2\nlo\n$3\nmid\n", ""),
        ]);
    }

    /// ZCOUNT parses its range before it looks at the key.
    #[test]
    fn zcount() {
        check_transcript(&[
            ("zadd z 1 a 2 b 3 c 4 d 5 e", ":5\n", ""),
            ("zcount z -inf +inf", ":5\n", ""),
            ("zcount z (1 (5", ":3\n", ""),
            ("zcount z 5 1", ":0\n", ""),
            ("zcount z a b", SCORE_RANGE, ""),
            ("zcount missing 0 1", ":0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zcount s 0 1", WRONGTYPE, ""),
            ("zcount s a b", SCORE_RANGE, ""),
        ]);
    }

    /// Lexicographic ranges with `[`, `(`, `-` and `+`, forwards and reversed, with LIMIT.
    #[test]
    fn lex_ranges() {
        check_transcript(&[
            ("zadd l 0 a 0 b 0 c 0 d 0 e", ":5\n", ""),
            (
                "zrangebylex l - +",
                "*5\n$1\na\n$1\nb\n$1\nc\n$1\nd\n$1\ne\n",
                "",
            ),
            ("zrangebylex l [b (d", "*2\n$1\nb\n$1\nc\n", ""),
            ("zrangebylex l (b [d", "*2\n$1\nc\n$1\nd\n", ""),
            ("zrangebylex l - [c limit 1 1", "*1\n$1\nb\n", ""),
            (
                "zrangebylex l - + limit 2 -1",
                "*3\n$1\nc\n$1\nd\n$1\ne\n",
                "",
            ),
            ("zrangebylex l [bb +", "*3\n$1\nc\n$1\nd\n$1\ne\n", ""),
            ("zrangebylex l [ (c", "*2\n$1\na\n$1\nb\n", ""),
            (
                "zrevrangebylex l + -",
                "*5\n$1\ne\n$1\nd\n$1\nc\n$1\nb\n$1\na\n",
                "",
            ),
            ("zrevrangebylex l (d [b", "*2\n$1\nc\n$1\nb\n", ""),
            ("zrevrangebylex l + - limit 0 2", "*2\n$1\ne\n$1\nd\n", ""),
            ("zrevrangebylex l [cc -", "*3\n$1\nc\n$1\nb\n$1\na\n", ""),
            ("zrange l [d [b bylex rev", "*3\n$1\nd\n$1\nc\n$1\nb\n", ""),
            ("zrange l (a + bylex limit 1 2", "*2\n$1\nc\n$1\nd\n", ""),
            ("zrangebylex l + -", "*0\n", ""),
            ("zrangebylex l - -", "*0\n", ""),
            ("zrangebylex l [c [b", "*0\n", ""),
            ("zrangebylex l (b (b", "*0\n", ""),
            ("zrangebylex l [b [b", "*1\n$1\nb\n", ""),
            ("zrangebylex l [x +", "*0\n", ""),
            ("zrangebylex l b c", LEX_RANGE, ""),
            ("zrangebylex l - +x", LEX_RANGE, ""),
            ("zrangebylex l \"\" +", LEX_RANGE, ""),
            (
                "zrangebylex l - + withscores",
                "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\n",
                "",
            ),
            ("zrangebylex l - + rev", SYNTAX, ""),
            ("zlexcount l - +", ":5\n", ""),
            ("zlexcount l [b (d", ":2\n", ""),
            ("zlexcount l x y", LEX_RANGE, ""),
            ("zlexcount missing - +", ":0\n", ""),
            ("zremrangebylex l [b [c", ":2\n", ""),
            ("zrangebylex l - +", "*3\n$1\na\n$1\nd\n$1\ne\n", ""),
            ("zremrangebylex l x y", LEX_RANGE, ""),
            ("zremrangebylex l - +", ":3\n", ""),
            ("exists l", ":0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zlexcount s - +", WRONGTYPE, ""),
            ("zrangebylex s - +", WRONGTYPE, ""),
        ]);
    }

    /// ZREM and the ZREMRANGEBY* commands; the key goes with its last member.
    #[test]
    fn removals_delete_the_emptied_key() {
        check_transcript(&[
            ("zadd r 1 a 2 b 3 c", ":3\n", ""),
            ("zrem r a x", ":1\n", ""),
            ("zrem r b c d", ":2\n", ""),
            ("exists r", ":0\n", ""),
            ("zrem r a", ":0\n", ""),
            ("zadd q 1 a 2 b 3 c 4 d 5 e", ":5\n", ""),
            ("zremrangebyrank q 0 1", ":2\n", ""),
            ("zremrangebyrank q -1 -1", ":1\n", ""),
            ("zremrangebyrank q 5 10", ":0\n", ""),
            ("zremrangebyrank q a 1", NOT_INTEGER, ""),
            ("zrange q 0 -1", "*2\n$1\nc\n$1\nd\n", ""),
            ("zremrangebyscore q (3 +inf", ":1\n", ""),
            ("zremrangebyscore q x 1", SCORE_RANGE, ""),
            ("zremrangebyscore q -inf +inf", ":1\n", ""),
            ("exists q", ":0\n", ""),
            ("zremrangebyscore missing 0 1", ":0\n", ""),
            ("zremrangebyrank missing 0 -1", ":0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zrem s a", WRONGTYPE, ""),
            ("zremrangebyrank s 0 1", WRONGTYPE, ""),
            ("zremrangebyscore s 0 1", WRONGTYPE, ""),
            ("zremrangebylex s - +", WRONGTYPE, ""),
            ("zadd t 1 a 2 b", ":2\n", ""),
            ("expire t 100", ":1\n", ""),
            ("zadd t 3 c", ":1\n", ""),
            ("zrem t a", ":1\n", ""),
            ("ttl t", ":100\n", ""),
        ]);
    }

    /// ZPOPMIN/ZPOPMAX: one pair flat in both protocols, a count nested in RESP3.
    #[test]
    fn zpop() {
        check_transcript(&[
            ("zadd p 1 a 2 b 3 c 4 d", ":4\n", ""),
            ("zpopmin p", "*2\n$1\na\n$1\n1\n", "*2\n$1\na\n,1\n"),
            (
                "zpopmax p 2",
                "*4\n$1\nd\n$1\n4\n$1\nc\n$1\n3\n",
                "*2\n*2\n$1\nd\n,4\n*2\n$1\nc\n,3\n",
            ),
            ("zpopmin p 0", "*0\n", ""),
            (
                "zpopmin p -1",
                "-ERR value is out of range, must be positive\n",
                "",
            ),
            (
                "zpopmin p x",
                "-ERR value is out of range, must be positive\n",
                "",
            ),
            ("zpopmin p 1 2", SYNTAX, ""),
            ("zpopmin p 10", "*2\n$1\nb\n$1\n2\n", "*1\n*2\n$1\nb\n,2\n"),
            ("exists p", ":0\n", ""),
            ("zpopmin p", "*0\n", ""),
            ("zpopmax p 3", "*0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zpopmin s", WRONGTYPE, ""),
            ("zpopmax s 2", WRONGTYPE, ""),
        ]);
    }

    /// ZMPOP: the first key that exists, [key, [[member, score], ...]] in both protocols.
    #[test]
    fn zmpop() {
        check_transcript(&[
            ("zadd m1 1 a 2 b 3 c", ":3\n", ""),
            (
                "zmpop 2 nokey m1 min",
                "*2\n$2\nm1\n*1\n*2\n$1\na\n$1\n1\n",
                "*2\n$2\nm1\n*1\n*2\n$1\na\n,1\n",
            ),
            (
                "zmpop 1 m1 MAX COUNT 5",
                "*2\n$2\nm1\n*2\n*2\n$1\nc\n$1\n3\n*2\n$1\nb\n$1\n2\n",
                "*2\n$2\nm1\n*2\n*2\n$1\nc\n,3\n*2\n$1\nb\n,2\n",
            ),
            ("exists m1", ":0\n", ""),
            ("zmpop 1 m1 min", "*-1\n", "_\n"),
            (
                "zmpop 0 m1 min",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            (
                "zmpop x m1 min",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            ("zmpop 2 m1 min", SYNTAX, ""),
            ("zmpop 1 m1 middle", SYNTAX, ""),
            (
                "zmpop 1 m1 min count 0",
                "-ERR count should be greater than 0\n",
                "",
            ),
            (
                "zmpop 1 m1 min count x",
                "-ERR count should be greater than 0\n",
                "",
            ),
            ("zmpop 1 m1 min count 1 count 1", SYNTAX, ""),
            ("zmpop 1 m1 min count", SYNTAX, ""),
            ("zmpop 1 m1 min foo", SYNTAX, ""),
            ("set s x", "+OK\n", ""),
            ("zmpop 1 s min", WRONGTYPE, ""),
            ("zmpop 2 nokey s min", WRONGTYPE, ""),
        ]);
    }

    /// The blocking pops inside apply: served at once when a key can serve, the BLOCKED
    /// marker otherwise, Redis's timeout errors first.
    #[test]
    fn blocking_pops_serve_or_block() {
        check_transcript(&[
            ("zadd b1 1 a 2 b", ":2\n", ""),
            (
                "bzpopmin nokey b1 0",
                "*3\n$2\nb1\n$1\na\n$1\n1\n",
                "*3\n$2\nb1\n$1\na\n,1\n",
            ),
            (
                "bzpopmax b1 0.5",
                "*3\n$2\nb1\n$1\nb\n$1\n2\n",
                "*3\n$2\nb1\n$1\nb\n,2\n",
            ),
            ("exists b1", ":0\n", ""),
            ("bzpopmin b1 0", "-\0BLOCKED\n", ""),
            ("bzpopmax b1 nokey 1.5", "-\0BLOCKED\n", ""),
            (
                "bzpopmin b1 x",
                "-ERR timeout is not a float or out of range\n",
                "",
            ),
            (
                "bzpopmin b1 \" 1\"",
                "-ERR timeout is not a float or out of range\n",
                "",
            ),
            (
                "bzpopmin b1 nan",
                "-ERR timeout is not a float or out of range\n",
                "",
            ),
            ("bzpopmin b1 -1", "-ERR timeout is negative\n", ""),
            // Redis rounds up to whole milliseconds first: this is 0, wait forever.
            ("bzpopmin b1 -0.0001", "-\0BLOCKED\n", ""),
            ("bzpopmin b1 inf", "-ERR timeout is out of range\n", ""),
            ("bzpopmin b1 1e300", "-ERR timeout is out of range\n", ""),
            ("set s x", "+OK\n", ""),
            ("bzpopmin s 0", WRONGTYPE, ""),
            ("bzpopmin nokey s 0", WRONGTYPE, ""),
            (
                "bzpopmin s x",
                "-ERR timeout is not a float or out of range\n",
                "",
            ),
            ("zadd b2 1 a 2 b 3 c", ":3\n", ""),
            (
                "bzmpop 0 2 nokey b2 max count 2",
                "*2\n$2\nb2\n*2\n*2\n$1\nc\n$1\n3\n*2\n$1\nb\n$1\n2\n",
                "*2\n$2\nb2\n*2\n*2\n$1\nc\n,3\n*2\n$1\nb\n,2\n",
            ),
            (
                "bzmpop 0.1 1 b2 min",
                "*2\n$2\nb2\n*1\n*2\n$1\na\n$1\n1\n",
                "*2\n$2\nb2\n*1\n*2\n$1\na\n,1\n",
            ),
            ("bzmpop 0 1 b2 min", "-\0BLOCKED\n", ""),
            ("bzmpop -1 1 b2 min", "-ERR timeout is negative\n", ""),
            // numkeys, MIN|MAX and COUNT are checked before the timeout.
            (
                "bzmpop x 0 b2 min",
                "-ERR numkeys should be greater than 0\n",
                "",
            ),
            ("bzmpop x 1 b2 up", SYNTAX, ""),
            ("bzmpop 1 1 s min", WRONGTYPE, ""),
        ]);
    }

    /// Inside EXEC a blocking pop with nothing to pop answers a null array at once.
    #[test]
    fn blocking_pops_in_a_transaction_answer_null() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "zadd k 1 a");
        let commands = [
            "bzpopmin nokey 0",
            "bzpopmax k 0",
            "bzmpop 0 1 k min",
            "bzpopmin k -1",
        ]
        .iter()
        .map(|line| {
            line.split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        })
        .collect();
        let reply = ks.apply(
            2,
            &Request {
                time_ms: 1000,
                op: Op::Exec {
                    db: 0,
                    watches: vec![],
                    commands,
                },
            },
        );
        assert_eq!(
            reply,
            Frame::Array(vec![
                Frame::NullArray,
                Frame::Array(vec![Frame::bulk("k"), Frame::bulk("a"), Frame::Double(1.0)]),
                Frame::NullArray,
                Frame::error("ERR timeout is negative"),
            ])
        );
    }

    /// ZRANGESTORE replaces the destination whatever it held (dropping its TTL) and deletes
    /// it when the range is empty.
    #[test]
    fn zrangestore() {
        check_transcript(&[
            ("zadd src 1 a 2 b 3 c", ":3\n", ""),
            ("set dst x ex 100", "+OK\n", ""),
            ("zrangestore dst src 0 1", ":2\n", ""),
            ("type dst", "+zset\n", ""),
            ("ttl dst", ":-1\n", ""),
            ("zrange dst 0 -1 withscores", "*4\n$1\na\n$1\n1\n$1\nb\n$1\n2\n", "*2\n*2\n$1\na\n,1\n*2\n$1\nb\n,2\n"),
            ("zrangestore dst src 5 10", ":0\n", ""),
            ("exists dst", ":0\n", ""),
            ("zrangestore dst src (1 +inf byscore limit 0 1", ":1\n", ""),
            ("zrange dst 0 -1", "*1\n$1\nb\n", ""),
            ("zrangestore dst src +inf -inf byscore rev limit 0 2", ":2\n", ""),
            ("zrange dst 0 -1", "*2\n$1\nb\n$1\nc\n", ""),
            ("zrangestore dst src - [b bylex", ":2\n", ""),
            ("zrangestore dst src 0 -1 withscores", SYNTAX, ""),
            ("zrangestore dst src 0 -1 limit 0 1", "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\n", ""),
            ("zrangestore dst nokey 0 -1", ":0\n", ""),
            ("exists dst", ":0\n", ""),
            ("zrangestore src src 0 0", ":1\n", ""),
            ("zrange src 0 -1", "*1\n$1\na\n", ""),
            ("set s x", "+OK\n", ""),
            ("zrangestore dst s 0 -1", WRONGTYPE, ""),
            ("zrangestore s src 0 -1", ":1\n", ""),
            ("type s", "+zset\n", ""),
        ]);
    }

    /// ZUNION/ZINTER/ZDIFF and their STORE forms: WEIGHTS, AGGREGATE, WITHSCORES, the
    /// option rules of each, infinities, and the destination replaced or deleted.
    #[test]
    fn union_inter_diff() {
        check_transcript(&[
            ("zadd u1 1 a 2 b 3 c", ":3\n", ""),
            ("zadd u2 10 b 20 c 30 d", ":3\n", ""),
            ("zunionstore out 2 u1 u2", ":4\n", ""),
            (
                "zrange out 0 -1 withscores",
                "*8\n$1\na\n$1\n1\n$1\nb\n$2\n12\n$1\nc\n$2\n23\n$1\nd\n$2\n30\n",
                "*4\n*2\n$1\na\n,1\n*2\n$1\nb\n,12\n*2\n$1\nc\n,23\n*2\n$1\nd\n,30\n",
            ),
            (
                "zunionstore out 2 u1 u2 weights 2 1 aggregate max",
                ":4\n",
                "",
            ),
            (
                "zrange out 0 -1 withscores",
                "*8\n$1\na\n$1\n2\n$1\nb\n$2\n10\n$1\nc\n$2\n20\n$1\nd\n$2\n30\n",
                "*4\n*2\n$1\na\n,2\n*2\n$1\nb\n,10\n*2\n$1\nc\n,20\n*2\n$1\nd\n,30\n",
            ),
            ("zinterstore out 2 u1 u2", ":2\n", ""),
            (
                "zrange out 0 -1 withscores",
                "*4\n$1\nb\n$2\n12\n$1\nc\n$2\n23\n",
                "*2\n*2\n$1\nb\n,12\n*2\n$1\nc\n,23\n",
            ),
            ("zinterstore out 2 u1 u2 aggregate min", ":2\n", ""),
            (
                "zrange out 0 -1 withscores",
                "*4\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n",
                "*2\n*2\n$1\nb\n,2\n*2\n$1\nc\n,3\n",
            ),
            ("zdiffstore out 2 u1 u2", ":1\n", ""),
            (
                "zrange out 0 -1 withscores",
                "*2\n$1\na\n$1\n1\n",
                "*1\n*2\n$1\na\n,1\n",
            ),
            ("zdiffstore out 2 u1 u1", ":0\n", ""),
            ("exists out", ":0\n", ""),
            ("zunion 2 u1 u2", "*4\n$1\na\n$1\nb\n$1\nc\n$1\nd\n", ""),
            (
                "zunion 2 u1 u2 withscores",
                "*8\n$1\na\n$1\n1\n$1\nb\n$2\n12\n$1\nc\n$2\n23\n$1\nd\n$2\n30\n",
                "*4\n*2\n$1\na\n,1\n*2\n$1\nb\n,12\n*2\n$1\nc\n,23\n*2\n$1\nd\n,30\n",
            ),
            (
                "zunion 3 u1 u2 nokey aggregate sum weights 1 -1 5 withscores",
                "*8\n$1\nd\n$3\n-30\n$1\nc\n$3\n-17\n$1\nb\n$2\n-8\n$1\na\n$1\n1\n",
                "*4\n*2\n$1\nd\n,-30\n*2\n$1\nc\n,-17\n*2\n$1\nb\n,-8\n*2\n$1\na\n,1\n",
            ),
            (
                "zinter 2 u1 u2 weights 1 0 withscores",
                "*4\n$1\nb\n$1\n2\n$1\nc\n$1\n3\n",
                "*2\n*2\n$1\nb\n,2\n*2\n$1\nc\n,3\n",
            ),
            ("zinter 2 u1 nokey", "*0\n", ""),
            ("zinter 1 u2", "*3\n$1\nb\n$1\nc\n$1\nd\n", ""),
            (
                "zdiff 2 u2 u1 withscores",
                "*2\n$1\nd\n$2\n30\n",
                "*1\n*2\n$1\nd\n,30\n",
            ),
            ("zdiff 2 nokey u1", "*0\n", ""),
            ("zintercard 2 u1 u2", ":2\n", ""),
            ("zintercard 2 u1 u2 limit 1", ":1\n", ""),
            ("zintercard 2 u1 u2 limit 0", ":2\n", ""),
            ("zintercard 2 u1 nokey", ":0\n", ""),
            (
                "zintercard 2 u1 u2 limit -1",
                "-ERR LIMIT can't be negative\n",
                "",
            ),
            (
                "zintercard 2 u1 u2 limit x",
                "-ERR LIMIT can't be negative\n",
                "",
            ),
            (
                "zintercard 0 u1",
                "-ERR at least 1 input key is needed for 'zintercard' command\n",
                "",
            ),
            (
                "zunion 0 u1",
                "-ERR at least 1 input key is needed for 'zunion' command\n",
                "",
            ),
            (
                "ZUNIONSTORE out 0 u1",
                "-ERR at least 1 input key is needed for 'zunionstore' command\n",
                "",
            ),
            ("zunion 3 u1 u2", SYNTAX, ""),
            ("zunion x u1", NOT_INTEGER, ""),
            ("zunion 2 u1 u2 weights 1", SYNTAX, ""),
            (
                "zunion 2 u1 u2 weights 1 x",
                "-ERR weight value is not a float\n",
                "",
            ),
            ("zunion 2 u1 u2 aggregate avg", SYNTAX, ""),
            ("zunion 2 u1 u2 aggregate", SYNTAX, ""),
            ("zdiff 2 u1 u2 weights 1 1", SYNTAX, ""),
            ("zdiff 2 u1 u2 aggregate max", SYNTAX, ""),
            ("zunionstore out 2 u1 u2 withscores", SYNTAX, ""),
            ("zintercard 2 u1 u2 withscores", SYNTAX, ""),
            ("zintercard 2 u1 u2 weights 1 1", SYNTAX, ""),
            ("zinter 2 u1 u2 limit 1", SYNTAX, ""),
            ("set s x ex 100", "+OK\n", ""),
            ("zunion 2 u1 s", WRONGTYPE, ""),
            ("zunion 2 s u1 weights x y", WRONGTYPE, ""),
            ("zinterstore out 2 u1 s", WRONGTYPE, ""),
            ("zunionstore s 2 u1 u2", ":4\n", ""),
            ("ttl s", ":-1\n", ""),
            ("zunionstore u1 2 u1 u2", ":4\n", ""),
            ("zscore u1 c", "$2\n23\n", ",23\n"),
            ("zadd i1 inf x", ":1\n", ""),
            ("zadd i2 -inf x", ":1\n", ""),
            (
                "zunion 2 i1 i2 withscores",
                "*2\n$1\nx\n$1\n0\n",
                "*1\n*2\n$1\nx\n,0\n",
            ),
            (
                "zinter 2 i1 i2 weights 0 1 withscores",
                "*2\n$1\nx\n$4\n-inf\n",
                "*1\n*2\n$1\nx\n,-inf\n",
            ),
            (
                "zinter 2 i1 i2 aggregate max withscores",
                "*2\n$1\nx\n$3\ninf\n",
                "*1\n*2\n$1\nx\n,inf\n",
            ),
        ]);
    }

    /// Plain sets are inputs of ZUNION, ZINTER and ZDIFF (and their STORE forms, and
    /// ZINTERCARD), every member scored 1 before its weight.
    #[test]
    fn sets_count_as_score_one() {
        let mut ks = Keyspace::new();
        {
            let mut ctx = WriteCtx {
                keyspace: &mut ks,
                db: 0,
                now_ms: 1000,
                index: 1,
                in_transaction: false,
            };
            let members: imbl::OrdSet<CompactBytes> = ["a", "b", "x"]
                .into_iter()
                .map(CompactBytes::from)
                .collect();
            ctx.set(&Bytes::from("s"), Value::Set(Box::new(members)), None);
        }
        must_apply(&mut ks, 1000, "zadd z 5 a 7 b 9 c");
        let pairs = |items: &[(&str, f64)]| {
            Frame::Pairs(
                items
                    .iter()
                    .map(|(m, s)| (Frame::bulk(m), Frame::Double(*s)))
                    .collect(),
            )
        };
        assert_eq!(
            read(&ks, "zunion 2 s z withscores", 0),
            pairs(&[("x", 1.0), ("a", 6.0), ("b", 8.0), ("c", 9.0)])
        );
        assert_eq!(
            read(&ks, "zinter 2 s z weights 10 1 withscores", 0),
            pairs(&[("a", 15.0), ("b", 17.0)])
        );
        assert_eq!(read(&ks, "zdiff 2 s z withscores", 0), pairs(&[("x", 1.0)]));
        assert_eq!(read(&ks, "zintercard 2 z s", 0), Frame::Integer(2));
        assert_eq!(
            must_apply(&mut ks, 1000, "zinterstore out 2 s s aggregate max"),
            Frame::Integer(3)
        );
        assert_eq!(
            read(&ks, "zrange out 0 -1 withscores", 0),
            pairs(&[("a", 1.0), ("b", 1.0), ("x", 1.0)])
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "zrangestore out s 0 -1"),
            Frame::error(err::WRONGTYPE)
        );
    }

    /// ZSCAN of a small set: everything at once, cursor 0, options checked after the key.
    #[test]
    fn zscan_small() {
        check_transcript(&[
            ("zadd sc 1 a 2.5 b 3 c", ":3\n", ""),
            (
                "zscan sc 0",
                "*2\n$1\n0\n*6\n$1\na\n$1\n1\n$1\nb\n$3\n2.5\n$1\nc\n$1\n3\n",
                "",
            ),
            (
                "zscan sc 0 match b count 1",
                "*2\n$1\n0\n*2\n$1\nb\n$3\n2.5\n",
                "",
            ),
            ("zscan sc 0 count 0", SYNTAX, ""),
            ("zscan sc 0 count x", NOT_INTEGER, ""),
            ("zscan sc 0 type zset", SYNTAX, ""),
            ("zscan sc 0 match", SYNTAX, ""),
            ("zscan sc x", "-ERR invalid cursor\n", ""),
            ("zscan missing 0", "*2\n$1\n0\n*0\n", ""),
            ("zscan missing x", "-ERR invalid cursor\n", ""),
            ("zscan missing 0 bogus", "*2\n$1\n0\n*0\n", ""),
            ("set s x", "+OK\n", ""),
            ("zscan s 0", WRONGTYPE, ""),
        ]);
    }

    fn read(ks: &Keyspace, line: &str, seed: u64) -> Frame {
        let args: Vec<Bytes> = crate::resp::split_command_line(line).expect("quoting");
        let ctx = ReadCtx {
            keyspace: ks,
            db: 0,
            now_ms: 1000,
            seed,
            touch: true,
            user: None,
        };
        match crate::command::resolve(&args) {
            crate::command::Resolved::Command(spec) => match spec.handler {
                crate::command::Handler::Read(run) => run(&ctx, &args),
                _ => panic!("{line} is not a read"),
            },
            crate::command::Resolved::Error(e) => panic!("{e}"),
        }
    }

    /// A large set is scanned in pieces; every member comes back, members sharing their
    /// first eight bytes are never split, and the walk ends at cursor 0.
    #[test]
    fn zscan_large_visits_every_member() {
        let mut ks = Keyspace::new();
        let mut expected = std::collections::BTreeSet::new();
        for chunk in 0..10u64 {
            let mut line = String::from("zadd big");
            for i in 0..50 {
                let member = if chunk == 3 {
                    // One group of 50 sharing eight bytes, larger than COUNT.
                    format!("samehead{i}")
                } else {
                    format!("m{chunk}-{i}")
                };
                line.push_str(&format!(" {i} {member}"));
                expected.insert(member);
            }
            ks.apply(
                chunk + 1,
                &Request {
                    time_ms: 1000,
                    op: Op::Command {
                        db: 0,
                        args: line
                            .split(' ')
                            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                            .collect(),
                    },
                },
            );
        }
        expected.insert(String::new());
        must_apply(&mut ks, 1000, "zadd big 7 ");
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 1000, "scan does not end");
            let Frame::Array(parts) = read(&ks, &format!("zscan big {cursor} count 20"), 1) else {
                panic!("zscan reply")
            };
            let [Frame::Bulk(next), Frame::Array(items)] = parts.as_slice() else {
                panic!("zscan parts {parts:?}")
            };
            for pair in items.chunks(2) {
                let [Frame::Bulk(member), Frame::Bulk(score)] = pair else {
                    panic!("pair {pair:?}")
                };
                let member = String::from_utf8_lossy(member).to_string();
                if member.starts_with("samehead") {
                    assert!(items.len() >= 100, "the samehead group was split");
                }
                assert!(score.iter().all(u8::is_ascii_digit));
                seen.insert(member);
            }
            cursor = String::from_utf8_lossy(next).to_string();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen, expected);
        assert!(calls > 10, "{calls} calls");
    }

    /// ZRANDMEMBER: picks from the set, distinct or repeated as the count's sign says, the
    /// whole set from the top for a count past its size.
    #[test]
    fn zrandmember() {
        check_transcript(&[
            ("zadd z 1 a 2 b 3 c 4 d 5 e", ":5\n", ""),
            ("zadd one 1 only", ":1\n", ""),
            ("zrandmember one", "$4\nonly\n", ""),
            ("zrandmember one -3", "*3\n$4\nonly\n$4\nonly\n$4\nonly\n", ""),
            ("zrandmember one -2 withscores", "*4\n$4\nonly\n$1\n1\n$4\nonly\n$1\n1\n", "*2\n*2\n$4\nonly\n,1\n*2\n$4\nonly\n,1\n"),
            ("zrandmember one 1 withscores", "*2\n$4\nonly\n$1\n1\n", "*1\n*2\n$4\nonly\n,1\n"),
            ("zrandmember missing", "$-1\n", "_\n"),
            ("zrandmember missing 5", "*0\n", ""),
            ("zrandmember missing 5 withscores", "*0\n", ""),
            ("zrandmember z 0", "*0\n", ""),
            ("zrandmember z 10", "*5\n$1\ne\n$1\nd\n$1\nc\n$1\nb\n$1\na\n", ""),
            ("zrandmember z 5 withscores", "*10\n$1\ne\n$1\n5\n$1\nd\n$1\n4\n$1\nc\n$1\n3\n$1\nb\n$1\n2\n$1\na\n$1\n1\n", "*5\n*2\n$1\ne\n,5\n*2\n$1\nd\n,4\n*2\n$1\nc\n,3\n*2\n$1\nb\n,2\n*2\n$1\na\n,1\n"),
            ("zrandmember z x", NOT_INTEGER, ""),
            ("zrandmember z 1 foo", SYNTAX, ""),
            ("zrandmember z 1 withscores x", SYNTAX, ""),
            ("zrandmember z -9223372036854775808", "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\n", ""),
            ("zrandmember z 9223372036854775807 withscores", "-ERR value is out of range\n", ""),
            ("zrandmember z -4611686018427387904 withscores", "-ERR value is out of range\n", ""),
            ("set s x", "+OK\n", ""),
            ("zrandmember s", WRONGTYPE, ""),
            ("zrandmember s 1", WRONGTYPE, ""),
            ("zrandmember s x", NOT_INTEGER, ""),
        ]);
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "zadd z 1 a 2 b 3 c 4 d 5 e");
        let members = |frame: Frame| -> Vec<Bytes> {
            let Frame::Array(items) = frame else {
                panic!("{frame:?}")
            };
            items
                .into_iter()
                .map(|f| match f {
                    Frame::Bulk(b) => b,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let mut hit = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let picked = members(read(&ks, "zrandmember z 3", seed));
            assert_eq!(picked.len(), 3);
            let mut sorted = picked.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, picked, "distinct and ascending");
            let repeated = members(read(&ks, "zrandmember z -20", seed));
            assert_eq!(repeated.len(), 20);
            assert!(repeated
                .iter()
                .all(|m| m.len() == 1 && (b'a'..=b'e').contains(&m[0])));
            let Frame::Bulk(one) = read(&ks, "zrandmember z", seed) else {
                panic!("bulk")
            };
            hit.insert(one);
        }
        assert_eq!(hit.len(), 5, "every member is picked sometimes");
    }

    /// A write that changes nothing leaves the key's version alone (WATCH is not tripped),
    /// and one that changes something stamps it.
    #[test]
    fn no_op_writes_keep_the_version() {
        let mut ks = Keyspace::new();
        let version = |ks: &Keyspace| {
            ks.db(0)
                .and_then(|d| d.get(&Bytes::from("k"), 1000))
                .map(|e| e.version)
        };
        let run = |ks: &mut Keyspace, index: u64, line: &str| {
            ks.apply(
                index,
                &Request {
                    time_ms: 1000,
                    op: Op::Command {
                        db: 0,
                        args: line
                            .split(' ')
                            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                            .collect(),
                    },
                },
            )
        };
        run(&mut ks, 1, "zadd k 1 a 2 b");
        assert_eq!(version(&ks), Some(1));
        for (index, line) in [
            (2, "zadd k nx 5 a"),
            (3, "zadd k 1 a"),
            (4, "zadd k gt 0 a"),
            (5, "zrem k nosuch"),
            (6, "zremrangebyscore k 10 20"),
            (7, "zincrby k 0 a"),
            (8, "zpopmin k 0"),
        ] {
            run(&mut ks, index, line);
            assert_eq!(version(&ks), Some(1), "{line}");
        }
        run(&mut ks, 9, "zadd k 3 a");
        assert_eq!(version(&ks), Some(9));
    }
}

//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. Bits past the end of
//! a string read as 0, and writes grow the string with zero bytes. A write works out its
//! reply against the stored string plus a small set of pending byte writes, and touches
//! the stored value only when a byte or the length actually changes: a SETBIT that sets a
//! bit already set leaves a `WATCH` undisturbed, as in Redis 7.2.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use super::{CompactBytes, Entry, ReadCtx, Value, WriteCtx, MAX_STRING_LEN};
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

/// The string in `entry`, if any; WRONGTYPE for other types.
fn string_of(entry: Option<&Entry>) -> Result<Option<&CompactBytes>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// A bit offset as Redis reads one: a non-negative integer whose byte lies inside the
/// largest string. With `width` (BITFIELD), `#n` is the n-th field of that width.
fn parse_offset(raw: &[u8], width: Option<u32>) -> Result<u64, Frame> {
    let (digits, multiplier) = match (raw.split_first(), width) {
        (Some((b'#', rest)), Some(width)) => (rest, i64::from(width)),
        _ => (raw, 1),
    };
    parse_i64(digits)
        .and_then(|n| n.checked_mul(multiplier))
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| byte_index(n) < MAX_STRING_LEN)
        .ok_or_else(|| Frame::error(err::BIT_OFFSET))
}

/// The byte holding bit `offset` (offsets are bounded by [`parse_offset`], so this fits).
fn byte_index(offset: u64) -> usize {
    usize::try_from(offset >> 3).unwrap_or(usize::MAX)
}

/// The mask of bit `offset` inside its byte.
fn bit_mask(offset: u64) -> u8 {
    0x80 >> (offset & 7)
}

/// A string with pending byte writes on top, grown to `len`: replies are worked out
/// against it without copying the string, which is touched only if something changed.
struct Patched<'a> {
    base: &'a [u8],
    len: usize,
    writes: BTreeMap<usize, u8>,
}

impl<'a> Patched<'a> {
    fn new(base: &'a [u8]) -> Patched<'a> {
        Patched {
            base,
            len: base.len(),
            writes: BTreeMap::new(),
        }
    }

    fn byte(&self, index: usize) -> u8 {
        match self.writes.get(&index) {
            Some(&b) => b,
            None => self.base.get(index).copied().unwrap_or(0),
        }
    }

    fn bit(&self, offset: u64) -> bool {
        self.byte(byte_index(offset)) & bit_mask(offset) != 0
    }

    fn set_bit(&mut self, offset: u64, on: bool) {
        let index = byte_index(offset);
        let old = self.byte(index);
        let new = if on {
            old | bit_mask(offset)
        } else {
            old & !bit_mask(offset)
        };
        self.writes.insert(index, new);
        self.grow(index + 1);
    }

    fn grow(&mut self, len: usize) {
        self.len = self.len.max(len);
    }

    /// `bits` bits from `offset`, most significant first.
    fn field(&self, offset: u64, bits: u32) -> u64 {
        (0..u64::from(bits)).fold(0, |acc, i| acc << 1 | u64::from(self.bit(offset + i)))
    }

    /// Writes the low `bits` bits of `value` from `offset`, most significant first.
    fn set_field(&mut self, offset: u64, bits: u32, value: u64) {
        for i in 0..bits {
            self.set_bit(offset + u64::from(i), (value >> (bits - 1 - i)) & 1 == 1);
        }
    }

    /// Whether the writes change the string (its length or any byte).
    fn changes(&self) -> bool {
        self.len != self.base.len()
            || self
                .writes
                .iter()
                .any(|(&i, &b)| self.base.get(i).is_none_or(|&old| old != b))
    }

    fn into_patch(self) -> Patch {
        Patch {
            len: self.len,
            writes: self.writes,
        }
    }
}

/// What a write does to a string: its new length and the bytes that change.
struct Patch {
    len: usize,
    writes: BTreeMap<usize, u8>,
}

impl Patch {
    fn apply(&self, buf: &mut BytesMut) {
        if buf.len() < self.len {
            buf.resize(self.len, 0);
        }
        for (&i, &b) in &self.writes {
            if let Some(slot) = buf.get_mut(i) {
                *slot = b;
            }
        }
    }
}

/// Applies `patch` to the string under `key` (the caller checked its type), in place
/// unless a snapshot or an unsent reply still shares it; creates the string if missing.
fn store_patch(ctx: &mut WriteCtx<'_>, key: &Bytes, patch: &Patch) {
    if let Some(entry) = ctx.get_mut(key) {
        if let Value::Str(s) = &mut entry.value {
            let mut buf = match s.take_bytes().try_into_mut() {
                Ok(unique) => unique,
                Err(shared) => {
                    let mut copy = BytesMut::with_capacity(patch.len.max(shared.len()));
                    copy.extend_from_slice(&shared);
                    copy
                }
            };
            patch.apply(&mut buf);
            *s = CompactBytes::from_owned(buf.freeze());
            return;
        }
    }
    let mut buf = BytesMut::new();
    patch.apply(&mut buf);
    store_new(ctx, key, buf.freeze());
}

/// Stores `value` as a new string without its TTL. `WriteCtx::set` copies a string it is
/// given (request bytes must not be kept); this one is already the command's own
/// allocation, possibly hundreds of megabytes, so it goes in through `get_mut` instead.
fn store_new(ctx: &mut WriteCtx<'_>, key: &Bytes, value: Bytes) {
    ctx.set(key, Value::Str(CompactBytes::new()), None);
    if let Some(entry) = ctx.get_mut(key) {
        entry.value = Value::Str(CompactBytes::from_owned(value));
    }
}

/// SETBIT key offset value
pub fn setbit(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let offset = try_frame!(parse_offset(&args[2], None));
    let on = match parse_i64(&args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Frame::error(err::BIT_VALUE),
    };
    let key = &args[1];
    let base = try_frame!(string_of(ctx.get(key)).map(|s| s.map(CompactBytes::to_bytes)));
    let (old, patch) = {
        let mut view = Patched::new(base.as_deref().unwrap_or_default());
        let old = view.bit(offset);
        view.set_bit(offset, on);
        (old, view.changes().then(|| view.into_patch()))
    };
    // Our reference must go before the edit, or the string would be copied needlessly.
    drop(base);
    if let Some(patch) = patch {
        store_patch(ctx, key, &patch);
    }
    Frame::Integer(i64::from(old))
}

/// GETBIT key offset
pub fn getbit(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let offset = try_frame!(parse_offset(&args[2], None));
    let value = try_frame!(string_of(ctx.get(&args[1])));
    let on = value
        .and_then(|s| s.get(byte_index(offset)))
        .is_some_and(|b| b & bit_mask(offset) != 0);
    Frame::Integer(i64::from(on))
}

/// The unit of a range: `BYTE` (the default) or `BIT`; true for bits.
fn parse_unit(arg: Option<&Bytes>) -> Result<bool, Frame> {
    match arg {
        None => Ok(false),
        Some(a) if a.eq_ignore_ascii_case(b"bit") => Ok(true),
        Some(a) if a.eq_ignore_ascii_case(b"byte") => Ok(false),
        Some(_) => Err(Frame::error(err::SYNTAX)),
    }
}

/// Redis's `start`/`end` over a string of `len` bytes, counted in bytes or bits:
/// negative indexes count from the end, both are clamped into the string. Returns the
/// inclusive range of bits covered, or `None` when it is empty.
fn bit_range(start: i64, end: i64, len: usize, in_bits: bool) -> Option<(u64, u64)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX / 8);
    let total = if in_bits { len * 8 } else { len };
    let resolve = |i: i64| if i < 0 { total + i } else { i }.max(0);
    let start = resolve(start);
    let end = resolve(end).min(total - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if in_bits {
        (start, end)
    } else {
        (start * 8, end * 8 + 7)
    })
}

/// The bits of the first byte before bit `from`, and of the last byte after bit `to`.
fn edge_masks(from: u64, to: u64) -> (u8, u8) {
    let before = !(0xFFu8 >> (from & 7));
    let after = (0xFFu16 >> ((to & 7) + 1)) as u8;
    (before, after)
}

/// Set bits of `s` in the inclusive bit range.
fn count_ones(s: &[u8], from: u64, to: u64) -> u64 {
    let Some(bytes) = s.get(byte_index(from)..=byte_index(to)) else {
        return 0;
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut count: u64 = chunks
        .by_ref()
        .map(|c| {
            let word: [u8; 8] = c.try_into().unwrap_or_default();
            u64::from(u64::from_ne_bytes(word).count_ones())
        })
        .sum();
    count += chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>();
    let (before, after) = edge_masks(from, to);
    let first = bytes.first().map_or(0, |b| (b & before).count_ones());
    let last = bytes.last().map_or(0, |b| (b & after).count_ones());
    count - u64::from(first + last)
}

/// The first bit equal to `want` in the inclusive bit range of `s`.
fn first_bit(s: &[u8], from: u64, to: u64, want: bool) -> Option<u64> {
    let (first, last) = (byte_index(from), byte_index(to));
    let bytes = s.get(first..=last)?;
    let (before, after) = edge_masks(from, to);
    let boring = if want { 0x00 } else { 0xFF };
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == boring {
            continue;
        }
        // Look for a 1 either way, outside the range masked off.
        let mut hits = if want { byte } else { !byte };
        if i == 0 {
            hits &= !before;
        }
        if first + i == last {
            hits &= !after;
        }
        if hits != 0 {
            return Some((first + i) as u64 * 8 + u64::from(hits.leading_zeros()));
        }
    }
    None
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let Some(start) = parse_i64(&args[2]) else {
                return Frame::error(err::NOT_INTEGER);
            };
            let Some(end) = parse_i64(&args[3]) else {
                return Frame::error(err::NOT_INTEGER);
            };
            Some((start, end, try_frame!(parse_unit(args.get(4)))))
        }
        _ => return Frame::error(err::SYNTAX),
    };
    let Some(s) = try_frame!(string_of(ctx.get(&args[1]))) else {
        return Frame::Integer(0);
    };
    let bounds = match range {
        None => bit_range(0, -1, s.len(), false),
        // Both from the end and crossed: empty, before any clamping could widen it.
        Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
        Some((start, end, in_bits)) => bit_range(start, end, s.len(), in_bits),
    };
    let count = bounds.map_or(0, |(from, to)| count_ones(s, from, to));
    Frame::Integer(i64::try_from(count).unwrap_or(i64::MAX))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let want = match parse_i64(&args[2]) {
        None => return Frame::error(err::NOT_INTEGER),
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Frame::error(err::BITPOS_BIT),
    };
    // Redis reads start, then the unit, then end.
    let range = match args.len() {
        3 => None,
        4..=6 => {
            let Some(start) = parse_i64(&args[3]) else {
                return Frame::error(err::NOT_INTEGER);
            };
            let in_bits = try_frame!(parse_unit(args.get(5)));
            let end = match args.get(4).map(|raw| parse_i64(raw)) {
                None => None,
                Some(Some(end)) => Some(end),
                Some(None) => return Frame::error(err::NOT_INTEGER),
            };
            Some((start, end, in_bits))
        }
        _ => return Frame::error(err::SYNTAX),
    };
    let Some(s) = try_frame!(string_of(ctx.get(&args[1]))) else {
        // A missing key is an endless run of zeros.
        return Frame::Integer(if want { -1 } else { 0 });
    };
    let (start, end, in_bits) = range.unwrap_or((0, None, false));
    let Some((from, to)) = bit_range(start, end.unwrap_or(-1), s.len(), in_bits) else {
        return Frame::Integer(-1);
    };
    match first_bit(s, from, to, want) {
        Some(pos) => Frame::Integer(i64::try_from(pos).unwrap_or(-1)),
        // No clear bit: without an explicit end the string counts as padded with zeros
        // on the right, so the answer is the first bit after it.
        None if !want && end.is_none() => Frame::Integer(i64::try_from(to + 1).unwrap_or(-1)),
        None => Frame::Integer(-1),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: missing keys are empty strings; an empty
/// result deletes the destination.
pub fn bitop(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let op = match args[1].to_ascii_lowercase().as_slice() {
        b"and" => BitOp::And,
        b"or" => BitOp::Or,
        b"xor" => BitOp::Xor,
        b"not" => BitOp::Not,
        _ => return Frame::error(err::SYNTAX),
    };
    if op == BitOp::Not && args.len() != 4 {
        return Frame::error(err::BITOP_NOT_ONE_KEY);
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(
            try_frame!(string_of(ctx.get(key)).map(|s| s.map(CompactBytes::to_bytes)))
                .unwrap_or_default(),
        );
    }
    let dest = &args[2];
    let len = sources.iter().map(Bytes::len).max().unwrap_or(0);
    if len == 0 {
        ctx.remove(dest);
        return Frame::Integer(0);
    }
    let mut out = BytesMut::zeroed(len);
    if let Some((first, rest)) = sources.split_first() {
        if let Some(head) = out.get_mut(..first.len()) {
            head.copy_from_slice(first);
        }
        for src in rest {
            match op {
                BitOp::And => {
                    out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o &= s);
                    // Past a shorter source every byte ANDs with zero.
                    if let Some(tail) = out.get_mut(src.len()..) {
                        tail.fill(0);
                    }
                }
                BitOp::Or => out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o |= s),
                BitOp::Xor => out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o ^= s),
                BitOp::Not => {}
            }
        }
    }
    if op == BitOp::Not {
        out.iter_mut().for_each(|b| *b = !*b);
    }
    drop(sources);
    store_new(ctx, dest, out.freeze());
    Frame::Integer(len as i64)
}

/// What BITFIELD does on overflow, from the last OVERFLOW before the operation.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation on one field.
#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

impl Field {
    fn writes(&self) -> bool {
        !matches!(self.op, FieldOp::Get)
    }

    /// The last bit a write touches.
    fn last_bit(&self) -> u64 {
        self.offset + u64::from(self.bits) - 1
    }
}

/// `i1`..`i64` or `u1`..`u63` (the type letter is case-sensitive, as in Redis).
fn parse_type(raw: &[u8]) -> Result<(bool, u32), Frame> {
    let signed = match raw.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(Frame::error(err::BITFIELD_TYPE)),
    };
    let widest = if signed { 64 } else { 63 };
    parse_i64(raw.get(1..).unwrap_or_default())
        .filter(|bits| (1..=widest).contains(bits))
        .map(|bits| (signed, bits as u32))
        .ok_or_else(|| Frame::error(err::BITFIELD_TYPE))
}

/// Parses every operation first, as Redis does, so a bad one fails the whole command.
fn parse_fields(args: &[Bytes]) -> Result<Vec<Field>, Frame> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while let Some(word) = args.get(j) {
        let remaining = args.len() - j - 1;
        let word = word.to_ascii_lowercase();
        let op_args = match word.as_slice() {
            b"get" if remaining >= 2 => 2,
            b"set" | b"incrby" if remaining >= 3 => 3,
            b"overflow" if remaining >= 1 => {
                let mode = args[j + 1].to_ascii_lowercase();
                overflow = match mode.as_slice() {
                    b"wrap" => Overflow::Wrap,
                    b"sat" => Overflow::Sat,
                    b"fail" => Overflow::Fail,
                    _ => return Err(Frame::error(err::BITFIELD_OVERFLOW)),
                };
                j += 2;
                continue;
            }
            _ => return Err(Frame::error(err::SYNTAX)),
        };
        let (signed, bits) = parse_type(&args[j + 1])?;
        let offset = parse_offset(&args[j + 2], Some(bits))?;
        let op = if op_args == 2 {
            FieldOp::Get
        } else {
            let value = parse_i64(&args[j + 3]).ok_or_else(|| Frame::error(err::NOT_INTEGER))?;
            if word.as_slice() == b"set" {
                FieldOp::Set(value)
            } else {
                FieldOp::IncrBy(value)
            }
        };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += 1 + op_args;
    }
    Ok(fields)
}

/// Reads `bits` raw bits as the field's type.
fn as_integer(raw: u64, bits: u32, signed: bool) -> i128 {
    if signed && bits < 64 && raw & (1 << (bits - 1)) != 0 {
        i128::from((raw | (u64::MAX << bits)) as i64)
    } else if signed {
        i128::from(raw as i64)
    } else {
        i128::from(raw)
    }
}

/// Runs one operation against `view`; its reply (null when OVERFLOW FAIL refused it).
fn run_field(view: &mut Patched<'_>, field: &Field) -> Frame {
    let (bits, signed) = (field.bits, field.signed);
    let old = as_integer(view.field(field.offset, bits), bits, signed);
    let (wanted, reply_new) = match field.op {
        FieldOp::Get => return Frame::Integer(old as i64),
        // An unsigned field reads the value as its 64-bit two's complement, as Redis does
        // (so SET u8 0 -1 overflows upwards).
        FieldOp::Set(v) if !signed => (i128::from(v as u64), false),
        FieldOp::Set(v) => (i128::from(v), false),
        FieldOp::IncrBy(delta) => (old + i128::from(delta), true),
    };
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    let new = if (min..=max).contains(&wanted) {
        wanted
    } else {
        match field.overflow {
            Overflow::Fail => return Frame::Null,
            Overflow::Sat if wanted > max => max,
            Overflow::Sat => min,
            Overflow::Wrap => as_integer(wanted.rem_euclid(1i128 << bits) as u64, bits, signed),
        }
    };
    // Two's complement: the low `bits` bits of the value are what is stored.
    view.set_field(field.offset, bits, new as u64);
    Frame::Integer(if reply_new { new } else { old } as i64)
}

fn run_fields(view: &mut Patched<'_>, fields: &[Field]) -> Frame {
    Frame::Array(fields.iter().map(|f| run_field(view, f)).collect())
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP|SAT|FAIL] ...
pub fn bitfield(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let fields = try_frame!(parse_fields(args));
    let key = &args[1];
    let Some(last_bit) = fields
        .iter()
        .filter(|f| f.writes())
        .map(Field::last_bit)
        .max()
    else {
        // Only GETs: a read, which neither creates nor touches the key.
        let base = try_frame!(string_of(ctx.get(key)));
        return run_fields(&mut Patched::new(base.map_or(&[][..], |b| &b[..])), &fields);
    };
    // The largest string bounds the last bit a write touches, not only its first one.
    if byte_index(last_bit) >= MAX_STRING_LEN {
        return Frame::error(err::BIT_OFFSET);
    }
    let base = try_frame!(string_of(ctx.get(key)).map(|s| s.map(CompactBytes::to_bytes)));
    let existed = base.is_some();
    let (reply, patch) = {
        let mut view = Patched::new(base.as_deref().unwrap_or_default());
        // Redis grows the string to the farthest bit any write reaches, even if FAIL
        // then refuses that write.
        view.grow(byte_index(last_bit) + 1);
        let reply = run_fields(&mut view, &fields);
        let changed = view.changes() || !existed;
        (reply, changed.then(|| view.into_patch()))
    };
    drop(base);
    if let Some(patch) = patch {
        store_patch(ctx, key, &patch);
    }
    reply
}

/// BITFIELD_RO key [GET type offset ...]
pub fn bitfield_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let fields = try_frame!(parse_fields(args));
    if fields.iter().any(Field::writes) {
        return Frame::error(err::BITFIELD_RO_GET_ONLY);
    }
    let base = try_frame!(string_of(ctx.get(&args[1])));
    run_fields(&mut Patched::new(base.map_or(&[][..], |b| &b[..])), &fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::{check_transcript, must_apply};
    use crate::keyspace::Keyspace;

    /// The bit helpers agree with a bit-by-bit count on every small range.
    #[test]
    fn count_and_search_agree_with_a_naive_walk() {
        let s = [
            0b1010_0110u8,
            0x00,
            0xFF,
            0b0001_0000,
            0x7F,
            1,
            2,
            3,
            4,
            0xF0,
        ];
        let bit = |i: u64| s[(i / 8) as usize] & (0x80 >> (i % 8)) != 0;
        let n = s.len() as u64 * 8;
        for from in 0..n {
            for to in from..n {
                let naive = (from..=to).filter(|&i| bit(i)).count() as u64;
                assert_eq!(count_ones(&s, from, to), naive, "count {from}..={to}");
                for want in [false, true] {
                    let naive = (from..=to).find(|&i| bit(i) == want);
                    assert_eq!(
                        first_bit(&s, from, to, want),
                        naive,
                        "pos {want} {from}..={to}"
                    );
                }
            }
        }
    }

    /// SETBIT and GETBIT: growth, old values, offset and value errors.
    #[test]
    fn setbit_and_getbit() {
        check_transcript(&[
            ("setbit k 7 1", ":0\n", ""),
            ("get k", "$1\n\x01\n", ""),
            ("setbit k 7 1", ":1\n", ""),
            ("setbit k 1 1", ":0\n", ""),
            ("get k", "$1\nA\n", ""),
            ("getbit k 1", ":1\n", ""),
            ("getbit k 0", ":0\n", ""),
            ("getbit k 100", ":0\n", ""),
            ("getbit missing 3", ":0\n", ""),
            ("setbit k 17 1", ":0\n", ""),
            ("strlen k", ":3\n", ""),
            ("get k", "$3\nA\x00@\n", ""),
            ("setbit k 7 0", ":1\n", ""),
            ("get k", "$3\n@\x00@\n", ""),
            ("setbit k 23 0", ":0\n", ""),
            (
                "setbit k -1 1",
                "-ERR bit offset is not an integer or out of range\n",
                "",
            ),
            (
                "setbit k 4294967296 1",
                "-ERR bit offset is not an integer or out of range\n",
                "",
            ),
            (
                "getbit k 4294967296",
                "-ERR bit offset is not an integer or out of range\n",
                "",
            ),
            ("getbit k 4294967295", ":0\n", ""),
            (
                "setbit k abc 1",
                "-ERR bit offset is not an integer or out of range\n",
                "",
            ),
            (
                "setbit k 1 2",
                "-ERR bit is not an integer or out of range\n",
                "",
            ),
            (
                "setbit k 1 -1",
                "-ERR bit is not an integer or out of range\n",
                "",
            ),
            (
                "setbit k 1 x",
                "-ERR bit is not an integer or out of range\n",
                "",
            ),
            // The offset is checked before the value.
            (
                "setbit k x 2",
                "-ERR bit offset is not an integer or out of range\n",
                "",
            ),
            // An integer string is read as its text, as Redis does.
            ("set n 1", "+OK\n", ""),
            ("getbit n 2", ":1\n", ""),
            ("getbit n 7", ":1\n", ""),
            ("set t v ex 100", "+OK\n", ""),
            ("setbit t 0 1", ":0\n", ""),
            ("ttl t", ":100\n", ""),
        ]);
    }

    /// Every bit command answers WRONGTYPE for a key of another type (after its own
    /// argument checks), and leaves the key alone.
    #[test]
    fn other_types_are_wrongtype() {
        let mut ks = Keyspace::new();
        let mut ctx = WriteCtx {
            keyspace: &mut ks,
            db: 0,
            now_ms: 1000,
            index: 1,
            in_transaction: false,
        };
        let list = imbl::Vector::from(vec![Bytes::from_static(b"a")]);
        ctx.set(&Bytes::from_static(b"l"), Value::List(Box::new(list)), None);
        for line in [
            "setbit l 0 1",
            "getbit l 0",
            "bitcount l",
            "bitcount l 0 -1 bit",
            "bitpos l 1",
            "bitpos l 0 0 -1",
            "bitop and d s l",
            "bitfield l get u8 0",
            "bitfield l set u8 0 1",
            "bitfield_ro l get u8 0",
        ] {
            assert_eq!(
                must_apply(&mut ks, 1000, line),
                Frame::error(err::WRONGTYPE),
                "{line}"
            );
        }
        assert_eq!(
            must_apply(&mut ks, 1000, "type l"),
            Frame::Simple("list".into())
        );
        assert_eq!(must_apply(&mut ks, 1000, "exists d"), Frame::Integer(0));
        // The destination of BITOP may hold any type: it is replaced.
        assert_eq!(must_apply(&mut ks, 1000, "set s ab"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 1000, "bitop or l s"), Frame::Integer(2));
        assert_eq!(must_apply(&mut ks, 1000, "get l"), Frame::bulk("ab"));
    }

    /// An unchanged SETBIT or BITFIELD leaves the key's version alone (WATCH), a change
    /// bumps it.
    #[test]
    fn unchanged_bits_keep_the_version() {
        let mut ks = Keyspace::new();
        let version = |ks: &Keyspace| ks.db(0).and_then(|d| d.get(b"k", 0)).map(|e| e.version);
        let apply = |ks: &mut Keyspace, index: u64, line: &str| {
            let args = line
                .split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect();
            ks.apply(
                index,
                &crate::keyspace::Request {
                    time_ms: 1,
                    op: crate::keyspace::Op::Command { db: 0, args },
                },
            )
        };
        apply(&mut ks, 1, "setbit k 3 1");
        assert_eq!(version(&ks), Some(1));
        assert_eq!(apply(&mut ks, 2, "setbit k 3 1"), Frame::Integer(1));
        assert_eq!(
            apply(&mut ks, 3, "bitfield k set u4 0 1 get u8 0"),
            Frame::Array(vec![Frame::Integer(1), Frame::Integer(16)])
        );
        assert_eq!(
            apply(&mut ks, 4, "bitfield k get u8 0"),
            Frame::Array(vec![Frame::Integer(16)])
        );
        assert_eq!(version(&ks), Some(1));
        assert_eq!(apply(&mut ks, 5, "setbit k 8 0"), Frame::Integer(0));
        assert_eq!(version(&ks), Some(5));
        assert_eq!(
            apply(&mut ks, 6, "bitfield k incrby u4 4 1"),
            Frame::Array(vec![Frame::Integer(1)])
        );
        assert_eq!(version(&ks), Some(6));
        assert_eq!(apply(&mut ks, 7, "get k"), Frame::bulk(b"\x11\x00"));
    }

    /// BITCOUNT: whole string, byte and bit ranges, negative indexes, errors.
    #[test]
    fn bitcount_ranges() {
        check_transcript(&[
            ("set s foobar", "+OK\n", ""),
            ("bitcount s", ":26\n", ""),
            ("bitcount s 0 0", ":4\n", ""),
            ("bitcount s 1 1", ":6\n", ""),
            ("bitcount s 1 1 byte", ":6\n", ""),
            ("bitcount s 5 30 bit", ":17\n", ""),
            ("bitcount s -1 -1", ":4\n", ""),
            ("bitcount s -2 -1 BIT", ":1\n", ""),
            ("bitcount s 0 -1", ":26\n", ""),
            ("bitcount s -100 100", ":26\n", ""),
            ("bitcount s 3 1", ":0\n", ""),
            ("bitcount s -1 -3", ":0\n", ""),
            // Crossed negatives are empty even when clamping would meet at byte 0.
            ("bitcount s -100 -200", ":0\n", ""),
            ("bitcount s 10 20", ":0\n", ""),
            ("bitcount s 0", "-ERR syntax error\n", ""),
            ("bitcount s 0 1 bits", "-ERR syntax error\n", ""),
            ("bitcount s 0 1 bit x", "-ERR syntax error\n", ""),
            (
                "bitcount s a 1",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("bitcount missing", ":0\n", ""),
            ("bitcount missing 0 5", ":0\n", ""),
            // Arguments are checked before the key is looked up (Redis 7.2).
            (
                "bitcount missing 0 x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("set e \"\"", "+OK\n", ""),
            ("bitcount e", ":0\n", ""),
            ("bitcount e 0 -1 bit", ":0\n", ""),
            ("setbit h 0 1", ":0\n", ""),
            ("bitcount h", ":1\n", ""),
        ]);
    }

    /// BITPOS: the documented examples, zero padding without an end, BIT ranges.
    #[test]
    fn bitpos_ranges() {
        check_transcript(&[
            ("set k \"\\xff\\xf0\\x00\"", "+OK\n", ""),
            ("bitpos k 0", ":12\n", ""),
            ("set k \"\\x00\\xff\\xf0\"", "+OK\n", ""),
            ("bitpos k 1 0", ":8\n", ""),
            ("bitpos k 1 2", ":16\n", ""),
            ("bitpos k 1 2 -1 byte", ":16\n", ""),
            ("bitpos k 1 7 15 bit", ":8\n", ""),
            ("bitpos k 0 8 15 bit", ":-1\n", ""),
            ("bitpos k 0 8 12 bit", ":-1\n", ""),
            ("bitpos k 0 8 22 bit", ":20\n", ""),
            ("set z \"\\x00\\x00\\x00\"", "+OK\n", ""),
            ("bitpos z 1", ":-1\n", ""),
            ("bitpos z 1 7 -3 bit", ":-1\n", ""),
            ("set f \"\\xff\\xff\"", "+OK\n", ""),
            // All ones: the first clear bit is past the end unless an end was given.
            ("bitpos f 0", ":16\n", ""),
            ("bitpos f 0 1", ":16\n", ""),
            ("bitpos f 0 0 -1", ":-1\n", ""),
            ("bitpos f 0 0 1 bit", ":-1\n", ""),
            ("bitpos f 1 -1", ":8\n", ""),
            ("bitpos f 1 5 2", ":-1\n", ""),
            ("bitpos f 1 -100 -200", ":0\n", ""),
            ("bitpos missing 0", ":0\n", ""),
            ("bitpos missing 1", ":-1\n", ""),
            ("bitpos missing 1 0 5 bit", ":-1\n", ""),
            ("set e \"\"", "+OK\n", ""),
            ("bitpos e 0", ":-1\n", ""),
            ("bitpos e 1", ":-1\n", ""),
            ("bitpos f 2", "-ERR The bit argument must be 1 or 0.\n", ""),
            (
                "bitpos f x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            (
                "bitpos f 1 x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            (
                "bitpos f 1 0 x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            // The unit is read before the end.
            ("bitpos f 1 0 x bits", "-ERR syntax error\n", ""),
            ("bitpos f 1 0 1 bit x", "-ERR syntax error\n", ""),
        ]);
    }

    /// BITOP: each operation, shorter sources padded with zeros, NOT's one key, empty
    /// results deleting the destination, the destination's TTL and type replaced.
    #[test]
    fn bitop_operations() {
        check_transcript(&[
            ("set a \"\\x3f\\x0f\"", "+OK\n", ""),
            ("set b p", "+OK\n", ""),
            ("bitop and d a b", ":2\n", ""),
            ("get d", "$2\n0\x00\n", ""),
            ("bitop or d a b", ":2\n", ""),
            ("get d", "$2\n\x7f\x0f\n", ""),
            ("bitop xor d a b", ":2\n", ""),
            ("get d", "$2\nO\x0f\n", ""),
            ("set c \"\\xf0\\xbf\"", "+OK\n", ""),
            ("bitop not d c", ":2\n", ""),
            ("get d", "$2\n\x0f@\n", ""),
            ("bitop AND d a missing", ":2\n", ""),
            ("get d", "$2\n\x00\x00\n", ""),
            ("bitop or d a", ":2\n", ""),
            ("get d", "$2\n?\x0f\n", ""),
            ("set t x ex 100", "+OK\n", ""),
            ("bitop or t a", ":2\n", ""),
            ("ttl t", ":-1\n", ""),
            ("bitop or d missing other", ":0\n", ""),
            ("exists d", ":0\n", ""),
            (
                "bitop not d a b",
                "-ERR BITOP NOT must be called with a single source key.\n",
                "",
            ),
            ("bitop nand d a", "-ERR syntax error\n", ""),
            (
                "bitop not d",
                "-ERR wrong number of arguments for 'bitop' command\n",
                "",
            ),
            ("bitop or a a b", ":2\n", ""),
            ("get a", "$2\n\x7f\x0f\n", ""),
            ("set e \"\"", "+OK\n", ""),
            ("set keep v", "+OK\n", ""),
            ("bitop or keep e", ":0\n", ""),
            ("exists keep", ":0\n", ""),
        ]);
    }

    /// BITFIELD: types, signed and unsigned reads, `#` offsets, overflow modes, growth.
    #[test]
    fn bitfield_operations() {
        check_transcript(&[
            ("bitfield k set i8 0 100 get i8 0", "*2\n:0\n:100\n", ""),
            ("bitfield k incrby i5 100 1 get u4 0", "*2\n:1\n:6\n", ""),
            ("strlen k", ":14\n", ""),
            ("bitfield s set u8 #0 255 set u8 #1 200 get u16 0", "*3\n:0\n:0\n:65480\n", ""),
            ("bitfield s get i8 0 get i16 0 get u63 0 get i64 0", "*4\n:-1\n:-56\n:9215490737506877440\n:-15762598695796736\n", ""),
            ("bitfield s get u8 #1 get u8 #2", "*2\n:200\n:0\n", ""),
            // Wrap (the default), saturate, fail; the mode applies to what follows it.
            ("bitfield w set i8 0 127 incrby i8 0 1", "*2\n:0\n:-128\n", ""),
            ("bitfield w overflow sat incrby i8 0 -1 incrby i8 0 300", "*2\n:-128\n:127\n", ""),
            ("bitfield w overflow sat incrby i8 0 100", "*1\n:127\n", ""),
            ("bitfield w overflow fail incrby i8 0 1 get i8 0", "*2\n$-1\n:127\n", "*2\n_\n:127\n"),
            ("bitfield u overflow fail set u2 0 4", "*1\n$-1\n", "*1\n_\n"),
            ("bitfield u overflow sat set u2 0 -1 overflow wrap set u2 2 5", "*2\n:0\n:0\n", ""),
            ("bitfield u get u2 0 get u2 2", "*2\n:3\n:1\n", ""),
            ("bitfield u overflow sat incrby u2 0 -10 incrby u2 2 10", "*2\n:0\n:3\n", ""),
            ("bitfield u incrby u2 0 -1", "*1\n:3\n", ""),
            ("bitfield big set i64 0 9223372036854775807 incrby i64 0 1", "*2\n:0\n:-9223372036854775808\n", ""),
            ("bitfield big overflow sat incrby i64 0 -1", "*1\n:-9223372036854775808\n", ""),
            ("bitfield big set u63 0 -1 get u63 0", "*2\n:4611686018427387904\n:9223372036854775807\n", ""),
            ("bitfield big set i1 0 1 get i1 0 get u1 0", "*3\n:-1\n:-1\n:1\n", ""),
            // A FAIL still creates the key, grown to the field, as in Redis.
            ("bitfield f overflow fail set u8 8 256", "*1\n$-1\n", "*1\n_\n"),
            ("get f", "$2\n\x00\x00\n", ""),
            ("bitfield none", "*0\n", ""),
            ("bitfield none get u8 0", "*1\n:0\n", ""),
            ("exists none", ":0\n", ""),
            ("bitfield k get u64 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\n", ""),
            ("bitfield k get i65 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\n", ""),
            ("bitfield k get I8 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\n", ""),
            ("bitfield k get u0 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\n", ""),
            ("bitfield k get u8 -1", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k get u8 #-1", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k get u8 #", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k get u8 4294967296", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k get u8 #536870912", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k get u8 #536870911", "*1\n:0\n", ""),
            ("bitfield k set u8 4294967290 1", "-ERR bit offset is not an integer or out of range\n", ""),
            ("bitfield k set u8 0 x", "-ERR value is not an integer or out of range\n", ""),
            ("bitfield k overflow what", "-ERR Invalid OVERFLOW type specified\n", ""),
            ("bitfield k get u8", "-ERR syntax error\n", ""),
            ("bitfield k set u8 0", "-ERR syntax error\n", ""),
            ("bitfield k overflow", "-ERR syntax error\n", ""),
            ("bitfield k bogus", "-ERR syntax error\n", ""),
        ]);
    }

    /// BITFIELD_RO: GETs only, after the whole command parsed.
    #[test]
    fn bitfield_ro_reads_only() {
        check_transcript(&[
            ("set k \"\\x01\\x02\"", "+OK\n", ""),
            (
                "bitfield_ro k get u8 0 get u8 #1 get i4 4",
                "*3\n:1\n:2\n:1\n",
                "",
            ),
            ("bitfield_ro k overflow sat get u16 0", "*1\n:258\n", ""),
            (
                "bitfield_ro k set u8 0 1",
                "-ERR BITFIELD_RO only supports the GET subcommand\n",
                "",
            ),
            (
                "bitfield_ro k incrby u8 0 x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("bitfield_ro k", "*0\n", ""),
            ("bitfield_ro missing get i8 0", "*1\n:0\n", ""),
        ]);
    }
}

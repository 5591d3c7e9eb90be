//! Request decoding: turns the bytes a client sends into argument vectors the way
//! Redis 7's `processMultibulkBuffer`/`processInlineBuffer` do, with every size
//! checked before memory is committed. Also owns [`ProtocolError`] (shared with the
//! reply parser in `reply.rs`) and the strict integer parser both decoders use.
//!
//! Two entry points: [`parse_request`] is stateless and re-scans a partial request
//! on every call; [`RequestParser`] remembers how far it got, so a request with
//! millions of arguments trickling in over many reads costs linear time.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use super::inline;

pub use super::reply::parse_frame;

/// Argument positions a parse remembers on the stack; requests with more
/// arguments are walked a second time to slice them out.
const REMEMBERED_ARGS: usize = 8;

/// Redis's `INT_MAX` ceiling on a multibulk count, applied whatever the configured limit.
const REDIS_MAX_MULTIBULK: usize = i32::MAX as usize;

/// Why a byte stream is not valid RESP.
///
/// `Display` is exactly the text Redis replies with after `ERR ` (see
/// [`ProtocolError::reply_text`]). After any of these the connection's buffer is in
/// an unspecified state: Redis replies and closes the connection, and so should the caller.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A multibulk count that is not a strict integer, exceeds the limit, or whose
    /// line does not end in `\r\n`.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk length that is not a strict integer, is negative or exceeds the limit,
    /// or a bulk body not followed by `\r\n` (the announced length was wrong; Redis
    /// has no separate text for this, so it reports the length).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An argument of a multibulk request that does not start with `$`; holds the byte found.
    #[error("Protocol error: expected '$', got '{}'", printable(.0))]
    ExpectedDollar(u8),
    /// No `\r` within the inline size limit after `*`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// No `\r` within the inline size limit after `$`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline request line longer than the inline size limit.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// An inline request whose quoting does not parse (unterminated quote, or a
    /// closing quote followed by something other than a space).
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Reply parsing only: a type byte that is not a RESP2/RESP3 type.
    #[error("Protocol error: unknown reply type '{}'", printable(.0))]
    UnknownReplyType(u8),
    /// Reply parsing only: a malformed reply; holds what was wrong.
    #[error("Protocol error: {0}")]
    InvalidReply(&'static str),
}

impl ProtocolError {
    /// The full error reply text Redis sends for this error, `ERR ` included.
    pub fn reply_text(&self) -> String {
        format!("ERR {self}")
    }
}

/// The byte as Redis's `%c` would show it, except that CR and LF become spaces
/// because an error line cannot contain them (Redis maps them the same way).
fn printable(byte: &u8) -> char {
    match *byte {
        b'\r' | b'\n' => ' ',
        b => char::from(b),
    }
}

/// Size limits for client requests, checked before the bytes they govern are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest bulk argument (`proto-max-bulk-len`); default 512 MiB.
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk request. Redis itself only caps this at
    /// `INT_MAX` (always enforced here too); the default of 64 Mi arguments is far
    /// above anything a real command sends and bounds per-request bookkeeping.
    pub max_multibulk_len: usize,
    /// Longest inline request line, and longest `*`/`$` count line
    /// (`PROTO_INLINE_MAX_SIZE`); default 64 KiB.
    pub max_inline_len: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 64 * 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Parses one request from the front of `buf`, consuming it.
///
/// Returns `Ok(None)` when `buf` holds only part of a request (nothing is consumed;
/// call again once more bytes arrived) and `Ok(Some(vec![]))` for an empty request
/// (`*0`, `*-1`, a blank inline line), which the caller skips as Redis does.
/// Bulk arguments are slices of `buf`'s storage, not copies.
///
/// A request beginning with `*` is multibulk; anything else is an inline command.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestParser::new().parse(buf, limits)
}

/// A resumable [`parse_request`]: between calls it remembers how many arguments
/// of a partial multibulk request were already checked, so each byte is scanned
/// once however the request is split across reads.
///
/// Between calls the caller may only append to the buffer (or must call
/// [`RequestParser::reset`]); after a complete request or an error the parser
/// starts afresh by itself.
#[derive(Clone, Debug, Default)]
pub struct RequestParser {
    pending: Option<Pending>,
}

/// Progress through a multibulk request that is not complete yet.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Arguments the header announced.
    argc: usize,
    /// Arguments already known to be complete and well formed.
    checked: usize,
    /// Offset of the next argument's `$` line.
    pos: usize,
    /// Buffer length the request needs at least before it can complete.
    needed: usize,
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        RequestParser::default()
    }

    /// Parses one request from the front of `buf`; same contract as [`parse_request`].
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let pending = self.pending.take();
        match buf.first() {
            None => Ok(None),
            Some(b'*') => self.parse_multibulk(pending, buf, limits),
            Some(_) => inline::parse_inline(buf, limits.max_inline_len),
        }
    }

    /// How many bytes the buffer must hold at least before the request in progress
    /// can complete, when known: lets a connection reserve room for a large bulk
    /// in one step instead of growing its buffer read by read.
    pub fn bytes_needed(&self) -> Option<usize> {
        self.pending.map(|p| p.needed)
    }

    /// Forgets any request in progress, for reuse on a buffer that was cleared
    /// or replaced rather than appended to.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    fn parse_multibulk(
        &mut self,
        pending: Option<Pending>,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let data: &[u8] = buf;
        // A shorter buffer than the saved position means the caller reused the
        // parser on a different stream; start over rather than trust stale offsets.
        let mut state = match pending {
            Some(p) if p.pos <= data.len() => p,
            _ => {
                let Some((argc, pos)) = multibulk_header(data, limits)? else {
                    return Ok(None);
                };
                if argc == 0 {
                    buf.advance(pos);
                    return Ok(Some(Vec::new()));
                }
                Pending {
                    argc,
                    checked: 0,
                    pos,
                    needed: 0,
                }
            }
        };
        // Most commands have a few arguments: remember where their bodies are so a
        // request checked in one call need not be walked a second time.
        let walked_from_start = state.checked == 0;
        let mut bodies = [(0usize, 0usize); REMEMBERED_ARGS];
        while state.checked < state.argc {
            match bulk_arg(data, state.pos, limits)? {
                Scan::Complete { body, next } => {
                    if let Some(slot) = bodies.get_mut(state.checked) {
                        *slot = (body.start, body.end);
                    }
                    state.pos = next;
                    state.checked += 1;
                }
                Scan::Incomplete { needed } => {
                    state.needed = needed;
                    self.pending = Some(state);
                    return Ok(None);
                }
            }
        }
        let request = buf.split_to(state.pos).freeze();
        match bodies.get(..state.argc) {
            Some(bodies) if walked_from_start => {
                // Every range lies inside `request`: it was checked against `data`,
                // of which `request` is the first `state.pos` bytes.
                Ok(Some(
                    bodies
                        .iter()
                        .map(|&(start, end)| request.slice(start..end))
                        .collect(),
                ))
            }
            _ => collect_args(&request, state.argc, limits).map(Some),
        }
    }
}

/// Outcome of scanning one bulk argument.
enum Scan {
    /// The argument's body is `body`; the next argument starts at `next`.
    Complete {
        body: std::ops::Range<usize>,
        next: usize,
    },
    /// The data ends first; at least `needed` bytes are required in total.
    Incomplete { needed: usize },
}

/// Reads the `*<count>\r\n` line at the start of `data`: `None` if incomplete,
/// else the argument count (0 for `*0` and any negative count, as Redis treats
/// them) and the offset of the first argument.
fn multibulk_header(
    data: &[u8],
    limits: &RequestLimits,
) -> Result<Option<(usize, usize)>, ProtocolError> {
    if let Some((count, next)) = quick_count(data, 0, b'*', limits.max_inline_len) {
        return match usize::try_from(count) {
            Ok(count) if count <= limits.max_multibulk_len && count <= REDIS_MAX_MULTIBULK => {
                Ok(Some((count, next)))
            }
            _ => Err(ProtocolError::InvalidMultibulkLength),
        };
    }
    let Some((line, next)) = count_line(
        data,
        0,
        limits.max_inline_len,
        ProtocolError::TooBigMultibulkCount,
        ProtocolError::InvalidMultibulkLength,
    )?
    else {
        return Ok(None);
    };
    let digits = line.get(1..).unwrap_or_default();
    let count = string2ll(digits).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count <= 0 {
        return Ok(Some((0, next)));
    }
    let count = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_multibulk_len || count > REDIS_MAX_MULTIBULK {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    Ok(Some((count, next)))
}

/// Scans the bulk argument whose `$` line starts at `pos`, checking the length
/// against the limit as soon as its line is complete, before the body arrives.
fn bulk_arg(data: &[u8], pos: usize, limits: &RequestLimits) -> Result<Scan, ProtocolError> {
    let (len, body_start) = match quick_count(data, pos, b'$', limits.max_inline_len) {
        Some((len, body_start)) => (usize::try_from(len).ok(), body_start),
        None => match bulk_header(data, pos, limits)? {
            Some(found) => found,
            None => {
                return Ok(Scan::Incomplete {
                    needed: data.len().saturating_add(1),
                })
            }
        },
    };
    let len = len
        .filter(|&n| n <= limits.max_bulk_len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let body_end = body_start
        .checked_add(len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let next = body_end
        .checked_add(2)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    match data.get(body_end..next) {
        None => Ok(Scan::Incomplete { needed: next }),
        Some(b"\r\n") => Ok(Scan::Complete {
            body: body_start..body_end,
            next,
        }),
        Some(_) => Err(ProtocolError::InvalidBulkLength),
    }
}

/// The common shape of a count line, `<tag><digits>\r\n` with 1 to 18 digits and
/// no leading zero, parsed in one pass without searching for the `\r` first.
/// Returns the value and the offset after the line, or `None` for anything else
/// (including incomplete lines), which the general path then handles; every line
/// accepted here gets the same result there.
fn quick_count(data: &[u8], pos: usize, tag: u8, max_line: usize) -> Option<(u64, usize)> {
    let rest = data.get(pos..)?;
    if rest.first() != Some(&tag) || rest.get(1) == Some(&b'0') && rest.get(2) != Some(&b'\r') {
        return None;
    }
    let mut value: u64 = 0;
    let mut cr = 1;
    loop {
        match *rest.get(cr)? {
            d @ b'0'..=b'9' if cr <= 18 => value = value * 10 + u64::from(d - b'0'),
            b'\r' if cr > 1 && cr <= max_line && rest.get(cr + 1) == Some(&b'\n') => {
                return Some((value, pos + cr + 2));
            }
            _ => return None,
        }
        cr += 1;
    }
}

/// The general path for a `$` line: `None` if incomplete, else the length (None
/// if negative) and the offset of the body.
fn bulk_header(
    data: &[u8],
    pos: usize,
    limits: &RequestLimits,
) -> Result<Option<(Option<usize>, usize)>, ProtocolError> {
    let Some((line, body_start)) = count_line(
        data,
        pos,
        limits.max_inline_len,
        ProtocolError::TooBigBulkCount,
        ProtocolError::InvalidBulkLength,
    )?
    else {
        return Ok(None);
    };
    match line.first() {
        Some(b'$') => {}
        Some(&other) => return Err(ProtocolError::ExpectedDollar(other)),
        // An empty line ends at its `\r`, which is what Redis would show.
        None => return Err(ProtocolError::ExpectedDollar(b'\r')),
    }
    let len =
        string2ll(line.get(1..).unwrap_or_default()).ok_or(ProtocolError::InvalidBulkLength)?;
    Ok(Some((usize::try_from(len).ok(), body_start)))
}

/// Finds the `\r\n`-terminated line starting at `pos` (type byte included) and
/// returns it without the terminator, plus the offset after it. `None` when the
/// line is not complete yet. A line whose `\r` lies beyond `max` bytes is
/// `too_big` whether or not the `\r` has arrived, so the outcome does not depend
/// on how the stream was split. A `\r` not followed by `\n` is `malformed`
/// (Redis would silently skip whatever byte follows).
fn count_line(
    data: &[u8],
    pos: usize,
    max: usize,
    too_big: ProtocolError,
    malformed: ProtocolError,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = data.get(pos..).unwrap_or_default();
    let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
    let Some(cr) = find_byte(window, b'\r') else {
        return if rest.len() > max {
            Err(too_big)
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((rest.get(..cr).unwrap_or_default(), pos + cr + 2))),
        Some(_) => Err(malformed),
    }
}

/// Splits a complete, already validated multibulk request into its arguments,
/// each a slice sharing `request`'s storage.
fn collect_args(
    request: &Bytes,
    argc: usize,
    limits: &RequestLimits,
) -> Result<Vec<Bytes>, ProtocolError> {
    let data: &[u8] = request;
    let mut pos = find_byte(data, b'\n').map_or(data.len(), |lf| lf + 1);
    // Every argument takes at least 6 bytes (`$0\r\n\r\n`), so this never
    // reserves more than the request itself justifies.
    let mut args = Vec::with_capacity(argc.min(data.len() / 6));
    for _ in 0..argc {
        match bulk_arg(data, pos, limits)? {
            Scan::Complete { body, next } => {
                args.push(request.slice(body));
                pos = next;
            }
            // Unreachable: the caller checked this exact request already.
            Scan::Incomplete { .. } => return Err(ProtocolError::InvalidBulkLength),
        }
    }
    Ok(args)
}

/// Position of the first `needle` in `haystack`, found with the standard library's
/// vectorised `memchr` (reached through `BufRead::skip_until` on a slice, which
/// copies nothing), since a header or inline line may be kilobytes long.
pub(super) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    let mut reader = haystack;
    match std::io::BufRead::skip_until(&mut reader, needle) {
        Ok(n) if n > 0 && haystack.get(n - 1) == Some(&needle) => Some(n - 1),
        _ => None,
    }
}

/// Redis's `string2ll`: a strict decimal `i64`. No sign other than a leading `-`,
/// no leading zeros (`0` itself excepted, so `-0` is rejected), no spaces, at most
/// 20 bytes, no overflow.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // `0 - value` fits an i64 exactly when value <= 2^63.
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::default()
    }

    fn args(list: &[&[u8]]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    /// Parses every request in `input`, fed all at once.
    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = parse_request(&mut buf, &limits())? {
            out.push(req);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn parse_err(input: &[u8], limits: &RequestLimits) -> ProtocolError {
        let mut buf = BytesMut::from(input);
        loop {
            match parse_request(&mut buf, limits) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error for {input:?}"),
                Err(e) => return e,
            }
        }
    }

    /// Feeds `input` one byte at a time, through the stateless function or a
    /// resumable parser, collecting requests until the first error.
    fn feed_bytewise(
        input: &[u8],
        limits: &RequestLimits,
        stateful: bool,
    ) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                let before = buf.len();
                let step = if stateful {
                    parser.parse(&mut buf, limits)
                } else {
                    parse_request(&mut buf, limits)
                };
                match step {
                    Ok(Some(req)) => out.push(req),
                    Ok(None) => {
                        assert_eq!(buf.len(), before, "incomplete input must not be consumed");
                        break;
                    }
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    const PIPELINE: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n\
        PING\r\n\
        *0\r\n\
        *-1\r\n\
        \r\n\
        *2\r\n$4\r\nECHO\r\n$0\r\n\r\n\
        set \"a b\" 'c d' \"\\x41\\n\"\n\
        *1\r\n$4\r\n\0\r\n\0\r\n";

    fn pipeline_expected() -> Vec<Vec<Bytes>> {
        vec![
            args(&[b"SET", b"key", b"va\r\nl"]),
            args(&[b"PING"]),
            vec![],
            vec![],
            vec![],
            args(&[b"ECHO", b""]),
            args(&[b"set", b"a b", b"c d", b"A\n"]),
            args(&[b"\0\r\n\0"]),
        ]
    }

    #[test]
    fn pipeline_all_at_once() {
        assert_eq!(parse_all(PIPELINE).expect("valid"), pipeline_expected());
    }

    #[test]
    fn pipeline_byte_by_byte_matches() {
        for stateful in [false, true] {
            let (out, err) = feed_bytewise(PIPELINE, &limits(), stateful);
            assert_eq!(err, None);
            assert_eq!(out, pipeline_expected());
        }
    }

    #[test]
    fn pipeline_every_split_point_matches() {
        for split in 0..=PIPELINE.len() {
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::from(&PIPELINE[..split]);
            let mut out = Vec::new();
            while let Some(req) = parser.parse(&mut buf, &limits()).expect("valid") {
                out.push(req);
            }
            buf.extend_from_slice(&PIPELINE[split..]);
            while let Some(req) = parser.parse(&mut buf, &limits()).expect("valid") {
                out.push(req);
            }
            assert_eq!(out, pipeline_expected(), "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn many_pipelined_requests() {
        let mut input = Vec::new();
        for i in 0..1000 {
            let v = i.to_string();
            input.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{v}\r\n", v.len()).as_bytes(),
            );
        }
        let reqs = parse_all(&input).expect("valid");
        assert_eq!(reqs.len(), 1000);
        assert_eq!(reqs[999], args(&[b"GET", b"999"]));
    }

    #[test]
    fn bulk_arguments_are_zero_copy() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let req = parse_request(&mut buf, &limits())
            .expect("valid")
            .expect("complete");
        for arg in &req {
            assert!(
                range.contains(&(arg.as_ptr() as usize)),
                "argument was copied"
            );
        }
    }

    #[test]
    fn binary_safe_bulk() {
        let body: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n\0").collect();
        let mut input = format!("*1\r\n${}\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_all(&input).expect("valid"),
            vec![vec![Bytes::from(body)]]
        );
    }

    #[test]
    fn empty_multibulk_counts() {
        for input in [&b"*0\r\n"[..], b"*-1\r\n", b"*-7\r\n"] {
            assert_eq!(parse_all(input).expect("valid"), vec![Vec::<Bytes>::new()]);
        }
    }

    #[test]
    fn incomplete_consumes_nothing() {
        for input in [
            &b"*"[..],
            b"*2",
            b"*2\r",
            b"*2\r\n$3\r\nGE",
            b"*2\r\n$3\r\nGET\r\n",
            b"PIN",
        ] {
            let mut buf = BytesMut::from(input);
            assert_eq!(parse_request(&mut buf, &limits()), Ok(None));
            assert_eq!(&buf[..], input);
        }
    }

    #[test]
    fn error_texts() {
        let l = limits();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*\r\n", "Protocol error: invalid multibulk length"),
            (b"*+1\r\n", "Protocol error: invalid multibulk length"),
            (b"* 1\r\n", "Protocol error: invalid multibulk length"),
            (b"*01\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\rx", "Protocol error: invalid multibulk length"),
            (
                b"*2147483648\r\n",
                "Protocol error: invalid multibulk length",
            ),
            (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$01\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$3\r\nabcde", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$3\r\nabc\n\r",
                "Protocol error: invalid bulk length",
            ),
            (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
            (b"*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
            (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
            (b"set \"a\n", "Protocol error: unbalanced quotes in request"),
            (b"set 'a\n", "Protocol error: unbalanced quotes in request"),
            (
                b"set \"a\"b\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, text) in cases {
            let err = parse_err(input, &l);
            assert_eq!(err.to_string(), text, "input {input:?}");
            assert_eq!(err.reply_text(), format!("ERR {text}"));
        }
    }

    #[test]
    fn too_big_count_and_inline_lines() {
        let l = RequestLimits {
            max_inline_len: 16,
            ..limits()
        };
        let mut mbulk = b"*".to_vec();
        mbulk.extend_from_slice(&[b'1'; 16]);
        assert_eq!(parse_err(&mbulk, &l), ProtocolError::TooBigMultibulkCount);
        assert_eq!(
            ProtocolError::TooBigMultibulkCount.to_string(),
            "Protocol error: too big mbulk count string"
        );
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend_from_slice(&[b'1'; 16]);
        assert_eq!(parse_err(&bulk, &l), ProtocolError::TooBigBulkCount);
        assert_eq!(
            ProtocolError::TooBigBulkCount.to_string(),
            "Protocol error: too big bulk count string"
        );
        let inline = [b'a'; 17];
        assert_eq!(parse_err(&inline, &l), ProtocolError::TooBigInline);
        assert_eq!(
            ProtocolError::TooBigInline.to_string(),
            "Protocol error: too big inline request"
        );
        // A line of exactly the limit is fine; one byte more is not, even when
        // its terminator arrived in the same read.
        let mut ok = vec![b'a'; 16];
        ok.push(b'\n');
        assert_eq!(
            parse_all_with(&ok, &l),
            Ok(vec![vec![Bytes::from(vec![b'a'; 16])]])
        );
        let mut long = vec![b'a'; 17];
        long.push(b'\n');
        assert_eq!(parse_err(&long, &l), ProtocolError::TooBigInline);
    }

    fn parse_all_with(
        input: &[u8],
        limits: &RequestLimits,
    ) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = parse_request(&mut buf, limits)? {
            out.push(req);
        }
        Ok(out)
    }

    #[test]
    fn limits_reject_before_the_body_arrives() {
        let l = RequestLimits {
            max_bulk_len: 10,
            max_multibulk_len: 3,
            ..limits()
        };
        // Only headers: the body never arrives, yet the length is refused.
        assert_eq!(
            parse_err(b"*1\r\n$11\r\n", &l),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(
            parse_err(b"*4\r\n", &l),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(
            parse_all_with(b"*3\r\n$10\r\n0123456789\r\n$0\r\n\r\n$1\r\nx\r\n", &l)
                .map(|r| r.len()),
            Ok(1)
        );
        let huge = format!("*1\r\n${}\r\n", u64::MAX);
        assert_eq!(
            parse_err(huge.as_bytes(), &limits()),
            ProtocolError::InvalidBulkLength
        );
        // A count of 1 Gi arguments must not reserve memory for them.
        let l = RequestLimits {
            max_multibulk_len: usize::MAX,
            ..limits()
        };
        let mut buf = BytesMut::from(&b"*1073741824\r\n$1\r\na\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &l), Ok(None));
    }

    #[test]
    fn byte_by_byte_errors_match_all_at_once() {
        let l = RequestLimits {
            max_inline_len: 8,
            max_bulk_len: 4,
            ..limits()
        };
        let inputs: Vec<Vec<u8>> = vec![
            b"*123456789\r\n".to_vec(),
            b"*1\r\n$123456789\r\n".to_vec(),
            b"123456789\n".to_vec(),
            b"12345678\n".to_vec(),
            b"*1\r\n$5\r\n".to_vec(),
            b"*1\r\n$2\r\nab\r\r".to_vec(),
            b"*1\r\n+2\r\n".to_vec(),
            b"x \"y\n".to_vec(),
        ];
        for input in inputs {
            let whole = parse_all_with(&input, &l);
            for stateful in [false, true] {
                let (out, err) = feed_bytewise(&input, &l, stateful);
                match &whole {
                    Ok(reqs) => assert_eq!((&out, &err), (reqs, &None), "{input:?}"),
                    Err(e) => assert_eq!(err.as_ref(), Some(e), "{input:?}"),
                }
            }
        }
    }

    #[test]
    fn resumable_parser_reports_needed_bytes() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$100\r\nab"[..]);
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        assert_eq!(parser.bytes_needed(), Some(buf.len() - 2 + 102));
        buf.extend_from_slice(&[b'c'; 98]);
        buf.extend_from_slice(b"\r\n");
        let req = parser
            .parse(&mut buf, &limits())
            .expect("valid")
            .expect("complete");
        assert_eq!(req.len(), 2);
        assert_eq!(req[1].len(), 100);
        assert_eq!(parser.bytes_needed(), None);
    }

    #[test]
    fn resumable_parser_restarts_when_reset_or_buffer_shrank() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nk"[..]);
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        let mut shorter = BytesMut::from(&b"*1\r\n$1\r\nx\r\n"[..]);
        assert_eq!(
            parser.parse(&mut shorter, &limits()),
            Ok(Some(args(&[b"x"])))
        );
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        parser.reset();
        assert_eq!(parser.bytes_needed(), None);
        let mut other = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
        assert_eq!(
            parser.parse(&mut other, &limits()),
            Ok(Some(args(&[b"PING"])))
        );
    }

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"123"), Some(123));
        assert_eq!(string2ll(b"-123"), Some(-123));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"-01",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"000000000000000000001",
        ] {
            assert_eq!(string2ll(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quick_count_agrees_with_the_general_path() {
        let lines: &[&[u8]] = &[
            b"$0\r\n",
            b"$00\r\n",
            b"$01\r\n",
            b"$7\r\n",
            b"$-1\r\n",
            b"$\r\n",
            b"$12\r",
            b"$12\rx",
            b"$12",
            b"$123456789012345678\r\n",
            b"$1234567890123456789\r\n",
            b"$99999999999999999999\r\n",
            b"*3\r\n",
            b"$1 \r\n",
        ];
        for max in [1, 2, 3, 5, 64] {
            for &line in lines {
                let general = count_line(
                    line,
                    0,
                    max,
                    ProtocolError::TooBigBulkCount,
                    ProtocolError::InvalidBulkLength,
                )
                .ok()
                .flatten()
                .and_then(|(l, next)| {
                    let n = string2ll(l.get(1..)?)?;
                    (l.first() == Some(&b'$') && n >= 0).then_some((n as u64, next))
                });
                if let Some(quick) = quick_count(line, 0, b'$', max) {
                    assert_eq!(Some(quick), general, "{line:?} max {max}");
                }
            }
        }
        assert_eq!(
            quick_count(b"$123456789012345678\r\n", 0, b'$', 64),
            Some((123456789012345678, 21))
        );
    }

    #[test]
    fn find_byte_finds_first() {
        assert_eq!(find_byte(b"", b'\n'), None);
        assert_eq!(find_byte(b"abc", b'\n'), None);
        assert_eq!(find_byte(b"\n", b'\n'), Some(0));
        assert_eq!(find_byte(b"ab\ncd\n", b'\n'), Some(2));
    }

    /// Small deterministic generator so the fuzz test needs no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_input_never_panics_and_split_does_not_matter() {
        let alphabet = b"*$:+-\r\n0123456789-\"'\\x ab\0";
        let l = RequestLimits {
            max_inline_len: 32,
            max_bulk_len: 64,
            max_multibulk_len: 64,
        };
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let len = rng.below(40);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(8) == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            let mut buf = BytesMut::from(&input[..]);
            let mut whole = Vec::new();
            let mut whole_err = None;
            loop {
                match parse_request(&mut buf, &l) {
                    Ok(Some(req)) => whole.push(req),
                    Ok(None) => break,
                    Err(e) => {
                        whole_err = Some(e);
                        break;
                    }
                }
            }
            let (out, err) = feed_bytewise(&input, &l, true);
            assert_eq!((out, err), (whole, whole_err), "{input:?}");
        }
    }
}

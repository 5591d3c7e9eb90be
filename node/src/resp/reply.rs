//! Reply decoding: [`parse_frame`] reads one RESP2 or RESP3 reply of any type,
//! for clients and tests. RESP3 attributes (`|`) are read and dropped; streamed
//! strings and aggregates (`$?`, `*?`), which Redis never sends, are rejected.
//!
//! A reply is first measured without allocating (so an incomplete reply costs no
//! memory however large it claims to be), then built from the frozen bytes, bulk
//! payloads sharing the buffer's storage.

use bytes::{Bytes, BytesMut};

use super::decode::{find_byte, string2ll, ProtocolError};
use super::Frame;

/// Deepest aggregate nesting accepted. Parsing and dropping a frame recurse once
/// per level, so an unbounded depth would let a peer overflow the stack.
const MAX_DEPTH: usize = 256;

const BAD_LENGTH: ProtocolError = ProtocolError::InvalidReply("invalid length");

/// Parses one reply from the front of `buf`, consuming it. `Ok(None)` when `buf`
/// holds only part of a reply (nothing is consumed).
///
/// `$-1` is [`Frame::Null`], `*-1` is [`Frame::NullArray`], `_` is [`Frame::Null`];
/// `-` and `!` errors are [`Frame::Error`]; `=` is [`Frame::Verbatim`]. Texts that
/// are not UTF-8 are decoded lossily.
pub fn parse_frame(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    let Some((_, end)) = read(&buf[..], None, 0, 0)? else {
        return Ok(None);
    };
    let src = buf.split_to(end).freeze();
    match read(&src, Some(&src), 0, 0)? {
        Some((Some(frame), _)) => Ok(Some(frame)),
        // Unreachable: the same bytes measured as one complete reply.
        _ => Err(ProtocolError::InvalidReply("truncated reply")),
    }
}

/// What [`read`] found: the frame (only when building) and the offset after it.
type Read = Option<(Option<Frame>, usize)>;

/// Reads the reply starting at `pos` of `data`. Measures only when `src` is None;
/// builds the frame when `src` (the same bytes, frozen) is given. `None` when the
/// data ends first.
fn read(
    data: &[u8],
    src: Option<&Bytes>,
    mut pos: usize,
    depth: usize,
) -> Result<Read, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::InvalidReply("reply nested too deeply"));
    }
    let build = src.is_some();
    // Attributes precede the reply they annotate; looping (not recursing) past
    // them keeps a long chain of attributes from growing the stack.
    loop {
        let Some((tag, line, next)) = read_line(data, pos)? else {
            return Ok(None);
        };
        let frame = match tag {
            b'+' => build.then(|| Frame::Simple(lossy(line))),
            b'-' => build.then(|| Frame::Error(lossy(line))),
            b':' => {
                let n = parse_int(line).ok_or(ProtocolError::InvalidReply("invalid integer"))?;
                Some(Frame::Integer(n))
            }
            b',' => {
                let d = parse_double(line).ok_or(ProtocolError::InvalidReply("invalid double"))?;
                Some(Frame::Double(d))
            }
            b'#' => match line {
                b"t" => Some(Frame::Boolean(true)),
                b"f" => Some(Frame::Boolean(false)),
                _ => return Err(ProtocolError::InvalidReply("invalid boolean")),
            },
            b'_' if line.is_empty() => Some(Frame::Null),
            b'_' => return Err(ProtocolError::InvalidReply("invalid null")),
            b'(' if is_big_number(line) => build.then(|| Frame::BigNumber(lossy(line))),
            b'(' => return Err(ProtocolError::InvalidReply("invalid big number")),
            b'$' | b'!' | b'=' => {
                let Some(len) = length(line, tag == b'$')? else {
                    return Ok(Some((Some(Frame::Null), next)));
                };
                return blob(data, src, tag, next, len);
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let Some(count) = length(line, tag == b'*')? else {
                    return Ok(Some((Some(Frame::NullArray), next)));
                };
                let Some((items, end)) = aggregate(data, src, tag, next, count, depth)? else {
                    return Ok(None);
                };
                if tag == b'|' {
                    pos = end;
                    continue;
                }
                return Ok(Some((items, end)));
            }
            // read_line rejected every other type byte.
            other => return Err(ProtocolError::UnknownReplyType(other)),
        };
        return Ok(Some((frame, next)));
    }
}

/// A reply's first line: its type byte, its content without `\r\n`, and the offset after.
type Line<'a> = (u8, &'a [u8], usize);

/// The line at `pos`, `None` if incomplete. An unknown type byte is reported as
/// soon as it arrives, not after its line.
fn read_line(data: &[u8], pos: usize) -> Result<Option<Line<'_>>, ProtocolError> {
    let Some((&tag, rest)) = data.get(pos..).and_then(<[u8]>::split_first) else {
        return Ok(None);
    };
    if !b"+-:,#_($!=*~>%|".contains(&tag) {
        return Err(ProtocolError::UnknownReplyType(tag));
    }
    let Some(cr) = find_byte(rest, b'\r') else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((
            tag,
            rest.get(..cr).unwrap_or_default(),
            pos + 1 + cr + 2,
        ))),
        Some(_) => Err(ProtocolError::InvalidReply("missing CRLF")),
    }
}

/// A length or count: `None` for `-1` where `null_allowed`; any other negative or
/// malformed value is an error.
fn length(line: &[u8], null_allowed: bool) -> Result<Option<usize>, ProtocolError> {
    match string2ll(line) {
        Some(-1) if null_allowed => Ok(None),
        Some(n) => usize::try_from(n).map(Some).map_err(|_| BAD_LENGTH),
        None => Err(BAD_LENGTH),
    }
}

/// A `$`, `!` or `=` body of `len` bytes starting at `start`.
fn blob(
    data: &[u8],
    src: Option<&Bytes>,
    tag: u8,
    start: usize,
    len: usize,
) -> Result<Read, ProtocolError> {
    let body_end = start.checked_add(len).ok_or(BAD_LENGTH)?;
    let end = body_end.checked_add(2).ok_or(BAD_LENGTH)?;
    match data.get(body_end..end) {
        None => return Ok(None),
        Some(b"\r\n") => {}
        Some(_) => return Err(ProtocolError::InvalidReply("missing CRLF")),
    }
    if tag == b'=' && (len < 4 || data.get(start + 3) != Some(&b':')) {
        return Err(ProtocolError::InvalidReply("invalid verbatim string"));
    }
    let Some(src) = src else {
        return Ok(Some((None, end)));
    };
    let body = data.get(start..body_end).unwrap_or_default();
    let frame = match tag {
        b'$' => Frame::Bulk(src.slice(start..body_end)),
        b'!' => Frame::Error(lossy(body)),
        // `start + 4 <= body_end`: the `:` at `start + 3` lies inside the body.
        _ => Frame::Verbatim(
            lossy(body.get(..3).unwrap_or_default()),
            src.slice(start + 4..body_end),
        ),
    };
    Ok(Some((Some(frame), end)))
}

/// The `count` elements (pairs for maps and attributes) of an aggregate starting at `pos`.
fn aggregate(
    data: &[u8],
    src: Option<&Bytes>,
    tag: u8,
    mut pos: usize,
    count: usize,
    depth: usize,
) -> Result<Read, ProtocolError> {
    let paired = matches!(tag, b'%' | b'|');
    let elements = if paired {
        count.checked_mul(2)
    } else {
        Some(count)
    }
    .ok_or(BAD_LENGTH)?;
    // Every element takes at least 3 bytes (`_\r\n`), which bounds the reservation
    // by the data actually present whatever the header claims.
    let room = data.len().saturating_sub(pos) / 3;
    // Attributes are dropped, so their contents are only measured.
    let keep = src.is_some() && tag != b'|';
    let src = if keep { src } else { None };
    let mut items = Vec::with_capacity(if keep { elements.min(room) } else { 0 });
    for _ in 0..elements {
        let Some((item, next)) = read(data, src, pos, depth + 1)? else {
            return Ok(None);
        };
        pos = next;
        if keep {
            items.extend(item);
        }
    }
    if !keep {
        return Ok(Some((None, pos)));
    }
    let frame = match tag {
        b'*' => Frame::Array(items),
        b'~' => Frame::Set(items),
        b'>' => Frame::Push(items),
        _ => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
    };
    Ok(Some((Some(frame), pos)))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// Accepts what Rust's float parser does, which covers `inf`, `-inf` and `nan`.
fn parse_double(line: &[u8]) -> Option<f64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

fn is_big_number(line: &[u8]) -> bool {
    let digits = match line.split_first() {
        Some((b'-' | b'+', rest)) => rest,
        _ => line,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(input: &[u8]) -> Frame {
        let mut buf = BytesMut::from(input);
        let frame = parse_frame(&mut buf).expect("valid").expect("complete");
        assert!(buf.is_empty(), "left over: {buf:?}");
        frame
    }

    fn parse_err(input: &[u8]) -> ProtocolError {
        parse_frame(&mut BytesMut::from(input)).expect_err("invalid")
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn resp2_types() {
        assert_eq!(parse_one(b"+OK\r\n"), Frame::Simple("OK".into()));
        assert_eq!(parse_one(b"-ERR bad\r\n"), Frame::Error("ERR bad".into()));
        assert_eq!(parse_one(b":-42\r\n"), Frame::Integer(-42));
        assert_eq!(
            parse_one(b"$3\r\na\r\n\r\n"),
            Frame::Bulk(Bytes::from_static(b"a\r\n"))
        );
        assert_eq!(parse_one(b"$0\r\n\r\n"), bulk(""));
        assert_eq!(parse_one(b"$-1\r\n"), Frame::Null);
        assert_eq!(parse_one(b"*-1\r\n"), Frame::NullArray);
        assert_eq!(parse_one(b"*0\r\n"), Frame::Array(vec![]));
        assert_eq!(
            parse_one(b"*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n"),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Array(vec![bulk("x")]),
                Frame::Null
            ])
        );
    }

    #[test]
    fn resp3_types() {
        assert_eq!(parse_one(b"_\r\n"), Frame::Null);
        assert_eq!(parse_one(b",1.5\r\n"), Frame::Double(1.5));
        assert_eq!(parse_one(b",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
        assert!(matches!(parse_one(b",nan\r\n"), Frame::Double(d) if d.is_nan()));
        assert_eq!(parse_one(b",1e+300\r\n"), Frame::Double(1e300));
        assert_eq!(parse_one(b"#t\r\n"), Frame::Boolean(true));
        assert_eq!(parse_one(b"#f\r\n"), Frame::Boolean(false));
        assert_eq!(
            parse_one(b"(-12345678901234567890\r\n"),
            Frame::BigNumber("-12345678901234567890".into())
        );
        assert_eq!(
            parse_one(b"!8\r\nERR a\r\nb\r\n"),
            Frame::Error("ERR a\r\nb".into())
        );
        assert_eq!(
            parse_one(b"=9\r\ntxt:hello\r\n"),
            Frame::Verbatim("txt".into(), Bytes::from_static(b"hello"))
        );
        assert_eq!(
            parse_one(b"=4\r\nmkd:\r\n"),
            Frame::Verbatim("mkd".into(), Bytes::new())
        );
        assert_eq!(
            parse_one(b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"),
            Frame::Map(vec![
                (Frame::Simple("a".into()), Frame::Integer(1)),
                (Frame::Simple("b".into()), Frame::Null),
            ])
        );
        assert_eq!(
            parse_one(b"~1\r\n:1\r\n"),
            Frame::Set(vec![Frame::Integer(1)])
        );
        assert_eq!(
            parse_one(b">2\r\n+message\r\n$2\r\nhi\r\n"),
            Frame::Push(vec![Frame::Simple("message".into()), bulk("hi")])
        );
    }

    #[test]
    fn attributes_are_skipped() {
        assert_eq!(parse_one(b"|1\r\n+ttl\r\n:3\r\n:7\r\n"), Frame::Integer(7));
        assert_eq!(
            parse_one(b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n|0\r\n|0\r\n:2\r\n"),
            Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)])
        );
        let mut buf = BytesMut::from(&b"|1\r\n+a\r\n+b\r\n"[..]);
        assert_eq!(parse_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), 12);
    }

    #[test]
    fn every_split_point_matches() {
        let stream: &[u8] = b"*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n,2.5\r\n=7\r\ntxt:a\r\n\r\n\
            -ERR x\r\n:0\r\n$-1\r\n_\r\n#t\r\n(1\r\n~0\r\n>1\r\n!1\r\nE\r\n|1\r\n+a\r\n+b\r\n+c\r\n";
        let mut whole = Vec::new();
        let mut buf = BytesMut::from(stream);
        while let Some(f) = parse_frame(&mut buf).expect("valid") {
            whole.push(f);
        }
        assert!(buf.is_empty());
        assert_eq!(whole.len(), 10);
        let mut buf = BytesMut::new();
        let mut split = Vec::new();
        for &b in stream {
            buf.extend_from_slice(&[b]);
            loop {
                let before = buf.len();
                match parse_frame(&mut buf).expect("valid") {
                    Some(f) => split.push(f),
                    None => {
                        assert_eq!(buf.len(), before);
                        break;
                    }
                }
            }
        }
        assert_eq!(split, whole);
    }

    #[test]
    fn bulk_payloads_share_the_buffer() {
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Some(Frame::Array(items)) = parse_frame(&mut buf).expect("valid") else {
            panic!("not an array");
        };
        let Some(Frame::Bulk(b)) = items.first() else {
            panic!("not a bulk")
        };
        assert!(range.contains(&(b.as_ptr() as usize)));
    }

    #[test]
    fn malformed_replies() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"?x\r\n", "Protocol error: unknown reply type '?'"),
            (b"\r\n", "Protocol error: unknown reply type ' '"),
            (b":x\r\n", "Protocol error: invalid integer"),
            (b":1.5\r\n", "Protocol error: invalid integer"),
            (b",abc\r\n", "Protocol error: invalid double"),
            (b"#x\r\n", "Protocol error: invalid boolean"),
            (b"_x\r\n", "Protocol error: invalid null"),
            (b"(1a\r\n", "Protocol error: invalid big number"),
            (b"$-2\r\n", "Protocol error: invalid length"),
            (b"!-1\r\n", "Protocol error: invalid length"),
            (b"%-1\r\n", "Protocol error: invalid length"),
            (b"$?\r\n", "Protocol error: invalid length"),
            (b"*?\r\n", "Protocol error: invalid length"),
            (
                b"$18446744073709551615\r\n",
                "Protocol error: invalid length",
            ),
            (b"$1\r\nab\r\n", "Protocol error: missing CRLF"),
            (b"+a\rb\r\n", "Protocol error: missing CRLF"),
            (b"=3\r\ntxt\r\n", "Protocol error: invalid verbatim string"),
            (
                b"=5\r\ntxtx:\r\n",
                "Protocol error: invalid verbatim string",
            ),
        ];
        for (input, text) in cases {
            assert_eq!(parse_err(input).to_string(), text, "{input:?}");
        }
    }

    #[test]
    fn huge_counts_allocate_nothing_until_present() {
        let mut buf = BytesMut::from(&b"*9223372036854775807\r\n:1\r\n"[..]);
        assert_eq!(parse_frame(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&b"%9223372036854775807\r\n"[..]);
        assert_eq!(parse_frame(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&b"$9223372036854775807\r\nab"[..]);
        assert!(parse_frame(&mut buf).is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        deep.extend_from_slice(b":1\r\n");
        assert_eq!(
            parse_err(&deep),
            ProtocolError::InvalidReply("reply nested too deeply")
        );
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert!(matches!(parse_one(&ok), Frame::Array(_)));
        // Attribute chains do not nest.
        let mut chain = b"|0\r\n".repeat(100_000);
        chain.extend_from_slice(b":1\r\n");
        assert_eq!(parse_one(&chain), Frame::Integer(1));
    }

    #[test]
    fn random_input_never_panics() {
        let alphabet = b"*$:+-_,#!=(%~>|\r\n0123456789-?tfx:";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = (next() % 48) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = parse_frame(&mut buf) {}
        }
    }
}

//! Inline requests: a command typed as one text line (`SET k "a b"\r\n`), split
//! with the quoting rules of Redis's `sdssplitargs`, as `processInlineBuffer` does.

use bytes::{Bytes, BytesMut};

use super::decode::{find_byte, ProtocolError};

/// Parses the inline request at the front of `buf`, consuming its line. `Ok(None)`
/// when no `\n` has arrived yet. The line ends at `\n`, with one `\r` before it
/// dropped if present. A line longer than `max_len` bytes is rejected whether or
/// not its `\n` arrived in the same read, so the result does not depend on how the
/// stream was split.
pub(super) fn parse_inline(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let window = buf.get(..max_len.saturating_add(1)).unwrap_or(&buf[..]);
    let Some(lf) = find_byte(window, b'\n') else {
        return if buf.len() > max_len {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    let line = buf.split_to(lf + 1).freeze();
    let end = match lf.checked_sub(1) {
        Some(before) if line.get(before) == Some(&b'\r') => before,
        _ => lf,
    };
    split_args(&line, end).map(Some)
}

/// `isspace` in the C locale: the bytes skipped between arguments.
/// Splits one command line as inline commands and redis-cli do (quotes, escapes); `None`
/// when the quoting is unbalanced. For tests and tools that write commands as text.
pub fn split_command_line(line: &str) -> Option<Vec<Bytes>> {
    let line = Bytes::copy_from_slice(line.as_bytes());
    split_args(&line, line.len()).ok()
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `line[..end]` into arguments like `sdssplitargs`:
/// - arguments are separated by whitespace; unquoted, only space, tab, CR and LF
///   end an argument (vertical tab and form feed are kept, as in Redis);
/// - `"..."` understands `\n \r \t \b \a`, `\xHH` and `\<any>` for that character;
/// - `'...'` understands only `\'`;
/// - a quote may start mid-argument (`a"b c"` is `ab c`), but a closing quote must
///   be followed by whitespace or the end of the line;
/// - a NUL byte ends the line, because Redis splits a C string.
///
/// Arguments without quotes are slices of `line`; only quoted ones are copied.
fn split_args(line: &Bytes, end: usize) -> Result<Vec<Bytes>, ProtocolError> {
    let text = line.get(..end).unwrap_or_default();
    let text = text
        .get(..find_byte(text, 0).unwrap_or(text.len()))
        .unwrap_or(text);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while text.get(i).is_some_and(|&b| is_space(b)) {
            i += 1;
        }
        if i >= text.len() {
            return Ok(args);
        }
        let start = i;
        while text
            .get(i)
            .is_some_and(|&b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'"' | b'\''))
        {
            i += 1;
        }
        match text.get(i) {
            Some(&quote @ (b'"' | b'\'')) => {
                let mut out = text.get(start..i).unwrap_or_default().to_vec();
                i = if quote == b'"' {
                    double_quoted(text, i + 1, &mut out)?
                } else {
                    single_quoted(text, i + 1, &mut out)?
                };
                args.push(Bytes::from(out));
            }
            _ => args.push(line.slice(start..i)),
        }
    }
}

/// Reads a double-quoted section starting just after the opening quote; returns
/// the index after the closing quote.
fn double_quoted(text: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        let Some(&b) = text.get(i) else {
            return Err(ProtocolError::UnbalancedQuotes);
        };
        match b {
            b'\\' => {
                let hex = text.get(i + 1) == Some(&b'x');
                let hi = text.get(i + 2).copied().and_then(hex_value);
                let lo = text.get(i + 3).copied().and_then(hex_value);
                match (hex, hi, lo, text.get(i + 1)) {
                    (true, Some(hi), Some(lo), _) => {
                        out.push(hi * 16 + lo);
                        i += 4;
                    }
                    (_, _, _, Some(&escaped)) => {
                        out.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    }
                    // A backslash ending the line is literal; the quote is then unterminated.
                    (_, _, _, None) => return Err(ProtocolError::UnbalancedQuotes),
                }
            }
            b'"' => return closing_quote(text, i),
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
}

/// Reads a single-quoted section starting just after the opening quote; returns
/// the index after the closing quote.
fn single_quoted(text: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        let Some(&b) = text.get(i) else {
            return Err(ProtocolError::UnbalancedQuotes);
        };
        match b {
            b'\\' if text.get(i + 1) == Some(&b'\'') => {
                out.push(b'\'');
                i += 2;
            }
            b'\'' => return closing_quote(text, i),
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
}

/// A closing quote at `i` must be followed by whitespace or the end of the line.
fn closing_quote(text: &[u8], i: usize) -> Result<usize, ProtocolError> {
    match text.get(i + 1) {
        Some(&next) if !is_space(next) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(i + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let bytes = Bytes::copy_from_slice(line);
        split_args(&bytes, line.len()).map(|v| v.into_iter().map(|b| b.to_vec()).collect())
    }

    fn ok(line: &[u8]) -> Vec<Vec<u8>> {
        split(line).expect("splits")
    }

    fn owned(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn plain_words() {
        assert_eq!(ok(b"set key value"), owned(&[b"set", b"key", b"value"]));
        assert_eq!(ok(b"  \t get   k \t "), owned(&[b"get", b"k"]));
        assert_eq!(ok(b""), Vec::<Vec<u8>>::new());
        assert_eq!(ok(b"   "), Vec::<Vec<u8>>::new());
        // Vertical tab and form feed separate only when leading, as in sdssplitargs.
        assert_eq!(ok(b"\x0ba\x0bb c"), owned(&[b"a\x0bb", b"c"]));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(ok(br#"set "a b" "c""#), owned(&[b"set", b"a b", b"c"]));
        assert_eq!(ok(br#""""#), owned(&[b""]));
        assert_eq!(
            ok(br#""\n\r\t\b\a\\\"\q""#),
            owned(&[b"\n\r\t\x08\x07\\\"q"])
        );
        assert_eq!(ok(br#""\x41\x6a\xFF\x00""#), owned(&[b"Aj\xff\0"]));
        // Not a valid hex escape: the backslash escapes the `x` alone.
        assert_eq!(ok(br#""\xZ1" "\x4""#), owned(&[b"xZ1", b"x4"]));
        assert_eq!(ok(br#"ab"c d"  e"#), owned(&[b"abc d", b"e"]));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(
            ok(br"'a b' 'it\'s' '\n'"),
            owned(&[b"a b", b"it's", b"\\n"])
        );
        assert_eq!(ok(br"''"), owned(&[b""]));
    }

    #[test]
    fn unbalanced_quotes() {
        for bad in [
            &br#""abc"#[..],
            br"'abc",
            br#""abc"def"#,
            br"'abc'def",
            br#""abc\"#,
            br#"a "b\"#,
            br"'it\'",
        ] {
            assert_eq!(split(bad), Err(ProtocolError::UnbalancedQuotes), "{bad:?}");
        }
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(ok(b"get k\0ignored \"unbalanced"), owned(&[b"get", b"k"]));
    }

    #[test]
    fn line_endings() {
        let mut buf = BytesMut::from(&b"ping\r\nping\nPING\r\r\n\n"[..]);
        let p = |buf: &mut BytesMut| parse_inline(buf, 1024).expect("valid").expect("complete");
        assert_eq!(p(&mut buf), vec![Bytes::from_static(b"ping")]);
        assert_eq!(p(&mut buf), vec![Bytes::from_static(b"ping")]);
        // Only one `\r` belongs to the line ending; another is a separator.
        assert_eq!(p(&mut buf), vec![Bytes::from_static(b"PING")]);
        assert_eq!(p(&mut buf), Vec::<Bytes>::new());
        assert!(buf.is_empty());
        assert_eq!(parse_inline(&mut buf, 1024), Ok(None));
    }

    #[test]
    fn unquoted_arguments_are_zero_copy() {
        let mut buf = BytesMut::from(&b"get key \"q\"\r\n"[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let args = parse_inline(&mut buf, 1024)
            .expect("valid")
            .expect("complete");
        assert!(range.contains(&(args[0].as_ptr() as usize)));
        assert!(range.contains(&(args[1].as_ptr() as usize)));
        assert_eq!(args[2], Bytes::from_static(b"q"));
    }
}

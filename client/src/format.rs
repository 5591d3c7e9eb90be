//! Replies as `redis-cli` prints them on a terminal: bulk strings quoted with C-style
//! escapes, `(integer) n`, `(nil)`, `(error) ...`, numbered and indented aggregates
//! (`1)` for arrays, `1~` for sets, `1#` with `=>` for maps).
//!
//! Matching redis-cli's layout exactly lets operators paste `cellkv-cli raw` output next to
//! `redis-cli` output and compare them line by line.

use cellkv_node::resp::{format_double, Frame};

/// The reply as redis-cli's TTY output shows it, ending in a newline.
pub fn format_reply(frame: &Frame) -> String {
    let mut out = String::new();
    write_reply(&mut out, frame, "");
    out
}

/// Appends `frame`; `prefix` is the indentation of nested elements after the first.
fn write_reply(out: &mut String, frame: &Frame, prefix: &str) {
    match frame {
        Frame::Simple(text) => push_line(out, text),
        Frame::Error(text) => push_line(out, &format!("(error) {text}")),
        Frame::Integer(n) => push_line(out, &format!("(integer) {n}")),
        Frame::Bulk(data) => push_line(out, &quote(data)),
        Frame::Null | Frame::NullArray => push_line(out, "(nil)"),
        Frame::Double(value) => push_line(out, &format!("(double) {}", format_double(*value))),
        Frame::Boolean(value) => push_line(out, if *value { "(true)" } else { "(false)" }),
        // Verbatim text is meant to be shown as is, which is why the type exists.
        Frame::Verbatim(_, data) => push_line(out, &String::from_utf8_lossy(data)),
        Frame::BigNumber(digits) => push_line(out, &format!("(big number) {digits}")),
        Frame::Array(items) => write_items(out, items, ')', "(empty array)", prefix),
        Frame::Push(items) => write_items(out, items, ')', "(empty push)", prefix),
        Frame::Set(items) => write_items(out, items, '~', "(empty set)", prefix),
        Frame::Map(pairs) => write_map(out, pairs, prefix),
        // Never parsed off the wire; shown as the RESP3 arrays it encodes to.
        Frame::Pairs(pairs) => {
            let items: Vec<Frame> = pairs
                .iter()
                .map(|(a, b)| Frame::Array(vec![a.clone(), b.clone()]))
                .collect();
            write_items(out, &items, ')', "(empty array)", prefix)
        }
    }
}

fn push_line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

/// Numbered elements; the first carries no indentation because the parent already wrote
/// its own index on that line.
fn write_items(out: &mut String, items: &[Frame], sep: char, empty: &str, prefix: &str) {
    if items.is_empty() {
        push_line(out, empty);
        return;
    }
    let width = digits(items.len());
    let nested = nested_prefix(prefix, width);
    for (i, item) in items.iter().enumerate() {
        let lead = if i == 0 { "" } else { prefix };
        out.push_str(&format!("{lead}{:>width$}{sep} ", i + 1));
        write_reply(out, item, &nested);
    }
}

/// `n# key => value` per pair, as redis-cli 7 shows RESP3 maps.
fn write_map(out: &mut String, pairs: &[(Frame, Frame)], prefix: &str) {
    if pairs.is_empty() {
        push_line(out, "(empty hash)");
        return;
    }
    let width = digits(pairs.len());
    let nested = nested_prefix(prefix, width);
    for (i, (key, value)) in pairs.iter().enumerate() {
        let lead = if i == 0 { "" } else { prefix };
        out.push_str(&format!("{lead}{:>width$}# ", i + 1));
        write_reply(out, key, &nested);
        out.pop();
        out.push_str(" => ");
        write_reply(out, value, &nested);
    }
}

fn nested_prefix(prefix: &str, width: usize) -> String {
    format!("{prefix}{}", " ".repeat(width + 2))
}

fn digits(mut n: usize) -> usize {
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

/// Bytes in double quotes with redis's `sdscatrepr` escapes: `\\`, `\"`, `\n`, `\r`, `\t`,
/// `\a`, `\b`, and `\xHH` for anything else outside printable ASCII.
pub fn quote(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() + 2);
    out.push('"');
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Scalars print as redis-cli prints them.
    #[test]
    fn scalars() {
        assert_eq!(format_reply(&Frame::ok()), "OK\n");
        assert_eq!(format_reply(&Frame::Simple("PONG".into())), "PONG\n");
        assert_eq!(format_reply(&bulk("v")), "\"v\"\n");
        assert_eq!(format_reply(&Frame::Integer(-3)), "(integer) -3\n");
        assert_eq!(format_reply(&Frame::Null), "(nil)\n");
        assert_eq!(format_reply(&Frame::NullArray), "(nil)\n");
        assert_eq!(format_reply(&Frame::Boolean(true)), "(true)\n");
        assert_eq!(format_reply(&Frame::Double(1.5)), "(double) 1.5\n");
        assert_eq!(
            format_reply(&Frame::BigNumber("123".into())),
            "(big number) 123\n"
        );
        assert_eq!(
            format_reply(&Frame::error("ERR unknown command 'x'")),
            "(error) ERR unknown command 'x'\n"
        );
        assert_eq!(
            format_reply(&Frame::Verbatim(
                "txt".into(),
                Bytes::from_static(b"a\r\nb")
            )),
            "a\r\nb\n"
        );
    }

    /// Bulk strings escape exactly the bytes sdscatrepr escapes.
    #[test]
    fn bulk_strings_are_escaped_like_sdscatrepr() {
        assert_eq!(quote(b""), "\"\"");
        assert_eq!(quote(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote(b"\n\r\t\x07\x08"), "\"\\n\\r\\t\\a\\b\"");
        assert_eq!(quote(b"\x00\x7f\xff"), "\"\\x00\\x7f\\xff\"");
        assert_eq!(quote("é".as_bytes()), "\"\\xc3\\xa9\"");
    }

    /// Pairs show as the nested arrays a RESP3 connection receives.
    #[test]
    fn pairs_show_nested() {
        let pairs = Frame::Pairs(vec![(bulk("a"), Frame::Double(1.0))]);
        assert_eq!(format_reply(&pairs), "1) 1) \"a\"\n   2) (double) 1\n");
        assert_eq!(format_reply(&Frame::Pairs(vec![])), "(empty array)\n");
    }

    /// Arrays are numbered from 1, indices right-aligned, empty ones named.
    #[test]
    fn arrays() {
        assert_eq!(format_reply(&Frame::Array(vec![])), "(empty array)\n");
        let three = Frame::Array(vec![bulk("a"), Frame::Null, Frame::Integer(2)]);
        assert_eq!(format_reply(&three), "1) \"a\"\n2) (nil)\n3) (integer) 2\n");
        let eleven = Frame::Array((0..11).map(Frame::Integer).collect());
        let text = format_reply(&eleven);
        assert!(
            text.starts_with(" 1) (integer) 0\n 2) (integer) 1\n"),
            "{text}"
        );
        assert!(
            text.ends_with("10) (integer) 9\n11) (integer) 10\n"),
            "{text}"
        );
    }

    /// Nested aggregates indent under their parent's index, as redis-cli does for SCAN.
    #[test]
    fn nested_arrays_indent() {
        let scan = Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("k1"), bulk("k2")])]);
        assert_eq!(
            format_reply(&scan),
            "1) \"0\"\n2) 1) \"k1\"\n   2) \"k2\"\n"
        );
        let deep = Frame::Array(vec![Frame::Array(vec![Frame::Array(vec![
            bulk("x"),
            bulk("y"),
        ])])]);
        assert_eq!(format_reply(&deep), "1) 1) 1) \"x\"\n      2) \"y\"\n");
        let empty_inside = Frame::Array(vec![bulk("0"), Frame::Array(vec![])]);
        assert_eq!(format_reply(&empty_inside), "1) \"0\"\n2) (empty array)\n");
    }

    /// RESP3 maps and sets use redis-cli 7's `#` and `~` markers.
    #[test]
    fn maps_and_sets() {
        let map = Frame::Map(vec![
            (bulk("server"), bulk("redis")),
            (bulk("proto"), Frame::Integer(3)),
        ]);
        assert_eq!(
            format_reply(&map),
            "1# \"server\" => \"redis\"\n2# \"proto\" => (integer) 3\n"
        );
        let nested = Frame::Map(vec![(
            bulk("modules"),
            Frame::Array(vec![bulk("a"), bulk("b")]),
        )]);
        assert_eq!(
            format_reply(&nested),
            "1# \"modules\" => 1) \"a\"\n   2) \"b\"\n"
        );
        assert_eq!(format_reply(&Frame::Map(vec![])), "(empty hash)\n");
        let set = Frame::Set(vec![bulk("m")]);
        assert_eq!(format_reply(&set), "1~ \"m\"\n");
        assert_eq!(format_reply(&Frame::Set(vec![])), "(empty set)\n");
    }
}

//! Reply encoding: writes a [`Frame`] as RESP3, or as RESP2 with the downgrades
//! Redis applies, and formats doubles exactly as Redis 7.2's `d2string` does.
//!
//! This runs for every reply, so it writes straight into the output buffer:
//! numbers are formatted on the stack, each element reserves its exact size, and
//! no intermediate strings are built.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};

use super::Frame;

/// Writes `frame` to `out`, as RESP3 when `resp3` is true, else as RESP2 where
/// maps and pairs become flat arrays of 2n elements, sets and pushes become arrays, doubles,
/// big numbers and verbatim strings (text only) become bulk strings, booleans
/// become `:1`/`:0`, and the two nulls become `$-1` and `*-1`. In RESP3 both nulls
/// are `_`. CR and LF inside simple strings and errors become spaces, as Redis
/// does, so a reply can never break the framing.
pub fn encode(frame: &Frame, resp3: bool, out: &mut BytesMut) {
    match frame {
        Frame::Simple(text) => put_line(out, b'+', text.as_bytes()),
        Frame::Error(text) => put_line(out, b'-', text.as_bytes()),
        Frame::Integer(n) => put_number_line(out, b':', &Digits::signed(*n)),
        Frame::Bulk(data) => put_bulk(out, data),
        Frame::Null => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Frame::NullArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Frame::Array(items) => put_items(out, b'*', items, resp3),
        Frame::Set(items) => put_items(out, if resp3 { b'~' } else { b'*' }, items, resp3),
        Frame::Push(items) => put_items(out, if resp3 { b'>' } else { b'*' }, items, resp3),
        Frame::Map(pairs) => {
            if resp3 {
                put_header(out, b'%', pairs.len());
            } else {
                put_header(out, b'*', pairs.len().saturating_mul(2));
            }
            for (key, value) in pairs {
                encode(key, resp3, out);
                encode(value, resp3, out);
            }
        }
        Frame::Pairs(pairs) => {
            if resp3 {
                put_header(out, b'*', pairs.len());
            } else {
                put_header(out, b'*', pairs.len().saturating_mul(2));
            }
            for (first, second) in pairs {
                if resp3 {
                    put_header(out, b'*', 2);
                }
                encode(first, resp3, out);
                encode(second, resp3, out);
            }
        }
        Frame::Double(d) => {
            let text = DoubleText::new(*d);
            if resp3 {
                put_line(out, b',', text.as_bytes());
            } else {
                put_bulk(out, text.as_bytes());
            }
        }
        Frame::Boolean(b) => out.put_slice(match (resp3, b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Frame::Verbatim(format, text) => {
            if resp3 {
                put_verbatim(out, format, text);
            } else {
                put_bulk(out, text);
            }
        }
        Frame::BigNumber(digits) => {
            if resp3 {
                put_line(out, b'(', digits.as_bytes());
            } else {
                put_bulk(out, digits.as_bytes());
            }
        }
    }
}

/// Formats a double the way Redis 7.2 replies with it (`d2string`):
/// - `nan`, `inf`, `-inf`; zero is `0` or `-0`;
/// - an integral value within ±2^62 (Redis's `double2ll` range, `LLONG_MAX/2`)
///   is printed as an integer: `3.0` is `3`;
/// - anything else gets the shortest digits that round-trip, laid out by the rules
///   of Redis's `fpconv_dtoa`: with `e` the decimal exponent of the first digit
///   and `K` that of the last, an integer is written in full while `e` < digits + 7;
///   a fraction is written positionally when `K` > -7 or |e| < 4 (`0.000001`,
///   `0.30000000000000004`, `123.456`); otherwise exponent form with the exponent
///   unpadded and always signed (`1e+300`, `1.5e-7`, `1.2345678901234567e+4`).
///
/// The digits come from Rust's shortest round-trip algorithm. Redis's Grisu2 finds
/// the same digits except in rare cases where it emits one digit more, so a few
/// values may print one digit shorter here than in Redis; both parse back to the
/// same double.
pub fn format_double(value: f64) -> String {
    DoubleText::new(value)
        .as_bytes()
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

fn put_line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    let start = out.len();
    out.put_slice(text);
    // Copy first and patch after: CR/LF are rare, so the copy stays a plain memcpy.
    if let Some(copied) = out.get_mut(start..) {
        for b in copied.iter_mut().filter(|b| matches!(**b, b'\r' | b'\n')) {
            *b = b' ';
        }
    }
    out.put_slice(b"\r\n");
}

fn put_number_line(out: &mut BytesMut, tag: u8, digits: &Digits) {
    let digits = digits.as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(tag);
    out.put_slice(digits);
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, tag: u8, len: usize) {
    put_number_line(out, tag, &Digits::unsigned(len as u64));
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    let len = Digits::unsigned(data.len() as u64);
    let len = len.as_bytes();
    out.reserve(1 + len.len() + 2 + data.len() + 2);
    out.put_u8(b'$');
    out.put_slice(len);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_items(out: &mut BytesMut, tag: u8, items: &[Frame], resp3: bool) {
    put_header(out, tag, items.len());
    for item in items {
        encode(item, resp3, out);
    }
}

/// `=<len>\r\n<fmt>:<text>\r\n`. The format must be exactly three bytes for the
/// reader to find the `:`; anything else is sent as `txt`.
fn put_verbatim(out: &mut BytesMut, format: &str, text: &[u8]) {
    let format = if format.len() == 3 {
        format.as_bytes()
    } else {
        b"txt"
    };
    let len = Digits::unsigned(text.len() as u64 + 4);
    let len = len.as_bytes();
    out.reserve(1 + len.len() + 2 + 4 + text.len() + 2);
    out.put_u8(b'=');
    out.put_slice(len);
    out.put_slice(b"\r\n");
    out.put_slice(format);
    out.put_u8(b':');
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// Pairs of decimal digits `00`..`99`, so a number is formatted two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// A decimal integer formatted on the stack; 20 bytes hold `u64::MAX` and `i64::MIN`.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn unsigned(mut n: u64) -> Digits {
        let mut d = Digits {
            buf: [0; 20],
            start: 20,
        };
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            d.push_front(DIGIT_PAIRS.get(pair + 1).copied().unwrap_or(b'0'));
            d.push_front(DIGIT_PAIRS.get(pair).copied().unwrap_or(b'0'));
        }
        if n >= 10 {
            let pair = n as usize * 2;
            d.push_front(DIGIT_PAIRS.get(pair + 1).copied().unwrap_or(b'0'));
            d.push_front(DIGIT_PAIRS.get(pair).copied().unwrap_or(b'0'));
        } else {
            d.push_front(b'0' + n as u8);
        }
        d
    }

    fn signed(n: i64) -> Digits {
        let mut d = Digits::unsigned(n.unsigned_abs());
        if n < 0 {
            d.push_front(b'-');
        }
        d
    }

    fn push_front(&mut self, b: u8) {
        if let Some(i) = self.start.checked_sub(1) {
            if let Some(slot) = self.buf.get_mut(i) {
                *slot = b;
                self.start = i;
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// A short ASCII text built on the stack. The longest double is 26 bytes
/// (`-0.000000` and 17 digits); 32 leaves room, and writes past it are dropped
/// rather than panicking.
struct StackText {
    buf: [u8; 32],
    len: usize,
}

impl StackText {
    fn new() -> StackText {
        StackText {
            buf: [0; 32],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.extend(s.as_bytes());
        Ok(())
    }
}

/// A double formatted as [`format_double`] describes.
struct DoubleText(StackText);

impl DoubleText {
    fn new(value: f64) -> DoubleText {
        let mut out = StackText::new();
        if value.is_nan() {
            out.extend(b"nan");
        } else if value.is_infinite() {
            out.extend(if value < 0.0 { b"-inf" } else { b"inf" });
        } else if value == 0.0 {
            out.extend(if value.is_sign_negative() {
                b"-0"
            } else {
                b"0"
            });
        } else if (-INTEGRAL_LIMIT..=INTEGRAL_LIMIT).contains(&value) && value.fract() == 0.0 {
            // Exact: |value| <= 2^62 and integral.
            out.extend(Digits::signed(value as i64).as_bytes());
        } else {
            write_shortest(value, &mut out);
        }
        DoubleText(out)
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `(double)(LLONG_MAX/2)`, which rounds to exactly 2^62.
const INTEGRAL_LIMIT: f64 = 4_611_686_018_427_387_904.0;

/// Lays out the shortest round-trip digits of a finite, non-zero `value` with
/// `fpconv_dtoa`'s rules (see [`format_double`]).
fn write_shortest(value: f64, out: &mut StackText) {
    let mut sci = StackText::new();
    // `{:e}` yields the shortest round-trip digits as `d.ddddde<exp>`; it never
    // exceeds 24 bytes for a finite f64, so the write cannot fail.
    if write!(sci, "{:e}", value.abs()).is_err() {
        out.extend(b"nan");
        return;
    }
    let text = sci.as_bytes();
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(e) => (
            text.get(..e).unwrap_or_default(),
            text.get(e + 1..).unwrap_or_default(),
        ),
        None => (text, &b"0"[..]),
    };
    let mut digits = StackText::new();
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        digits.push(b);
    }
    let digits = digits.as_bytes();
    let first_exp = parse_exponent(exponent);
    let ndigits = digits.len() as i32;
    // Decimal exponent of the last digit: value = digits * 10^last_exp.
    let last_exp = first_exp - (ndigits - 1);
    let abs_exp = first_exp.abs();

    if value < 0.0 {
        out.push(b'-');
    }
    if last_exp >= 0 && abs_exp < ndigits + 7 {
        out.extend(digits);
        for _ in 0..last_exp {
            out.push(b'0');
        }
    } else if last_exp < 0 && (last_exp > -7 || abs_exp < 4) {
        // Digits before the point; zero or negative means a leading `0.` and zeros.
        let int_len = ndigits + last_exp;
        if int_len <= 0 {
            out.extend(b"0.");
            for _ in 0..-int_len {
                out.push(b'0');
            }
            out.extend(digits);
        } else {
            let (int_part, frac_part) = digits.split_at((int_len as usize).min(digits.len()));
            out.extend(int_part);
            out.push(b'.');
            out.extend(frac_part);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.extend(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend(rest);
        }
        out.push(b'e');
        out.push(if first_exp < 0 { b'-' } else { b'+' });
        out.extend(Digits::unsigned(u64::from(abs_exp.unsigned_abs())).as_bytes());
    }
}

/// The exponent of Rust's `{:e}` output: an optional `-` and decimal digits.
fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0i32, |acc, &b| {
            acc.saturating_mul(10).saturating_add(i32::from(b - b'0'))
        });
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::resp::parse_frame;

    fn bytes_of(frame: &Frame, resp3: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(frame, resp3, &mut out);
        out.to_vec()
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// One of every variant, nested, for round trips.
    fn sample() -> Frame {
        Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error("ERR boom".into()),
            Frame::Integer(i64::MIN),
            Frame::Integer(i64::MAX),
            Frame::Integer(0),
            bulk("bin\r\n\0ary"),
            bulk(""),
            Frame::Null,
            Frame::NullArray,
            Frame::Array(vec![]),
            Frame::Map(vec![
                (bulk("k"), Frame::Integer(1)),
                (Frame::Simple("s".into()), Frame::Null),
            ]),
            Frame::Set(vec![bulk("a"), bulk("b")]),
            Frame::Double(3.0),
            Frame::Double(-0.5),
            Frame::Double(1e300),
            Frame::Double(f64::INFINITY),
            Frame::Boolean(true),
            Frame::Boolean(false),
            Frame::Verbatim("txt".into(), Bytes::from_static(b"some\r\ntext")),
            Frame::BigNumber("-123456789012345678901234567890".into()),
            Frame::Push(vec![bulk("message"), bulk("ch"), bulk("hi")]),
        ])
    }

    /// What a RESP2 client reads back for [`sample`].
    fn sample_downgraded() -> Frame {
        Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error("ERR boom".into()),
            Frame::Integer(i64::MIN),
            Frame::Integer(i64::MAX),
            Frame::Integer(0),
            bulk("bin\r\n\0ary"),
            bulk(""),
            Frame::Null,
            Frame::NullArray,
            Frame::Array(vec![]),
            Frame::Array(vec![
                bulk("k"),
                Frame::Integer(1),
                Frame::Simple("s".into()),
                Frame::Null,
            ]),
            Frame::Array(vec![bulk("a"), bulk("b")]),
            bulk("3"),
            bulk("-0.5"),
            bulk("1e+300"),
            bulk("inf"),
            Frame::Integer(1),
            Frame::Integer(0),
            bulk("some\r\ntext"),
            bulk("-123456789012345678901234567890"),
            Frame::Array(vec![bulk("message"), bulk("ch"), bulk("hi")]),
        ])
    }

    fn round_trip(frame: &Frame, resp3: bool) -> Frame {
        let mut out = BytesMut::new();
        encode(frame, resp3, &mut out);
        let parsed = parse_frame(&mut out).expect("valid").expect("complete");
        assert!(out.is_empty());
        parsed
    }

    #[test]
    fn round_trip_resp3() {
        assert_eq!(round_trip(&sample(), true), {
            // The only loss in RESP3: both nulls are `_`.
            let Frame::Array(mut items) = sample() else {
                unreachable!()
            };
            items[8] = Frame::Null;
            Frame::Array(items)
        });
    }

    #[test]
    fn round_trip_resp2() {
        assert_eq!(round_trip(&sample(), false), sample_downgraded());
    }

    #[test]
    fn resp2_downgrades_exact_bytes() {
        let cases: Vec<(Frame, &[u8])> = vec![
            (Frame::Null, b"$-1\r\n"),
            (Frame::NullArray, b"*-1\r\n"),
            (
                Frame::Map(vec![(bulk("a"), Frame::Integer(1))]),
                b"*2\r\n$1\r\na\r\n:1\r\n",
            ),
            (Frame::Set(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n"),
            (Frame::Push(vec![bulk("x")]), b"*1\r\n$1\r\nx\r\n"),
            (Frame::Double(1.5), b"$3\r\n1.5\r\n"),
            (Frame::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n"),
            (Frame::Boolean(true), b":1\r\n"),
            (Frame::Boolean(false), b":0\r\n"),
            (
                Frame::Verbatim("txt".into(), Bytes::from_static(b"hi")),
                b"$2\r\nhi\r\n",
            ),
            (Frame::BigNumber("12".into()), b"$2\r\n12\r\n"),
            (
                Frame::Pairs(vec![(bulk("a"), Frame::Double(1.5))]),
                b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n",
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(bytes_of(&frame, false), expected, "{frame:?}");
        }
    }

    #[test]
    fn resp3_exact_bytes() {
        let cases: Vec<(Frame, &[u8])> = vec![
            (Frame::Simple("OK".into()), b"+OK\r\n"),
            (Frame::Error("ERR x".into()), b"-ERR x\r\n"),
            (Frame::Integer(-1), b":-1\r\n"),
            (bulk("abc"), b"$3\r\nabc\r\n"),
            (Frame::Null, b"_\r\n"),
            (Frame::NullArray, b"_\r\n"),
            (Frame::Array(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n"),
            (
                Frame::Map(vec![(bulk("a"), Frame::Integer(1))]),
                b"%1\r\n$1\r\na\r\n:1\r\n",
            ),
            (Frame::Set(vec![Frame::Integer(1)]), b"~1\r\n:1\r\n"),
            (Frame::Push(vec![bulk("x")]), b">1\r\n$1\r\nx\r\n"),
            (Frame::Double(1.5), b",1.5\r\n"),
            (Frame::Double(f64::NAN), b",nan\r\n"),
            (Frame::Boolean(true), b"#t\r\n"),
            (Frame::Boolean(false), b"#f\r\n"),
            (
                Frame::Verbatim("txt".into(), Bytes::from_static(b"hi")),
                b"=6\r\ntxt:hi\r\n",
            ),
            (
                Frame::Verbatim("toolong".into(), Bytes::from_static(b"")),
                b"=4\r\ntxt:\r\n",
            ),
            (Frame::BigNumber("12".into()), b"(12\r\n"),
            (
                Frame::Pairs(vec![(bulk("a"), Frame::Double(1.5))]),
                b"*1\r\n*2\r\n$1\r\na\r\n,1.5\r\n",
            ),
            (Frame::Pairs(vec![]), b"*0\r\n"),
        ];
        for (frame, expected) in cases {
            assert_eq!(bytes_of(&frame, true), expected, "{frame:?}");
        }
    }

    #[test]
    fn line_breaks_in_status_and_error_become_spaces() {
        for resp3 in [false, true] {
            assert_eq!(
                bytes_of(&Frame::Error("ERR a\r\nb\n".into()), resp3),
                b"-ERR a  b \r\n"
            );
            assert_eq!(bytes_of(&Frame::Simple("a\rb".into()), resp3), b"+a b\r\n");
        }
    }

    #[test]
    fn integers_at_the_edges() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            12345,
            -1,
            -10,
            -100,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                bytes_of(&Frame::Integer(n), false),
                format!(":{n}\r\n").into_bytes()
            );
        }
        for n in [0u64, 7, 42, 100, 999, 1000, u64::MAX] {
            assert_eq!(Digits::unsigned(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn double_formatting_follows_redis() {
        let cases: &[(f64, &str)] = &[
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (-3.0, "-3"),
            (1.5, "1.5"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (2.75, "2.75"),
            (123456789.123, "123456789.123"),
            (1e-6, "0.000001"),
            (1.1e-5, "0.000011"),
            (1.23e-5, "1.23e-5"),
            (1.5e-7, "1.5e-7"),
            (1e-7, "1e-7"),
            (5e-324, "5e-324"),
            (12345.678, "12345.678"),
            (1234.5678901234567, "1234.5678901234567"),
            (12345.678901234567, "1.2345678901234567e+4"),
            (4611686018427387904.0, "4611686018427387904"),
            (-4611686018427387904.0, "-4611686018427387904"),
            (9007199254740993.0, "9007199254740992"),
            (4611686018427388928.0, "4611686018427389000"),
            (9223372036854775808.0, "9223372036854776000"),
            (1e19, "1e+19"),
            (1.5e20, "1.5e+20"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (12345678901234567890.0, "12345678901234567000"),
            (9.876543210987654e22, "98765432109876540000000"),
            (9.87654321098765e22, "9.87654321098765e+22"),
        ];
        for &(value, text) in cases {
            assert_eq!(format_double(value), text, "{value:e}");
        }
    }

    #[test]
    fn doubles_round_trip() {
        let mut state: u64 = 0x853c_49e6_748f_ea9b;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            let text = format_double(value);
            let parsed: f64 = text.parse().expect("parses");
            assert!(
                parsed == value || (parsed.is_nan() && value.is_nan()),
                "{value:e} -> {text}"
            );
            assert!(text.len() <= 26, "{text}");
        }
    }

    #[test]
    fn random_frames_round_trip() {
        let mut state: u64 = 0xda94_2042_e4dd_58b5;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn gen(next: &mut dyn FnMut() -> u64, depth: u32) -> Frame {
            let leaf = depth >= 3 || next().is_multiple_of(3);
            let n = (next() % 4) as usize;
            match next() % if leaf { 8 } else { 12 } {
                0 => Frame::Simple(format!("s{}", next() % 100)),
                1 => Frame::Error(format!("ERR e{}", next() % 100)),
                2 => Frame::Integer(next() as i64),
                3 => Frame::Bulk(Bytes::from(
                    (0..n).map(|_| next() as u8).collect::<Vec<_>>(),
                )),
                4 => Frame::Null,
                5 => Frame::Double(f64::from_bits(next()) % 1e20),
                6 => Frame::Boolean(next().is_multiple_of(2)),
                7 => Frame::BigNumber(format!("{}", next())),
                8 => Frame::Array((0..n).map(|_| gen(next, depth + 1)).collect()),
                9 => Frame::Set((0..n).map(|_| gen(next, depth + 1)).collect()),
                10 => Frame::Push((0..n).map(|_| gen(next, depth + 1)).collect()),
                _ => Frame::Map(
                    (0..n)
                        .map(|_| (gen(next, depth + 1), gen(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        fn same(a: &Frame, b: &Frame) -> bool {
            match (a, b) {
                (Frame::Double(x), Frame::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
                (Frame::Array(x), Frame::Array(y))
                | (Frame::Set(x), Frame::Set(y))
                | (Frame::Push(x), Frame::Push(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                }
                (Frame::Map(x), Frame::Map(y)) => {
                    x.len() == y.len()
                        && x.iter()
                            .zip(y)
                            .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
                }
                _ => a == b,
            }
        }
        for _ in 0..2000 {
            let frame = gen(&mut next, 0);
            let back = round_trip(&frame, true);
            assert!(same(&frame, &back), "{frame:?} -> {back:?}");
            // RESP2 must at least stay well framed.
            round_trip(&frame, false);
        }
    }
}

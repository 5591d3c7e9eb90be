//! Property tests for the codec: any reply frame encoded then parsed back is itself, and
//! any request, encoded as a multibulk and fed to the request parser in arbitrary pieces,
//! comes back as the same arguments.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{encode, parse_frame, Frame, RequestLimits, RequestParser};

/// Text a simple string, error or big number may hold: no CR or LF.
fn line_text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

/// Frames whose RESP3 encoding is unambiguous: `NullArray` (which RESP3 writes as `_`,
/// read back as `Null`) and `Pairs` (written as arrays) are encodings of other frames.
fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text()
            .prop_filter("errors carry a code", |t| !t.is_empty())
            .prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        ("[a-z]{3}", bytes()).prop_map(|(f, b)| Frame::Verbatim(f, b)),
        "-?[1-9][0-9]{0,40}".prop_map(Frame::BigNumber),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

proptest! {
    #[test]
    fn encoding_then_parsing_a_reply_is_the_identity(frame in frame()) {
        let mut out = BytesMut::new();
        encode(&frame, true, &mut out);
        let encoded_len = out.len();
        let parsed = parse_frame(&mut out).expect("parses").expect("complete");
        prop_assert_eq!(parsed, frame);
        prop_assert!(out.is_empty(), "{} of {} bytes left", out.len(), encoded_len);
    }

    #[test]
    fn a_request_in_any_pieces_parses_to_its_arguments(
        args in proptest::collection::vec(bytes(), 1..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = format!("*{}\r\n", args.len()).into_bytes();
        for arg in &args {
            wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            wire.extend_from_slice(arg);
            wire.extend_from_slice(b"\r\n");
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let limits = RequestLimits::default();
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut from = 0;
        let mut parsed = None;
        for cut in cuts {
            buf.extend_from_slice(&wire[from..cut]);
            from = cut;
            if let Some(got) = parser.parse(&mut buf, &limits).expect("valid request") {
                parsed = Some(got);
            }
        }
        prop_assert_eq!(parsed, Some(args));
        prop_assert!(buf.is_empty());
    }
}

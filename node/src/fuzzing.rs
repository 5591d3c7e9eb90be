//! The bodies of the `cargo fuzz` targets in `node/fuzz/` and of the test that replays their
//! checked-in corpus on every `cargo test`. Each takes arbitrary bytes and panics only when
//! it finds a bug: a decoder that disagrees with itself, a reply that does not survive an
//! encode and decode, a keyspace whose memory count or snapshot drifts.
//!
//! Kept in the library (hidden from its docs) rather than in the fuzz crate so that the
//! corpus replay runs in the ordinary test build, with no extra compile in CI.

use bytes::{Bytes, BytesMut};

use crate::keyspace::memory::recount_used;
use crate::keyspace::{Keyspace, Op, Request};
use crate::resp::{encode, parse_frame, ProtocolError, RequestLimits, RequestParser};

/// Limits far below the defaults, so that declared sizes near them are reachable by a fuzzer.
const LIMITS: RequestLimits = RequestLimits {
    max_bulk_len: 4096,
    max_multibulk_len: 64,
    max_inline_len: 256,
};

/// Everything a parser produced from a byte stream: the requests, then how it stopped.
#[derive(Debug, PartialEq)]
struct Parsed {
    requests: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
    /// Bytes left unparsed (a partial request) when the stream ended without an error.
    rest: usize,
}

/// Parses requests from `buf` until it runs dry or an error stops the connection.
fn drain(parser: &mut RequestParser, buf: &mut BytesMut, out: &mut Parsed) -> bool {
    loop {
        match parser.parse(buf, &LIMITS) {
            Ok(Some(args)) => out.requests.push(args),
            Ok(None) => return true,
            Err(e) => {
                out.error = Some(e);
                return false;
            }
        }
    }
}

/// Parses the whole input as one buffer.
fn parse_whole(data: &[u8]) -> Parsed {
    let mut out = Parsed {
        requests: Vec::new(),
        error: None,
        rest: 0,
    };
    let mut buf = BytesMut::from(data);
    if drain(&mut RequestParser::new(), &mut buf, &mut out) {
        out.rest = buf.len();
    }
    out
}

/// Parses the input as it would arrive in reads of `chunk` bytes.
fn parse_chunked(data: &[u8], chunk: usize) -> Parsed {
    let mut out = Parsed {
        requests: Vec::new(),
        error: None,
        rest: 0,
    };
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        if !drain(&mut parser, &mut buf, &mut out) {
            return out;
        }
    }
    out.rest = buf.len();
    out
}

fn multibulk(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The request decoder: however the bytes are split across reads, the same requests come
/// out and the same error stops them; every request re-encoded as a multibulk decodes to
/// the same arguments.
pub fn resp_request(data: &[u8]) {
    let whole = parse_whole(data);
    // The first byte picks the read size, so the fuzzer explores splits too.
    let chunk = data.first().map_or(1, |b| usize::from(b % 17) + 1);
    let chunked = parse_chunked(data, chunk);
    assert_eq!(whole, chunked, "read size {chunk} changed the parse");
    for args in whole.requests.iter().filter(|args| !args.is_empty()) {
        let again = parse_whole(&multibulk(args));
        assert_eq!(again.requests, vec![args.clone()]);
        assert_eq!(again.error, None);
        assert_eq!(again.rest, 0);
    }
}

/// The reply decoder (clients, `cellkv-cli`, forwarded replies): any reply it accepts
/// encodes (RESP3 and RESP2) to bytes that decode to a reply encoding to the same bytes.
pub fn resp_reply(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = parse_frame(&mut buf) {
        for resp3 in [true, false] {
            let mut first = BytesMut::new();
            encode(&frame, resp3, &mut first);
            let mut again = first.clone();
            let reparsed = match parse_frame(&mut again) {
                Ok(Some(f)) => f,
                other => panic!("{first:?} (resp3 {resp3}) did not decode: {other:?}"),
            };
            assert!(again.is_empty(), "{first:?} decoded with bytes left over");
            let mut second = BytesMut::new();
            encode(&reparsed, resp3, &mut second);
            assert_eq!(first, second, "encoding is not stable for {frame:?}");
        }
    }
}

/// Commands left out of [`command`]: scripts may run for hundreds of millions of Lua
/// instructions before their limit stops them, which would turn every script the fuzzer
/// writes into a timeout rather than a finding.
const SKIPPED: &[&[u8]] = &[
    b"eval",
    b"evalsha",
    b"eval_ro",
    b"evalsha_ro",
    b"fcall",
    b"fcall_ro",
    b"function",
    b"script",
];

fn snapshot_bytes(ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = ks.write_snapshot(&mut out) {
        panic!("snapshot of an in-memory keyspace failed: {e}");
    }
    out
}

/// Command parsing and apply: the input is a stream of requests, each applied to one
/// keyspace as a committed log entry (arguments typed by each command's own parser). Any
/// reply is fine; afterwards the running memory count equals a recount, and a snapshot
/// read back writes the same bytes.
pub fn command(data: &[u8]) {
    let parsed = parse_whole(data);
    let mut ks = Keyspace::new();
    let mut time_ms = 1_700_000_000_000u64;
    for (i, args) in parsed.requests.into_iter().enumerate() {
        let Some(name) = args.first() else { continue };
        if SKIPPED.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        // Time moves on by an amount the request's length decides, so expiry is reached.
        time_ms += (args.len() as u64 % 4) * 700;
        let index = i as u64 + 1;
        ks.apply(
            index,
            &Request {
                time_ms,
                op: Op::Command { db: 0, args },
            },
        );
        assert_eq!(ks.used_memory(), recount_used(&ks), "memory count drifted");
    }
    let snapshot = snapshot_bytes(&ks);
    let restored = match Keyspace::read_snapshot(&mut snapshot.as_slice()) {
        Ok(restored) => restored,
        Err(e) => panic!("a snapshot just written does not read back: {e}"),
    };
    assert_eq!(snapshot, snapshot_bytes(&restored), "snapshot not stable");
    assert_eq!(restored.used_memory(), ks.used_memory());
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every checked-in corpus file (and every crash input added after a fix) still passes.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 3] = [
            ("resp_request", super::resp_request),
            ("resp_reply", super::resp_reply),
            ("command", super::command),
        ];
        for (name, run) in targets {
            let dir = root.join(name);
            let mut files = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                run(&data);
                files += 1;
            }
            assert!(files >= 5, "{name}: only {files} corpus files");
        }
    }

    #[test]
    fn the_request_target_catches_a_parser_that_depends_on_read_size() {
        // A sanity check of the harness itself: two different streams do not compare equal.
        let a = super::parse_whole(b"*1\r\n$4\r\nPING\r\n");
        let b = super::parse_whole(b"*1\r\n$4\r\nPONG\r\n");
        assert_ne!(a, b);
        assert_eq!(a, super::parse_chunked(b"*1\r\n$4\r\nPING\r\n", 3));
    }
}

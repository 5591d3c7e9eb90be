//! Hostile input over TCP: random bytes, truncated frames, huge declared lengths, deep
//! nesting and endless inline lines, each on its own connection, while one well-behaved
//! client keeps talking to the node. The node answers it after every attack.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{info_field, must_exchange, must_start};

/// A small deterministic generator, so a failure names a reproducible payload.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u8
    }
}

fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            "truncated bulk".into(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc".to_vec(),
        ),
        ("truncated count".into(), b"*3\r\n$3\r\nSE".to_vec()),
        ("huge bulk length".into(), b"*1\r\n$2147483647\r\n".to_vec()),
        (
            "bulk length past i64".into(),
            b"*1\r\n$99999999999999999999999\r\n".to_vec(),
        ),
        (
            "huge multibulk count".into(),
            b"*2147483647\r\n$3\r\nGET\r\n".to_vec(),
        ),
        ("negative bulk length".into(), b"*1\r\n$-5\r\n".to_vec()),
        ("nested arrays".into(), b"*1\r\n".repeat(10_000)),
        ("endless inline line".into(), vec![b'a'; 200_000]),
        ("unbalanced quotes".into(), b"SET \"k v\r\n".to_vec()),
        ("nul bytes".into(), vec![0u8; 4096]),
    ];
    let mut rng = Lcg(0x5eed);
    for i in 0..40 {
        let len = 1 + (rng.next() as usize) * 16;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next()).collect();
        // Half of them look like the start of a request, to reach deeper parser states.
        if i % 2 == 0 {
            bytes.splice(0..0, b"*2\r\n$".iter().copied());
        }
        out.push((format!("random #{i} ({len} bytes)"), bytes));
    }
    out
}

/// After each hostile connection, a well-behaved client on another connection still gets
/// its `PING` answered and its writes served; protocol errors are counted.
#[test]
fn hostile_connections_never_stop_the_node_serving_others() {
    let (node, _dir) = must_start(&[]);
    let mut good = node.must_tcp();
    for (name, payload) in payloads() {
        let mut bad = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
        bad.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        // The node may close the connection while the payload is still being written.
        let _ = bad.write_all(&payload);
        let mut sink = [0u8; 4096];
        let _ = bad.read(&mut sink);
        drop(bad);
        assert_eq!(
            must_exchange(&mut good, b"PING\r\n", 7),
            b"+PONG\r\n",
            "after {name}"
        );
    }
    assert_eq!(
        must_exchange(&mut good, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 5),
        b"+OK\r\n"
    );
    assert_eq!(
        must_exchange(&mut good, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 7),
        b"$1\r\nv\r\n"
    );
    let mut con = node.must_connect();
    let errors: u64 = info_field(&mut con, "protocol_errors")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 5, "protocol_errors:{errors}");
}

//! Connection limits under load: ten thousand connection attempts beyond `maxclients` are
//! each refused with Redis's error, and the node keeps serving the clients it has and new
//! ones once a slot frees.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::Value;

use crate::harness::{info_field, must_cmd, must_start};

/// With `maxclients 4` and four clients connected, 10 000 more attempts each read
/// `-ERR max number of clients reached` and are closed; `rejected_connections` counts them
/// all, the four clients still run commands, and a new client connects once one leaves.
#[test]
fn ten_thousand_connections_beyond_maxclients_are_refused_and_service_goes_on() {
    let (node, _dir) = must_start(&["--maxclients", "4"]);
    let mut held: Vec<redis::Connection> = (0..4).map(|_| node.must_connect()).collect();
    must_cmd(&mut held[0], &["SET", "k", "v"]);
    let refusal = b"-ERR max number of clients reached\r\n";
    for attempt in 0..10_000 {
        let mut stream = TcpStream::connect(("127.0.0.1", node.port))
            .unwrap_or_else(|e| panic!("attempt {attempt}: connect: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // A refused client may still send; the node answers only the refusal and closes.
        let _ = stream.write_all(b"PING\r\n");
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert_eq!(reply, refusal, "attempt {attempt}");
    }
    for con in &mut held {
        assert_eq!(
            must_cmd(con, &["GET", "k"]),
            Value::BulkString(b"v".to_vec())
        );
    }
    assert_eq!(
        info_field(&mut held[1], "rejected_connections").as_deref(),
        Some("10000")
    );
    drop(held.pop());
    // The slot is given back when the server sees the close.
    let client = redis::Client::open(node.url()).expect("client");
    let mut fresh = loop {
        if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(5)) {
            if redis::cmd("PING").query::<Value>(&mut con).is_ok() {
                break con;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        must_cmd(&mut fresh, &["GET", "k"]),
        Value::BulkString(b"v".to_vec())
    );
}

/// `timeout 1`: a client that sends nothing is closed with a log line, while a client
/// that keeps talking (every 300 ms, for longer than the timeout) is not.
#[test]
fn an_idle_client_is_closed_after_timeout() {
    let (node, _dir) = must_start(&["--timeout", "1"]);
    let mut idle = node.must_tcp();
    let mut busy = node.must_tcp();
    for _ in 0..8 {
        assert_eq!(
            crate::harness::must_exchange(&mut busy, b"PING\r\n", 7),
            b"+PONG\r\n"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let closed = crate::harness::read_to_close(&mut idle);
    assert!(closed.is_empty(), "{closed:?}");
    assert!(node.log().contains("closing client idle past timeout"));
    let mut fresh = node.must_tcp();
    assert_eq!(
        crate::harness::must_exchange(&mut fresh, b"PING\r\n", 7),
        b"+PONG\r\n"
    );
}

/// `client-query-buffer-limit 1mb`: a client whose unparsed input passes it is cut off with
/// a log line; another client is served throughout.
#[test]
fn a_client_over_the_query_buffer_limit_is_cut_off() {
    let (node, _dir) = must_start(&["--client-query-buffer-limit", "1048576"]);
    let mut other = node.must_tcp();
    let mut big = node.must_tcp();
    let mut request = b"*2\r\n$3\r\nGET\r\n$2000000\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 1_200_000));
    // The node may close before everything is written.
    let _ = big.write_all(&request);
    let _ = crate::harness::read_to_close(&mut big);
    assert_eq!(
        crate::harness::must_exchange(&mut other, b"PING\r\n", 7),
        b"+PONG\r\n"
    );
    assert!(node
        .log()
        .contains("closing client over client-query-buffer-limit"));
}

/// `client-output-buffer-limit normal 1mb 0 0` set with CONFIG SET: a client whose pipelined
/// reads produce more reply bytes than that at once is cut off with a log line; a client
/// reading the same value once, and any other client, is served.
#[test]
fn a_client_over_the_normal_output_limit_is_cut_off() {
    let (node, _dir) = must_start(&[]);
    let mut admin = node.must_connect();
    must_cmd(
        &mut admin,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1mb 0 0",
        ],
    );
    greedy_reader_is_cut_off_at_one_megabyte(&node, &mut admin);
}

/// The same limit given at start, in redis.conf's words, acts from the first client on.
#[test]
fn the_normal_output_limit_can_be_set_at_start() {
    let (node, _dir) = must_start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut admin = node.must_connect();
    greedy_reader_is_cut_off_at_one_megabyte(&node, &mut admin);
}

fn greedy_reader_is_cut_off_at_one_megabyte(
    node: &crate::harness::NodeProcess,
    admin: &mut redis::Connection,
) {
    let value = "v".repeat(300_000);
    must_cmd(admin, &["SET", "big", &value]);
    let limits: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query(admin)
        .expect("CONFIG GET");
    assert!(limits[1].starts_with("normal 1048576 0 0 "), "{limits:?}");
    // One GET of the value fits.
    let Value::BulkString(one) = must_cmd(admin, &["GET", "big"]) else {
        panic!("GET big");
    };
    assert_eq!(one.len(), 300_000);
    // Eight in one write do not.
    let mut greedy = node.must_tcp();
    greedy.write_all(&b"GET big\r\n".repeat(8)).expect("write");
    let received = crate::harness::read_to_close(&mut greedy);
    assert!(received.len() < 1024 * 1024, "got {} bytes", received.len());
    assert_eq!(
        must_cmd(admin, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    assert!(node
        .log()
        .contains("closing client over client-output-buffer-limit normal"));
}

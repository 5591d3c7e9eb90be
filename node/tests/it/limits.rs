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

//! Blocking pops through the real binary: woken by pushes from other connections, served
//! first come first served, timing out, inside MULTI, and never losing an element to a
//! client that went away.

use std::thread;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{info_field, must_cmd, must_exchange, must_start, NodeProcess};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn blocked_clients(con: &mut redis::Connection) -> usize {
    info_field(con, "blocked_clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Waits until the node reports `n` blocked clients.
fn wait_blocked(con: &mut redis::Connection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while blocked_clients(con) != n {
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command on its own connection in a thread, returning its reply when it comes.
fn in_background(node: &NodeProcess, args: &[&str]) -> thread::JoinHandle<Value> {
    let mut con = node.must_connect();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        must_cmd(&mut con, &refs)
    })
}

#[test]
fn a_push_from_another_connection_wakes_a_blocked_pop() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let waiting = in_background(&node, &["BLPOP", "q1", "q2", "10"]);
    wait_blocked(&mut con, 1);
    assert_eq!(must_cmd(&mut con, &["RPUSH", "q2", "job"]), Value::Int(1));
    assert_eq!(
        waiting.join().expect("thread"),
        Value::Array(vec![bulk("q2"), bulk("job")])
    );
    // The pop emptied the list, which is gone.
    assert_eq!(must_cmd(&mut con, &["EXISTS", "q2"]), Value::Int(0));
    assert_eq!(blocked_clients(&mut con), 0);
}

#[test]
fn waiters_are_served_in_arrival_order_and_only_as_many_as_there_are_elements() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let first = in_background(&node, &["BLPOP", "q", "0"]);
    wait_blocked(&mut con, 1);
    let second = in_background(&node, &["BRPOP", "other", "q", "0"]);
    wait_blocked(&mut con, 2);
    let third = in_background(&node, &["BLPOP", "q", "0"]);
    wait_blocked(&mut con, 3);
    // Two elements: the two earliest clients get one each, the third keeps waiting.
    assert_eq!(must_cmd(&mut con, &["RPUSH", "q", "a", "b"]), Value::Int(2));
    assert_eq!(
        first.join().expect("first"),
        Value::Array(vec![bulk("q"), bulk("a")])
    );
    assert_eq!(
        second.join().expect("second"),
        Value::Array(vec![bulk("q"), bulk("b")])
    );
    wait_blocked(&mut con, 1);
    assert_eq!(must_cmd(&mut con, &["LPUSH", "q", "c"]), Value::Int(1));
    assert_eq!(
        third.join().expect("third"),
        Value::Array(vec![bulk("q"), bulk("c")])
    );
}

#[test]
fn timeouts_answer_null_in_both_protocols() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let started = Instant::now();
    let reply = must_exchange(&mut tcp, b"BLPOP nothing 0.2\r\n", 5);
    assert_eq!(reply, b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
    let reply = must_exchange(&mut tcp, b"BLMOVE nothing dst LEFT RIGHT 0.05\r\n", 5);
    assert_eq!(reply, b"$-1\r\n");
    let reply = must_exchange(&mut tcp, b"BZPOPMIN nothing 0.05\r\n", 5);
    assert_eq!(reply, b"*-1\r\n");
    let reply = must_exchange(&mut tcp, b"BZMPOP 0.05 2 a b MIN\r\n", 5);
    assert_eq!(reply, b"*-1\r\n");
    let hello = crate::harness::must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules");
    assert!(hello.starts_with(b"%"));
    let reply = must_exchange(&mut tcp, b"BRPOP nothing 0.05\r\n", 3);
    assert_eq!(reply, b"_\r\n");
    let reply = must_exchange(&mut tcp, b"BLPOP k -1\r\n", 26);
    assert_eq!(reply, b"-ERR timeout is negative\r\n");
}

#[test]
fn a_moving_pop_waits_on_its_source_only() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let mover = in_background(&node, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "10"]);
    wait_blocked(&mut con, 1);
    // A push to the destination does not serve a BLMOVE.
    must_cmd(&mut con, &["RPUSH", "dst", "old"]);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(blocked_clients(&mut con), 1);
    must_cmd(&mut con, &["RPUSH", "src", "x"]);
    assert_eq!(mover.join().expect("mover"), bulk("x"));
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "dst", "0", "-1"]),
        Value::Array(vec![bulk("old"), bulk("x")])
    );
}

#[test]
fn inside_multi_a_blocking_pop_answers_at_once() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected =
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n*-1\r\n:1\r\n*2\r\n$1\r\nq\r\n$1\r\nv\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"MULTI\r\nBLPOP q 0\r\nLPUSH q v\r\nBLPOP q 0\r\nEXEC\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
}

/// A client that disconnects while blocked takes nothing with it: the element pushed
/// afterwards stays in the list for the next consumer.
#[test]
fn a_client_that_went_away_is_never_handed_an_element() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let mut tcp = node.must_tcp();
    use std::io::Write;
    tcp.write_all(b"BRPOP celery 0\r\n").expect("write");
    wait_blocked(&mut con, 1);
    drop(tcp);
    wait_blocked(&mut con, 0);
    must_cmd(&mut con, &["LPUSH", "celery", "task-1"]);
    assert_eq!(must_cmd(&mut con, &["LLEN", "celery"]), Value::Int(1));
}

/// kombu's consumer: BRPOP over many queues with a 1 s timeout, fed by producers on other
/// connections; every task is received exactly once.
#[test]
fn celery_style_consumers_receive_every_task_once() {
    let (node, _dir) = must_start(&[]);
    let queues: Vec<String> = ["default", "backtest", "agents"]
        .iter()
        .flat_map(|q| {
            (0..4).map(move |p| {
                if p == 0 {
                    q.to_string()
                } else {
                    format!("{q}\x06\x16{p}")
                }
            })
        })
        .collect();
    let total = 300;
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let mut con = node.must_connect();
            let queues = queues.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut idle = 0;
                while idle < 3 {
                    let mut cmd = redis::cmd("BRPOP");
                    for q in &queues {
                        cmd.arg(q);
                    }
                    cmd.arg(1);
                    match cmd.query::<Value>(&mut con).expect("brpop") {
                        Value::Array(items) => {
                            idle = 0;
                            if let Some(Value::BulkString(task)) = items.get(1) {
                                got.push(String::from_utf8_lossy(task).into_owned());
                            }
                        }
                        _ => idle += 1,
                    }
                }
                got
            })
        })
        .collect();
    let mut producer = node.must_connect();
    for i in 0..total {
        let queue = &queues[i % queues.len()];
        must_cmd(&mut producer, &["LPUSH", queue, &format!("task-{i}")]);
    }
    let mut all: Vec<String> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("consumer"))
        .collect();
    all.sort();
    let mut want: Vec<String> = (0..total).map(|i| format!("task-{i}")).collect();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn sorted_set_pops_are_woken_by_zadd() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let popper = in_background(&node, &["BZPOPMIN", "z", "10"]);
    wait_blocked(&mut con, 1);
    let mpopper = in_background(&node, &["BZMPOP", "10", "2", "y", "z", "MAX", "COUNT", "5"]);
    wait_blocked(&mut con, 2);
    must_cmd(&mut con, &["ZADD", "z", "2", "b", "1", "a", "3", "c"]);
    let got = popper.join().expect("popper");
    let Value::Array(items) = got else {
        panic!("BZPOPMIN replied {got:?}");
    };
    assert_eq!(items[..2], [bulk("z"), bulk("a")]);
    // The second waiter is woken by the first pop leaving members behind.
    let got = mpopper.join().expect("mpopper");
    let Value::Array(items) = got else {
        panic!("BZMPOP replied {got:?}");
    };
    assert_eq!(items[0], bulk("z"));
    assert_eq!(must_cmd(&mut con, &["EXISTS", "z"]), Value::Int(0));
}

//! Workload 1, the kill switch: clients `SET`, `GET` and `DEL` `alphaswarm:kill_switch` on
//! random members and record what they saw, for the linearizability checker.
//!
//! Each client runs on its own madsim node with its own IP and talks RESP to the members over
//! simulated TCP, one request at a time, one connection per member of the cell's current
//! [`Roster`]. Every `SET` writes a value
//! no other write uses (`client * 1 000 000 + sequence`), so a read names the write it saw.
//!
//! What goes into the history: an acknowledged write with its reply; a write that timed out,
//! lost its connection or got `-UNKNOWN` (or any other error) as *unknown*, with no return
//! time; a read only when it got a value. Writes refused with `-CLUSTERDOWN` or `-TRYAGAIN`
//! were not applied (docs/consistency.md) and are left out.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::resp::Frame;
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{CallError, Connection, Roster};
use crate::linearizability::{Action, Operation};

/// The key every client works on.
pub const KEY: &[u8] = b"alphaswarm:kill_switch";

/// How long a client waits for a reply before it calls the outcome unknown.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What the clients saw, shared by all of them.
#[derive(Default)]
pub struct Recorder {
    /// The history.
    pub ops: Vec<Operation>,
    /// Replies and failures by kind (`OK`, `UNKNOWN`, `CLUSTERDOWN`, `timeout`, ...).
    pub outcomes: BTreeMap<String, u64>,
}

/// The shared recorder.
pub type SharedRecorder = Arc<Mutex<Recorder>>;

/// Nanoseconds of simulated time since `origin`.
pub fn nanos_since(origin: Instant) -> u64 {
    u64::try_from(Instant::now().duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// The kind of an error reply: its first word (`UNKNOWN`, `CLUSTERDOWN`, `ERR`...).
fn error_kind(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("?").to_string()
}

/// Whether an error reply means the write was certainly not applied.
fn not_applied(text: &str) -> bool {
    // -OOM is decided by apply, the same on every replica: the write did not happen.
    text.starts_with("CLUSTERDOWN") || text.starts_with("TRYAGAIN") || text.starts_with("OOM")
}

/// One client: its id, the cell's members, and its open connections.
pub struct Client {
    id: u32,
    roster: Roster,
    connections: BTreeMap<SocketAddr, Connection>,
    seq: u64,
    origin: Instant,
    recorder: SharedRecorder,
    /// Test-only mutation: see [`Client::take_silence_as_failure`].
    silence_is_failure: bool,
}

impl Client {
    /// A client that will record into `recorder`, with times relative to `origin`.
    pub fn new(
        id: u32,
        roster: impl Into<Roster>,
        origin: Instant,
        recorder: SharedRecorder,
    ) -> Client {
        Client {
            id,
            roster: roster.into(),
            connections: BTreeMap::new(),
            seq: 0,
            origin,
            recorder,
            silence_is_failure: false,
        }
    }

    /// Test-only mutation: a `SET` that got no reply is left out of the history as if it had
    /// been answered `-TRYAGAIN`. That is what a node that reported a write as failed while
    /// it was still on its way to the log would look like; a scenario for that shape must
    /// then fail.
    pub fn take_silence_as_failure(&mut self) {
        self.silence_is_failure = true;
    }

    fn count(&self, outcome: impl Into<String>) {
        *self
            .recorder
            .lock()
            .outcomes
            .entry(outcome.into())
            .or_default() += 1;
    }

    /// Sends one command to member number `target` of the roster as it is now; connects first
    /// if needed. `None` when no connection could be made (nothing was sent).
    async fn call(&mut self, target: usize, args: &[&[u8]]) -> Option<Result<Frame, CallError>> {
        let current = self.roster.addrs();
        let Some(&target) = current.get(target) else {
            self.count("no-such-member");
            return None;
        };
        self.connections.retain(|addr, _| current.contains(addr));
        let conn = match self.connections.entry(target) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                match Connection::connect(target, Duration::from_secs(1)).await {
                    Ok(c) => slot.insert(c),
                    Err(_) => {
                        self.count("connect-failed");
                        return None;
                    }
                }
            }
        };
        let result = conn.call(args, CALL_TIMEOUT).await;
        if result.is_err() {
            self.connections.remove(&target);
        }
        Some(result)
    }

    fn record(&self, action: Action, invoked: u64, returned: Option<u64>) {
        self.recorder.lock().ops.push(Operation {
            client: self.id,
            action,
            invoked,
            returned,
        });
    }

    /// `SET key v` through member `target`; returns whether it was acknowledged.
    pub async fn set(&mut self, target: usize) -> bool {
        self.seq += 1;
        let value = u64::from(self.id) * 1_000_000 + self.seq;
        let text = value.to_string();
        let invoked = nanos_since(self.origin);
        let Some(result) = self.call(target, &[b"SET", KEY, text.as_bytes()]).await else {
            return false;
        };
        match result {
            Ok(Frame::Simple(s)) if s == "OK" => {
                self.count("SET OK");
                self.record(Action::Set(value), invoked, Some(nanos_since(self.origin)));
                true
            }
            Ok(Frame::Error(e)) if not_applied(&e) => {
                self.count(format!("SET {}", error_kind(&e)));
                false
            }
            Ok(other) => {
                self.count(format!("SET {}", describe(&other)));
                self.record(Action::Set(value), invoked, None);
                false
            }
            Err(e) => {
                self.count(format!("SET {}", describe_err(&e)));
                if !self.silence_is_failure {
                    self.record(Action::Set(value), invoked, None);
                }
                false
            }
        }
    }

    /// `GET key` through member `target`; the value read, if the read succeeded.
    pub async fn get(&mut self, target: usize) -> Option<Option<u64>> {
        let invoked = nanos_since(self.origin);
        let result = self.call(target, &[b"GET", KEY]).await?;
        let seen = match result {
            Ok(Frame::Null) => None,
            Ok(Frame::Bulk(b)) => match std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()) {
                Some(v) => Some(v),
                None => {
                    self.count("GET garbage");
                    // A value nobody wrote: let the checker say so.
                    Some(u64::MAX)
                }
            },
            Ok(other) => {
                self.count(format!("GET {}", describe(&other)));
                return None;
            }
            Err(e) => {
                self.count(format!("GET {}", describe_err(&e)));
                return None;
            }
        };
        self.count("GET value");
        self.record(Action::Get(seen), invoked, Some(nanos_since(self.origin)));
        Some(seen)
    }

    /// `DEL key` through member `target`.
    pub async fn del(&mut self, target: usize) {
        let invoked = nanos_since(self.origin);
        let Some(result) = self.call(target, &[b"DEL", KEY]).await else {
            return;
        };
        match result {
            Ok(Frame::Integer(n)) => {
                self.count("DEL OK");
                self.record(
                    Action::Del(Some(n > 0)),
                    invoked,
                    Some(nanos_since(self.origin)),
                );
            }
            Ok(Frame::Error(e)) if not_applied(&e) => {
                self.count(format!("DEL {}", error_kind(&e)));
            }
            Ok(other) => {
                self.count(format!("DEL {}", describe(&other)));
                self.record(Action::Del(None), invoked, None);
            }
            Err(e) => {
                self.count(format!("DEL {}", describe_err(&e)));
                self.record(Action::Del(None), invoked, None);
            }
        }
    }

    /// Random operations on random members until `until`.
    pub async fn run_until(&mut self, until: Instant) {
        while Instant::now() < until {
            let target = thread_rng().gen_range(0..self.roster.len().max(1));
            let roll: u32 = thread_rng().gen_range(0..100);
            if roll < 40 {
                self.set(target).await;
            } else if roll < 88 {
                self.get(target).await;
            } else {
                self.del(target).await;
            }
            let pause = thread_rng().gen_range(0..60);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// The value of this client's latest `SET` (acknowledged or not).
    pub fn last_value(&self) -> u64 {
        u64::from(self.id) * 1_000_000 + self.seq
    }

    /// The address of member number `target` now.
    pub fn member_addr(&self, target: usize) -> Option<SocketAddr> {
        self.roster.get(target)
    }

    /// Number of members now.
    pub fn members(&self) -> usize {
        self.roster.len()
    }
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Error(e) => error_kind(e),
        other => format!("unexpected {other:?}"),
    }
}

fn describe_err(e: &CallError) -> String {
    match e {
        CallError::Timeout => "timeout".into(),
        CallError::Io(_) => "io-error".into(),
    }
}

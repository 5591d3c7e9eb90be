//! The TTL workload (issue 6's fourth): session clients `SET` keys no other write uses with
//! `PX` (0.3–3 s) or `EX` (1–3 s) through random members, and read recent ones back through
//! random members, many of them around their expiry, while clock jumps and the other faults
//! run.
//!
//! Times are the simulator's true time (no node's clock offset), in milliseconds since the
//! run began. The leader stamps a `SET` somewhere between its invocation and its reply, so an
//! acknowledged `SET key v PX n` expires somewhere in `[invoked + n, completed + n]` of cell
//! time. Checked ([`TtlLog::verify`]):
//! - a read that began after `completed + n` finds nothing (no key visible after its expiry,
//!   on any member);
//! - a read that began after the `SET` was acknowledged and ended before `invoked + n` finds
//!   the value (none disappears before it);
//! - a read never finds a value whose `SET` was answered as not applied, nor another value.
//!
//! Cell time follows true time except where a leader's wall clock was off when it took
//! office (docs/consistency.md, "Time"): the invariant monitor samples every leader's cell
//! time against true time, and each bound above is widened by the largest difference seen
//! up to the read (see [`TtlLog::allowance`]). Without clock jumps that stays at a few
//! milliseconds, so the check is tight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::resp::Frame;
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{CallError, Members, Roster};

/// Rounding of milliseconds on the way (expiry compared with `<=` or `<`, times truncated).
const SLACK_MS: u64 = 2;

/// What became of a `SET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// Answered `OK`.
    Acknowledged,
    /// Refused, so not applied.
    Failed,
    /// No answer.
    Unknown,
}

/// One `SET ... PX|EX`.
#[derive(Clone, Debug)]
pub struct SetOp {
    /// Invocation and reply, true milliseconds since the run began.
    pub invoked: u64,
    /// When the reply came (or the client gave up).
    pub completed: u64,
    /// Its time to live in milliseconds.
    pub ttl_ms: u64,
    /// What became of it.
    pub outcome: SetOutcome,
}

/// One `GET` that was answered.
#[derive(Clone, Debug)]
pub struct ReadOp {
    /// The key's number.
    pub key: u64,
    /// Invocation, true milliseconds since the run began.
    pub invoked: u64,
    /// Reply.
    pub completed: u64,
    /// The id of the member read.
    pub member: u64,
    /// What it found: `None` for nothing, else the value's text.
    pub found: Option<String>,
}

/// What the session clients saw, and the leaders' cell-time offsets the monitor measured.
#[derive(Default, Debug)]
pub struct TtlLog {
    /// Key number → its `SET`.
    pub sets: BTreeMap<u64, SetOp>,
    /// Answered reads.
    pub reads: Vec<ReadOp>,
    /// `(true ms, |leader cell time − true time| ms)` whenever it was above the slack, in
    /// time order.
    pub leader_skew: Vec<(u64, u64)>,
    /// Replies by kind.
    pub outcomes: BTreeMap<String, u64>,
}

/// The shared log.
pub type SharedTtlLog = Arc<Mutex<TtlLog>>;

impl TtlLog {
    /// Records one sample of a leader's cell time against true time.
    pub fn sample_leader(&mut self, now_ms: u64, cell_ms: u64, true_ms: u64) {
        let skew = cell_ms.abs_diff(true_ms);
        if skew > SLACK_MS && self.leader_skew.last().is_none_or(|&(_, s)| s < skew) {
            self.leader_skew.push((now_ms, skew));
        }
    }

    /// How far a read that ended at `completed` may be off: the largest leader skew seen
    /// before it (a forward step moves every later expiry of keys already set; a leader
    /// behind true time keeps keys longer until a later one steps forward again), plus one
    /// sampling interval's worth of the sample that may not have been taken yet.
    pub fn allowance(&self, completed: u64) -> u64 {
        self.leader_skew
            .iter()
            .take_while(|&&(t, _)| t <= completed + 20)
            .map(|&(_, s)| s)
            .max()
            .unwrap_or(0)
    }

    /// The checks listed in the module documentation; one line per problem (at most 20).
    pub fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for read in &self.reads {
            let Some(set) = self.sets.get(&read.key) else {
                continue;
            };
            let slack = SLACK_MS + self.allowance(read.completed);
            let text = |what: &str| {
                format!(
                    "ttl: session:{} (SET {:?} at {}..{} ms, ttl {} ms) read through n{} at \
                     {}..{} ms: {what} (allowance {slack} ms)",
                    read.key,
                    set.outcome,
                    set.invoked,
                    set.completed,
                    set.ttl_ms,
                    read.member,
                    read.invoked,
                    read.completed
                )
            };
            let problem = match (&read.found, set.outcome) {
                (Some(v), _) if *v != read.key.to_string() => Some(text(&format!("found {v:?}"))),
                (Some(_), SetOutcome::Failed) => {
                    Some(text("found, though its SET was answered as not applied"))
                }
                (Some(_), SetOutcome::Acknowledged)
                    if read.invoked > set.completed + set.ttl_ms + slack =>
                {
                    Some(text("visible after its expiry"))
                }
                (None, SetOutcome::Acknowledged)
                    if read.invoked > set.completed
                        && read.completed + slack < set.invoked + set.ttl_ms =>
                {
                    Some(text("gone before its expiry"))
                }
                _ => None,
            };
            if let Some(p) = problem {
                if problems.len() < 20 {
                    problems.push(p);
                }
            }
        }
        problems
    }
}

/// One session client.
pub struct SessionClient {
    id: u32,
    members: Members,
    log: SharedTtlLog,
    origin: Instant,
    seq: u64,
    /// Keys whose expiry may not have passed long ago: (number, latest expiry ms).
    recent: Vec<(u64, u64)>,
}

impl SessionClient {
    /// A client; its keys are `session:{id * 1 000 000 + n}`.
    pub fn new(id: u32, roster: Roster, origin: Instant, log: SharedTtlLog) -> SessionClient {
        SessionClient {
            id,
            members: Members::new(roster),
            log,
            origin,
            seq: 0,
            recent: Vec::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.origin).as_millis() as u64
    }

    fn count(&self, what: String) {
        *self.log.lock().outcomes.entry(what).or_default() += 1;
    }

    /// A new session key.
    async fn set(&mut self) {
        self.seq += 1;
        let key = u64::from(self.id) * 1_000_000 + self.seq;
        let (unit, amount, ttl_ms) = if thread_rng().gen_bool(0.5) {
            let ms = thread_rng().gen_range(300..3000);
            ("PX", ms, ms)
        } else {
            let s = thread_rng().gen_range(1..=3);
            ("EX", s, s * 1000)
        };
        let name = format!("session:{key}");
        let value = key.to_string();
        let amount = amount.to_string();
        let target = self.members.pick();
        let invoked = self.now_ms();
        let result = self
            .members
            .call(
                target,
                &[
                    b"SET",
                    name.as_bytes(),
                    value.as_bytes(),
                    unit.as_bytes(),
                    amount.as_bytes(),
                ],
                Duration::from_secs(4),
            )
            .await;
        let completed = self.now_ms();
        let outcome = match &result {
            Some(Ok(Frame::Simple(_))) => SetOutcome::Acknowledged,
            Some(Ok(Frame::Error(e)))
                if e.starts_with("CLUSTERDOWN")
                    || e.starts_with("TRYAGAIN")
                    || e.starts_with("OOM") =>
            {
                SetOutcome::Failed
            }
            None => SetOutcome::Failed,
            _ => SetOutcome::Unknown,
        };
        self.count(format!("SET {outcome:?}"));
        self.log.lock().sets.insert(
            key,
            SetOp {
                invoked,
                completed,
                ttl_ms,
                outcome,
            },
        );
        self.recent.push((key, completed + ttl_ms));
    }

    /// A read of a recent key, most often one whose expiry is near.
    async fn get(&mut self) {
        let now = self.now_ms();
        self.recent.retain(|&(_, expiry)| expiry + 1000 > now);
        if self.recent.is_empty() {
            return;
        }
        let near: Vec<u64> = self
            .recent
            .iter()
            .filter(|&&(_, expiry)| expiry.abs_diff(now) < 300)
            .map(|&(k, _)| k)
            .collect();
        let key = if !near.is_empty() && thread_rng().gen_bool(0.7) {
            near[thread_rng().gen_range(0..near.len())]
        } else {
            self.recent[thread_rng().gen_range(0..self.recent.len())].0
        };
        let name = format!("session:{key}");
        let target = self.members.pick();
        let invoked = self.now_ms();
        let result = self
            .members
            .call(target, &[b"GET", name.as_bytes()], Duration::from_secs(4))
            .await;
        let completed = self.now_ms();
        let found = match result {
            Some(Ok(Frame::Null)) => None,
            Some(Ok(Frame::Bulk(b))) => Some(String::from_utf8_lossy(&b).into_owned()),
            other => {
                let what = match other {
                    Some(Ok(Frame::Error(e))) => {
                        e.split_whitespace().next().unwrap_or("?").to_string()
                    }
                    Some(Err(CallError::Timeout)) => "timeout".into(),
                    _ => "other".into(),
                };
                self.count(format!("GET {what}"));
                return;
            }
        };
        self.count(format!(
            "GET {}",
            if found.is_some() { "hit" } else { "nil" }
        ));
        self.log.lock().reads.push(ReadOp {
            key,
            invoked,
            completed,
            member: crate::client::node_of(target),
            found,
        });
    }

    /// Until `end`: a `SET` a third of the time, else a read, every 10–50 ms.
    pub async fn run_until(&mut self, end: Instant) {
        while Instant::now() < end {
            if self.recent.is_empty() || thread_rng().gen_bool(0.3) {
                self.set().await;
            } else {
                self.get().await;
            }
            let pause = thread_rng().gen_range(10..50);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(set: SetOp, reads: &[(u64, u64, Option<&str>)]) -> TtlLog {
        let mut log = TtlLog::default();
        log.sets.insert(7, set);
        for &(invoked, completed, found) in reads {
            log.reads.push(ReadOp {
                key: 7,
                invoked,
                completed,
                member: 0,
                found: found.map(str::to_string),
            });
        }
        log
    }

    fn acked() -> SetOp {
        SetOp {
            invoked: 100,
            completed: 110,
            ttl_ms: 1000,
            outcome: SetOutcome::Acknowledged,
        }
    }

    /// Present before expiry, absent after, either inside the uncertainty window: clean.
    #[test]
    fn reads_around_the_window_pass() {
        let log = log_with(
            acked(),
            &[
                (120, 130, Some("7")),
                (1097, 1099, None),
                (1105, 1108, Some("7")),
                (1113, 1120, None),
                // Before the SET was acknowledged nothing is owed.
                (105, 106, None),
            ],
        );
        assert_eq!(log.verify(), Vec::<String>::new());
    }

    /// Visible after expiry, gone before it, a value from a refused SET, a wrong value: each
    /// is reported; a leader skew widens the bounds.
    #[test]
    fn each_problem_is_reported() {
        let log = log_with(acked(), &[(1200, 1201, Some("7")), (500, 510, None)]);
        assert_eq!(log.verify().len(), 2, "{:?}", log.verify());
        let mut failed = acked();
        failed.outcome = SetOutcome::Failed;
        let log = log_with(failed, &[(120, 130, Some("7"))]);
        assert_eq!(log.verify().len(), 1);
        let log = log_with(acked(), &[(120, 130, Some("8"))]);
        assert_eq!(log.verify().len(), 1);
        // A leader 500 ms ahead of true time, seen before the reads, excuses both.
        let mut log = log_with(acked(), &[(1200, 1201, Some("7")), (600, 610, None)]);
        log.sample_leader(300, 800, 300);
        assert_eq!(log.allowance(1201), 500);
        assert_eq!(log.verify(), Vec::<String>::new());
    }
}

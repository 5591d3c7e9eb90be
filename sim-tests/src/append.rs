//! The list-append workload (issue 6's third), appends in `MULTI`: appenders run transactions of `RPUSH` (one unique
//! value to each of one or two of a few keys) and `LRANGE` (of every key pushed to, and
//! sometimes one more) through random members, and the final lists are read after the cell
//! converged.
//!
//! Checked at the end ([`AppendLog::verify`]), per key against its final list:
//! - no value appears twice, and every value in it was pushed by a transaction that was
//!   acknowledged or whose outcome is unknown: one answered as not applied (`-CLUSTERDOWN`,
//!   `-TRYAGAIN`, `-EXECABORT`, or never sent because `MULTI` or a queued command failed)
//!   must never show up, even later;
//! - every acknowledged append is in it, at the position its `RPUSH` reply gave;
//! - every read is a prefix of it, ends with the value its own transaction pushed to that
//!   key, and a read that began after another ended is at least as long (reads never go back);
//! - an acknowledged append comes before every append whose transaction began after it
//!   ended (strict serializability of the appends, unknown ones included).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::resp::Frame;
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{CallError, Members, Roster};

/// The list keys.
pub const KEYS: [&str; 3] = ["append:a", "append:b", "append:c"];

/// What became of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `EXEC` answered with its replies.
    Acknowledged,
    /// Not applied: refused, or `EXEC` never sent.
    Failed,
    /// No answer (timeout, lost connection, `-UNKNOWN`): applied or not.
    Unknown,
}

/// One transaction as the client saw it.
#[derive(Clone, Debug)]
pub struct Txn {
    /// The appender.
    pub client: u32,
    /// Milliseconds (simulated, since the run began) when `EXEC` was sent.
    pub invoked: u64,
    /// When its reply came (or the client gave up).
    pub completed: u64,
    /// `(key index, value)` pushed.
    pub pushes: Vec<(usize, u64)>,
    /// The `RPUSH` replies (list lengths), one per push, when acknowledged.
    pub lengths: Vec<i64>,
    /// `(key index, list)` read, when acknowledged.
    pub reads: Vec<(usize, Vec<u64>)>,
    /// What became of it.
    pub outcome: Outcome,
}

/// Every transaction, and the final lists.
#[derive(Default, Debug)]
pub struct AppendLog {
    /// Transactions in the order they ended.
    pub txns: Vec<Txn>,
    /// The lists read after the cell converged, one per key; `None` if they could not be read.
    pub finals: Option<Vec<Vec<u64>>>,
    /// Replies and failures by kind.
    pub outcomes: BTreeMap<String, u64>,
}

/// The shared log.
pub type SharedAppendLog = Arc<Mutex<AppendLog>>;

fn kind(result: &Option<Result<Frame, CallError>>) -> String {
    match result {
        None => "no-connection".into(),
        Some(Ok(Frame::Error(e))) => e.split_whitespace().next().unwrap_or("?").to_string(),
        Some(Ok(Frame::Array(_))) => "array".into(),
        Some(Ok(other)) => format!("{other:?}"),
        Some(Err(CallError::Timeout)) => "timeout".into(),
        Some(Err(CallError::Io(_))) => "io-error".into(),
    }
}

fn values(frame: &Frame) -> Option<Vec<u64>> {
    match frame {
        Frame::Array(items) => items
            .iter()
            .map(|f| match f {
                Frame::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

impl AppendLog {
    /// The checks listed in the module documentation; one line per problem (at most a few
    /// per kind, so that one broken list does not print thousands).
    pub fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(finals) = &self.finals else {
            return vec!["append: the final lists could not be read".into()];
        };
        // Where each pushed value came from.
        let mut origin: BTreeMap<u64, (usize, &Txn)> = BTreeMap::new();
        for txn in &self.txns {
            for &(key, value) in &txn.pushes {
                origin.insert(value, (key, txn));
            }
        }
        let report = |problems: &mut Vec<String>, text: String| {
            if problems.len() < 20 {
                problems.push(format!("append: {text}"));
            }
        };
        for (key, list) in finals.iter().enumerate() {
            let name = KEYS.get(key).copied().unwrap_or("?");
            let mut seen = BTreeSet::new();
            // Latest invocation among the values before each position.
            let mut latest_invoked = 0u64;
            for value in list {
                if !seen.insert(*value) {
                    report(
                        &mut problems,
                        format!("{name}: value {value} appears twice"),
                    );
                }
                match origin.get(value) {
                    None => report(
                        &mut problems,
                        format!("{name}: value {value} was never pushed"),
                    ),
                    Some((k, _)) if *k != key => report(
                        &mut problems,
                        format!("{name}: value {value} was pushed to another key"),
                    ),
                    Some((_, txn)) if txn.outcome == Outcome::Failed => report(
                        &mut problems,
                        format!(
                            "{name}: value {value} is there although its transaction (client {}, \
                             EXEC at {} ms) was answered as not applied",
                            txn.client, txn.invoked
                        ),
                    ),
                    Some((_, txn)) => {
                        if txn.outcome == Outcome::Acknowledged && txn.completed < latest_invoked {
                            report(
                                &mut problems,
                                format!(
                                    "{name}: value {value} (acknowledged at {} ms) comes after a \
                                     value whose transaction began at {latest_invoked} ms",
                                    txn.completed
                                ),
                            );
                        }
                        latest_invoked = latest_invoked.max(txn.invoked);
                    }
                }
            }
        }
        for txn in self
            .txns
            .iter()
            .filter(|t| t.outcome == Outcome::Acknowledged)
        {
            for (&(key, value), &length) in txn.pushes.iter().zip(&txn.lengths) {
                let name = KEYS.get(key).copied().unwrap_or("?");
                let list = finals.get(key).map(Vec::as_slice).unwrap_or(&[]);
                let at = usize::try_from(length - 1).ok().and_then(|i| list.get(i));
                if at != Some(&value) {
                    report(
                        &mut problems,
                        format!(
                            "{name}: acknowledged value {value} (RPUSH replied {length}) is not \
                             at that position of the final list (found {at:?}, {} in it)",
                            if list.contains(&value) {
                                "but it is"
                            } else {
                                "nor anywhere"
                            }
                        ),
                    );
                }
            }
            for (key, read) in &txn.reads {
                let name = KEYS.get(*key).copied().unwrap_or("?");
                let list = finals.get(*key).map(Vec::as_slice).unwrap_or(&[]);
                if !list.starts_with(read) {
                    report(
                        &mut problems,
                        format!(
                            "{name}: a read of {} values at {} ms is not a prefix of the final \
                             list ({} values)",
                            read.len(),
                            txn.invoked,
                            list.len()
                        ),
                    );
                }
                if let Some(&(_, own)) = txn.pushes.iter().find(|(k, _)| k == key) {
                    if read.last() != Some(&own) {
                        report(
                            &mut problems,
                            format!(
                                "{name}: a transaction pushed {own} and then read {:?} as the \
                                 last value",
                                read.last()
                            ),
                        );
                    }
                }
            }
        }
        // Reads never go back: sorted by completion, each read must be no longer than every
        // read that began after it completed.
        for key in 0..finals.len() {
            let mut reads: Vec<(u64, u64, usize)> = self
                .txns
                .iter()
                .filter(|t| t.outcome == Outcome::Acknowledged)
                .flat_map(|t| {
                    t.reads
                        .iter()
                        .filter(|(k, _)| *k == key)
                        .map(|(_, r)| (t.invoked, t.completed, r.len()))
                })
                .collect();
            reads.sort_unstable();
            for (i, a) in reads.iter().enumerate() {
                if let Some(b) = reads[i..].iter().find(|b| b.0 > a.1 && b.2 < a.2) {
                    report(
                        &mut problems,
                        format!(
                            "{}: a read at {} ms saw {} values, a later one at {} ms only {}",
                            KEYS.get(key).copied().unwrap_or("?"),
                            a.0,
                            a.2,
                            b.0,
                            b.2
                        ),
                    );
                }
            }
        }
        problems
    }
}

/// One appender.
pub struct Appender {
    id: u32,
    members: Members,
    log: SharedAppendLog,
    origin: Instant,
    seq: u64,
}

impl Appender {
    /// An appender; its values are `id * 1 000 000 + n`.
    pub fn new(id: u32, roster: Roster, origin: Instant, log: SharedAppendLog) -> Appender {
        Appender {
            id,
            members: Members::new(roster),
            log,
            origin,
            seq: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.origin).as_millis() as u64
    }

    async fn call(
        &mut self,
        target: SocketAddr,
        args: &[&[u8]],
    ) -> Option<Result<Frame, CallError>> {
        self.members
            .call(target, args, Duration::from_secs(4))
            .await
    }

    fn count(&self, what: String) {
        *self.log.lock().outcomes.entry(what).or_default() += 1;
    }

    /// One transaction through a random member.
    pub async fn step(&mut self) {
        let target = self.members.pick();
        let mut keys: Vec<usize> = (0..KEYS.len()).collect();
        let pushed = thread_rng().gen_range(1..=2);
        let mut pushes = Vec::new();
        for _ in 0..pushed {
            let key = keys.swap_remove(thread_rng().gen_range(0..keys.len()));
            self.seq += 1;
            pushes.push((key, u64::from(self.id) * 1_000_000 + self.seq));
        }
        let mut read_keys: Vec<usize> = pushes.iter().map(|p| p.0).collect();
        if thread_rng().gen_bool(0.3) {
            read_keys.push(keys[thread_rng().gen_range(0..keys.len())]);
        }
        let mut txn = Txn {
            client: self.id,
            invoked: self.now_ms(),
            completed: 0,
            pushes,
            lengths: Vec::new(),
            reads: Vec::new(),
            outcome: Outcome::Failed,
        };
        let mut queued = matches!(
            self.call(target, &[b"MULTI"]).await,
            Some(Ok(Frame::Simple(_)))
        );
        let commands: Vec<Vec<Vec<u8>>> = txn
            .pushes
            .iter()
            .map(|&(key, value)| {
                vec![
                    b"RPUSH".to_vec(),
                    KEYS[key].as_bytes().to_vec(),
                    value.to_string().into_bytes(),
                ]
            })
            .chain(read_keys.iter().map(|&key| {
                vec![
                    b"LRANGE".to_vec(),
                    KEYS[key].as_bytes().to_vec(),
                    b"0".to_vec(),
                    b"-1".to_vec(),
                ]
            }))
            .collect();
        for command in &commands {
            if !queued {
                break;
            }
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            queued = matches!(self.call(target, &args).await, Some(Ok(Frame::Simple(_))));
        }
        if !queued {
            // The connection goes with its half-built transaction: EXEC was never sent, so
            // nothing of it can apply.
            self.members.forget(target);
            self.count("EXEC not sent".into());
            txn.completed = self.now_ms();
            self.log.lock().txns.push(txn);
            return;
        }
        txn.invoked = self.now_ms();
        let result = self.call(target, &[b"EXEC"]).await;
        txn.completed = self.now_ms();
        self.count(format!("EXEC {}", kind(&result)));
        txn.outcome = match &result {
            Some(Ok(Frame::Array(replies))) => {
                let pushes = txn.pushes.len();
                let lengths: Option<Vec<i64>> = replies[..pushes.min(replies.len())]
                    .iter()
                    .map(|r| match r {
                        Frame::Integer(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                let reads: Option<Vec<Vec<u64>>> = replies
                    .get(pushes..)
                    .unwrap_or(&[])
                    .iter()
                    .map(values)
                    .collect();
                match (lengths, reads) {
                    (Some(lengths), Some(reads))
                        if lengths.len() == pushes && reads.len() == read_keys.len() =>
                    {
                        txn.lengths = lengths;
                        txn.reads = read_keys.into_iter().zip(reads).collect();
                        Outcome::Acknowledged
                    }
                    // Replies that do not fit the commands: the values could be anywhere;
                    // the final list still shows whether they were applied twice or at all.
                    _ => {
                        self.count("EXEC garbled".into());
                        Outcome::Unknown
                    }
                }
            }
            Some(Ok(Frame::Error(e)))
                if e.starts_with("CLUSTERDOWN")
                    || e.starts_with("TRYAGAIN")
                    || e.starts_with("EXECABORT")
                    || e.starts_with("OOM") =>
            {
                Outcome::Failed
            }
            // Nothing was sent (the connection was gone): not applied.
            None => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        self.log.lock().txns.push(txn);
    }

    /// Transactions until `end`, one every 50-150 ms (the lists are never evicted and stay
    /// well under the cache workload's `maxmemory`).
    pub async fn run_until(&mut self, end: Instant) {
        while Instant::now() < end {
            self.step().await;
            let pause = thread_rng().gen_range(50..150);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// After the cell converged: reads every final list through the first member listed, retrying for up to
    /// `timeout`.
    pub async fn read_finals(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut finals = Vec::new();
        while finals.len() < KEYS.len() && Instant::now() < deadline {
            let key = KEYS[finals.len()].as_bytes();
            match self
                .call(self.members.first(), &[b"LRANGE", key, b"0", b"-1"])
                .await
            {
                Some(Ok(frame)) if values(&frame).is_some() => {
                    finals.extend(values(&frame));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if finals.len() == KEYS.len() {
            self.log.lock().finals = Some(finals);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(invoked: u64, completed: u64, pushes: &[(usize, u64)], outcome: Outcome) -> Txn {
        Txn {
            client: 1,
            invoked,
            completed,
            pushes: pushes.to_vec(),
            lengths: Vec::new(),
            reads: Vec::new(),
            outcome,
        }
    }

    /// Two acknowledged transactions in order, an unknown one applied and an unknown one not,
    /// reads that grow: clean.
    #[test]
    fn clean_history_passes() {
        let mut a = txn(0, 10, &[(0, 1)], Outcome::Acknowledged);
        a.lengths = vec![1];
        a.reads = vec![(0, vec![1]), (1, vec![])];
        let mut b = txn(20, 30, &[(0, 2), (1, 3)], Outcome::Acknowledged);
        b.lengths = vec![2, 1];
        b.reads = vec![(0, vec![1, 2]), (1, vec![3])];
        let log = AppendLog {
            txns: vec![
                a,
                b,
                txn(25, 90, &[(0, 4)], Outcome::Unknown),
                txn(26, 90, &[(0, 5)], Outcome::Unknown),
                txn(27, 28, &[(2, 6)], Outcome::Failed),
            ],
            finals: Some(vec![vec![1, 2, 4], vec![3], vec![]]),
            ..AppendLog::default()
        };
        assert_eq!(log.verify(), Vec::<String>::new());
    }

    /// Each broken promise is reported: a lost acknowledged append, a failed one that
    /// appears, a duplicate, a value nobody pushed, a read that is not a prefix, a read that
    /// goes back, an acknowledged append ordered after one that began later.
    #[test]
    fn each_problem_is_reported() {
        let base = |finals: Vec<Vec<u64>>, txns: Vec<Txn>| AppendLog {
            txns,
            finals: Some(finals),
            ..AppendLog::default()
        };
        let mut acked = txn(0, 10, &[(0, 1)], Outcome::Acknowledged);
        acked.lengths = vec![1];
        // Lost.
        assert_eq!(
            base(vec![vec![], vec![], vec![]], vec![acked.clone()])
                .verify()
                .len(),
            1
        );
        // Failed yet there.
        let failed = txn(20, 30, &[(0, 2)], Outcome::Failed);
        let log = base(
            vec![vec![1, 2], vec![], vec![]],
            vec![acked.clone(), failed],
        );
        assert_eq!(log.verify().len(), 1, "{:?}", log.verify());
        // Twice.
        let log = base(vec![vec![1, 1], vec![], vec![]], vec![acked.clone()]);
        assert_eq!(log.verify().len(), 1);
        // Never pushed.
        let log = base(vec![vec![1, 7], vec![], vec![]], vec![acked.clone()]);
        assert_eq!(log.verify().len(), 1);
        // A read that is not a prefix of the final list.
        let mut reader = txn(20, 30, &[(1, 2)], Outcome::Acknowledged);
        reader.lengths = vec![1];
        reader.reads = vec![(1, vec![2]), (0, vec![9])];
        let log = base(vec![vec![1], vec![2], vec![]], vec![acked.clone(), reader]);
        assert_eq!(log.verify().len(), 1, "{:?}", log.verify());
        // A read that goes back: [1] and then, later, [].
        let mut first = acked.clone();
        first.reads = vec![(0, vec![1])];
        let mut later = txn(20, 30, &[(1, 2)], Outcome::Acknowledged);
        later.lengths = vec![1];
        later.reads = vec![(0, vec![])];
        let log = base(vec![vec![1], vec![2], vec![]], vec![first, later]);
        assert_eq!(log.verify().len(), 1, "{:?}", log.verify());
        // Acknowledged before the other began, yet after it in the list.
        let mut second = txn(20, 30, &[(0, 2)], Outcome::Acknowledged);
        second.lengths = vec![1];
        let mut first = acked;
        first.lengths = vec![2];
        let log = base(vec![vec![2, 1], vec![], vec![]], vec![first, second]);
        assert_eq!(log.verify().len(), 1, "{:?}", log.verify());
    }
}

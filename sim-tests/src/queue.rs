//! Workload 2, Celery queues the way kombu's Redis transport drives them: producers `LPUSH`
//! task ids to `default`, `backtest` and `agents`; consumers `BRPOP` all three with a 1 s
//! timeout, record the delivery in the `unacked` hash and the `unacked_index` sorted set in
//! one `MULTI`/`EXEC`, and acknowledge with another (`ZREM` + `HDEL`). After the healed phase
//! one consumer drains every queue.
//!
//! Checked at the end ([`QueueLog::verify`]):
//! - no task is delivered twice (no consumer dies here, so nothing is ever restored);
//! - no task is delivered that no producer pushed;
//! - every task whose `LPUSH` was acknowledged is delivered, except at most one per `BRPOP`
//!   whose outcome was unknown (a pop applied whose reply was lost takes its element with it,
//!   as with Redis);
//! - the queues are empty after the drain, and no acknowledged task is left in `unacked`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::resp::Frame;
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{CallError, Members, Roster};

/// The queues.
pub const QUEUES: [&str; 3] = ["default", "backtest", "agents"];

/// What producers and consumers saw.
#[derive(Default, Debug)]
pub struct QueueLog {
    /// Tasks whose `LPUSH` was acknowledged.
    pub pushed: BTreeSet<u64>,
    /// Tasks whose `LPUSH` outcome is unknown.
    pub maybe_pushed: BTreeSet<u64>,
    /// Every delivery: task → the consumers that got it.
    pub delivered: BTreeMap<u64, Vec<u32>>,
    /// `BRPOP`s whose outcome is unknown.
    pub unknown_pops: u64,
    /// Tasks whose acknowledgement `EXEC` was answered.
    pub acked: BTreeSet<u64>,
    /// Replies by kind.
    pub outcomes: BTreeMap<String, u64>,
    /// What the drain found at the end: queue lengths and the `unacked` fields left.
    pub leftover: Option<(Vec<i64>, Vec<u64>)>,
}

/// The shared log.
pub type SharedQueueLog = Arc<Mutex<QueueLog>>;

impl QueueLog {
    fn count(&mut self, what: String) {
        *self.outcomes.entry(what).or_default() += 1;
    }

    /// The checks listed in the module documentation; one line per problem.
    pub fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (task, consumers) in &self.delivered {
            if consumers.len() > 1 {
                problems.push(format!(
                    "queue: task {task} delivered {} times (consumers {consumers:?})",
                    consumers.len()
                ));
            }
            if !self.pushed.contains(task) && !self.maybe_pushed.contains(task) {
                problems.push(format!("queue: task {task} delivered but never pushed"));
            }
        }
        let lost: Vec<u64> = self
            .pushed
            .iter()
            .filter(|t| !self.delivered.contains_key(t))
            .copied()
            .collect();
        if lost.len() as u64 > self.unknown_pops {
            problems.push(format!(
                "queue: {} acknowledged tasks never delivered, but only {} pops had an unknown \
                 outcome; lost: {:?}",
                lost.len(),
                self.unknown_pops,
                &lost[..lost.len().min(20)]
            ));
        }
        match &self.leftover {
            None => problems.push("queue: the final drain did not finish".into()),
            Some((lengths, unacked)) => {
                if lengths.iter().any(|&l| l != 0) {
                    problems.push(format!(
                        "queue: queues not empty after the drain: {lengths:?}"
                    ));
                }
                let stale: Vec<&u64> = unacked.iter().filter(|t| self.acked.contains(t)).collect();
                if !stale.is_empty() {
                    problems.push(format!(
                        "queue: acknowledged tasks still in unacked: {:?}",
                        &stale[..stale.len().min(20)]
                    ));
                }
            }
        }
        problems
    }
}

fn kind(result: &Result<Frame, CallError>) -> String {
    match result {
        Ok(Frame::Error(e)) => e.split_whitespace().next().unwrap_or("?").to_string(),
        Ok(Frame::Integer(_)) => "integer".into(),
        Ok(Frame::Array(_)) => "array".into(),
        Ok(Frame::Null | Frame::NullArray) => "nil".into(),
        Ok(other) => format!("{other:?}"),
        Err(CallError::Timeout) => "timeout".into(),
        Err(CallError::Io(_)) => "io-error".into(),
    }
}

fn not_applied(result: &Result<Frame, CallError>) -> bool {
    // -OOM is decided by apply, the same on every replica: the write did not happen.
    matches!(result, Ok(Frame::Error(e)) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") || e.starts_with("OOM"))
}

/// A producer or consumer: its connections to the members.
pub struct QueueClient {
    id: u32,
    members: Members,
    log: SharedQueueLog,
    seq: u64,
}

impl QueueClient {
    /// A client with id `id` (task ids are `id * 1 000 000 + n`).
    pub fn new(id: u32, roster: Roster, log: SharedQueueLog) -> QueueClient {
        QueueClient {
            id,
            members: Members::new(roster),
            log,
            seq: 0,
        }
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

    /// `LPUSH` one new task to a random queue through a random member.
    pub async fn produce(&mut self) {
        self.seq += 1;
        let task = u64::from(self.id) * 1_000_000 + self.seq;
        let queue = QUEUES[thread_rng().gen_range(0..QUEUES.len())];
        let target = self.members.pick();
        let text = task.to_string();
        let Some(result) = self
            .call(target, &[b"LPUSH", queue.as_bytes(), text.as_bytes()])
            .await
        else {
            return;
        };
        let mut log = self.log.lock();
        log.count(format!("LPUSH {}", kind(&result)));
        match result {
            Ok(Frame::Integer(_)) => {
                log.pushed.insert(task);
            }
            _ if not_applied(&result) => {}
            _ => {
                log.maybe_pushed.insert(task);
            }
        }
    }

    /// Runs `commands` as one `MULTI`/`EXEC` on member `target`; whether `EXEC` was answered
    /// with its replies.
    async fn transaction(&mut self, target: SocketAddr, commands: &[Vec<Vec<u8>>]) -> bool {
        let Some(Ok(Frame::Simple(_))) = self.call(target, &[b"MULTI"]).await else {
            self.members.forget(target);
            return false;
        };
        for command in commands {
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            match self.call(target, &args).await {
                Some(Ok(Frame::Simple(_))) => {}
                _ => {
                    self.members.forget(target);
                    return false;
                }
            }
        }
        let result = self.call(target, &[b"EXEC"]).await;
        if let Some(r) = &result {
            self.log.lock().count(format!("EXEC {}", kind(r)));
        }
        matches!(result, Some(Ok(Frame::Array(_))))
    }

    /// One `BRPOP` over the three queues through a random member; a delivered task is
    /// recorded in `unacked`, then acknowledged. Returns whether a task was delivered.
    pub async fn consume(&mut self, now_ms: u64) -> bool {
        let target = self.members.pick();
        let Some(result) = self
            .call(
                target,
                &[b"BRPOP", b"default", b"backtest", b"agents", b"1"],
            )
            .await
        else {
            return false;
        };
        let task = match &result {
            Ok(Frame::Array(items)) => match items.get(1) {
                Some(Frame::Bulk(b)) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok()),
                _ => None,
            },
            _ => None,
        };
        {
            let mut log = self.log.lock();
            log.count(format!("BRPOP {}", kind(&result)));
            match (&result, task) {
                (_, Some(task)) => log.delivered.entry(task).or_default().push(self.id),
                (Ok(Frame::Null | Frame::NullArray), _) => {}
                _ if not_applied(&result) => {}
                (Ok(Frame::Array(_)), None) => {
                    log.count("BRPOP garbage".into());
                    log.delivered.entry(u64::MAX).or_default().push(self.id);
                }
                _ => log.unknown_pops += 1,
            }
        }
        let Some(task) = task else {
            return false;
        };
        let tag = task.to_string().into_bytes();
        let score = now_ms.to_string().into_bytes();
        let receipt = [
            vec![
                b"HSET".to_vec(),
                b"unacked".to_vec(),
                tag.clone(),
                tag.clone(),
            ],
            vec![
                b"ZADD".to_vec(),
                b"unacked_index".to_vec(),
                score,
                tag.clone(),
            ],
        ];
        if !self.transaction(target, &receipt).await {
            return true;
        }
        let ack = [
            vec![b"ZREM".to_vec(), b"unacked_index".to_vec(), tag.clone()],
            vec![b"HDEL".to_vec(), b"unacked".to_vec(), tag],
        ];
        if self.transaction(target, &ack).await {
            self.log.lock().acked.insert(task);
        }
        true
    }

    /// Produces until `until`.
    pub async fn produce_until(&mut self, until: Instant) {
        while Instant::now() < until {
            self.produce().await;
            let pause = thread_rng().gen_range(10..150);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Consumes until `until`.
    pub async fn consume_until(&mut self, until: Instant, origin: Instant) {
        while Instant::now() < until {
            let now_ms = Instant::now().duration_since(origin).as_millis() as u64;
            if !self.consume(now_ms).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// After healing: pops until every queue stays empty, then records what is left (queue
    /// lengths and `unacked` fields). Gives up after `timeout`.
    pub async fn drain(&mut self, origin: Instant, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let now_ms = Instant::now().duration_since(origin).as_millis() as u64;
            if self.consume(now_ms).await {
                continue;
            }
            let mut lengths = Vec::new();
            for queue in QUEUES {
                match self
                    .call(self.members.first(), &[b"LLEN", queue.as_bytes()])
                    .await
                {
                    Some(Ok(Frame::Integer(n))) => lengths.push(n),
                    _ => break,
                }
            }
            if lengths.len() != QUEUES.len() || lengths.iter().any(|&l| l != 0) {
                continue;
            }
            let unacked = match self
                .call(self.members.first(), &[b"HKEYS", b"unacked"])
                .await
            {
                Some(Ok(Frame::Array(items))) => items
                    .iter()
                    .filter_map(|f| match f {
                        Frame::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                        _ => None,
                    })
                    .collect(),
                _ => continue,
            };
            self.log.lock().leftover = Some((lengths, unacked));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained() -> QueueLog {
        QueueLog {
            leftover: Some((vec![0, 0, 0], Vec::new())),
            ..QueueLog::default()
        }
    }

    /// Every pushed task delivered once: clean.
    #[test]
    fn clean_log_passes() {
        let mut log = drained();
        log.pushed.extend([1, 2]);
        log.maybe_pushed.insert(3);
        log.delivered.insert(1, vec![7]);
        log.delivered.insert(2, vec![8]);
        log.delivered.insert(3, vec![8]);
        log.acked.extend([1, 2]);
        assert_eq!(log.verify(), Vec::<String>::new());
    }

    /// A task delivered twice, a task nobody pushed, a lost task beyond the unknown pops, an
    /// acknowledged task left in `unacked`: each is reported.
    #[test]
    fn each_problem_is_reported() {
        let mut log = drained();
        log.pushed.extend([1, 2, 3]);
        log.delivered.insert(1, vec![7, 8]);
        log.delivered.insert(9, vec![7]);
        log.unknown_pops = 1;
        log.acked.insert(1);
        log.leftover = Some((vec![0, 1, 0], vec![1]));
        let problems = log.verify();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        // One lost task is within what one unknown pop explains.
        log.delivered.insert(2, vec![7]);
        assert_eq!(log.verify().len(), 4);
    }
}

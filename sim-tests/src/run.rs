//! One simulation run for one seed: start the cell and the clients, run the chaos phase,
//! heal, let the clients go on in the healed phase, then require that the cell converges and
//! serves, and check the history and the Raft invariants.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::{Handle, Runtime};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::append::{Appender, SharedAppendLog};
use crate::cache::{CacheClient, SharedCacheLog};
use crate::client::Roster;
use crate::cluster::{Cell, CellOptions};
use crate::invariants::{keyspace_digest, Monitor};
use crate::linearizability::{self, Operation};
use crate::queue::{QueueClient, SharedQueueLog};
use crate::ttl::{SessionClient, SharedTtlLog};
use crate::workload::{Client, Recorder, SharedRecorder};

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The cell.
    pub cell: CellOptions,
    /// Number of kill-switch clients.
    pub clients: u32,
    /// Number of queue producers (workload 2).
    pub producers: u32,
    /// Number of queue consumers.
    pub consumers: u32,
    /// Number of cache clients (workload 3; needs `cell.maxmemory`).
    pub cache_clients: u32,
    /// Number of list appenders (`MULTI` of `RPUSH` and `LRANGE`).
    pub appenders: u32,
    /// Number of session clients (`SET` with `PX`/`EX`, reads around expiry).
    pub sessions: u32,
    /// Length of the chaos phase.
    pub chaos: Duration,
    /// Whether faults are injected at all.
    pub faults: bool,
    /// Length of the healed phase in which clients go on before the final probes.
    pub healed: Duration,
    /// Steps the linearizability search may take.
    pub max_check_steps: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            cell: CellOptions::default(),
            clients: 4,
            producers: 2,
            consumers: 2,
            cache_clients: 2,
            appenders: 2,
            sessions: 2,
            chaos: Duration::from_secs(20),
            faults: true,
            healed: Duration::from_secs(5),
            max_check_steps: 20_000_000,
        }
    }
}

/// What a run saw, for the summary line and for a failure report.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Operations in the history.
    pub ops: usize,
    /// Of which unknown outcomes.
    pub unknown: usize,
    /// Faults started.
    pub faults: u64,
    /// Replies and failures by kind.
    pub outcomes: Vec<(String, u64)>,
    /// The fault log.
    pub fault_log: Vec<String>,
    /// Invariant samples taken.
    pub samples: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// What went wrong; empty when the run passed.
    pub failures: Vec<String>,
    /// The queue workload's counts.
    pub queue: String,
    /// The cache workload's counts.
    pub cache: String,
    /// The list-append workload's counts.
    pub append: String,
    /// The TTL workload's counts.
    pub ttl: String,
    /// A hash of everything the run produced (every operation with its times, the fault
    /// log, the reply counts, the final states): two runs of one seed must print the same.
    pub fingerprint: u64,
}

impl RunReport {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `options` for `seed` in a fresh simulated world.
pub fn run_seed(seed: u64, options: &RunOptions) -> RunReport {
    let mut rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.set_time_limit(Duration::from_secs(600));
    let options = options.clone();
    rt.block_on(async move { simulate(seed, options).await })
}

/// The body of a run; must be called inside a madsim runtime.
pub async fn simulate(seed: u64, options: RunOptions) -> RunReport {
    let origin = Instant::now();
    let mut report = RunReport {
        seed,
        ..RunReport::default()
    };
    let cell = Arc::new(Mutex::new(Cell::start(&options.cell)));
    // The clients follow the cell's members as they change.
    let targets: Roster = cell.lock().roster();
    let recorder: SharedRecorder = Arc::new(Mutex::new(Recorder::default()));

    // The monitor samples every running member every 20 ms until told to stop, and every
    // leader's cell time against true time for the TTL checks.
    let ttl_log: SharedTtlLog = Arc::default();
    let monitor = Arc::new(Mutex::new(Monitor::default()));
    let stop_monitor = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor_task = {
        let (cell, monitor, stop) = (cell.clone(), monitor.clone(), stop_monitor.clone());
        let ttl_log = ttl_log.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now_ms = Instant::now().duration_since(origin).as_millis() as u64;
                monitor.lock().sample(&cell.lock(), now_ms);
                sample_leader_time(&cell.lock(), &mut ttl_log.lock(), now_ms);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Clients, each on its own node.
    let chaos_end = origin + options.chaos;
    let clients_end = chaos_end + options.healed;
    let handle = Handle::current();
    let mut client_tasks = Vec::new();
    for c in 0..options.clients {
        let node = handle
            .create_node()
            .name(format!("client{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, (c + 1) as u8)))
            .build();
        let mut client = Client::new(c + 1, targets.clone(), origin, recorder.clone());
        client_tasks.push(node.spawn(async move {
            // Let the cell elect its first leader before the first timeout is spent.
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.run_until(clients_end).await;
        }));
    }

    // Queue producers and consumers (workload 2), each on its own node too.
    let queue_log: SharedQueueLog = Arc::default();
    for p in 0..options.producers + options.consumers {
        let node = handle
            .create_node()
            .name(format!("queue{p}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 4, (p + 1) as u8)))
            .build();
        let mut client = QueueClient::new(100 + p, targets.clone(), queue_log.clone());
        let producer = p < options.producers;
        client_tasks.push(node.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if producer {
                client.produce_until(clients_end).await;
            } else {
                client.consume_until(clients_end, origin).await;
            }
        }));
    }

    // Cache clients (workload 3).
    let cache_log: SharedCacheLog = Arc::default();
    let cache_clients = if options.cell.maxmemory {
        options.cache_clients
    } else {
        0
    };
    for c in 0..cache_clients {
        let node = handle
            .create_node()
            .name(format!("cache{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 5, (c + 1) as u8)))
            .build();
        let mut client = CacheClient::new(c + 1, targets.clone(), origin, cache_log.clone());
        client_tasks.push(node.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.run_until(clients_end).await;
        }));
    }

    // List appenders.
    let append_log: SharedAppendLog = Arc::default();
    for c in 0..options.appenders {
        let node = handle
            .create_node()
            .name(format!("append{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 6, (c + 1) as u8)))
            .build();
        let mut client = Appender::new(c + 1, targets.clone(), origin, append_log.clone());
        client_tasks.push(node.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.run_until(clients_end).await;
        }));
    }

    // Session clients (TTLs).
    for c in 0..options.sessions {
        let node = handle
            .create_node()
            .name(format!("session{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 7, (c + 1) as u8)))
            .build();
        let mut client = SessionClient::new(c + 1, targets.clone(), origin, ttl_log.clone());
        client_tasks.push(node.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.run_until(clients_end).await;
        }));
    }

    if options.faults {
        report.faults = crate::faults::chaos(
            &cell,
            origin,
            chaos_end,
            &mut report.fault_log,
            &mut report.failures,
        )
        .await;
    } else {
        tokio::time::sleep_until(chaos_end).await;
    }
    cell.lock().heal();
    for task in client_tasks {
        if task.await.is_err() {
            report.failures.push("a client task failed".into());
        }
    }

    // The healed cell must serve: a write through every member, then every member reads it.
    let probe_node = handle
        .create_node()
        .name("probe")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)))
        .build();
    let probe = {
        let (targets, recorder) = (targets.clone(), recorder.clone());
        probe_node.spawn(async move { probe_cell(targets, origin, recorder).await })
    };
    match probe.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.failures.push(e),
        Err(_) => report.failures.push("the probe task failed".into()),
    }

    // Drain the queues, then check the queue workload.
    if options.producers + options.consumers > 0 {
        let drain_node = handle
            .create_node()
            .name("drain")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)))
            .build();
        let mut drainer = QueueClient::new(999, targets.clone(), queue_log.clone());
        let drained = drain_node.spawn(async move {
            drainer.drain(origin, Duration::from_secs(30)).await;
        });
        if drained.await.is_err() {
            report.failures.push("the drain task failed".into());
        }
        let log = queue_log.lock();
        report.failures.extend(log.verify());
        report.queue = format!(
            "pushed={} maybe={} delivered={} acked={} unknown-pops={}",
            log.pushed.len(),
            log.maybe_pushed.len(),
            log.delivered.len(),
            log.acked.len(),
            log.unknown_pops
        );
    }

    // Every member must reach the same applied state.
    if let Err(e) = converge(&cell).await {
        report.failures.push(e);
    }
    if cache_clients > 0 {
        let evicted = cell
            .lock()
            .members
            .iter()
            .filter_map(|m| m.node())
            .map(|n| n.keyspace.read().evicted_keys())
            .max()
            .unwrap_or(0);
        let log = cache_log.lock();
        report.failures.extend(log.verify(evicted));
        report.cache = format!(
            "written={} hits={} misses={} oom={} evicted={evicted}",
            log.written, log.hits, log.misses, log.oom
        );
    }
    if options.appenders > 0 {
        let reader_node = handle
            .create_node()
            .name("append-reader")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 4)))
            .build();
        let mut reader = Appender::new(999, targets.clone(), origin, append_log.clone());
        let read = reader_node.spawn(async move {
            reader.read_finals(Duration::from_secs(20)).await;
        });
        if read.await.is_err() {
            report.failures.push("the append reader task failed".into());
        }
        let log = append_log.lock();
        report.failures.extend(log.verify());
        let count = |o: crate::append::Outcome| log.txns.iter().filter(|t| t.outcome == o).count();
        report.append = format!(
            "txns={} acked={} failed={} unknown={} final-lengths={:?}",
            log.txns.len(),
            count(crate::append::Outcome::Acknowledged),
            count(crate::append::Outcome::Failed),
            count(crate::append::Outcome::Unknown),
            log.finals
                .as_ref()
                .map(|f| f.iter().map(Vec::len).collect::<Vec<_>>())
        );
    }
    if options.sessions > 0 {
        let log = ttl_log.lock();
        report.failures.extend(log.verify());
        report.ttl = format!(
            "sets={} reads={} hits={} max-leader-skew={}ms",
            log.sets.len(),
            log.reads.len(),
            log.reads.iter().filter(|r| r.found.is_some()).count(),
            log.leader_skew.last().map_or(0, |s| s.1)
        );
    }
    stop_monitor.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = monitor_task.await;
    {
        let now_ms = Instant::now().duration_since(origin).as_millis() as u64;
        let mut monitor = monitor.lock();
        monitor.sample(&cell.lock(), now_ms);
        report.samples = monitor.samples;
        report.failures.extend(monitor.violations.iter().cloned());
    }

    let recorder = std::mem::take(&mut *recorder.lock());
    report.ops = recorder.ops.len();
    report.unknown = recorder.ops.iter().filter(|o| o.returned.is_none()).count();
    report.outcomes = recorder.outcomes.into_iter().collect();
    report.outcomes.extend(
        queue_log
            .lock()
            .outcomes
            .iter()
            .map(|(k, n)| (format!("queue {k}"), *n)),
    );
    report.outcomes.extend(
        ttl_log
            .lock()
            .outcomes
            .iter()
            .map(|(k, n)| (format!("ttl {k}"), *n)),
    );
    report.outcomes.extend(
        append_log
            .lock()
            .outcomes
            .iter()
            .map(|(k, n)| (format!("append {k}"), *n)),
    );
    if let Err(e) = check_history(&recorder.ops, options.max_check_steps) {
        report.failures.push(e);
    }
    report.simulated = Instant::now().duration_since(origin);
    let mut trace = String::new();
    for op in &recorder.ops {
        trace.push_str(&format!("{op}\n"));
    }
    trace.push_str(&format!(
        "{:?}\n{:?}\n{:?}\n{}\n{}\n",
        report.fault_log, report.outcomes, report.simulated, report.append, report.ttl
    ));
    for member in &cell.lock().members {
        if let Some(node) = member.node() {
            let keyspace = node.keyspace.read();
            trace.push_str(&format!(
                "n{} {} {}\n",
                member.id,
                keyspace.applied_index(),
                keyspace_digest(&keyspace)
            ));
        }
    }
    report.fingerprint = xxhash_rust::xxh3::xxh3_64(trace.as_bytes());
    report
}

/// Samples every running leader's cell time against true time (the simulator's clock, which
/// no node offset touches).
fn sample_leader_time(cell: &Cell, log: &mut crate::ttl::TtlLog, now_ms: u64) {
    let true_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for node in cell.members.iter().filter_map(|m| m.node()) {
        if node.is_leader() {
            let cell_ms = node.cell_now_ms(&node.keyspace.read());
            log.sample_leader(now_ms, cell_ms, true_ms);
        }
    }
}

/// Checks a kill-switch history for linearizability.
pub fn check_history(ops: &[Operation], max_steps: u64) -> Result<(), String> {
    linearizability::check(ops, None, max_steps).map_err(|v| linearizability::explain(ops, &v))
}

/// After healing: through every member in turn a `SET` must be acknowledged within 20 s of
/// simulated time, and then a `GET` on every member must return it.
async fn probe_cell(
    targets: Roster,
    origin: Instant,
    recorder: SharedRecorder,
) -> Result<(), String> {
    let mut client = Client::new(999, targets, origin, recorder);
    for target in 0..client.members() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if client.set(target).await {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "healed cell: no SET acknowledged through {:?} within 20 s",
                    client.member_addr(target)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The last SET was acknowledged (earlier attempts may have timed out and still count).
    let last = client.last_value();
    for target in 0..client.members() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client.get(target).await {
                Some(Some(v)) if v == last => break,
                Some(seen) => {
                    return Err(format!(
                        "healed cell: {:?} read {seen:?} after the probe wrote {last}",
                        client.member_addr(target)
                    ))
                }
                None if Instant::now() >= deadline => {
                    return Err(format!(
                        "healed cell: no GET answered by {:?} within 20 s",
                        client.member_addr(target)
                    ))
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

/// Waits (up to 20 s of simulated time) until every member of the cell (removed nodes left
/// out) applied the same index, then compares their keyspaces and requires that all of them
/// see the same membership: three voters, exactly the cell's members, no learner.
pub async fn converge(cell: &Mutex<Cell>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // (applied, keyspace digest, voter sets (two while a change is in joint consensus),
        // learners)
        type State = Option<(u64, u64, Vec<Vec<u64>>, Vec<u64>)>;
        let (ids, states): (Vec<u64>, Vec<(u64, State)>) = {
            let cell = cell.lock();
            let ids = cell.ids();
            let states = ids
                .iter()
                .map(|&id| {
                    let state = cell.member(id).node().map(|n| {
                        let metrics = n.raft.metrics();
                        let membership = metrics.membership_config.membership();
                        let voters = membership
                            .get_joint_config()
                            .iter()
                            .map(|c| c.iter().copied().collect())
                            .collect();
                        let learners = membership.learner_ids().collect();
                        let k = n.keyspace.read();
                        (k.applied_index(), keyspace_digest(&k), voters, learners)
                    });
                    (id, state)
                })
                .collect();
            (ids, states)
        };
        let settled = |s: &State| {
            s.as_ref().is_some_and(|(_, _, voters, learners)| {
                *voters == [ids.clone()] && learners.is_empty() && ids.len() == 3
            })
        };
        let all_settled = states.iter().all(|(_, s)| settled(s));
        let indexes: Vec<u64> = states
            .iter()
            .filter_map(|(_, s)| s.as_ref().map(|s| s.0))
            .collect();
        if all_settled && indexes.windows(2).all(|w| w[0] == w[1]) {
            let digests: Vec<u64> = states
                .iter()
                .filter_map(|(_, s)| s.as_ref().map(|s| s.1))
                .collect();
            if digests.windows(2).all(|w| w[0] == w[1]) {
                return Ok(());
            }
            return Err(format!(
                "converged to index {} with different keyspaces: {states:?}",
                indexes[0]
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "members did not converge to three voters at one index within 20 s: (id, (applied, digest, voters, learners)) = {states:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

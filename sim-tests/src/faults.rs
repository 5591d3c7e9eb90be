//! Faults drawn from the seed (the "nemesis"). During the chaos phase a fault starts every
//! few hundred milliseconds while fewer than two are active, and each ends after its own
//! duration:
//!
//! | fault | what happens | ends with |
//! |---|---|---|
//! | crash | a member loses power: tasks killed, unsynced disk writes lost | restart after 0.2–2 s |
//! | long crash | the same, down 4–10 s: the others move on and purge their logs, so it catches up by snapshot | restart |
//! | crash all | every member loses power at once | restart of all after 0.2–2 s |
//! | isolate | a member (sometimes the leader) is cut from the others both ways; clients still reach it | links mended |
//! | bridge | one link is cut both ways; the third member still talks to both | mended |
//! | one way | one direction of one link is cut | mended |
//! | clog | a member is cut from everyone, clients included | unclogged |
//! | pause | a member's tasks are frozen | resumed |
//! | lossy net | packets dropped (retransmitted later) 5–30 % and latency 1–80 ms | calm settings |
//! | transfer | `cellkv-cli cluster transfer-leader` to a random member, through a random member | (one call) |
//! | snapshot | `cellkv-cli cluster snapshot` on a random member: a snapshot built now | (one call) |
//! | clock jump | a member's wall clock (half the time the leader's) jumps 0.2–3 s forward or back | jumps back |
//! | slow disk | a member's (half the time the leader's) syncs take 50–500 ms instead of 2 ms | usual speed |
//! | membership | a voter (half the time the leader) removed and a new node added, in either order, through the admin service | when both are done |
//!
//! A membership change is a task of its own that outlives the fault loop's turns: one runs at
//! a time, retrying its admin calls through random live members while the other faults
//! come and go, and the chaos phase ends only when it finished (or gave up).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use tokio::time::Instant;

use cellkv_client::admin::{AdminClient, AdminOptions};
use madsim::runtime::NodeHandle;
use madsim::task::JoinHandle;
use parking_lot::Mutex;

use crate::cluster::{member_ip, Cell, RAFT_PORT};

/// One active fault and how to undo it.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Members killed; restarted at the end.
    Crashed(Vec<u64>),
    /// Directed links cut; mended at the end.
    Cut(Vec<(u64, u64)>),
    /// A member clogged for everyone.
    Clogged(u64),
    /// A member paused.
    Paused(u64),
    /// Packet loss and latency raised.
    LossyNet,
    /// An admin call was started (leader transfer or snapshot); nothing to undo.
    Admin,
    /// A member's wall clock moved by this many milliseconds; set right at the end.
    ClockJump(u64, i64),
    /// A member's disk syncs this slowly (ms).
    SlowDisk(u64, u64),
    /// A membership change (adding first when true); runs as its own task.
    Reshape(bool),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crashed(ids) => write!(f, "crash {ids:?}"),
            Fault::Cut(links) => write!(f, "cut {links:?}"),
            Fault::Clogged(id) => write!(f, "clog n{id}"),
            Fault::Paused(id) => write!(f, "pause n{id}"),
            Fault::LossyNet => write!(f, "lossy network"),
            Fault::Admin => write!(f, "admin call"),
            Fault::ClockJump(id, ms) => write!(f, "clock of n{id} {ms:+} ms"),
            Fault::SlowDisk(id, ms) => write!(f, "disk of n{id} syncs in {ms} ms"),
            Fault::Reshape(true) => write!(f, "membership change: add a node, then remove one"),
            Fault::Reshape(false) => write!(f, "membership change: remove a node, then add one"),
        }
    }
}

fn ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(thread_rng().gen_range(lo..hi))
}

fn pick(ids: &[u64]) -> Option<u64> {
    (!ids.is_empty()).then(|| ids[thread_rng().gen_range(0..ids.len())])
}

/// An admin call through member `via`'s Raft port, run on the admin node; its outcome does
/// not matter (the call may fail under the other faults), only what it does to the cell.
fn admin_call(admin: &NodeHandle, via: u64, transfer_to: Option<u64>) {
    let addr = format!("{}:{}", member_ip(via), RAFT_PORT);
    admin.spawn(async move {
        let options = AdminOptions {
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
        };
        if let Ok(mut client) = AdminClient::connect(&addr, options).await {
            let _ = match transfer_to {
                Some(id) => client.transfer_leader(id).await,
                None => client.snapshot().await,
            };
        }
    });
}

/// How long a membership change may still take once the chaos phase is over: the longest
/// add-node (a 30 s catch-up plus the change) with room for a retry.
const MEMBERSHIP_GRACE: Duration = Duration::from_secs(60);

/// Log lines of a membership change, stamped with the time since the run began; the fault
/// loop moves them into the fault log.
type Lines = Arc<Mutex<Vec<String>>>;

/// One admin call through member `via`'s Raft port: `Ok` with the reply's message, or why it
/// failed (no connection, no answer, or the cell's refusal).
pub async fn admin_change(via: u64, change: Change) -> Result<String, String> {
    let addr = format!("{}:{}", member_ip(via), RAFT_PORT);
    let options = AdminOptions {
        connect_timeout: Duration::from_secs(1),
        // An add-node waits up to 30 s for the catch-up and 10 s for the change.
        call_timeout: Duration::from_secs(45),
    };
    let mut client = AdminClient::connect(&addr, options)
        .await
        .map_err(|e| e.to_string())?;
    let reply = match change {
        Change::Remove(id) => client.remove_node(id).await,
        Change::Add(id) => {
            let raft_addr = format!("{}:{}", member_ip(id), RAFT_PORT);
            client.add_node(id, &raft_addr).await
        }
        Change::Transfer(id) => client.transfer_leader(id).await,
    };
    reply.map(|r| r.message).map_err(|e| e.to_string())
}

/// A membership call.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// `cluster remove-node ID`.
    Remove(u64),
    /// `cluster add-node ID ADDR` (the node's own address).
    Add(u64),
    /// `cluster transfer-leader ID`.
    Transfer(u64),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Remove(id) => write!(f, "remove n{id}"),
            Change::Add(id) => write!(f, "add n{id}"),
            Change::Transfer(id) => write!(f, "transfer leadership to n{id}"),
        }
    }
}

/// Drives membership changes through the admin service as an operator would, checking
/// the outcome against the committed membership rather than the calls' replies.
#[derive(Clone)]
pub struct Reshaper {
    /// The cell.
    pub cell: Arc<Mutex<Cell>>,
    /// When to give up.
    pub deadline: Instant,
    /// What it did, for the fault log.
    pub lines: Lines,
    /// Start of the run, for the log's times.
    pub origin: Instant,
}

impl Reshaper {
    fn say(&self, text: String) {
        let t = Instant::now().duration_since(self.origin).as_millis();
        self.lines.lock().push(format!("{t:>6} ms  {text}"));
    }

    /// Waits for the committed membership (no change in flight, a leader to report it).
    pub async fn membership(&self) -> Result<(BTreeSet<u64>, BTreeSet<u64>), String> {
        loop {
            if let Some(m) = self.cell.lock().committed_membership() {
                return Ok(m);
            }
            if Instant::now() >= self.deadline {
                return Err("no leader reported a settled membership".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Calls `change` through random live members until the committed membership shows it
    /// done, or until the deadline. A call's own answer is not trusted: one that timed out
    /// may have been applied, and one answered OK is checked like any other.
    pub async fn apply(&self, change: Change) -> Result<(), String> {
        let done = |voters: &BTreeSet<u64>, learners: &BTreeSet<u64>| match change {
            Change::Remove(id) => !voters.contains(&id) && !learners.contains(&id),
            Change::Add(id) => voters.contains(&id) && !learners.contains(&id),
            Change::Transfer(_) => true,
        };
        let mut failed = 0;
        let mut last_error = String::new();
        loop {
            // Not settled (no leader, or a change in joint consensus): call anyway, as the
            // call is what finishes an interrupted change.
            let settled = self.cell.lock().committed_membership();
            if let Some((voters, learners)) = &settled {
                if done(voters, learners) {
                    self.say(format!("{change}: done ({failed} calls failed)"));
                    return Ok(());
                }
            }
            if Instant::now() >= self.deadline {
                let log = self.lines.lock();
                let recent = &log[log.len().saturating_sub(20)..];
                return Err(format!(
                    "membership change `{change}` not done by the deadline (settled membership \
                     (voters, learners): {settled:?}; {failed} calls failed, the last with: \
                     {last_error}); the cell: {}; the last admin steps:\n{}",
                    self.cell.lock().describe(),
                    recent.join("\n")
                ));
            }
            // The node being added cannot usefully take its own call.
            let vias: Vec<u64> = self
                .cell
                .lock()
                .up_ids()
                .into_iter()
                .filter(|id| !matches!(change, Change::Add(a) if a == *id))
                .collect();
            let Some(via) = pick(&vias) else {
                tokio::time::sleep(ms(100, 500)).await;
                continue;
            };
            if let Err(e) = admin_change(via, change).await {
                failed += 1;
                last_error = format!("n{via}: {e}");
                if failed <= 3 {
                    self.say(format!("{change} through n{via}: {e}"));
                }
                tokio::time::sleep(ms(100, 600)).await;
            } else {
                // The reply follows the leader's metrics; another member's may lag a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Removes voter `victim`, then stops it for good: it leaves the clients' roster first,
    /// runs on for a moment (an operator stops it after the call returns), then loses power
    /// and is never restarted.
    pub async fn remove_voter(&self, victim: u64) -> Result<(), String> {
        self.say(format!("membership: remove n{victim}"));
        self.apply(Change::Remove(victim)).await?;
        self.cell.lock().unlist(victim);
        tokio::time::sleep(ms(0, 1000)).await;
        self.cell.lock().retire(victim);
        self.say(format!("n{victim} stopped and wiped"));
        Ok(())
    }

    /// Starts a new node under a fresh id on an empty disk and adds it: it joins as a
    /// learner, catches up (by snapshot when the log was purged) and becomes a voter; then
    /// the clients may use it.
    pub async fn add_voter(&self) -> Result<u64, String> {
        let id = self.cell.lock().start_new_node();
        self.say(format!("membership: start n{id} (empty disk) and add it"));
        self.apply(Change::Add(id)).await?;
        self.cell.lock().list(id);
        Ok(id)
    }

    /// A voter to remove: half the time the leader (removing it moves leadership first),
    /// never `keep`.
    async fn victim(&self, keep: Option<u64>) -> Result<u64, String> {
        let (voters, _) = self.membership().await?;
        let voters: Vec<u64> = voters.into_iter().filter(|v| Some(*v) != keep).collect();
        let leader = self.cell.lock().leader().filter(|l| voters.contains(l));
        match leader {
            Some(l) if thread_rng().gen_bool(0.5) => Ok(l),
            _ => pick(&voters).ok_or_else(|| "no voter to remove".to_string()),
        }
    }

    /// One membership change from start to end: remove a voter then add a node (two voters
    /// meanwhile), or add first then remove (four meanwhile). Ends with three voters.
    pub async fn reshape(self, grow_first: bool) -> Result<(), String> {
        if grow_first {
            let added = self.add_voter().await?;
            let v = self.victim(Some(added)).await?;
            self.remove_voter(v).await
        } else {
            let v = self.victim(None).await?;
            self.remove_voter(v).await?;
            self.add_voter().await.map(|_| ())
        }
    }
}

/// Starts a random fault; returns it with how long it lasts.
fn start_fault(
    cell: &mut Cell,
    admin: &NodeHandle,
    reshaping: bool,
    log: &mut Vec<String>,
) -> Option<(Fault, Duration)> {
    let ids = cell.ids();
    let up = cell.up_ids();
    let roll = thread_rng().gen_range(0..120);
    let (fault, lasts) = match roll {
        0..=19 => {
            let id = pick(&up)?;
            let lost = cell.crash(id);
            log.push(format!("crash n{id} (lost {lost} unsynced writes)"));
            (Fault::Crashed(vec![id]), ms(200, 2000))
        }
        20..=29 => {
            let id = pick(&up)?;
            let lost = cell.crash(id);
            log.push(format!("long crash n{id} (lost {lost} unsynced writes)"));
            (Fault::Crashed(vec![id]), ms(4000, 10_000))
        }
        30..=33 => {
            let mut lost = 0;
            for &id in &up {
                lost += cell.crash(id);
            }
            log.push(format!("crash all {up:?} (lost {lost} unsynced writes)"));
            (Fault::Crashed(up), ms(200, 2000))
        }
        34..=53 => {
            // Isolate a member; half the time the one that leads.
            let id = if thread_rng().gen_bool(0.5) {
                cell.leader().or_else(|| pick(&ids))?
            } else {
                pick(&ids)?
            };
            let mut links = Vec::new();
            for &other in &ids {
                if other != id {
                    links.push((id, other));
                    links.push((other, id));
                }
            }
            (Fault::Cut(links), ms(500, 5000))
        }
        54..=63 => {
            let a = pick(&ids)?;
            let others: Vec<u64> = ids.iter().copied().filter(|&b| b != a).collect();
            let b = pick(&others)?;
            (Fault::Cut(vec![(a, b), (b, a)]), ms(500, 5000))
        }
        64..=71 => {
            let a = pick(&ids)?;
            let others: Vec<u64> = ids.iter().copied().filter(|&b| b != a).collect();
            let b = pick(&others)?;
            (Fault::Cut(vec![(a, b)]), ms(500, 5000))
        }
        72..=79 => {
            let id = pick(&up)?;
            NetSim::current().clog_node(cell.member(id).handle.id());
            (Fault::Clogged(id), ms(300, 4000))
        }
        80..=89 => {
            let id = pick(&up)?;
            cell.pause(id);
            (Fault::Paused(id), ms(200, 3000))
        }
        96..=97 => {
            let (via, to) = (pick(&up)?, pick(&up)?);
            admin_call(admin, via, Some(to));
            log.push(format!("transfer leadership to n{to} (asked n{via})"));
            (Fault::Admin, Duration::ZERO)
        }
        98..=99 => {
            let id = pick(&up)?;
            admin_call(admin, id, None);
            log.push(format!("snapshot on n{id}"));
            (Fault::Admin, Duration::ZERO)
        }
        100..=105 => {
            // A stepped clock (a bad NTP server, a VM restored from a snapshot): bounded so
            // that TTLs of a few seconds see both directions.
            let id = if thread_rng().gen_bool(0.5) {
                cell.leader().or_else(|| pick(&ids))?
            } else {
                pick(&ids)?
            };
            let size = thread_rng().gen_range(200..3000);
            let offset = if thread_rng().gen_bool(0.5) {
                size
            } else {
                -size
            };
            cell.set_clock_offset(id, offset);
            (Fault::ClockJump(id, offset), ms(500, 5000))
        }
        106..=111 => {
            // A disk that stalls (a busy or failing device, a noisy neighbour): everything
            // this member acknowledges waits for it, which holds the leader's commits back
            // when the member is the leader or the other follower is down.
            let id = if thread_rng().gen_bool(0.5) {
                cell.leader().or_else(|| pick(&ids))?
            } else {
                pick(&ids)?
            };
            let fsync = thread_rng().gen_range(50..500);
            cell.set_disk_fsync(id, Some(Duration::from_millis(fsync)));
            (Fault::SlowDisk(id, fsync), ms(1000, 5000))
        }
        112..=119 => {
            // One membership change at a time, as an operator would run them.
            if reshaping {
                return None;
            }
            (Fault::Reshape(thread_rng().gen_bool(0.5)), Duration::ZERO)
        }
        _ => {
            let loss = thread_rng().gen_range(0.05..0.3);
            let hi = thread_rng().gen_range(5..80);
            NetSim::current().update_config(|c| {
                c.packet_loss_rate = loss;
                c.send_latency = Duration::from_millis(1)..Duration::from_millis(hi);
            });
            log.push(format!("lossy network: loss {loss:.2}, latency 1-{hi} ms"));
            (Fault::LossyNet, ms(500, 5000))
        }
    };
    if let Fault::Cut(links) = &fault {
        for &(a, b) in links {
            cell.cut(a, b);
        }
    }
    if !matches!(
        fault,
        Fault::Crashed(_) | Fault::LossyNet | Fault::Admin | Fault::Reshape(_)
    ) {
        log.push(format!("{fault}"));
    }
    Some((fault, lasts))
}

fn end_fault(cell: &mut Cell, fault: &Fault, log: &mut Vec<String>) {
    match fault {
        Fault::Crashed(ids) => {
            for &id in ids {
                cell.restart(id);
            }
        }
        Fault::Cut(links) => {
            for &(a, b) in links {
                cell.mend(a, b);
            }
        }
        Fault::Clogged(id) => NetSim::current().unclog_node(cell.member(*id).handle.id()),
        Fault::Paused(id) => cell.resume(*id),
        Fault::LossyNet => NetSim::current().update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = Duration::from_millis(1)..Duration::from_millis(5);
        }),
        Fault::Admin | Fault::Reshape(_) => return,
        Fault::ClockJump(id, _) => cell.set_clock_offset(*id, 0),
        Fault::SlowDisk(id, _) => cell.set_disk_fsync(*id, None),
    }
    log.push(format!("end: {fault}"));
}

/// Runs faults until `until`, then ends every active one and waits for a membership change
/// in flight to finish (pushing to `failures` if it could not). `cell` is locked only
/// between awaits. Every line of `log` is prefixed with the simulated time.
pub async fn chaos(
    cell: &Arc<Mutex<Cell>>,
    origin: Instant,
    until: Instant,
    log: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> u64 {
    let admin = madsim::runtime::Handle::current()
        .create_node()
        .name("admin")
        .ip(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 3)))
        .build();
    let lines: Lines = Arc::default();
    let mut reshaping: Option<JoinHandle<Result<(), String>>> = None;
    let mut active: Vec<(Instant, Fault)> = Vec::new();
    let mut started = 0;
    let stamp = |log: &mut Vec<String>, from: usize| {
        let t = Instant::now().duration_since(origin).as_millis();
        for line in &mut log[from..] {
            *line = format!("{t:>6} ms  {line}");
        }
    };
    while Instant::now() < until {
        tokio::time::sleep(ms(100, 1000)).await;
        log.append(&mut lines.lock());
        let from = log.len();
        let now = Instant::now();
        if reshaping.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(task) = reshaping.take() {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(_) => failures.push("the membership change task failed".into()),
                }
            }
        }
        let mut reshape = None;
        {
            let mut cell = cell.lock();
            let mut i = 0;
            while i < active.len() {
                if active[i].0 <= now {
                    let (_, fault) = active.remove(i);
                    end_fault(&mut cell, &fault, log);
                } else {
                    i += 1;
                }
            }
            if active.len() < 2 && now < until && thread_rng().gen_bool(0.6) {
                match start_fault(&mut cell, &admin, reshaping.is_some(), log) {
                    Some((Fault::Reshape(grow_first), _)) => {
                        log.push(format!("{}", Fault::Reshape(grow_first)));
                        reshape = Some(grow_first);
                        started += 1;
                    }
                    Some((fault, lasts)) => {
                        active.push((now + lasts, fault));
                        started += 1;
                    }
                    None => {}
                }
            }
        }
        if let Some(grow_first) = reshape {
            let reshaper = Reshaper {
                cell: cell.clone(),
                deadline: until + MEMBERSHIP_GRACE,
                lines: lines.clone(),
                origin,
            };
            reshaping = Some(admin.spawn(reshaper.reshape(grow_first)));
        }
        stamp(log, from);
    }
    let from = log.len();
    {
        let mut cell = cell.lock();
        for (_, fault) in active.drain(..) {
            end_fault(&mut cell, &fault, log);
        }
    }
    stamp(log, from);
    if let Some(task) = reshaping {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("the membership change task failed".into()),
        }
    }
    log.append(&mut lines.lock());
    started
}

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

use std::fmt;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use tokio::time::Instant;

use cellkv_client::admin::{AdminClient, AdminOptions};
use madsim::runtime::NodeHandle;

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

/// Starts a random fault; returns it with how long it lasts.
fn start_fault(
    cell: &mut Cell,
    admin: &NodeHandle,
    log: &mut Vec<String>,
) -> Option<(Fault, Duration)> {
    let ids = cell.ids();
    let up = cell.up_ids();
    let roll = thread_rng().gen_range(0..112);
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
    if !matches!(fault, Fault::Crashed(_) | Fault::LossyNet | Fault::Admin) {
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
        Fault::Admin => return,
        Fault::ClockJump(id, _) => cell.set_clock_offset(*id, 0),
        Fault::SlowDisk(id, _) => cell.set_disk_fsync(*id, None),
    }
    log.push(format!("end: {fault}"));
}

/// Runs faults until `until`, then ends every active one. `cell` is locked only between
/// awaits. Every line of `log` is prefixed with the simulated time.
pub async fn chaos(
    cell: &parking_lot::Mutex<Cell>,
    origin: Instant,
    until: Instant,
    log: &mut Vec<String>,
) -> u64 {
    let admin = madsim::runtime::Handle::current()
        .create_node()
        .name("admin")
        .ip(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 3)))
        .build();
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
        let from = log.len();
        let now = Instant::now();
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
                if let Some((fault, lasts)) = start_fault(&mut cell, &admin, log) {
                    active.push((now + lasts, fault));
                    started += 1;
                }
            }
        }
        stamp(log, from);
    }
    let from = log.len();
    let mut cell = cell.lock();
    for (_, fault) in active.drain(..) {
        end_fault(&mut cell, &fault, log);
    }
    stamp(log, from);
    started
}

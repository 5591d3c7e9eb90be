//! Pinned scenarios: short, scripted runs for failure shapes known from other systems. Each
//! returns `Err` with what went wrong; a scenario passes on a correct node and must fail
//! under the matching injected bug (see `tests/sim.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::Handle;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cluster::{Cell, CellOptions};
use crate::run::check_history;
use crate::workload::{Client, Recorder, SharedRecorder};

fn client_node(n: u8) -> madsim::runtime::NodeHandle {
    Handle::current()
        .create_node()
        .name(format!("scenario-client{n}"))
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 3, n)))
        .build()
}

fn targets(cell: &Cell) -> Vec<SocketAddr> {
    cell.members.iter().map(|m| m.resp_addr()).collect()
}

async fn wait_leader(cell: &Mutex<Cell>, timeout: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(id) = cell.lock().leader() {
            return Ok(id);
        }
        if Instant::now() >= deadline {
            return Err("no leader elected".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SETs through `target` until one is acknowledged (at most `timeout`).
async fn must_set(client: &mut Client, target: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !client.set(target).await {
        if Instant::now() >= deadline {
            return Err(format!("no SET acknowledged through n{}", target + 1));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Data loss on failover: clients write through every member; every member loses power at
/// once, keeping nothing it had not synced; after the restart every acknowledged write must
/// still be there (the history stays linearizable, and a read sees the last write).
pub async fn power_loss(options: CellOptions) -> Result<(), String> {
    let cell = Arc::new(Mutex::new(Cell::start(&options)));
    wait_leader(&cell, Duration::from_secs(5)).await?;
    let origin = Instant::now();
    let recorder: SharedRecorder = Arc::new(Mutex::new(Recorder::default()));
    let targets = targets(&cell.lock());
    for round in 0..3u8 {
        let mut client = Client::new(
            u32::from(round) + 1,
            targets.clone(),
            origin,
            recorder.clone(),
        );
        let writes = client_node(round + 1).spawn(async move {
            for i in 0..20 {
                let target = i % client.members();
                must_set(&mut client, target, Duration::from_secs(10)).await?;
            }
            Ok::<(), String>(())
        });
        writes
            .await
            .map_err(|_| "writer task failed".to_string())??;
        {
            let mut cell = cell.lock();
            for id in cell.ids() {
                cell.crash_keeping(id, Some(0));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        {
            let mut cell = cell.lock();
            for id in cell.ids() {
                cell.restart(id);
            }
        }
        wait_leader(&cell, Duration::from_secs(10)).await?;
        let mut reader = Client::new(
            100 + u32::from(round),
            targets.clone(),
            origin,
            recorder.clone(),
        );
        let reads = client_node(10 + round).spawn(async move {
            for target in 0..reader.members() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while reader.get(target).await.is_none() {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "n{} never answered a GET after restart",
                            target + 1
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok::<(), String>(())
        });
        reads
            .await
            .map_err(|_| "reader task failed".to_string())??;
    }
    let ops = std::mem::take(&mut recorder.lock().ops);
    check_history(&ops, 10_000_000)
}

/// Stale read from an isolated leader: the leader is cut off from the others while a client
/// keeps reading through it; the majority elects a new leader and takes a write. The old
/// leader must not answer a read with the value from before that write.
pub async fn isolated_leader_reads(options: CellOptions) -> Result<(), String> {
    let cell = Arc::new(Mutex::new(Cell::start(&options)));
    let leader = wait_leader(&cell, Duration::from_secs(5)).await?;
    let origin = Instant::now();
    let recorder: SharedRecorder = Arc::new(Mutex::new(Recorder::default()));
    let targets = targets(&cell.lock());
    let old = (leader - 1) as usize;
    let other = (leader % 3) as usize;

    let mut writer = Client::new(1, targets.clone(), origin, recorder.clone());
    let mut reader = Client::new(2, targets.clone(), origin, recorder.clone());
    let w = client_node(1).spawn(async move {
        must_set(&mut writer, old, Duration::from_secs(5)).await?;
        Ok::<Client, String>(writer)
    });
    let mut writer = w.await.map_err(|_| "writer failed".to_string())??;
    {
        let cell = cell.lock();
        for id in cell.ids() {
            if id != leader {
                cell.cut(leader, id);
                cell.cut(id, leader);
            }
        }
    }
    // The reader keeps reading through the old leader for 3 s; meanwhile the majority elects
    // a new leader and the writer writes through it.
    let reads = client_node(2).spawn(async move {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            reader.get(old).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let w = client_node(3).spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        must_set(&mut writer, other, Duration::from_secs(5)).await
    });
    w.await.map_err(|_| "writer failed".to_string())??;
    reads.await.map_err(|_| "reader failed".to_string())?;
    cell.lock().mend_all();
    let ops = std::mem::take(&mut recorder.lock().ops);
    check_history(&ops, 10_000_000)
}

//! Simulation tests: a few seeds of the full run, the pinned scenarios, the proof that the
//! checkers catch injected bugs, and madsim's determinism check. Only built under
//! `--cfg madsim` (see docs/simulation.md); each seed runs in its own fresh runtime.
#![cfg(madsim)]

use std::time::Duration;

use cellkv_sim_tests::cluster::CellOptions;
use cellkv_sim_tests::run::{run_seed, RunOptions, RunReport};
use cellkv_sim_tests::scenarios;
use madsim::runtime::Runtime;

fn short_run() -> RunOptions {
    RunOptions {
        chaos: Duration::from_secs(10),
        healed: Duration::from_secs(2),
        ..RunOptions::default()
    }
}

fn must_pass(report: &RunReport) {
    assert!(
        report.passed(),
        "seed {} failed: {:#?}\nfaults: {:#?}",
        report.seed,
        report.failures,
        report.fault_log
    );
}

/// Runs `f` in a fresh runtime for `seed`; a panic (an openraft assertion, say) is a failure.
fn scenario<F, Fut>(seed: u64, f: F) -> Result<(), String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let fut = f();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(fut)))
        .unwrap_or_else(|_| Err("panicked".into()))
}

/// The seeds every pinned scenario runs on.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=3;

/// The scenario `run` passes on every seed of [`SEEDS`].
fn passes_on_seeds<F, Fut>(run: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    for seed in SEEDS {
        assert_eq!(scenario(seed, &run), Ok(()), "seed {seed}");
    }
}

/// The scenario `run` fails on every seed of [`SEEDS`] with an error containing `expected`:
/// the checkers catch the bug the options inject (`missed` says what would go unnoticed).
fn caught_on_seeds<F, Fut>(expected: &str, missed: &str, run: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    for seed in SEEDS {
        match scenario(seed, &run) {
            Ok(()) => panic!("seed {seed}: {missed} went unnoticed"),
            Err(text) => assert!(text.contains(expected), "seed {seed}: {text}"),
        }
    }
}

/// Runs `cellkv-sim` with `args` (one process per seed) and returns its output.
fn cellkv_sim(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cellkv-sim"))
        .args(args)
        .output()
        .expect("run cellkv-sim");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Three seeds of chaos with both workloads: linearizable kill switch, no queue task lost or
/// delivered twice, Raft invariants hold, the healed cell converges and serves. A failure
/// prints the seed and the command that replays it.
#[test]
fn chaos_seeds_pass() {
    let (ok, stdout) = cellkv_sim(&[
        "--seed", "1", "--seeds", "3", "--chaos", "10", "--healed", "2",
    ]);
    assert!(ok, "{stdout}");
}

/// A full chaos run whose faults include a membership change (seed 3: a node added under a
/// fresh id on an empty disk, then a voter removed and stopped) passes and ends with three
/// voters that converge.
#[test]
fn chaos_with_membership_changes_passes() {
    let report = run_seed(3, &RunOptions::default());
    must_pass(&report);
    let log = report.fault_log.join("\n");
    assert!(
        log.contains("add n4: done") && log.contains("stopped and wiped"),
        "{log}"
    );
}

/// Without faults nothing may even be unknown.
#[test]
fn calm_run_has_no_unknown_outcomes() {
    let options = RunOptions {
        faults: false,
        ..short_run()
    };
    let report = run_seed(11, &options);
    must_pass(&report);
    assert_eq!(report.unknown, 0, "{:?}", report.outcomes);
    assert!(report.ops > 100);
}

/// Every acknowledged write survives a power loss of the whole cell.
#[test]
fn acknowledged_writes_survive_power_loss() {
    passes_on_seeds(|| scenarios::power_loss(CellOptions::default()));
}

/// ... and the checkers notice when a disk acknowledges appends before syncing them.
#[test]
fn ack_before_sync_is_caught() {
    let options = CellOptions {
        ack_before_sync: true,
        ..CellOptions::default()
    };
    caught_on_seeds("", "the lost writes", || {
        scenarios::power_loss(options.clone())
    });
}

/// An isolated leader does not answer reads with what it had before the majority moved on.
#[test]
fn isolated_leader_serves_no_stale_read() {
    passes_on_seeds(|| scenarios::isolated_leader_reads(CellOptions::default()));
}

/// A leader loses power right after acknowledged writes; reads on the survivors during and
/// after the election all see the last write.
#[test]
fn no_stale_read_after_failover() {
    passes_on_seeds(|| scenarios::read_after_failover(CellOptions::default()));
}

/// Four clients writing and reading their own keys through one forwarding follower never
/// get each other's replies.
#[test]
fn forwarded_replies_are_not_crossed() {
    passes_on_seeds(|| scenarios::no_crossed_replies(CellOptions::default()));
}

/// ... and the checker notices when reads skip the read index (`read-consistency local`).
#[test]
fn reads_without_read_index_are_caught() {
    let options = CellOptions {
        read_consistency: "local".into(),
        ..CellOptions::default()
    };
    caught_on_seeds("not linearizable", "a stale read", || {
        scenarios::isolated_leader_reads(options.clone())
    });
    let mut run = short_run();
    run.cell.read_consistency = "local".into();
    assert!(!run_seed(1, &run).passed(), "chaos with local reads passed");
}

/// Writes through a follower whose link to the leader loses one direction: none answered as
/// failed appears afterwards, and the scenario did make writes fail or go unanswered.
#[test]
fn failed_writes_never_appear() {
    passes_on_seeds(|| scenarios::failed_write_never_appears(CellOptions::default()));
}

/// ... and the scenario can fail: a writer that leaves its unanswered writes out of the
/// history, as a node answering `-TRYAGAIN` for writes already on their way to the log would
/// make it, is caught reading a value nobody wrote.
#[test]
fn writes_misreported_as_failed_are_caught() {
    caught_on_seeds("not linearizable", "the misreported writes", || {
        scenarios::failed_write_never_appears_with(CellOptions::default(), true)
    });
}

/// A follower that must catch up by snapshot loses power five times a few milliseconds into
/// the catch-up; its log and state still match the others' and the cell converges.
#[test]
fn crash_during_snapshot_install_recovers() {
    passes_on_seeds(|| scenarios::crash_during_snapshot_install(CellOptions::default()));
}

/// ... and the scenario can fail: with disks that acknowledge appends before syncing them,
/// the follower's crashes lose entries it had acknowledged, which openraft's own assertion
/// catches ("follower log reversion is not allowed" on the leader) when the leader had
/// already counted the lost entries. Whether a crash lands there depends on the seed's
/// schedule: of seeds 1-10, 5 were caught when this was written (1, 2, 6, 7, 10); fewer
/// than 3 means the scenario has stopped exercising the fault.
#[test]
fn crash_during_snapshot_install_catches_ack_before_sync() {
    let options = CellOptions {
        ack_before_sync: true,
        ..CellOptions::default()
    };
    let caught: Vec<u64> = (1..=10)
        .filter(|&seed| {
            scenario(seed, || {
                scenarios::crash_during_snapshot_install(options.clone())
            })
            .is_err()
        })
        .collect();
    assert!(
        caught.len() >= 3,
        "the lost entries went unnoticed on most seeds (caught on {caught:?} of 1-10)"
    );
}

/// A membership change during a partition (the leader cut off with an add-node in flight;
/// two against two with a remove-node of the leader in flight) completes or is cleanly not
/// applied, a change left in joint consensus is finished by the leader without an admin call,
/// no acknowledged write is lost, there is one leader per leader id, and the cell ends with
/// three voters that converge.
#[test]
fn membership_change_during_partition_settles() {
    passes_on_seeds(|| scenarios::membership_change_during_partition(CellOptions::default()));
}

/// Seed 5130 of the full run once had this shape: a member cut off with a longer log of
/// entries that were never committed missed the changes that added node 5 and removed node
/// 1; node 5 then led, and the member refused its appends for good (they brought no index
/// past its own), so the healed cell could not serve through it. Later node changes moved
/// that seed's schedule; the shape was not found again among seeds 5100-5600 (none had a
/// member cut off across both changes), so this now pins seed 5107, the first there whose
/// fault log still has both changes done. Run in its own process as `scripts/sim.sh` runs
/// it (in this process, beside the other tests, the schedule differs); if a change of node
/// code moves this seed too, find such a seed again with `scripts/sim.sh --verbose`.
#[test]
fn seed_5107_membership_changes_complete_and_the_cell_serves() {
    let (ok, stdout) = cellkv_sim(&["--seed", "5107", "--seeds", "1", "--verbose"]);
    assert!(
        stdout.contains("add n5: done") && stdout.contains("remove n1: done"),
        "seed 5107 no longer has its shape:\n{stdout}"
    );
    assert!(ok, "{stdout}");
}

/// No cache write is refused with `-OOM` right after leadership moves, while every key can
/// be evicted (seed 37: a new leader projected memory before applying its predecessor's
/// entries).
#[test]
fn no_oom_after_election() {
    passes_on_seeds(|| scenarios::no_oom_after_election(CellOptions::default()));
}

/// Keys expire on time on every member though the leader's clock jumps forward and a
/// follower's back (cell time runs on the monotonic clock; docs/consistency.md, "Time").
#[test]
fn ttls_survive_clock_jumps() {
    passes_on_seeds(|| scenarios::ttl_across_clock_jumps(CellOptions::default()));
}

/// Two runs of one seed, each in its own process, produce the same fingerprint (every
/// operation with its simulated times, the fault log, the final states). madsim's in-process
/// check cannot be used: see docs/simulation.md.
#[test]
fn runs_are_deterministic() {
    let (ok, stdout) = cellkv_sim(&[
        "--seed",
        "7",
        "--chaos",
        "5",
        "--healed",
        "1",
        "--check-determinism",
    ]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("1 seeds: 1 passed"), "{stdout}");
}

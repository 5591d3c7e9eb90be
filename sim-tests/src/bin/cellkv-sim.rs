//! `cellkv-sim`: runs the simulation for a range of seeds, one fresh simulated world per
//! seed, and prints one line per seed; a failing seed prints what went wrong and the command
//! that replays it. Exits non-zero if any seed failed (or, with `--expect-failure`, if any
//! seed passed). `scripts/sim.sh` builds and runs it; see `docs/simulation.md`.

#[cfg(not(madsim))]
fn main() {
    eprintln!("cellkv-sim runs only in a simulation build: RUSTFLAGS=\"--cfg madsim\" (use scripts/sim.sh)");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() {
    sim::main();
}

#[cfg(madsim)]
mod sim {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use cellkv_sim_tests::run::{run_seed, simulate, RunOptions, RunReport};
    use clap::Parser;

    /// Command-line options.
    #[derive(Parser, Debug)]
    #[command(
        name = "cellkv-sim",
        about = "Deterministic simulation of a cellkv cell"
    )]
    struct Args {
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of seeds, from --seed on.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Seconds of simulated chaos per seed.
        #[arg(long, default_value_t = 20)]
        chaos: u64,
        /// Seconds of healed running after the chaos.
        #[arg(long, default_value_t = 5)]
        healed: u64,
        /// Kill-switch clients.
        #[arg(long, default_value_t = 4)]
        clients: u32,
        /// Run without faults.
        #[arg(long)]
        no_faults: bool,
        /// The members' --read-consistency (`local` serves stale reads: the checker must fail).
        #[arg(long, default_value = "linearizable")]
        read_consistency: String,
        /// Test-only fault: disks acknowledge appends before syncing them.
        #[arg(long)]
        ack_before_sync: bool,
        /// Simulated fsync time in milliseconds.
        #[arg(long, default_value_t = 2)]
        fsync_ms: u64,
        /// Run each seed twice and compare every random draw (madsim's determinism check).
        #[arg(long)]
        check_determinism: bool,
        /// Succeed only if every seed fails (to show the checkers catch an injected bug).
        #[arg(long)]
        expect_failure: bool,
        /// Print each seed's fault log and reply counts.
        #[arg(long, short)]
        verbose: bool,
    }

    impl Args {
        fn options(&self) -> RunOptions {
            let mut options = RunOptions {
                clients: self.clients,
                chaos: Duration::from_secs(self.chaos),
                healed: Duration::from_secs(self.healed),
                faults: !self.no_faults,
                ..RunOptions::default()
            };
            options.cell.read_consistency = self.read_consistency.clone();
            options.cell.ack_before_sync = self.ack_before_sync;
            options.cell.fsync = Duration::from_millis(self.fsync_ms);
            options
        }

        /// The flags that change what a seed does, for the reproduce line.
        fn replay_flags(&self) -> String {
            let mut flags = String::new();
            let defaults = Args::parse_from(["cellkv-sim"]);
            if self.chaos != defaults.chaos {
                flags += &format!(" --chaos {}", self.chaos);
            }
            if self.healed != defaults.healed {
                flags += &format!(" --healed {}", self.healed);
            }
            if self.clients != defaults.clients {
                flags += &format!(" --clients {}", self.clients);
            }
            if self.no_faults {
                flags += " --no-faults";
            }
            if self.read_consistency != defaults.read_consistency {
                flags += &format!(" --read-consistency {}", self.read_consistency);
            }
            if self.ack_before_sync {
                flags += " --ack-before-sync";
            }
            if self.fsync_ms != defaults.fsync_ms {
                flags += &format!(" --fsync-ms {}", self.fsync_ms);
            }
            flags
        }
    }

    /// `Runtime::check_determinism` takes a plain `fn`, so the options reach it here.
    static OPTIONS: Mutex<Option<(u64, RunOptions)>> = Mutex::new(None);

    fn determinism_body() -> impl std::future::Future<Output = RunReport> {
        let (seed, options) = OPTIONS
            .lock()
            .map(|o| o.clone())
            .ok()
            .flatten()
            .unwrap_or((0, RunOptions::default()));
        simulate(seed, options)
    }

    fn run_one(seed: u64, args: &Args) -> RunReport {
        let options = args.options();
        let outcome = std::panic::catch_unwind(|| {
            if args.check_determinism {
                if let Ok(mut slot) = OPTIONS.lock() {
                    *slot = Some((seed, options.clone()));
                }
                madsim::runtime::Runtime::check_determinism(
                    seed,
                    madsim::Config::default(),
                    determinism_body,
                )
            } else {
                run_seed(seed, &options)
            }
        });
        match outcome {
            Ok(report) => report,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                RunReport {
                    seed,
                    failures: vec![format!("panicked: {text}")],
                    ..RunReport::default()
                }
            }
        }
    }

    pub fn main() {
        let filter = std::env::var("CELLKV_SIM_LOG").unwrap_or_else(|_| "off".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
        let args = Args::parse();
        let started = Instant::now();
        let mut failed = Vec::new();
        let mut passed = 0u64;
        for seed in args.seed..args.seed.saturating_add(args.seeds) {
            let wall = Instant::now();
            let report = run_one(seed, &args);
            let wall = wall.elapsed();
            let verdict = if report.passed() { "ok  " } else { "FAIL" };
            println!(
                "seed {seed}: {verdict} ops={} unknown={} faults={} samples={} sim={:.1}s wall={:.2}s",
                report.ops,
                report.unknown,
                report.faults,
                report.samples,
                report.simulated.as_secs_f64(),
                wall.as_secs_f64()
            );
            if args.verbose || !report.passed() {
                for line in &report.fault_log {
                    println!("    fault  {line}");
                }
                let outcomes: Vec<String> = report
                    .outcomes
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                println!("    replies {}", outcomes.join(" "));
            }
            if report.passed() {
                passed += 1;
            } else {
                for failure in &report.failures {
                    for line in failure.lines() {
                        println!("    !! {line}");
                    }
                }
                println!(
                    "    reproduce: scripts/sim.sh --seed {seed}{} --verbose",
                    args.replay_flags()
                );
                failed.push(seed);
            }
        }
        println!(
            "{} seeds: {passed} passed, {} failed in {:.1}s{}",
            args.seeds,
            failed.len(),
            started.elapsed().as_secs_f64(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failing seeds: {failed:?}")
            }
        );
        let ok = if args.expect_failure {
            passed == 0
        } else {
            failed.is_empty()
        };
        std::process::exit(if ok { 0 } else { 1 });
    }
}

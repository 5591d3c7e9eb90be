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
    use std::time::{Duration, Instant};

    use cellkv_sim_tests::run::{run_seed, RunOptions, RunReport};
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
        /// Queue producers (workload 2).
        #[arg(long, default_value_t = 2)]
        producers: u32,
        /// Queue consumers.
        #[arg(long, default_value_t = 2)]
        consumers: u32,
        /// Cache clients (workload 3, under a small maxmemory).
        #[arg(long, default_value_t = 2)]
        cache_clients: u32,
        /// List appenders (MULTI of RPUSH and LRANGE).
        #[arg(long, default_value_t = 2)]
        appenders: u32,
        /// Session clients (SET with PX/EX, reads around expiry).
        #[arg(long, default_value_t = 2)]
        sessions: u32,
        /// Run the cell without maxmemory (and so without the cache workload).
        #[arg(long)]
        no_maxmemory: bool,
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
        /// Run each seed twice, in two processes, and require identical fingerprints.
        #[arg(long)]
        check_determinism: bool,
        /// Succeed only if every seed fails (to show the checkers catch an injected bug).
        #[arg(long)]
        expect_failure: bool,
        /// Print each seed's fault log and reply counts.
        #[arg(long, short)]
        verbose: bool,
        /// Seeds run at the same time, each in its own process.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Run exactly one seed in this process (what the parent starts per seed).
        #[arg(long, hide = true)]
        child: bool,
    }

    impl Args {
        fn options(&self) -> RunOptions {
            let mut options = RunOptions {
                clients: self.clients,
                producers: self.producers,
                consumers: self.consumers,
                cache_clients: self.cache_clients,
                appenders: self.appenders,
                sessions: self.sessions,
                chaos: Duration::from_secs(self.chaos),
                healed: Duration::from_secs(self.healed),
                faults: !self.no_faults,
                ..RunOptions::default()
            };
            options.cell.read_consistency = self.read_consistency.clone();
            options.cell.ack_before_sync = self.ack_before_sync;
            options.cell.fsync = Duration::from_millis(self.fsync_ms);
            options.cell.maxmemory = !self.no_maxmemory;
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
            if self.producers != defaults.producers {
                flags += &format!(" --producers {}", self.producers);
            }
            if self.consumers != defaults.consumers {
                flags += &format!(" --consumers {}", self.consumers);
            }
            if self.cache_clients != defaults.cache_clients {
                flags += &format!(" --cache-clients {}", self.cache_clients);
            }
            if self.appenders != defaults.appenders {
                flags += &format!(" --appenders {}", self.appenders);
            }
            if self.sessions != defaults.sessions {
                flags += &format!(" --sessions {}", self.sessions);
            }
            if self.no_maxmemory {
                flags += " --no-maxmemory";
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

    /// Runs one seed in a fresh thread (madsim then seeds std's hasher keys for it), catching
    /// a panic as a failure.
    #[allow(clippy::disallowed_methods)] // outside the simulation
    fn run_one(seed: u64, options: RunOptions) -> RunReport {
        let outcome = std::thread::spawn(move || run_seed(seed, &options)).join();
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

    /// Prints a seed's report; returns whether it passed.
    fn print_report(report: &RunReport, wall: Duration, args: &Args) -> bool {
        let seed = report.seed;
        let verdict = if report.passed() { "ok  " } else { "FAIL" };
        println!(
            "seed {seed}: {verdict} ops={} unknown={} faults={} sim={:.1}s wall={:.2}s fingerprint={:016x}",
            report.ops,
            report.unknown,
            report.faults,
            report.simulated.as_secs_f64(),
            wall.as_secs_f64(),
            report.fingerprint,
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
            println!("    queue   {}", report.queue);
            println!("    cache   {}", report.cache);
            println!("    append  {}", report.append);
            println!("    ttl     {}", report.ttl);
        }
        for failure in &report.failures {
            for line in failure.lines() {
                println!("    !! {line}");
            }
        }
        if !report.passed() {
            println!(
                "    reproduce: scripts/sim.sh --seed {seed}{} --verbose",
                args.replay_flags()
            );
        }
        report.passed()
    }

    /// One child process per seed: statics (tokio's thread-RNG seed counter, lazily built
    /// tables) would otherwise make a seed's run depend on the seeds run before it in the
    /// same process.
    struct Child {
        seed: u64,
        output: std::thread::JoinHandle<std::io::Result<std::process::Output>>,
    }

    #[allow(clippy::disallowed_methods)] // outside the simulation
    fn spawn_child(seed: u64, args: &Args) -> std::io::Result<Child> {
        let exe = std::env::current_exe()?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("--child")
            .arg("--seed")
            .arg(seed.to_string())
            .args(args.replay_flags().split_whitespace());
        if args.verbose {
            command.arg("--verbose");
        }
        command.stdin(std::process::Stdio::null());
        let output = std::thread::spawn(move || command.output());
        Ok(Child { seed, output })
    }

    /// What a child reported: its printed lines, whether it passed, its fingerprint.
    fn collect(child: Child) -> (u64, String, bool, Option<String>) {
        let output = match child.output.join() {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return (
                    child.seed,
                    format!("seed {}: FAIL cannot run: {e}\n", child.seed),
                    false,
                    None,
                )
            }
            Err(_) => {
                return (
                    child.seed,
                    format!("seed {}: FAIL runner thread died\n", child.seed),
                    false,
                    None,
                )
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let fingerprint = stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix("fingerprint="))
            .map(str::to_string);
        let passed = output.status.success() && stdout.contains(": ok ");
        let mut text = stdout;
        if !output.status.success() && !text.contains(": FAIL") {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            text.push_str(&format!(
                "seed {}: FAIL the run died ({}): {}\n    reproduce: scripts/sim.sh --seed {}{} --verbose\n",
                child.seed,
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
                child.seed,
                "",
            ));
        }
        (child.seed, text, passed, fingerprint)
    }

    #[allow(clippy::disallowed_methods)] // wall-clock timings of the runner, outside the simulation
    pub fn main() {
        let filter = std::env::var("CELLKV_SIM_LOG").unwrap_or_else(|_| "off".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
        let args = Args::parse();
        if args.child || (args.seeds == 1 && !args.check_determinism) {
            let wall = Instant::now();
            let report = run_one(args.seed, args.options());
            let passed = print_report(&report, wall.elapsed(), &args);
            let ok = passed != args.expect_failure;
            std::process::exit(if ok { 0 } else { 1 });
        }
        let started = Instant::now();
        let seeds: Vec<u64> = (args.seed..args.seed.saturating_add(args.seeds)).collect();
        let copies = if args.check_determinism { 2 } else { 1 };
        let mut queue: std::collections::VecDeque<(u64, usize)> = seeds
            .iter()
            .flat_map(|&s| (0..copies).map(move |c| (s, c)))
            .collect();
        let mut running: Vec<Child> = Vec::new();
        let mut results: std::collections::BTreeMap<u64, Vec<(bool, Option<String>)>> =
            std::collections::BTreeMap::new();
        let mut failed = Vec::new();
        let mut passed = 0u64;
        let jobs = args.jobs.max(1);
        while !queue.is_empty() || !running.is_empty() {
            while running.len() < jobs {
                let Some((seed, _)) = queue.pop_front() else {
                    break;
                };
                match spawn_child(seed, &args) {
                    Ok(child) => running.push(child),
                    Err(e) => {
                        println!("seed {seed}: FAIL cannot start a run: {e}");
                        results.entry(seed).or_default().push((false, None));
                    }
                }
            }
            if let Some(done) = running.iter().position(|c| c.output.is_finished()) {
                let child = running.swap_remove(done);
                let (seed, text, ok, fingerprint) = collect(child);
                let entry = results.entry(seed).or_default();
                let first = entry.is_empty();
                entry.push((ok, fingerprint));
                if first {
                    print!("{text}");
                }
                if entry.len() == copies {
                    let all_ok = entry.iter().all(|(ok, _)| *ok);
                    let same = entry
                        .windows(2)
                        .all(|w| w[0].1.is_some() && w[0].1 == w[1].1);
                    if copies == 2 && !same {
                        println!(
                            "seed {seed}: FAIL not deterministic: two runs printed fingerprints {:?}\n    reproduce: scripts/sim.sh --seed {seed}{} --check-determinism",
                            entry.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
                            args.replay_flags()
                        );
                    }
                    if all_ok && (copies == 1 || same) {
                        passed += 1;
                    } else {
                        failed.push(seed);
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        failed.sort_unstable();
        println!(
            "{} seeds: {passed} passed, {} failed in {:.1}s{}",
            seeds.len(),
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

//! The `cellkv` binary: parse the configuration, start the node, serve until SIGTERM,
//! SIGINT or `SHUTDOWN`, then stop cleanly.

use anyhow::Context;
use cellkv_node::config::{Config, Flags};
use cellkv_node::server::Server;
use clap::Parser;
use tracing_subscriber::EnvFilter;

// Every command allocates its arguments and reply; glibc's allocator cost a fifth of the
// CPU of a write-heavy benchmark, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::load(Flags::parse()).context("configuration")?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().worker_threads(config.worker_threads());
    runtime
        .build()
        .context("starting the runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("log-level '{}'", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tracing::info!(
        port = config.port,
        raft_port = config.raft_port,
        dir = %config.dir.display(),
        node_id = config.node_id,
        "starting cellkv"
    );
    let server = Server::start(config).await.context("starting the node")?;
    // The TLS line first: the ready line is the last one a supervisor or test waits for.
    if let Some(addr) = server.tls_addr() {
        println!("cellkv tls ready on {addr}");
    }
    println!("cellkv ready on {}", server.resp_addr());
    wait_for_stop(&server).await;
    tracing::info!("stopping");
    server.stop().await;
    Ok(())
}

async fn wait_for_stop(server: &Server) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                server.wait_shutdown().await;
                return;
            }
        };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        _ = terminate.recv() => tracing::info!("SIGTERM"),
        _ = server.wait_shutdown() => {}
    }
}

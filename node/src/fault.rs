//! Test-only fault injection, compiled in with the cargo feature `fault-injection` and never
//! in a production build: cutting this node off from every other member of its cell, as a
//! network partition would, while its clients can still reach it.
//!
//! The switch is a file, `fault-isolate`, in the node's data directory: while it exists the
//! node refuses every incoming node-to-node call and sends none (Raft, forwarding, read
//! index, probes, pub/sub fan-out). Tests create and remove it. The flag is one per process,
//! which is one node in every test that starts real binaries.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};

/// The file whose presence isolates the node.
pub const ISOLATE_FILE: &str = "fault-isolate";

#[cfg(feature = "fault-injection")]
static ISOLATED: AtomicBool = AtomicBool::new(false);

/// Whether this node is cut off from the others now (always `false` without the feature).
pub fn isolated() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        ISOLATED.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// The refusal an isolated node's calls get: worded as a refused connection, so callers
/// treat it as "never sent", as they would a real partition's.
pub fn refusal() -> String {
    "connection refused (isolated by fault injection)".to_string()
}

/// gRPC interceptor of every incoming call: refuses it while the node is isolated.
#[cfg(feature = "fault-injection")]
#[allow(clippy::result_large_err)]
pub fn refuse_when_isolated(
    request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    if isolated() {
        return Err(tonic::Status::unavailable(refusal()));
    }
    Ok(request)
}

/// Follows the switch file in `dir` until the process ends.
#[cfg(feature = "fault-injection")]
pub async fn watch(dir: std::path::PathBuf) {
    let path = dir.join(ISOLATE_FILE);
    loop {
        let now = path.exists();
        if ISOLATED.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                isolated = now,
                "fault injection: node-to-node traffic switched"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! The node's only wall clock, and the cell's time as this node knows it. Everything that
//! needs "now" outside apply asks here, so the simulator (which intercepts the system clock)
//! and the determinism lint see one place.
//!
//! **Cell time** ([`CellClock`]) is what TTLs are measured in: the leader stamps entries with
//! it, reads and the leader's active expiry compare expiry times against it. It runs on the
//! monotonic clock and only ever moves forward; wall-clock jumps reach it only through a
//! node taking office (see `docs/consistency.md`, "Time"):
//! - every node raises it to each stamp it applies (the replicated clock) and, on a follower,
//!   to the leader's cell time that comes back with each read index;
//! - a node taking office raises it to its wall clock (a fresh cell, or one restarted after
//!   an outage, picks the wall time up that way);
//! - between those it advances by the monotonic clock alone, so a wall clock that jumps
//!   forward or back under a sitting leader or a follower moves no expiry.
//!
//! Under `cfg(madsim)` every simulated machine shares one system clock, so [`sim`] keeps a
//! wall-clock offset per simulated node, set by the harness to model a node whose clock
//! jumped.

use parking_lot::Mutex;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn now_us() -> u64 {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    #[cfg(madsim)]
    let us = us.saturating_add_signed(sim::offset_us());
    us
}

/// The monotonic clock (the simulator's under madsim).
#[allow(clippy::disallowed_methods)]
fn monotonic() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Cell time on this node: the latest cell time it learned, and when (monotonic).
#[derive(Debug, Default)]
pub struct CellClock {
    base: Mutex<Option<(u64, tokio::time::Instant)>>,
}

impl CellClock {
    /// Cell time now, in milliseconds, after raising it to `at_least` (the replicated clock,
    /// a stamp, the leader's time): never less than anything it was raised to, never back.
    pub fn now_ms(&self, at_least: u64) -> u64 {
        let now = monotonic();
        let mut base = self.base.lock();
        let extrapolated = base.map(|(ms, at)| {
            ms.saturating_add(u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX))
        });
        match extrapolated {
            Some(ms) if ms >= at_least => ms,
            _ => {
                *base = Some((at_least, now));
                at_least
            }
        }
    }

    /// This node takes office: cell time rises to its wall clock if that is ahead.
    pub fn take_office(&self, replicated_ms: u64) -> u64 {
        self.now_ms(replicated_ms.max(now_ms()))
    }
}

/// The simulation's per-node wall-clock offsets.
#[cfg(madsim)]
pub mod sim {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use madsim::task::NodeId;

    // One simulated world runs on one thread; a thread-local table keeps worlds run by
    // parallel tests apart.
    thread_local! {
        static OFFSETS: RefCell<BTreeMap<NodeId, i64>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Sets the wall-clock offset (in microseconds, signed) of the simulated node `node`.
    pub fn set_offset_us(node: NodeId, offset_us: i64) {
        OFFSETS.with(|o| {
            if offset_us == 0 {
                o.borrow_mut().remove(&node);
            } else {
                o.borrow_mut().insert(node, offset_us);
            }
        });
    }

    /// Forgets every offset (a new simulated world).
    pub fn clear() {
        OFFSETS.with(|o| o.borrow_mut().clear());
    }

    /// The offset of the node the current task runs on.
    pub(super) fn offset_us() -> i64 {
        OFFSETS.with(|o| {
            let offsets = o.borrow();
            if offsets.is_empty() {
                return 0;
            }
            offsets.get(&madsim::plugin::node()).copied().unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cell time never goes back and rises to whatever it is raised to.
    #[tokio::test]
    async fn cell_time_only_moves_forward() {
        let clock = CellClock::default();
        assert_eq!(clock.now_ms(1000), 1000);
        // A lower replicated clock does not pull it back.
        assert!(clock.now_ms(10) >= 1000);
        assert_eq!(clock.now_ms(5000), 5000);
        assert!(clock.now_ms(0) >= 5000);
        // Taking office raises it to the wall clock, which is far ahead of 5000 ms.
        let wall = now_ms();
        assert!(clock.take_office(0) >= wall);
    }
}

//! The async runtime openraft runs on: [`CellRuntime`], an `openraft_rt::AsyncRuntime` over
//! the project's `tokio` (madsim-tokio renamed).
//!
//! In a normal build this is plain tokio. Under `--cfg madsim` the same code reaches madsim's
//! spawn, timers and clock, and the election-timeout randomness comes from madsim's seeded
//! generator, so a seed reproduces a run. openraft's stock `TokioRuntime` cannot be used: it
//! calls real tokio directly, which panics inside the simulator.
//!
//! Channels and the async mutex are openraft-rt-tokio's wrappers around `tokio::sync`; those
//! are runtime-agnostic and behave the same inside madsim.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft_rt::{AsyncRuntime, OptionalSend};
use openraft_rt_tokio::{TokioMpsc, TokioMutex, TokioOneshot, TokioWatch};
use rand::rngs::SmallRng;

/// openraft's runtime adapter over the project's (possibly simulated) `tokio`.
///
/// openraft only uses the associated functions; a value is needed just for
/// [`AsyncRuntime::new`]/[`AsyncRuntime::block_on`], which openraft's test suites call.
pub struct CellRuntime {
    #[cfg(not(madsim))]
    rt: tokio::runtime::Runtime,
    #[cfg(madsim)]
    rt: madsim::runtime::Runtime,
}

impl fmt::Debug for CellRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CellRuntime").finish_non_exhaustive()
    }
}

/// A point in time on the runtime's clock (simulated under madsim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellInstant(tokio::time::Instant);

impl std::ops::Add<Duration> for CellInstant {
    type Output = CellInstant;

    fn add(self, rhs: Duration) -> CellInstant {
        CellInstant(self.0 + rhs)
    }
}

impl std::ops::AddAssign<Duration> for CellInstant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl std::ops::Sub<Duration> for CellInstant {
    type Output = CellInstant;

    fn sub(self, rhs: Duration) -> CellInstant {
        CellInstant(self.0 - rhs)
    }
}

impl std::ops::Sub<CellInstant> for CellInstant {
    type Output = Duration;

    fn sub(self, rhs: CellInstant) -> Duration {
        // Saturating: openraft's Instant contract is a non-decreasing clock, and a panic on a
        // reordered pair of readings would take the Raft core down.
        self.0.saturating_duration_since(rhs.0)
    }
}

impl std::ops::SubAssign<Duration> for CellInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl openraft_rt::Instant for CellInstant {
    // Under madsim `tokio::time::Instant` is std's, whose clock madsim intercepts and
    // simulates; the lint cannot tell the two builds apart.
    #[allow(clippy::disallowed_methods)]
    fn now() -> CellInstant {
        CellInstant(tokio::time::Instant::now())
    }
}

/// The error of a [`CellTimeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline has elapsed")]
pub struct Elapsed;

/// A future bounded by a deadline.
///
/// Its own type because madsim's `timeout` returns an unnameable `impl Future`, while the
/// runtime trait needs a nameable one. The inner future is polled before the timer, so a
/// future that is ready at the deadline still wins, in both builds alike.
pub struct CellTimeout<F> {
    future: Pin<Box<F>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<F: Future> Future for CellTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRuntime for CellRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = CellInstant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = CellTimeout<T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.0)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        CellTimeout {
            future: Box::pin(future),
            sleep: Box::pin(tokio::time::sleep(duration)),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        CellTimeout {
            future: Box::pin(future),
            sleep: Box::pin(tokio::time::sleep_until(deadline.0)),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        // madsim never reports a panic through JoinError (a panic aborts the simulated node).
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        seeded_rng()
    }

    type Mpsc = TokioMpsc;
    type Watch = TokioWatch;
    type Oneshot = TokioOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioMutex<T>;

    #[cfg(not(madsim))]
    fn new(threads: usize) -> Self {
        #[allow(clippy::expect_used)] // only openraft's test suites build a runtime this way
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        CellRuntime { rt }
    }

    #[cfg(madsim)]
    fn new(_threads: usize) -> Self {
        CellRuntime {
            rt: madsim::runtime::Runtime::new(),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.rt.block_on(future)
    }

    #[cfg(not(madsim))]
    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, std::io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // tokio's pool instead of the trait's default of one new OS thread per call.
        let handle = tokio::task::spawn_blocking(f);
        async move { handle.await.map_err(std::io::Error::other) }
    }

    #[cfg(madsim)]
    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, std::io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // madsim refuses OS threads; the closure runs as an ordinary simulated task.
        let handle = tokio::spawn(async move { f() });
        async move { handle.await.map_err(std::io::Error::other) }
    }
}

#[cfg(not(madsim))]
fn seeded_rng() -> SmallRng {
    rand::make_rng()
}

#[cfg(madsim)]
fn seeded_rng() -> SmallRng {
    use rand::SeedableRng;
    // The simulation's seeded generator, so election timeouts replay with the seed.
    SmallRng::seed_from_u64(madsim::rand::random::<u64>())
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::CellRuntime;

    /// openraft's own conformance suite for runtimes: spawn, timers, instants, channels,
    /// mutex, select order.
    #[test]
    fn runtime_conformance() {
        openraft_rt::testing::Suite::<CellRuntime>::test_all();
    }
}

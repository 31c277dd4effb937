//! The time source every pbi-bridge component takes: the system clock, or a manual clock that tests advance.
//!
//! Waiting goes through the clock too (`Clock::sleep`), so a test that moves a manual clock also ends the
//! waits it governs, and nothing waits for real time in a test.

use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

/// A cheaply clonable handle on "now". Clones share the same time.
#[derive(Clone)]
pub struct Clock {
    source: Arc<Source>,
}

// The movable clocks keep their value in a watch channel: every move wakes the sleepers, which then look at
// the new time. A sender needs no receiver and no runtime, so a clock works outside tokio as well.
enum Source {
    System,
    Manual(watch::Sender<OffsetDateTime>),
    /// Wall-clock time plus an offset that can be moved forward: time flows, and tests can still jump.
    Shifted(watch::Sender<Duration>),
}

impl Clock {
    /// The real wall clock.
    pub fn system() -> Self {
        Self { source: Arc::new(Source::System) }
    }

    /// A clock that stands still at `start` until it is advanced.
    pub fn manual(start: OffsetDateTime) -> Self {
        Self { source: Arc::new(Source::Manual(watch::Sender::new(start))) }
    }

    /// The wall clock, shifted by however far it has been advanced. Used by `pbi-bridge sandbox`.
    pub fn shifted() -> Self {
        Self { source: Arc::new(Source::Shifted(watch::Sender::new(Duration::ZERO))) }
    }

    /// A manual clock starting at the current wall-clock time (truncated to whole seconds, as JWT times are).
    pub fn manual_from_now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self::manual(now.replace_nanosecond(0).unwrap_or(now))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &*self.source {
            Source::System => OffsetDateTime::now_utc(),
            Source::Manual(now) => *now.borrow(),
            Source::Shifted(offset) => OffsetDateTime::now_utc() + *offset.borrow(),
        }
    }

    /// Whether `advance` can move this clock.
    pub fn is_manual(&self) -> bool {
        !matches!(&*self.source, Source::System)
    }

    /// Moves a manual clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) -> Result<OffsetDateTime, NotManual> {
        match &*self.source {
            Source::System => Err(NotManual),
            Source::Manual(now) => {
                // Read the new time inside the update, so a concurrent move cannot slip in between.
                let mut moved = OffsetDateTime::UNIX_EPOCH;
                now.send_modify(|now| {
                    *now += by;
                    moved = *now;
                });
                Ok(moved)
            }
            Source::Shifted(offset) => {
                let mut moved = Duration::ZERO;
                offset.send_modify(|offset| {
                    *offset += by;
                    moved = *offset;
                });
                Ok(OffsetDateTime::now_utc() + moved)
            }
        }
    }

    /// Sets a manual clock to `to`.
    pub fn set(&self, to: OffsetDateTime) -> Result<(), NotManual> {
        match &*self.source {
            Source::System => Err(NotManual),
            Source::Shifted(offset) => {
                offset.send_replace(to - OffsetDateTime::now_utc());
                Ok(())
            }
            Source::Manual(now) => {
                now.send_replace(to);
                Ok(())
            }
        }
    }

    /// Seconds since the Unix epoch, as JWTs count time.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Waits for `duration` of this clock's time: real time on the system clock (tokio's timer); on a
    /// manual clock until it has been advanced or set that far; on a shifted clock real time, ending early
    /// when an advance carries it past the end. Cancel it by dropping the future.
    pub async fn sleep(&self, duration: std::time::Duration) {
        if let Source::System = &*self.source {
            // Straight to tokio's timer, so a paused test runtime can move through it.
            return tokio::time::sleep(duration).await;
        }
        match Duration::try_from(duration).ok().and_then(|d| self.now().checked_add(d)) {
            Some(deadline) => self.sleep_until(deadline).await,
            // Past the last representable instant: no clock ever gets there.
            None => std::future::pending().await,
        }
    }

    /// Waits until this clock reads `deadline` or later (at once if it already does); see [`Clock::sleep`].
    pub async fn sleep_until(&self, deadline: OffsetDateTime) {
        match &*self.source {
            Source::System => {
                if let Ok(left) = std::time::Duration::try_from(deadline - OffsetDateTime::now_utc()) {
                    tokio::time::sleep(left).await;
                }
            }
            Source::Manual(now) => {
                // `wait_for` looks at the current time first, then again after every move. The sender lives
                // as long as `self`, which this future borrows, so the wait cannot fail.
                let _ = now.subscribe().wait_for(|now| *now >= deadline).await;
            }
            Source::Shifted(offset) => {
                let mut moves = offset.subscribe();
                loop {
                    let now = OffsetDateTime::now_utc() + *moves.borrow_and_update();
                    // Negative: already past the deadline.
                    let Ok(left) = std::time::Duration::try_from(deadline - now) else { return };
                    match tokio::time::timeout(left, moves.changed()).await {
                        // The timer measured the rest of the wait (trusted rather than re-read from the wall
                        // clock, so that a paused test runtime ends it too).
                        Err(_elapsed) => return,
                        // Moved: the deadline may now be nearer, or already passed.
                        Ok(Ok(())) => {}
                        // Cannot happen while `self` is borrowed; wait out the rest without the early wake.
                        Ok(Err(_closed)) => return tokio::time::sleep(left).await,
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.source {
            Source::System => "system",
            Source::Manual(_) => "manual",
            Source::Shifted(_) => "shifted",
        };
        write!(f, "Clock({kind}, {})", self.now())
    }
}

/// The clock is the system clock, which cannot be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotManual;

impl std::fmt::Display for NotManual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the clock is the system clock; start with a manual clock to move time")
    }
}

impl std::error::Error for NotManual {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::{Pin, pin};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration as StdDuration;
    use time::macros::datetime;

    #[test]
    fn manual_clock_stands_still_until_advanced_and_clones_share_time() {
        let clock = Clock::manual(datetime!(2026-01-01 00:00 UTC));
        let other = clock.clone();
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00 UTC));
        other.advance(Duration::minutes(90)).expect("manual");
        assert_eq!(clock.now(), datetime!(2026-01-01 01:30 UTC));
    }

    #[test]
    fn shifted_clock_flows_and_jumps() {
        let clock = Clock::shifted();
        let before = OffsetDateTime::now_utc();
        clock.advance(Duration::days(91)).expect("shifted clocks move");
        assert!(clock.now() >= before + Duration::days(91));
    }

    #[test]
    fn system_clock_refuses_to_move() {
        assert_eq!(Clock::system().advance(Duration::SECOND), Err(NotManual));
    }

    /// A waker that counts its wakes, so a test can tell that moving the clock woke a sleeper.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Polls once by hand: the tests decide when time moves, so they never wait for a future to finish.
    fn poll<F: Future>(future: Pin<&mut F>, wakes: &Arc<Wakes>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(&Waker::from(wakes.clone())))
    }

    const MINUTE: StdDuration = StdDuration::from_secs(60);

    // No runtime at all: a manual clock's sleep waits for the clock, not for a timer.
    #[test]
    fn a_manual_sleep_ends_only_when_the_clock_is_advanced_past_it() {
        let clock = Clock::manual(datetime!(2026-01-01 00:00 UTC));
        let wakes = Arc::new(Wakes::default());
        let mut sleep = pin!(clock.sleep(MINUTE));
        assert!(poll(sleep.as_mut(), &wakes).is_pending());
        clock.advance(Duration::seconds(59)).expect("manual");
        assert_eq!(wakes.count(), 1, "the move woke the sleeper");
        assert!(poll(sleep.as_mut(), &wakes).is_pending(), "59 of 60 seconds");
        clock.advance(Duration::seconds(1)).expect("manual");
        assert_eq!(wakes.count(), 2);
        assert!(poll(sleep.as_mut(), &wakes).is_ready(), "60 of 60 seconds");
    }

    #[test]
    fn several_sleepers_each_end_at_their_own_time() {
        let clock = Clock::manual(datetime!(2026-01-01 00:00 UTC));
        let wakes: Vec<Arc<Wakes>> = (0..3).map(|_| Arc::new(Wakes::default())).collect();
        let mut sleeps: Vec<_> = (1..=3).map(|minutes| Box::pin(clock.sleep(MINUTE * minutes))).collect();
        for (sleep, wakes) in sleeps.iter_mut().zip(&wakes) {
            assert!(poll(sleep.as_mut(), wakes).is_pending());
        }
        clock.advance(Duration::minutes(2)).expect("manual");
        let ready: Vec<bool> = sleeps.iter_mut().zip(&wakes).map(|(sleep, wakes)| poll(sleep.as_mut(), wakes).is_ready()).collect();
        assert_eq!(ready, [true, true, false]);
        assert!(wakes.iter().all(|w| w.count() == 1), "one move woke every sleeper");
        clock.advance(Duration::minutes(1)).expect("manual");
        assert!(poll(sleeps[2].as_mut(), &wakes[2]).is_ready());
    }

    #[test]
    fn setting_a_manual_clock_ends_the_sleeps_it_passes_and_only_those() {
        let clock = Clock::manual(datetime!(2026-01-01 00:00 UTC));
        let wakes = Arc::new(Wakes::default());
        let mut sleep = pin!(clock.sleep_until(datetime!(2026-01-01 01:00 UTC)));
        assert!(poll(sleep.as_mut(), &wakes).is_pending());
        clock.set(datetime!(2025-12-31 00:00 UTC)).expect("manual");
        assert!(poll(sleep.as_mut(), &wakes).is_pending(), "set back: further away");
        clock.set(datetime!(2026-01-01 02:00 UTC)).expect("manual");
        assert_eq!(wakes.count(), 2);
        assert!(poll(sleep.as_mut(), &wakes).is_ready());
        let wakes = Arc::new(Wakes::default());
        assert!(poll(pin!(clock.sleep_until(datetime!(2026-01-01 00:00 UTC))), &wakes).is_ready(), "a past deadline");
        assert!(poll(pin!(clock.sleep(StdDuration::ZERO)), &wakes).is_ready());
    }

    #[test]
    fn a_sleep_past_the_end_of_time_never_ends_and_does_not_panic() {
        let clock = Clock::manual(datetime!(2026-01-01 00:00 UTC));
        let wakes = Arc::new(Wakes::default());
        let mut sleep = pin!(clock.sleep(StdDuration::MAX));
        assert!(poll(sleep.as_mut(), &wakes).is_pending());
        clock.advance(Duration::days(365 * 1000)).expect("manual");
        assert!(poll(sleep.as_mut(), &wakes).is_pending());
    }

    /// A current-thread runtime whose timer is paused: tokio's time moves only when the runtime is idle.
    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
    }

    #[test]
    fn a_shifted_sleep_ends_early_when_the_clock_is_advanced() {
        paused_runtime().block_on(async {
            let clock = Clock::shifted();
            let started = tokio::time::Instant::now();
            let wakes = Arc::new(Wakes::default());
            let mut sleep = pin!(clock.sleep(MINUTE * 60));
            assert!(poll(sleep.as_mut(), &wakes).is_pending());
            clock.advance(Duration::minutes(30)).expect("shifted");
            assert!(poll(sleep.as_mut(), &wakes).is_pending(), "half an hour is still left");
            clock.advance(Duration::minutes(31)).expect("shifted");
            assert_eq!(wakes.count(), 2, "each move woke the sleeper");
            assert!(poll(sleep.as_mut(), &wakes).is_ready());
            assert_eq!(tokio::time::Instant::now(), started, "no timer fired: the advance ended it");
        });
    }

    #[test]
    fn shifted_and_system_sleeps_wait_on_tokios_timer() {
        paused_runtime().block_on(async {
            for clock in [Clock::shifted(), Clock::system()] {
                let started = tokio::time::Instant::now();
                clock.sleep(MINUTE * 60).await;
                // The paused runtime jumped its timer forward when nothing else could run.
                assert!(started.elapsed() >= MINUTE * 60, "{clock:?}");
            }
        });
    }
}

//! The time source every pbi-bridge component takes: the system clock, or a manual clock that tests advance.

use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// A cheaply clonable handle on "now". Clones share the same time.
#[derive(Clone)]
pub struct Clock {
    source: Arc<Source>,
}

enum Source {
    System,
    Manual(Mutex<OffsetDateTime>),
    /// Wall-clock time plus an offset that can be moved forward: time flows, and tests can still jump.
    Shifted(Mutex<Duration>),
}

impl Clock {
    /// The real wall clock.
    pub fn system() -> Self {
        Self { source: Arc::new(Source::System) }
    }

    /// A clock that stands still at `start` until it is advanced.
    pub fn manual(start: OffsetDateTime) -> Self {
        Self { source: Arc::new(Source::Manual(Mutex::new(start))) }
    }

    /// The wall clock, shifted by however far it has been advanced. Used by `pbi-bridge sandbox`.
    pub fn shifted() -> Self {
        Self { source: Arc::new(Source::Shifted(Mutex::new(Duration::ZERO))) }
    }

    /// A manual clock starting at the current wall-clock time (truncated to whole seconds, as JWT times are).
    pub fn manual_from_now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self::manual(now.replace_nanosecond(0).unwrap_or(now))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &*self.source {
            Source::System => OffsetDateTime::now_utc(),
            Source::Manual(now) => *now.lock().unwrap_or_else(PoisonError::into_inner),
            Source::Shifted(offset) => OffsetDateTime::now_utc() + *offset.lock().unwrap_or_else(PoisonError::into_inner),
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
                let mut now = now.lock().unwrap_or_else(PoisonError::into_inner);
                *now += by;
                Ok(*now)
            }
            Source::Shifted(offset) => {
                let mut offset = offset.lock().unwrap_or_else(PoisonError::into_inner);
                *offset += by;
                Ok(OffsetDateTime::now_utc() + *offset)
            }
        }
    }

    /// Sets a manual clock to `to`.
    pub fn set(&self, to: OffsetDateTime) -> Result<(), NotManual> {
        match &*self.source {
            Source::System => Err(NotManual),
            Source::Shifted(offset) => {
                *offset.lock().unwrap_or_else(PoisonError::into_inner) = to - OffsetDateTime::now_utc();
                Ok(())
            }
            Source::Manual(now) => {
                *now.lock().unwrap_or_else(PoisonError::into_inner) = to;
                Ok(())
            }
        }
    }

    /// Seconds since the Unix epoch, as JWTs count time.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
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
}

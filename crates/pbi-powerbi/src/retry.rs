//! When to try a failed request again, and how long to wait: a pure decision, plus a sleep seam so
//! tests can move a virtual clock instead of waiting.

use crate::error::{ErrorKind, PowerBiError};
use futures_util::future::BoxFuture;
use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    Fixed(Duration),
    /// `base * 2^attempt`, at most `max`; with `jitter`, a random share of up to half is taken off.
    Exponential {
        base: Duration,
        max: Duration,
        jitter: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// 5xx answers and network errors (the default). 429 is always retried, honouring `Retry-After`.
    ServerAndNetwork,
    /// Every error, including 4xx (seed 004's "retry on all errors").
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Backoff,
    pub retry_on: RetryOn,
    /// The most the policy will wait in all; a longer `Retry-After` is returned to the caller as
    /// `Throttled` so a scheduler can park the job instead of holding a task asleep.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            backoff: Backoff::Exponential { base: Duration::from_millis(500), max: Duration::from_secs(30), jitter: true },
            retry_on: RetryOn::ServerAndNetwork,
            max_total_wait: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// For a person waiting on a page or an API answer: two quick retries within three seconds in all, so that
    /// an unavailable Power BI is said in seconds, not after minutes of backoff. A longer `Retry-After` is
    /// returned as `Throttled` at once (the caller says when to try again).
    pub fn interactive() -> Self {
        Self {
            max_retries: 2,
            backoff: Backoff::Exponential { base: Duration::from_millis(250), max: Duration::from_secs(1), jitter: true },
            retry_on: RetryOn::ServerAndNetwork,
            max_total_wait: Duration::from_secs(3),
        }
    }

    /// After failed attempt number `attempt` (0 for the first), having waited `waited` so far.
    pub fn decide(&self, attempt: u32, error: &PowerBiError, waited: Duration) -> Decision {
        if attempt >= self.max_retries {
            return Decision::GiveUp;
        }
        let wait = match &error.kind {
            ErrorKind::Throttled { retry_after } => *retry_after,
            ErrorKind::Service { .. } | ErrorKind::Transport(_) => self.backoff_for(attempt),
            ErrorKind::NotFound { .. }
            | ErrorKind::Unauthorized { .. }
            | ErrorKind::Forbidden { .. }
            | ErrorKind::BadRequest { .. }
            | ErrorKind::Decode { .. }
                if self.retry_on == RetryOn::All =>
            {
                self.backoff_for(attempt)
            }
            _ => return Decision::GiveUp,
        };
        if waited + wait > self.max_total_wait { Decision::GiveUp } else { Decision::RetryAfter(wait) }
    }

    fn backoff_for(&self, attempt: u32) -> Duration {
        match &self.backoff {
            Backoff::Fixed(d) => *d,
            Backoff::Exponential { base, max, jitter } => {
                let full = base.saturating_mul(2u32.saturating_pow(attempt.min(20))).min(*max);
                if *jitter { full.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..0.5)) } else { full }
            }
        }
    }
}

/// How the client waits between attempts. Tests plug in one that advances the sandbox's clock.
pub trait Sleep: Send + Sync {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_interactive_policy_gives_up_within_three_retries_and_three_seconds() {
        let policy = RetryPolicy::interactive();
        let outage = PowerBiError::new(ErrorKind::Service { status: 503, message: "down".into() });
        let mut waited = Duration::ZERO;
        let mut retries = 0;
        while let Decision::RetryAfter(wait) = policy.decide(retries, &outage, waited) {
            waited += wait;
            retries += 1;
        }
        assert_eq!(retries, 2);
        assert!(waited <= Duration::from_secs(3), "{waited:?}");
        let throttled = PowerBiError::new(ErrorKind::Throttled { retry_after: Duration::from_secs(10) });
        assert_eq!(policy.decide(0, &throttled, Duration::ZERO), Decision::GiveUp, "a long Retry-After goes back to the caller");
    }

    fn error(kind: ErrorKind) -> PowerBiError {
        PowerBiError::new(kind)
    }

    fn fixed(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff: Backoff::Fixed(Duration::from_secs(1)),
            retry_on: RetryOn::ServerAndNetwork,
            max_total_wait: Duration::from_secs(60),
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let throttled = error(ErrorKind::Throttled { retry_after: Duration::from_secs(30) });
        assert_eq!(fixed(3).decide(0, &throttled, Duration::ZERO), Decision::RetryAfter(Duration::from_secs(30)));
        assert_eq!(fixed(3).decide(1, &throttled, Duration::from_secs(31)), Decision::GiveUp, "past the total cap");
    }

    #[test]
    fn client_errors_are_retried_only_when_asked() {
        let bad = error(ErrorKind::BadRequest { status: 400, code: "InvalidRequest".into(), message: String::new() });
        assert_eq!(fixed(3).decide(0, &bad, Duration::ZERO), Decision::GiveUp);
        let all = RetryPolicy { retry_on: RetryOn::All, ..fixed(3) };
        assert_eq!(all.decide(0, &bad, Duration::ZERO), Decision::RetryAfter(Duration::from_secs(1)));
        let invalid = error(ErrorKind::Invalid("bad path".into()));
        assert_eq!(all.decide(0, &invalid, Duration::ZERO), Decision::GiveUp, "what was never sent is never retried");
    }

    #[test]
    fn server_errors_back_off_exponentially() {
        let policy = RetryPolicy {
            backoff: Backoff::Exponential { base: Duration::from_millis(100), max: Duration::from_secs(1), jitter: false },
            ..fixed(10)
        };
        let failed = error(ErrorKind::Service { status: 503, message: String::new() });
        let waits: Vec<Decision> = (0..5).map(|a| policy.decide(a, &failed, Duration::ZERO)).collect();
        let ms = |m| Decision::RetryAfter(Duration::from_millis(m));
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        assert_eq!(policy.decide(10, &failed, Duration::ZERO), Decision::GiveUp);
    }

    proptest! {
        #[test]
        fn jittered_waits_stay_within_half_and_full(attempt in 0u32..30) {
            let policy = RetryPolicy { backoff: Backoff::Exponential { base: Duration::from_millis(100), max: Duration::from_secs(30), jitter: true }, ..fixed(100) };
            let failed = error(ErrorKind::Transport("reset".into()));
            let full = Duration::from_millis(100).saturating_mul(2u32.saturating_pow(attempt.min(20))).min(Duration::from_secs(30));
            match policy.decide(attempt, &failed, Duration::ZERO) {
                Decision::RetryAfter(wait) => prop_assert!(wait <= full && wait >= full / 2),
                Decision::GiveUp => prop_assert!(full > Duration::from_secs(60)),
            }
        }
    }
}

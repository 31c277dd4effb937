//! A delivery as steps: clear the push table, then POST the rendered rows in batches of at most 10,000, each
//! when Power BI's limits allow (`pacing`). Replacing makes a retried delivery converge on exactly the rendered
//! rows. The progress is data, kept with the delivery between attempts: an attempt that snoozed until the
//! window had room goes on with the next batch; an attempt that ended any other way (its process died, an
//! error) leaves no clean mark, and the next one starts over with the clear.
//!
//! The protocol the delivery job keeps: store the progress `Progress::resume` gives before taking any step
//! (it carries no clean mark, so a crash from here on restarts the delivery), and store `paused()` when the
//! attempt snoozes. The property test below runs deliveries cut anywhere under that protocol.

use crate::pacing::{PushWindow, ROWS_PER_POST};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::time::Duration;
use time::OffsetDateTime;

/// Where a delivery is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The table was cleared by this delivery.
    pub cleared: bool,
    /// Rows POSTed so far (the next batch starts here).
    pub sent: usize,
    /// The rows the delivery renders (a resumed delivery checks it renders as many again).
    pub total: usize,
    /// The POSTs to this dataset in the last hour.
    pub window: PushWindow,
    /// The last attempt ended by snoozing, leaving this progress as it was: the next one may go on from it.
    pub clean_pause: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete every row of the push table.
    Clear,
    /// POST these rows (indexes into the rendered rows).
    Post(Range<usize>),
    /// Power BI's limits allow the next POST after this long.
    Wait(Duration),
    /// Every row is there.
    Done,
}

impl Progress {
    /// The progress an attempt starts from: the stored one if the last attempt paused cleanly and renders the
    /// same number of rows, else a fresh start (keeping the window: the POSTs made still count).
    pub fn resume(stored: Option<Progress>, total: usize) -> Progress {
        match stored {
            Some(p) if p.clean_pause && p.total == total => Progress { clean_pause: false, ..p },
            Some(p) => Progress { total, window: p.window, ..Progress::default() },
            None => Progress { total, ..Progress::default() },
        }
    }

    /// The next step at `now`.
    pub fn next(&self, now: OffsetDateTime) -> Step {
        if !self.cleared {
            return Step::Clear;
        }
        if self.sent >= self.total {
            return Step::Done;
        }
        let batch = (self.total - self.sent).min(ROWS_PER_POST);
        // The table holds what this delivery sent so far (it cleared it first).
        let wait = self.window.wait_before(now, batch, self.sent as u64);
        if wait > Duration::ZERO { Step::Wait(wait) } else { Step::Post(self.sent..self.sent + batch) }
    }

    /// Records that `step` was done at `now`.
    pub fn done(&mut self, step: &Step, now: OffsetDateTime) {
        match step {
            Step::Clear => self.cleared = true,
            Step::Post(range) => {
                self.window.record(now, range.len());
                self.sent = range.end;
            }
            Step::Wait(_) | Step::Done => {}
        }
    }

    /// Marks the progress as left by a snooze, for the next attempt to go on from.
    pub fn paused(mut self) -> Progress {
        self.clean_pause = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-02 09:00 UTC);

    /// Runs a delivery to the end on a simulated clock, snoozing at every wait; gives the POSTs' sizes and how
    /// long it took.
    fn run(total: usize, mut progress: Progress) -> (Vec<usize>, Duration) {
        let mut now = T0;
        let mut posts = Vec::new();
        loop {
            match progress.next(now) {
                Step::Done => break,
                Step::Wait(d) => {
                    // A snooze: the progress is stored, and the next attempt resumes it.
                    progress = Progress::resume(Some(progress.paused()), total);
                    now += d;
                }
                step => {
                    if let Step::Post(range) = &step {
                        posts.push(range.len());
                    }
                    progress.done(&step, now);
                    now += Duration::from_millis(200);
                }
            }
        }
        (posts, Duration::try_from(now - T0).unwrap_or_default())
    }

    #[test]
    fn a_hundred_rows_are_one_post_and_a_million_and_a_half_are_150_within_the_hours_limit() {
        let (posts, _) = run(100, Progress::resume(None, 100));
        assert_eq!(posts, [100]);
        let (posts, took) = run(1_500_000, Progress::resume(None, 1_500_000));
        assert_eq!(posts.len(), 150, "exactly ceil(rows / 10,000) POSTs");
        assert!(posts.iter().all(|n| *n == ROWS_PER_POST));
        // 1,000,000 rows an hour: the last 500,000 wait for the first POSTs to leave the hour.
        assert!(took >= Duration::from_secs(3600) && took < Duration::from_secs(2 * 3600), "{took:?}");
    }

    #[test]
    fn an_attempt_that_did_not_pause_cleanly_starts_over_with_the_clear() {
        let mut progress = Progress::resume(None, 30_000);
        for _ in 0..2 {
            let step = progress.next(T0);
            progress.done(&step, T0);
        }
        assert_eq!((progress.cleared, progress.sent), (true, 10_000));
        // The process died here: the stored progress has no clean mark.
        let again = Progress::resume(Some(progress.clone()), 30_000);
        assert_eq!((again.next(T0), again.window.posts_in_last_hour(T0)), (Step::Clear, 1), "cleared again; the POST made still counts");
        // A clean pause goes on with the next batch; a source that now renders other rows starts over.
        assert_eq!(Progress::resume(Some(progress.clone().paused()), 30_000).next(T0), Step::Post(10_000..20_000));
        assert_eq!(Progress::resume(Some(progress.paused()), 29_000).next(T0), Step::Clear);
    }

    proptest! {
        /// Whatever the size, and wherever attempts are cut (a crash: nothing more is stored), the table ends
        /// with exactly the rendered rows. What an attempt stores, as the delivery job does: its starting
        /// progress at once (without the clean mark), and its progress with the mark when it snoozes.
        #[test]
        fn a_delivery_cut_anywhere_converges_on_exactly_the_rendered_rows(
            total in 0usize..60_000,
            cuts in prop::collection::vec(0usize..8, 0..6),
            snooze_every in 1usize..4,
        ) {
            let mut table = 0usize;
            let mut stored: Option<Progress> = None;
            let mut now = T0;
            let mut attempts = cuts.into_iter().map(Some).chain(std::iter::repeat(None));
            for _ in 0..500 {
                let steps_before_crash = attempts.next().flatten();
                let mut progress = Progress::resume(stored.take(), total);
                stored = Some(progress.clone());
                let mut taken = 0;
                let finished = loop {
                    if steps_before_crash == Some(taken) {
                        break false;
                    }
                    let step = progress.next(now);
                    match &step {
                        Step::Done => break true,
                        Step::Wait(d) => {
                            now += *d;
                            stored = Some(progress.clone().paused());
                            break false;
                        }
                        Step::Clear => table = 0,
                        Step::Post(range) => table += range.len(),
                    }
                    progress.done(&step, now);
                    taken += 1;
                    now += Duration::from_millis(100);
                    // Now and then the attempt snoozes of its own accord (as for a 429), storing its progress.
                    if taken % (snooze_every * 3) == 0 {
                        stored = Some(progress.clone().paused());
                        break false;
                    }
                };
                if finished {
                    break;
                }
            }
            prop_assert_eq!(table, total);
        }
    }
}

//! Power BI's push limits for one dataset, kept by pbi-bridge so that a delivery waits its turn instead of
//! meeting a 429 (POWERBI.md §4, "Push semantic model limitations"): at most 10,000 rows a POST; 120 POSTs a
//! minute; 120 POSTs an hour once a table holds 250,000 rows or more; 1,000,000 rows added an hour. Windows are
//! taken as sliding (Microsoft does not say), with a second's margin so that a clock a little apart from the
//! service's does not meet the edge.
//!
//! The window is data: a delivery keeps it with its progress, so that a delivery spread over several attempts
//! (it snoozed until the window had room) goes on counting what it already sent.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;
use time::OffsetDateTime;

pub const ROWS_PER_POST: usize = 10_000;
pub const POSTS_PER_MINUTE: usize = 120;
pub const POSTS_PER_HOUR_FOR_LARGE_TABLES: usize = 120;
pub const LARGE_TABLE_ROWS: u64 = 250_000;
pub const ROWS_PER_HOUR: u64 = 1_000_000;
const MARGIN_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// The POSTs made to one dataset in the last hour, oldest first: (Unix milliseconds, rows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushWindow {
    posts: VecDeque<(i64, u32)>,
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl PushWindow {
    /// How long to wait before POSTing `rows` more rows to a table that holds `table_rows` now (zero: now).
    pub fn wait_before(&self, now: OffsetDateTime, rows: usize, table_rows: u64) -> Duration {
        let now_ms = millis(now);
        let mut earliest = now_ms;
        // The minute's count: the oldest of the last 120 POSTs must have left the minute.
        earliest = earliest.max(self.room_for_one_more(now_ms, MINUTE_MS, POSTS_PER_MINUTE));
        if table_rows + rows as u64 >= LARGE_TABLE_ROWS {
            earliest = earliest.max(self.room_for_one_more(now_ms, HOUR_MS, POSTS_PER_HOUR_FOR_LARGE_TABLES));
        }
        earliest = earliest.max(self.room_for_rows(now_ms, rows as u64));
        Duration::from_millis(u64::try_from(earliest - now_ms).unwrap_or(0))
    }

    /// The earliest instant at which fewer than `limit` POSTs lie within `span` before it.
    fn room_for_one_more(&self, now_ms: i64, span: i64, limit: usize) -> i64 {
        let recent: Vec<i64> = self.posts.iter().map(|(at, _)| *at).filter(|at| *at > now_ms - span - MARGIN_MS).collect();
        if recent.len() < limit {
            return now_ms;
        }
        // Once the (len - limit + 1)th oldest has left the span, `limit - 1` remain.
        recent[recent.len() - limit] + span + MARGIN_MS
    }

    /// The earliest instant at which the rows of the last hour plus `rows` stay within the hour's limit.
    fn room_for_rows(&self, now_ms: i64, rows: u64) -> i64 {
        let recent: Vec<(i64, u64)> =
            self.posts.iter().filter(|(at, _)| *at > now_ms - HOUR_MS - MARGIN_MS).map(|(at, n)| (*at, u64::from(*n))).collect();
        let mut total: u64 = recent.iter().map(|(_, n)| n).sum::<u64>() + rows;
        if total <= ROWS_PER_HOUR {
            return now_ms;
        }
        for (at, n) in &recent {
            total -= n;
            if total <= ROWS_PER_HOUR {
                return at + HOUR_MS + MARGIN_MS;
            }
        }
        now_ms
    }

    /// Notes a POST just made, and forgets what has left the hour.
    pub fn record(&mut self, at: OffsetDateTime, rows: usize) {
        let at_ms = millis(at);
        while self.posts.front().is_some_and(|(t, _)| *t <= at_ms - HOUR_MS - MARGIN_MS) {
            self.posts.pop_front();
        }
        self.posts.push_back((at_ms, u32::try_from(rows).unwrap_or(u32::MAX)));
    }

    pub fn posts_in_last_hour(&self, now: OffsetDateTime) -> usize {
        let now_ms = millis(now);
        self.posts.iter().filter(|(at, _)| *at > now_ms - HOUR_MS).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-02 09:00 UTC);

    fn at(seconds: f64) -> OffsetDateTime {
        T0 + time::Duration::seconds_f64(seconds)
    }

    #[test]
    fn the_121st_post_of_a_minute_waits_for_the_first_to_leave_it() {
        let mut window = PushWindow::default();
        for i in 0..120 {
            assert_eq!(window.wait_before(at(f64::from(i) * 0.1), 100, 0), Duration::ZERO, "post {i}");
            window.record(at(f64::from(i) * 0.1), 100);
        }
        assert_eq!(window.wait_before(at(12.0), 100, 0), Duration::from_secs(49), "the first left at 60 s (+1 s margin)");
    }

    #[test]
    fn a_large_table_allows_120_posts_an_hour_and_any_table_a_million_rows() {
        let mut window = PushWindow::default();
        for i in 0..120 {
            window.record(at(f64::from(i)), 10);
        }
        assert_eq!(window.wait_before(at(200.0), 10, 10_000), Duration::ZERO, "a small table: the minute's limit only");
        assert_eq!(window.wait_before(at(200.0), 10, 300_000), Duration::from_secs(3401), "a large one waits for the hour");

        let mut rows = PushWindow::default();
        for i in 0..100 {
            rows.record(at(f64::from(i) * 30.0), ROWS_PER_POST);
        }
        assert_eq!(
            rows.wait_before(at(3000.0), 1, 0),
            Duration::from_secs(601),
            "a million rows sent: wait for the first POST to leave the hour"
        );
    }

    proptest! {
        /// Whatever the POSTs so far, sending when the pacer says so never breaks a limit, counted afterwards
        /// over every sliding minute and hour. Deliveries replace their rows, so the table is emptied now and
        /// then (which lifts the hourly POST limit of large tables and leaves the rows' limit to bind).
        #[test]
        fn following_the_pacer_keeps_every_limit(
            batches in prop::collection::vec((1usize..=ROWS_PER_POST, 0u64..2000, prop::bool::weighted(0.05)), 1..400),
        ) {
            let mut window = PushWindow::default();
            let mut now = T0;
            let mut sent: Vec<(OffsetDateTime, usize)> = Vec::new();
            let mut table_rows = 0u64;
            for (rows, gap_ms, emptied) in batches {
                now += time::Duration::milliseconds(gap_ms as i64);
                if emptied {
                    table_rows = 0;
                }
                now += window.wait_before(now, rows, table_rows);
                window.record(now, rows);
                sent.push((now, rows));
                table_rows += rows as u64;
            }
            for (i, (start, _)) in sent.iter().enumerate() {
                let minute = sent[i..].iter().take_while(|(t, _)| *t - *start < time::Duration::MINUTE).count();
                prop_assert!(minute <= POSTS_PER_MINUTE);
                let hour_rows: usize = sent[i..].iter().take_while(|(t, _)| *t - *start < time::Duration::HOUR).map(|(_, n)| n).sum();
                prop_assert!(hour_rows as u64 <= ROWS_PER_HOUR, "{hour_rows} rows within an hour from post {i}");
            }
        }
    }
}

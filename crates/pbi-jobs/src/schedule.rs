//! When a schedule runs next: a cron expression (five fields, or six with seconds) or a fixed interval, in an
//! IANA time zone. Pure: the caller passes "now" (from pbi-bridge's clock), so tests never wait.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::time::Duration;
use time::OffsetDateTime;

/// A schedule that cannot be used, said in terms of the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron: '{expression}' is not a cron expression ({reason}); use five fields (minute hour day month weekday) or six with seconds first, such as '30 2 * * *'"
    )]
    Cron { expression: String, reason: String },
    #[error("timeZone: '{0}' is not an IANA time zone; use a name such as Europe/Berlin or UTC")]
    TimeZone(String),
    #[error("interval: an interval must be at least 1 second and at most 366 days (got {0:?})")]
    Interval(Duration),
    #[error("cron: '{0}' never runs")]
    Never(String),
}

/// How often a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// At the times a cron expression names, read in the schedule's time zone.
    Cron(Box<croner::Cron>),
    /// Every so long, counted from the previous occurrence.
    Every(Duration),
}

/// A parsed schedule: its recurrence and the zone its cron fields are read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    recurrence: Recurrence,
    zone: TimeZone,
    zone_name: String,
}

const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);

impl Schedule {
    /// A cron schedule. `expression` may start with `CRON_TZ=<zone> ` (or `TZ=`), which wins over `zone`.
    pub fn cron(expression: &str, zone: &str) -> Result<Self, ScheduleError> {
        let trimmed = expression.trim();
        let (zone, fields) = match trimmed.split_once(char::is_whitespace) {
            Some((prefix, rest)) if prefix.starts_with("CRON_TZ=") || prefix.starts_with("TZ=") => {
                (prefix.split_once('=').map_or(zone, |(_, z)| z), rest.trim())
            }
            _ => (zone, trimmed),
        };
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let cron = parser.parse(fields).map_err(|e| ScheduleError::Cron { expression: expression.to_owned(), reason: e.to_string() })?;
        let schedule = Self { recurrence: Recurrence::Cron(Box::new(cron)), zone: parse_zone(zone)?, zone_name: zone.to_owned() };
        // A pattern such as "0 0 31 2 *" parses but never matches: refuse it now, not at its first run.
        schedule.next_after(OffsetDateTime::UNIX_EPOCH).ok_or_else(|| ScheduleError::Never(expression.to_owned()))?;
        Ok(schedule)
    }

    /// Every `interval` (1 s to 366 days); the zone only labels it.
    pub fn every(interval: Duration, zone: &str) -> Result<Self, ScheduleError> {
        if interval < Duration::from_secs(1) || interval > MAX_INTERVAL {
            return Err(ScheduleError::Interval(interval));
        }
        Ok(Self { recurrence: Recurrence::Every(interval), zone: parse_zone(zone)?, zone_name: zone.to_owned() })
    }

    pub fn recurrence(&self) -> &Recurrence {
        &self.recurrence
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The first occurrence strictly after `after`, or `None` if there is none (within croner's search limit).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match &self.recurrence {
            Recurrence::Every(interval) => after.checked_add(time::Duration::try_from(*interval).ok()?),
            Recurrence::Cron(cron) => {
                let start = to_timestamp(after)?.to_zoned(self.zone.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                from_timestamp(next.timestamp())
            }
        }
    }

    /// The occurrence to run after one that was due at `due`, never in the past of `now`: a schedule that was
    /// down for a week runs once on its return, not once per missed occurrence.
    pub fn next_from(&self, due: OffsetDateTime, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let next = self.next_after(due)?;
        if next > now { Some(next) } else { self.next_after(now) }
    }
}

fn parse_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    if name.trim().is_empty() {
        return Err(ScheduleError::TimeZone(name.to_owned()));
    }
    TimeZone::get(name.trim()).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
}

fn to_timestamp(at: OffsetDateTime) -> Option<Timestamp> {
    Timestamp::from_nanosecond(at.unix_timestamp_nanos()).ok()
}

fn from_timestamp(at: Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).ok()
}

impl Schedule {
    /// A recurrence as written (and as stored): `every <n>s|m|h|d`, or a cron expression; in `zone`.
    pub fn parse(recurrence: &str, zone: &str) -> Result<Self, ScheduleError> {
        match recurrence.trim().strip_prefix("every ") {
            Some(interval) => Self::every(parse_interval(interval.trim())?, zone),
            None => Self::cron(recurrence, zone),
        }
    }
}

/// `90s`, `15m`, `6h`, `1d`.
pub fn parse_interval(text: &str) -> Result<Duration, ScheduleError> {
    let bad = || ScheduleError::Interval(Duration::ZERO);
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(schedule: &Schedule, after: OffsetDateTime) -> OffsetDateTime {
        schedule.next_after(after).expect("a next occurrence")
    }

    #[test]
    fn five_and_six_field_expressions() {
        let daily = Schedule::cron("30 2 * * *", "UTC").expect("five fields");
        assert_eq!(at(&daily, datetime!(2026-12-01 03:00 UTC)), datetime!(2026-12-02 02:30 UTC));
        let seconds = Schedule::cron("15 * * * * *", "UTC").expect("six fields");
        assert_eq!(at(&seconds, datetime!(2026-12-01 03:00:20 UTC)), datetime!(2026-12-01 03:01:15 UTC));
    }

    #[test]
    fn cron_fields_are_read_in_the_schedules_zone_and_cron_tz_wins() {
        let berlin = Schedule::cron("0 9 * * *", "Europe/Berlin").expect("parses");
        assert_eq!(at(&berlin, datetime!(2026-12-01 00:00 UTC)), datetime!(2026-12-01 08:00 UTC), "09:00 CET");
        let prefixed = Schedule::cron("CRON_TZ=America/New_York 0 9 * * *", "Europe/Berlin").expect("parses");
        assert_eq!(at(&prefixed, datetime!(2026-12-01 00:00 UTC)), datetime!(2026-12-01 14:00 UTC), "09:00 EST");
        assert_eq!(prefixed.zone_name(), "America/New_York");
    }

    /// 02:30 every day runs exactly once on the day the clocks skip 02:00–03:00 and on the day they repeat
    /// 02:00–03:00 (Europe/Berlin: 29 March and 25 October 2026).
    #[test]
    fn a_0230_daily_job_runs_once_on_both_daylight_saving_change_days() {
        let daily = Schedule::cron("30 2 * * *", "Europe/Berlin").expect("parses");
        for (day_before, change_day) in [
            (datetime!(2026-03-28 12:00 UTC), time::macros::date!(2026 - 03 - 29)),
            (datetime!(2026-10-24 12:00 UTC), time::macros::date!(2026 - 10 - 25)),
        ] {
            let mut runs = Vec::new();
            let mut t = day_before;
            for _ in 0..4 {
                t = at(&daily, t);
                runs.push(t);
            }
            let on_change_day = runs.iter().filter(|r| r.to_offset(berlin_offset(**r)).date() == change_day).count();
            assert_eq!(on_change_day, 1, "{runs:?}");
            let days: Vec<_> = runs.iter().map(|r| r.to_offset(berlin_offset(*r)).date()).collect();
            assert!(days.windows(2).all(|w| w[1] == w[0].next_day().expect("day")), "one run a day: {runs:?}");
        }
    }

    fn berlin_offset(at: OffsetDateTime) -> time::UtcOffset {
        let zone = TimeZone::get("Europe/Berlin").expect("zone");
        let seconds = zone.to_offset(to_timestamp(at).expect("ts")).seconds();
        time::UtcOffset::from_whole_seconds(seconds).expect("offset")
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(matches!(Schedule::cron("61 * * * *", "UTC"), Err(ScheduleError::Cron { .. })));
        assert!(matches!(Schedule::cron("not cron", "UTC"), Err(ScheduleError::Cron { .. })));
        assert!(matches!(Schedule::cron("0 0 31 2 *", "UTC"), Err(ScheduleError::Never(_))));
        assert_eq!(Schedule::cron("0 9 * * *", "Mars/Olympus").err(), Some(ScheduleError::TimeZone("Mars/Olympus".into())));
        assert!(Schedule::cron("0 9 * * *", "Mars/Olympus").expect_err("refused").to_string().starts_with("timeZone:"));
        assert!(matches!(Schedule::every(Duration::ZERO, "UTC"), Err(ScheduleError::Interval(_))));
        assert!(parse_interval("5x").is_err() && parse_interval("m").is_err() && parse_interval("99999999999999999999d").is_err());
        assert_eq!(parse_interval("15m"), Ok(Duration::from_secs(900)));
    }

    #[test]
    fn a_schedule_back_from_a_long_outage_runs_once_then_keeps_its_rhythm() {
        let hourly = Schedule::cron("0 * * * *", "UTC").expect("parses");
        let due = datetime!(2026-12-01 10:00 UTC);
        let now = datetime!(2026-12-08 10:20 UTC);
        assert_eq!(hourly.next_from(due, now), Some(datetime!(2026-12-08 11:00 UTC)));
        let every = Schedule::every(Duration::from_secs(86_400), "UTC").expect("daily");
        assert_eq!(every.next_from(due, datetime!(2026-12-01 10:05 UTC)), Some(datetime!(2026-12-02 10:00 UTC)));
    }

    proptest::proptest! {
        /// Whatever the expression and the instant, the next occurrence is later, and it matches the expression.
        #[test]
        fn the_next_occurrence_is_later_and_matches(
            minute in 0u8..60, hour in 0u8..24, step in 1u8..30,
            after in 0i64..4_000_000_000,
            zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
        ) {
            let t = OffsetDateTime::from_unix_timestamp(after).expect("instant");
            for expression in [format!("{minute} {hour} * * *"), format!("*/{step} * * * *"), format!("{minute} {hour} * * 1-5")] {
                let schedule = Schedule::cron(&expression, zone).expect("valid");
                let next = schedule.next_after(t).expect("next");
                proptest::prop_assert!(next > t, "{expression} in {zone}: {next} after {t}");
                proptest::prop_assert!(next - t <= time::Duration::days(8), "{expression}: {next} after {t}");
                let Recurrence::Cron(cron) = schedule.recurrence() else { panic!("a cron schedule") };
                let tz = TimeZone::get(zone).expect("zone");
                let local = to_timestamp(next).expect("ts").to_zoned(tz.clone());
                // A time the clocks skip when summer time starts (02:30 in New York one March night) runs at the
                // first time after the gap, which does not match the expression's hour.
                let hour_before = to_timestamp(next - time::Duration::hours(1)).expect("ts").to_zoned(tz);
                let after_a_gap = hour_before.offset() < local.offset();
                proptest::prop_assert!(
                    cron.is_time_matching(&local).unwrap_or(false) || after_a_gap,
                    "{expression} in {zone} at {local}"
                );
            }
        }
    }
}

//! How often a pin is delivered, as the pin dialog offers it: hourly, daily at a time, weekly on chosen days at
//! a time, or a cron expression; always in the user's IANA time zone. Each becomes a cron schedule of
//! `pbi-jobs`, so the engine computes every occurrence (daylight-saving changes included) the same way.

use pbi_jobs::schedule::{Schedule, ScheduleError};
use serde::{Deserialize, Serialize};

/// A day of the week, as cron numbers them (Sunday 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

impl Weekday {
    pub const ALL: [Weekday; 7] =
        [Weekday::Sunday, Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday, Weekday::Saturday];

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|d| {
            let name = format!("{d:?}").to_ascii_lowercase();
            name == text || (text.len() == 3 && name.starts_with(&text))
        })
    }

    fn cron_number(self) -> u8 {
        self as u8
    }
}

/// A time of day, minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    /// `HH:MM`, 00:00 to 23:59.
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.trim().split_once(':')?;
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (h.len() <= 2 && m.len() == 2 && hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// How often, before the time zone is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "every", rename_all = "lowercase")]
pub enum Frequency {
    /// Every hour at this minute past.
    Hourly {
        minute: u8,
    },
    Daily {
        at: TimeOfDay,
    },
    Weekly {
        days: Vec<Weekday>,
        at: TimeOfDay,
    },
    Cron {
        expression: String,
    },
}

/// What is wrong with a frequency, naming the field (`frequency`, `time`, `days`, `minute`, `cron`, `timeZone`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FrequencyError {
    pub field: &'static str,
    pub message: String,
}

impl Frequency {
    /// From the pin dialog's fields: `every` is `hourly`, `daily`, `weekly` or `cron`; the others as each needs.
    pub fn parse(every: &str, time: &str, days: &[String], minute: &str, cron: &str) -> Result<Self, FrequencyError> {
        let at = || {
            TimeOfDay::parse(time).ok_or_else(|| FrequencyError {
                field: "time",
                message: format!("'{time}' is not a time of day; use HH:MM, such as 07:30."),
            })
        };
        match every.trim().to_ascii_lowercase().as_str() {
            "hourly" => {
                let minute = if minute.trim().is_empty() { Ok(0) } else { minute.trim().parse::<u8>().map_err(|_| ()) }
                    .ok()
                    .filter(|m| *m < 60)
                    .ok_or_else(|| FrequencyError {
                        field: "minute",
                        message: format!("'{minute}' is not a minute past the hour; use 0 to 59."),
                    })?;
                Ok(Frequency::Hourly { minute })
            }
            "daily" => Ok(Frequency::Daily { at: at()? }),
            "weekly" => {
                let mut parsed = days
                    .iter()
                    .map(|d| {
                        Weekday::parse(d)
                            .ok_or_else(|| FrequencyError { field: "days", message: format!("'{d}' is not a day of the week.") })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                parsed.sort();
                parsed.dedup();
                if parsed.is_empty() {
                    return Err(FrequencyError { field: "days", message: "Choose at least one day of the week.".into() });
                }
                Ok(Frequency::Weekly { days: parsed, at: at()? })
            }
            "cron" if cron.trim().is_empty() => {
                Err(FrequencyError { field: "cron", message: "Enter a cron expression, such as 30 2 * * 1-5.".into() })
            }
            "cron" => Ok(Frequency::Cron { expression: cron.trim().to_owned() }),
            other => Err(FrequencyError {
                field: "frequency",
                message: format!("'{other}' is not a frequency; use hourly, daily, weekly or cron."),
            }),
        }
    }

    /// The cron expression (five fields) this frequency runs on.
    pub fn cron_expression(&self) -> String {
        match self {
            Frequency::Hourly { minute } => format!("{minute} * * * *"),
            Frequency::Daily { at } => format!("{} {} * * *", at.minute, at.hour),
            Frequency::Weekly { days, at } => {
                let days: Vec<String> = days.iter().map(|d| d.cron_number().to_string()).collect();
                format!("{} {} * * {}", at.minute, at.hour, days.join(","))
            }
            Frequency::Cron { expression } => expression.clone(),
        }
    }

    /// The engine's schedule, in `time_zone`.
    pub fn schedule(&self, time_zone: &str) -> Result<Schedule, FrequencyError> {
        Schedule::cron(&self.cron_expression(), time_zone).map_err(|e| FrequencyError {
            field: match e {
                ScheduleError::TimeZone(_) => "timeZone",
                _ => "cron",
            },
            message: e.to_string(),
        })
    }

    /// Said as people say it ("Weekly on Monday, Friday at 07:30"), for My Subscriptions.
    pub fn describe(&self) -> String {
        match self {
            Frequency::Hourly { minute: 0 } => "Hourly, on the hour".into(),
            Frequency::Hourly { minute } => format!("Hourly, at {minute} past"),
            Frequency::Daily { at } => format!("Daily at {at}"),
            Frequency::Weekly { days, at } => {
                let names: Vec<String> = days.iter().map(|d| format!("{d:?}")).collect();
                format!("Weekly on {} at {at}", names.join(", "))
            }
            Frequency::Cron { expression } => format!("Cron: {expression}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn the_dialogs_choices_become_cron_in_the_users_zone() {
        let weekly = Frequency::parse("weekly", "07:30", &["fri".into(), "Monday".into(), "mon".into()], "", "").expect("weekly");
        assert_eq!(
            (weekly.cron_expression(), weekly.describe()),
            ("30 7 * * 1,5".to_owned(), "Weekly on Monday, Friday at 07:30".to_owned())
        );
        let schedule = weekly.schedule("Europe/Berlin").expect("schedule");
        // Monday 2026-12-07 07:30 in Berlin (UTC+1) is 06:30 UTC.
        assert_eq!(schedule.next_after(datetime!(2026-12-02 12:00 UTC)), Some(datetime!(2026-12-04 06:30 UTC)), "Friday first");
        assert_eq!(Frequency::parse("hourly", "", &[], "15", "").expect("hourly").cron_expression(), "15 * * * *");
        assert_eq!(Frequency::parse("daily", "7:05", &[], "", "").expect("daily").cron_expression(), "5 7 * * *");
    }

    #[test]
    fn each_fault_names_its_field() {
        let field = |every: &str, time: &str, days: &[&str], minute: &str, cron: &str| {
            let days: Vec<String> = days.iter().map(|d| (*d).to_owned()).collect();
            Frequency::parse(every, time, &days, minute, cron).expect_err("refused").field
        };
        assert_eq!(field("monthly", "", &[], "", ""), "frequency");
        assert_eq!(field("daily", "25:00", &[], "", ""), "time");
        assert_eq!(field("weekly", "07:00", &[], "", ""), "days");
        assert_eq!(field("weekly", "07:00", &["funday"], "", ""), "days");
        assert_eq!(field("hourly", "", &[], "60", ""), "minute");
        assert_eq!(field("cron", "", &[], "", " "), "cron");
        let bad_cron = Frequency::parse("cron", "", &[], "", "every day").expect("parsed");
        assert_eq!(bad_cron.schedule("UTC").expect_err("refused").field, "cron");
        assert_eq!(
            Frequency::Daily { at: TimeOfDay { hour: 1, minute: 0 } }.schedule("Mars/Olympus").expect_err("refused").field,
            "timeZone"
        );
    }

    proptest! {
        /// Every time of day the dialog can send either parses to itself or is refused; none panics.
        #[test]
        fn times_of_day_parse_to_themselves(text in "[0-9:]{0,6}") {
            if let Some(at) = TimeOfDay::parse(&text) {
                prop_assert!(at.hour < 24 && at.minute < 60);
                prop_assert_eq!(TimeOfDay::parse(&at.to_string()), Some(at));
            }
        }

        /// Any daily or weekly choice makes a schedule that runs.
        #[test]
        fn every_daily_and_weekly_choice_runs(hour in 0u8..24, minute in 0u8..60, days in prop::collection::vec(0usize..7, 1..7)) {
            let at = TimeOfDay { hour, minute };
            let days: Vec<Weekday> = days.into_iter().map(|d| Weekday::ALL[d]).collect();
            for frequency in [Frequency::Daily { at }, Frequency::Weekly { days: days.clone(), at }] {
                let schedule = frequency.schedule("America/New_York").expect("schedule");
                prop_assert!(schedule.next_after(datetime!(2026-12-02 00:00 UTC)).is_some());
            }
        }
    }
}

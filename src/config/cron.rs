//! Cron schedules in the standard 5-field form users write (`0 * * * *`).
//!
//! `croner` follows POSIX/Vixie cron (day-of-week 0 or 7 = Sunday) and also
//! accepts an optional seconds field; relbot accepts exactly five fields (or
//! an `@hourly`-style alias) so a schedule means what it does in crontab(5).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone)]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl CronSchedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && fields != 5 {
            return Err(format!(
                "bad cron expression {text:?}: expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        let cron =
            Cron::from_str(trimmed).map_err(|e| format!("bad cron expression {text:?}: {e}"))?;
        Ok(Self {
            text: trimmed.to_string(),
            cron,
        })
    }

    /// The first time strictly after `after` that the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn hourly_fires_on_the_hour() {
        let s = CronSchedule::parse("0 * * * *").unwrap();
        let next = s.next_after(at(2026, 11, 23, 10, 15)).unwrap();
        assert_eq!((next.hour(), next.minute()), (11, 0));
    }

    #[test]
    fn day_of_week_zero_and_seven_are_sunday_one_is_monday() {
        // 2026-11-23 is a Monday.
        let monday = at(2026, 11, 23, 0, 30);
        assert_eq!(monday.weekday(), Weekday::Mon);
        for (expr, want) in [
            ("0 9 * * 0", Weekday::Sun),
            ("0 9 * * 7", Weekday::Sun),
            ("0 9 * * 1", Weekday::Mon),
            ("0 9 * * 5", Weekday::Fri),
        ] {
            let next = CronSchedule::parse(expr)
                .unwrap()
                .next_after(monday)
                .unwrap();
            assert_eq!(next.weekday(), want, "{expr}");
            assert_eq!(next.hour(), 9, "{expr}");
        }
    }

    #[test]
    fn rejects_seconds_field_and_garbage() {
        assert!(
            CronSchedule::parse("0 0 * * * *")
                .unwrap_err()
                .contains("expected 5 fields")
        );
        assert!(CronSchedule::parse("61 * * * *").is_err());
        assert!(CronSchedule::parse("every hour").is_err());
    }

    #[test]
    fn accepts_aliases() {
        assert!(CronSchedule::parse("@hourly").is_ok());
        assert!(CronSchedule::parse("@daily").is_ok());
    }
}

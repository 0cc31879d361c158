//! Durations written the way users write them: `30s`, `3m`, `1h30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive duration parsed from a human string (`humantime` syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("bad duration {text:?}: {e} (write e.g. 30s, 3m, 1h30m)"))?;
        if d.is_zero() {
            return Err(format!("bad duration {text:?}: must be greater than zero"));
        }
        Ok(Self(d))
    }

    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            ConfigDuration::parse("3m").unwrap().0,
            Duration::from_secs(180)
        );
        assert_eq!(
            ConfigDuration::parse("1h30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert_eq!(
            ConfigDuration::parse("30s").unwrap().0,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn rejects_garbage_and_zero() {
        assert!(ConfigDuration::parse("3 minutes please").is_err());
        assert!(
            ConfigDuration::parse("0s")
                .unwrap_err()
                .contains("greater than zero")
        );
    }
}

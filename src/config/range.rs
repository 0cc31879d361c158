//! Version ranges as Flux and Renovate users write them.
//!
//! Accepted: space- or comma-separated comparators (`>=1.2.0 <2.0.0`),
//! tilde and caret (`~1.2`, `^0.3`), wildcards (`1.x`, `1.2.*`, `*`), exact
//! versions (`1.2.3`, `=1.2.3`), hyphen ranges (`1.2.3 - 2.0.0`) and
//! alternatives joined by `||`. Each alternative is handed to the `semver`
//! crate once normalised to its comma syntax.

use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone)]
pub struct VersionRange {
    text: String,
    alternatives: Vec<VersionReq>,
}

impl VersionRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: String| format!("bad semver range {text:?}: {why}");
        let mut alternatives = Vec::new();
        for alt in text.split("||") {
            let normalised = normalise(alt.trim()).map_err(bad)?;
            let req = VersionReq::parse(&normalised).map_err(|e| bad(e.to_string()))?;
            alternatives.push(req);
        }
        Ok(Self {
            text: text.trim().to_string(),
            alternatives,
        })
    }

    /// Whether `version` is inside the range. With `include_prerelease`, a
    /// pre-release matches when its release version would (so `1.3.0-rc.1`
    /// is inside `>=1.0.0 <2.0.0`); without it, pre-releases never match.
    pub fn matches(&self, version: &Version, include_prerelease: bool) -> bool {
        if !version.pre.is_empty() {
            if !include_prerelease {
                return false;
            }
            let release = Version::new(version.major, version.minor, version.patch);
            return self
                .alternatives
                .iter()
                .any(|r| r.matches(version) || r.matches(&release));
        }
        self.alternatives.iter().any(|r| r.matches(version))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Turns `>= 1.2 <2` / `1.2.3 - 2.0.0` into `>=1.2, <2` / `>=1.2.3, <=2.0.0`.
fn normalise(alt: &str) -> Result<String, String> {
    if alt.is_empty() {
        return Err("empty range".into());
    }
    let tokens: Vec<&str> = alt.split([' ', ',']).filter(|t| !t.is_empty()).collect();
    if let [low, "-", high] = tokens.as_slice() {
        return Ok(format!(">={low}, <={high}"));
    }
    let mut comparators = Vec::new();
    let mut pending_op: Option<&str> = None;
    for token in tokens {
        let is_op = matches!(token, ">=" | "<=" | ">" | "<" | "=" | "~" | "^");
        match (pending_op.take(), is_op) {
            (None, true) => pending_op = Some(token),
            (Some(op), false) => comparators.push(format!("{op}{}", strip_v(token))),
            (None, false) => comparators.push(bare_means_exact(strip_v_after_op(token))),
            (Some(op), true) => {
                return Err(format!("operator {op:?} is followed by another operator"));
            }
        }
    }
    if let Some(op) = pending_op {
        return Err(format!("operator {op:?} has no version"));
    }
    Ok(comparators.join(", "))
}

/// The `semver` crate reads a bare `1.2.3` as `^1.2.3` (Cargo's rule); Flux,
/// Renovate and npm read it as exactly `1.2.3`, and `1.2` as `1.2.x`. An
/// explicit `=` gives that (`=1.2` is `>=1.2.0 <1.3.0` in the crate too).
/// Wildcards (`1.x`, `*`) already mean what they say.
fn bare_means_exact(token: String) -> String {
    let has_op = token.starts_with(['>', '<', '=', '~', '^']);
    let has_wildcard = token.split('.').any(|part| matches!(part, "x" | "X" | "*"));
    if has_op || has_wildcard {
        token
    } else {
        format!("={token}")
    }
}

fn strip_v(version: &str) -> &str {
    version.strip_prefix(['v', 'V']).unwrap_or(version)
}

fn strip_v_after_op(token: &str) -> String {
    let op_len = token
        .find(|c: char| !matches!(c, '>' | '<' | '=' | '~' | '^'))
        .unwrap_or(token.len());
    let (op, version) = token.split_at(op_len);
    format!("{op}{}", strip_v(version))
}

impl PartialEq for VersionRange {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for VersionRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn inside(range: &str, version: &str) -> bool {
        VersionRange::parse(range)
            .unwrap()
            .matches(&v(version), false)
    }

    #[test]
    fn space_separated_and() {
        assert!(!inside(">=0.1.0 <1.0.0", "0.0.18"));
        assert!(inside(">=0.1.0 <1.0.0", "0.9.9"));
        assert!(!inside(">=0.1.0 <1.0.0", "1.0.0"));
        assert!(inside(">= 1.2 < 2", "1.9.0"));
    }

    #[test]
    fn tilde_caret_wildcards() {
        assert!(inside("~1.2", "1.2.9") && !inside("~1.2", "1.3.0"));
        assert!(inside("^0.3", "0.3.7") && !inside("^0.3", "0.4.0"));
        assert!(inside("1.x", "1.99.0") && !inside("1.x", "2.0.0"));
        assert!(inside("1.2.*", "1.2.5"));
        assert!(inside("*", "7.0.0"));
    }

    #[test]
    fn or_and_hyphen_ranges() {
        assert!(inside("~1.2 || ^3.0", "3.4.0"));
        assert!(!inside("~1.2 || ^3.0", "2.0.0"));
        assert!(inside("1.2.3 - 2.0.0", "2.0.0") && !inside("1.2.3 - 2.0.0", "2.0.1"));
    }

    #[test]
    fn bare_versions_are_exact_or_partial_not_caret() {
        assert!(inside("1.2.3", "1.2.3") && !inside("1.2.3", "1.2.4") && !inside("1.2.3", "1.9.0"));
        assert!(inside("v1.2.3", "1.2.3"));
        assert!(inside("1.2", "1.2.7") && !inside("1.2", "1.3.0"));
        assert!(inside("1", "1.9.0") && !inside("1", "2.0.0"));
        assert!(inside("1.X", "1.1.1") && inside("1.2.x", "1.2.9"));
        assert!(inside("1.2.3 || 2.0.0", "2.0.0") && !inside("1.2.3 || 2.0.0", "2.0.1"));
    }

    #[test]
    fn comma_separated_and_v_prefixed_bounds() {
        assert!(inside(">=v1.2.0, <v2", "1.5.0") && !inside(">=v1.2.0, <v2", "2.0.0"));
        assert!(inside("^v0.3", "0.3.1"));
        assert!(inside("<= 2", "2.9.9") && !inside("<= 2", "3.0.0"));
    }

    #[test]
    fn prereleases_only_when_asked() {
        let r = VersionRange::parse(">=1.0.0 <2.0.0").unwrap();
        assert!(!r.matches(&v("1.3.0-rc.1"), false));
        assert!(r.matches(&v("1.3.0-rc.1"), true));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(VersionRange::parse(">=banana").is_err());
        assert!(VersionRange::parse(">=").is_err());
        assert!(VersionRange::parse("").is_err());
    }
}

//! The tag grammar: `[v]<numbers>[<pre-release>]<suffix>`, and the version
//! a tag carries, compared by every number written (`1.2.3.10` > `1.2.3.9`).

use std::cmp::Ordering;
use std::fmt;

use semver::{Prerelease, Version};

/// At most this many dot-separated numbers are read as the version; a
/// further `.N` is left to the suffix.
const MAX_PARTS: usize = 8;

/// The version a tag carries: every number written, and a pre-release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagVersion {
    numbers: Vec<u64>,
    pre: Prerelease,
}

impl TagVersion {
    pub fn new(numbers: &[u64], pre: Prerelease) -> Self {
        TagVersion {
            numbers: numbers.to_vec(),
            pre,
        }
    }

    /// `16` → 1, `16.4` → 2, `1.2.3.4` → 4.
    pub fn parts(&self) -> usize {
        self.numbers.len()
    }

    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The first three numbers as semver, for `semver` ranges: `16.4` is
    /// 16.4.0, `1.2.3.4` is 1.2.3 (a range cannot name a fourth number).
    pub fn semver(&self) -> Version {
        let n = |i: usize| self.numbers.get(i).copied().unwrap_or(0);
        let mut v = Version::new(n(0), n(1), n(2));
        v.pre = self.pre.clone();
        v
    }
}

impl Ord for TagVersion {
    /// Numbers first, a missing one counting as 0; then a release above its
    /// pre-releases, which rank as semver ranks them (`beta.10` > `beta.5`);
    /// then, only to stay consistent with equality, fewer numbers first.
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        (0..len)
            .map(|i| at(&self.numbers, i).cmp(&at(&other.numbers, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
            .then_with(|| self.numbers.len().cmp(&other.numbers.len()))
    }
}

impl PartialOrd for TagVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for TagVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.numbers.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{n}")?;
        }
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// What a tag says, once read by the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTag<'a> {
    pub version: TagVersion,
    pub v_prefix: bool,
    /// Everything after the version and pre-release: `-alpine`, or empty.
    pub suffix: &'a str,
}

impl ParsedTag<'_> {
    /// Numbers written: 1 (`16`), 2 (`16.4`), 3 (`16.4.1`), 4 (`1.2.3.4`)…
    pub fn parts(&self) -> usize {
        self.version.parts()
    }
}

/// Reads `tag` (with `prefix` removed) as `[v]<version>[<pre>]<suffix>`.
pub fn parse_tag<'a>(tag: &'a str, prefix: &str) -> Option<ParsedTag<'a>> {
    let rest = tag.strip_prefix(prefix)?;
    let (v_prefix, rest) = match rest.strip_prefix(['v', 'V']) {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut numbers = Vec::new();
    let mut cursor = rest;
    loop {
        let digits = cursor.len()
            - cursor
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        if digits == 0 || digits > 18 {
            return None;
        }
        numbers.push(cursor[..digits].parse().ok()?);
        cursor = &cursor[digits..];
        match cursor.strip_prefix('.') {
            Some(next)
                if numbers.len() < MAX_PARTS && next.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                cursor = next
            }
            _ => break,
        }
    }
    let (pre, suffix) = split_prerelease(cursor);
    // A suffix must be separated from the version: `1.2.3alpine` is not `1.2.3`.
    if !suffix.is_empty() && pre.is_none() && !suffix.starts_with(['-', '_', '.', '+']) {
        return None;
    }
    let pre = match pre {
        Some(pre) => Prerelease::new(&pre).ok()?,
        None => Prerelease::EMPTY,
    };
    Some(ParsedTag {
        version: TagVersion::new(&numbers, pre),
        v_prefix,
        suffix,
    })
}

const PRERELEASE_WORDS: [&str; 9] = [
    "alpha", "beta", "rc", "preview", "pre", "dev", "canary", "nightly", "snapshot",
];

/// `-rc.1-alpine` → (Some("rc.1"), "-alpine"); `-alpine` → (None, "-alpine").
fn split_prerelease(rest: &str) -> (Option<String>, &str) {
    let body = rest.strip_prefix(['-', '.']).unwrap_or(rest);
    let lower = body.to_ascii_lowercase();
    let word = PRERELEASE_WORDS
        .iter()
        .find(|w| lower.starts_with(**w))
        .map(|w| (w.to_string(), w.len()))
        .or_else(|| {
            // Python's `3.13.0a1`/`b2`: a single letter only with a number after it.
            let short = match lower.chars().next() {
                Some('a') => "alpha",
                Some('b') => "beta",
                _ => return None,
            };
            lower[1..]
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| (short.to_string(), 1))
        });
    let Some((word, word_len)) = word else {
        return (None, rest);
    };
    let after_word = &body[word_len..];
    let number_start = after_word
        .strip_prefix(['.', '-'])
        .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()));
    let (number, after) = match number_start.or_else(|| {
        after_word
            .starts_with(|c: char| c.is_ascii_digit())
            .then_some(after_word)
    }) {
        Some(digits_on) => {
            let len = digits_on.len()
                - digits_on
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            (Some(&digits_on[..len]), &digits_on[len..])
        }
        None => (None, after_word),
    };
    // The word must end there: `-alpine` starts with `a` but is no alpha.
    if !(after.is_empty() || after.starts_with(['-', '.', '_'])) {
        return (None, rest);
    }
    let pre = match number {
        Some(n) => format!("{word}.{}", n.parse::<u64>().unwrap_or(0)),
        None => word,
    };
    (Some(pre), after)
}

/// `r10` > `r9`: runs of digits compare as numbers.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let a_digit = a.starts_with(|c: char| c.is_ascii_digit());
        let b_digit = b.starts_with(|c: char| c.is_ascii_digit());
        let run = |s: &str, digits: bool| {
            s.len()
                - s.trim_start_matches(|c: char| c.is_ascii_digit() == digits)
                    .len()
        };
        let (ra, rb) = (run(a, a_digit), run(b, b_digit));
        let order = if a_digit && b_digit {
            let (na, nb) = (
                a[..ra].trim_start_matches('0'),
                b[..rb].trim_start_matches('0'),
            );
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            a[..ra].cmp(&b[..rb])
        };
        if order != Ordering::Equal {
            return order;
        }
        a = &a[ra..];
        b = &b[rb..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tag: &str) -> TagVersion {
        parse_tag(tag, "").unwrap().version
    }

    #[test]
    fn every_number_counts() {
        let parsed = parse_tag("1.2.3.4", "").unwrap();
        assert_eq!(
            (parsed.version.numbers(), parsed.suffix),
            (&[1, 2, 3, 4][..], "")
        );
        assert!(v("1.2.3.10") > v("1.2.3.9"));
        assert!(v("1.2.4.4") < v("1.2.4.7"));
        assert!(v("1.2.4.0") > v("1.2.3.99"));
        assert_eq!(v("1.2.3.4").semver(), Version::new(1, 2, 3));
        assert_eq!(v("1.2.3.4").to_string(), "1.2.3.4");
        // A suffix after four numbers is still a suffix.
        assert_eq!(parse_tag("1.2.3.4-alpine", "").unwrap().suffix, "-alpine");
    }

    #[test]
    fn dates_and_two_part_versions_are_versions() {
        let date = parse_tag("20240101", "").unwrap();
        assert_eq!((date.parts(), date.version.semver().major), (1, 20240101));
        assert!(v("20240315") > v("20240101"));
        let ubuntu = parse_tag("18.04", "").unwrap();
        assert_eq!(
            (ubuntu.parts(), ubuntu.version.semver()),
            (2, Version::new(18, 4, 0))
        );
        assert!(v("22.04") > v("20.10"));
    }

    #[test]
    fn prereleases_rank_numerically_below_their_release() {
        assert!(v("3.7.0b10") > v("3.7.0b5"));
        assert!(v("1.3.0-rc.10") > v("1.3.0-rc.9"));
        assert!(v("1.3.0-rc1") < v("1.3.0"));
        assert!(v("1.3.0-beta") < v("1.3.0-rc1"));
        assert!(v("3.7.0") > v("3.7.0b5"));
        assert!(v("3.7.0b5").is_prerelease() && !v("3.7.0").is_prerelease());
    }

    #[test]
    fn equal_numbers_with_more_parts_rank_after_for_a_total_order() {
        assert_eq!(v("1.2.3").cmp(&v("1.2.3")), Ordering::Equal);
        assert_eq!(v("1.2.3").cmp(&v("1.2.3.0")), Ordering::Less);
        assert_ne!(v("1.2.3"), v("1.2.3.0"));
    }

    #[test]
    fn prerelease_is_not_a_suffix_but_can_precede_one() {
        let parsed = parse_tag("1.2.3-rc1-alpine", "").unwrap();
        assert_eq!(
            (parsed.version.to_string().as_str(), parsed.suffix),
            ("1.2.3-rc.1", "-alpine")
        );
        let parsed = parse_tag("1.2.3-alpine", "").unwrap();
        assert_eq!(
            (parsed.version.to_string().as_str(), parsed.suffix),
            ("1.2.3", "-alpine")
        );
        let parsed = parse_tag("3.13.0b2", "").unwrap();
        assert_eq!(
            (parsed.version.to_string().as_str(), parsed.suffix),
            ("3.13.0-beta.2", "")
        );
        assert_eq!(v("1.0.0-beta").to_string(), "1.0.0-beta");
        assert_eq!(parse_tag("1.2.3-bookworm", "").unwrap().suffix, "-bookworm");
        assert_eq!(
            parse_tag("1.2.3-rcx", "").unwrap().suffix,
            "-rcx",
            "a word that merely starts like rc"
        );
    }

    #[test]
    fn words_and_odd_shapes_are_not_versions() {
        for tag in [
            "latest",
            "stable",
            "main",
            "sha-abc123",
            "1.2.3alpine",
            "",
            "v",
            "-1.2.3",
            "x1.2.3",
        ] {
            assert!(parse_tag(tag, "").is_none(), "{tag:?}");
        }
    }

    #[test]
    fn natural_order_of_revisions() {
        assert_eq!(natural_cmp("r10", "r9"), Ordering::Greater);
        assert_eq!(natural_cmp("a-r01", "a-r1"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
    }
}

//! ImagePolicy: which of an image's tags to move to.
//!
//! A tag is read as `<tagPrefix>[v]<version>[<pre-release>]<suffix>`:
//!
//! - `tagPrefix` must match exactly (`django-api-` for `django-api-0.0.17`);
//!   a `v`/`V` before the version is allowed and ignored for ordering.
//! - `<version>` is 1 to 3 dot-separated numbers. Tags with fewer than three
//!   (`16`, `16.4`) are **floating**: Docker official images move `16.4` to
//!   each new 16.4.x, so such a tag is never chosen unless `floatingTags:
//!   true`, and then only when the tag in use has the same number of parts
//!   (`postgres:16` may move to `17`, not to `17.2.1`). `16.4` ranks as 16.4.0.
//!   Words (`latest`, `stable`, `main`) are never versions, so never chosen.
//! - `<pre-release>` is one of `alpha`, `beta`, `rc`, `pre`, `preview`, `dev`,
//!   `canary`, `nightly`, `snapshot` (also `a<N>`/`b<N>` as Python writes
//!   them), optionally after `-` or `.`, optionally followed by a number:
//!   `1.2.3-rc.1`, `1.2.3-rc1`, `3.13.0b2`. It ranks as semver's `rc.1`, so
//!   `rc.10` > `rc.9`. Candidates only with `preRelease: true`.
//! - `<suffix>` is everything after that: the compatibility marker (`-alpine`,
//!   `-arm64`, `-bookworm`). It is `tagSuffix` when set (a leading `-` is
//!   added if missing), else the suffix of the tag in use, else empty; only
//!   tags with exactly that suffix are candidates, so `1.2.3` never moves to
//!   `1.3.0-alpine` and `1.2.3-alpine` never to `1.3.0`.
//! - `tagPattern` (a regex, unanchored unless you anchor it) must also match
//!   the whole tag. When it has a named group `version` (Flux's `extract`),
//!   that capture is the version and prefix/suffix rules are skipped; tags of
//!   equal version then rank by natural order, so `16.4.0-debian-12-r10`
//!   beats `…-r9`.
//!
//! Versions compare by semver (0.0.10 > 0.0.9). A candidate must be inside
//! the `semver` range and newer than the tag in use (never a downgrade); when
//! the tag in use is not a version (`latest`), the newest candidate is
//! proposed.

use std::cmp::Ordering;

use regex::Regex;
use semver::{Prerelease, Version};

use crate::config::ImagePolicySpec;
use crate::release::registry::{ImageRef, ReferenceError, RegistryClient, RegistryError};

/// The tag to move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tag: String,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "tagPattern {pattern:?} is not a valid regular expression: {source}; fix the pattern in the ImagePolicy"
    )]
    InvalidPattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}

/// What a tag says, once read by the grammar above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTag<'a> {
    pub version: Version,
    /// Numbers written: 1 (`16`), 2 (`16.4`) or 3 (`16.4.1`).
    pub parts: u8,
    pub v_prefix: bool,
    /// Everything after the version and pre-release: `-alpine`, or empty.
    pub suffix: &'a str,
}

/// Reads `tag` (with `prefix` removed) as `[v]<version>[<pre>]<suffix>`.
pub fn parse_tag<'a>(tag: &'a str, prefix: &str) -> Option<ParsedTag<'a>> {
    let rest = tag.strip_prefix(prefix)?;
    let (v_prefix, rest) = match rest.strip_prefix(['v', 'V']) {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut numbers = [0u64; 3];
    let mut parts = 0u8;
    let mut cursor = rest;
    loop {
        let digits = cursor.len()
            - cursor
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        if digits == 0 || digits > 18 {
            return None;
        }
        numbers[parts as usize] = cursor[..digits].parse().ok()?;
        parts += 1;
        cursor = &cursor[digits..];
        match cursor.strip_prefix('.') {
            Some(next) if parts < 3 && next.starts_with(|c: char| c.is_ascii_digit()) => {
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
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    if let Some(pre) = pre {
        version.pre = Prerelease::new(&pre).ok()?;
    }
    Some(ParsedTag {
        version,
        parts,
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

/// An ImagePolicySpec compiled once for many tag lists.
#[derive(Debug, Clone)]
pub struct TagPolicy<'s> {
    spec: &'s ImagePolicySpec,
    pattern: Option<Regex>,
    extracts_version: bool,
}

/// One tag that passed every filter, with what ranks it.
struct Ranked<'t> {
    tag: &'t str,
    version: Version,
    v_prefix: bool,
}

impl<'s> TagPolicy<'s> {
    pub fn new(spec: &'s ImagePolicySpec) -> Result<Self, PolicyError> {
        let pattern = spec
            .tag_pattern
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| {
                Regex::new(p).map_err(|source| PolicyError::InvalidPattern {
                    pattern: p.to_string(),
                    source,
                })
            })
            .transpose()?;
        let extracts_version = pattern
            .as_ref()
            .is_some_and(|re| re.capture_names().any(|n| n == Some("version")));
        Ok(Self {
            spec,
            pattern,
            extracts_version,
        })
    }

    /// The newest allowed tag newer than `current_tag`, if any.
    pub fn select(&self, current_tag: Option<&str>, tags: &[String]) -> Option<Candidate> {
        let current = current_tag.and_then(|t| self.read(t).map(|p| (t, p)));
        let suffix = self.wanted_suffix(current.as_ref().map(|(_, p)| p.suffix));
        let current_parts = current.as_ref().map(|(_, p)| p.parts);
        let current_v = current.as_ref().is_some_and(|(_, p)| p.v_prefix);
        let current_rank = current.as_ref().map(|(t, p)| Ranked {
            tag: t,
            version: p.version.clone(),
            v_prefix: p.v_prefix,
        });

        let mut best: Option<Ranked> = None;
        for tag in tags {
            let Some(parsed) = self.read(tag) else {
                continue;
            };
            if !self.extracts_version && parsed.suffix != suffix {
                continue;
            }
            let precision_ok = match (self.spec.floating_tags, current_parts) {
                (true, Some(in_use)) => parsed.parts == in_use,
                (true, None) => true,
                (false, _) => parsed.parts == 3,
            };
            if !precision_ok {
                continue;
            }
            if !parsed.version.pre.is_empty() && !self.spec.pre_release {
                continue;
            }
            if !self
                .spec
                .semver
                .matches(&parsed.version, self.spec.pre_release)
            {
                continue;
            }
            let ranked = Ranked {
                tag,
                version: parsed.version,
                v_prefix: parsed.v_prefix,
            };
            if let Some(current) = &current_rank
                && self.rank(&ranked, current) != Ordering::Greater
            {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => match self.rank(&ranked, b) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    // Equal rank (`1.2.3` and `v1.2.3`): keep the tag in use's style, then the shorter name.
                    Ordering::Equal => {
                        (
                            ranked.v_prefix == current_v,
                            std::cmp::Reverse(ranked.tag.len()),
                            std::cmp::Reverse(ranked.tag),
                        ) > (
                            b.v_prefix == current_v,
                            std::cmp::Reverse(b.tag.len()),
                            std::cmp::Reverse(b.tag),
                        )
                    }
                },
            };
            if better {
                best = Some(ranked);
            }
        }
        best.map(|b| Candidate {
            tag: b.tag.to_string(),
            version: b.version,
        })
    }

    /// Reads a tag by this policy's prefix and pattern (or its `version` capture).
    pub fn read<'t>(&self, tag: &'t str) -> Option<ParsedTag<'t>> {
        match &self.pattern {
            Some(re) if self.extracts_version => {
                let version = re.captures(tag)?.name("version")?.as_str();
                parse_tag(version, "").filter(|p| p.suffix.is_empty())
            }
            Some(re) => re
                .is_match(tag)
                .then(|| parse_tag(tag, &self.spec.tag_prefix))
                .flatten(),
            None => parse_tag(tag, &self.spec.tag_prefix),
        }
    }

    fn wanted_suffix<'a>(&'a self, current_suffix: Option<&'a str>) -> std::borrow::Cow<'a, str> {
        match self.spec.tag_suffix.as_deref() {
            Some("") => "".into(),
            Some(s) if s.starts_with(['-', '_', '.']) => s.into(),
            Some(s) => format!("-{s}").into(),
            None => current_suffix.unwrap_or("").into(),
        }
    }

    /// Semver first; with a `version` capture, equal versions by natural order of the tag.
    fn rank(&self, a: &Ranked, b: &Ranked) -> Ordering {
        a.version.cmp(&b.version).then_with(|| {
            if self.extracts_version {
                natural_cmp(a.tag, b.tag)
            } else {
                Ordering::Equal
            }
        })
    }
}

/// The newest tag allowed by `spec` that is newer than `current_tag`.
pub fn select_tag(
    spec: &ImagePolicySpec,
    current_tag: Option<&str>,
    tags: &[String],
) -> Result<Option<Candidate>, PolicyError> {
    Ok(TagPolicy::new(spec)?.select(current_tag, tags))
}

/// What the watcher hands the bumper: the tag to move to and, when the policy
/// pins digests, its manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The policy's image (normalised), without tag or digest.
    pub image: ImageRef,
    pub tag: String,
    /// `None` for a digest-only update of a pinned tag that was re-pushed.
    pub version: Option<Version>,
    /// `sha256:…` when `pinDigest` is on.
    pub digest: Option<String>,
}

impl Update {
    /// What goes after the image name: `1.2.3` or `1.2.3@sha256:…`.
    pub fn tag_and_digest(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.tag),
            None => self.tag.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("ImagePolicy image {image:?}: {source}")]
    Image {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Asks the registry for `spec.image`'s tags and returns the update to make
/// from `current` (the reference found in the manifests), if any. With
/// `pinDigest`, a pinned tag that was re-pushed (same tag, new digest) is an
/// update too. Costs one request per tag-list page (a 304 when unchanged) and,
/// with `pinDigest`, one `HEAD`.
pub async fn check(
    client: &RegistryClient,
    spec: &ImagePolicySpec,
    current: Option<&ImageRef>,
) -> Result<Option<Update>, CheckError> {
    let image = ImageRef::parse(&spec.image)
        .map_err(|source| CheckError::Image {
            image: spec.image.clone(),
            source,
        })?
        .without_version();
    let policy = TagPolicy::new(spec)?;
    let tags = client.list_tags(&image).await?;
    let current_tag = current.and_then(|c| c.tag.as_deref());
    if let Some(candidate) = policy.select(current_tag, &tags) {
        let digest = match spec.pin_digest {
            true => Some(client.manifest_digest(&image, &candidate.tag).await?),
            false => None,
        };
        return Ok(Some(Update {
            image,
            tag: candidate.tag,
            version: Some(candidate.version),
            digest,
        }));
    }
    let (Some(tag), true) = (current_tag, spec.pin_digest) else {
        return Ok(None);
    };
    if !tags.iter().any(|t| t == tag) {
        return Ok(None);
    }
    let digest = client.manifest_digest(&image, tag).await?;
    if current.and_then(|c| c.digest.as_deref()) == Some(digest.as_str()) {
        return Ok(None);
    }
    Ok(Some(Update {
        image,
        tag: tag.to_string(),
        version: None,
        digest: Some(digest),
    }))
}

/// `r10` > `r9`: runs of digits compare as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
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
    use crate::config::VersionRange;

    fn spec(range: &str) -> ImagePolicySpec {
        ImagePolicySpec {
            image: "docker.io/ahuora/django-api".into(),
            semver: VersionRange::parse(range).unwrap(),
            tag_prefix: String::new(),
            tag_suffix: None,
            pre_release: false,
            tag_pattern: None,
            floating_tags: false,
            pin_digest: false,
            files: Vec::new(),
            schedule: None,
            automerge: None,
            application: None,
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    fn pick(spec: &ImagePolicySpec, current: Option<&str>, list: &[&str]) -> Option<String> {
        select_tag(spec, current, &tags(list))
            .unwrap()
            .map(|c| c.tag)
    }

    #[test]
    fn versions_compare_as_numbers() {
        let s = spec(">=0.0.1");
        assert_eq!(
            pick(&s, None, &["0.0.9", "0.0.10", "0.0.2"]).as_deref(),
            Some("0.0.10")
        );
        assert_eq!(
            pick(&s, Some("0.0.9"), &["0.0.9", "0.0.10"]).as_deref(),
            Some("0.0.10")
        );
        let c = select_tag(&s, None, &tags(&["1.10.0", "1.9.99"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.version, Version::new(1, 10, 0));
    }

    #[test]
    fn never_downgrades_or_repeats() {
        let s = spec("*");
        assert_eq!(pick(&s, Some("2.0.0"), &["1.0.0", "1.9.9", "2.0.0"]), None);
        assert_eq!(
            pick(&s, Some("v2.0.0"), &["2.0.0"]),
            None,
            "same version, other spelling"
        );
        // Above the range already: nothing in range is newer.
        assert_eq!(pick(&spec("<2.0.0"), Some("3.0.0"), &["1.5.0"]), None);
    }

    #[test]
    fn range_bounds_candidates() {
        let s = spec(">=0.1.0 <1.0.0");
        assert_eq!(
            pick(&s, Some("0.1.0"), &["0.1.1", "0.9.3", "1.0.0", "2.3.4"]).as_deref(),
            Some("0.9.3")
        );
        assert_eq!(
            pick(&spec("~1.2"), Some("1.2.0"), &["1.2.9", "1.3.0"]).as_deref(),
            Some("1.2.9")
        );
        assert_eq!(
            pick(&spec("^0.3"), Some("0.3.0"), &["0.3.7", "0.4.0"]).as_deref(),
            Some("0.3.7")
        );
        assert_eq!(
            pick(&spec("1.x"), None, &["1.4.0", "2.0.0"]).as_deref(),
            Some("1.4.0")
        );
        assert_eq!(
            pick(
                &spec("~1.2 || ^3.0"),
                Some("1.2.0"),
                &["1.2.4", "2.5.0", "3.1.0"]
            )
            .as_deref(),
            Some("3.1.0")
        );
    }

    #[test]
    fn tag_prefix_must_match() {
        let mut s = spec(">=0.0.1");
        s.tag_prefix = "django-api-".into();
        let list = [
            "django-api-0.0.17",
            "django-api-0.0.9",
            "frontend-0.0.99",
            "0.0.50",
            "django-api-latest",
        ];
        assert_eq!(
            pick(&s, Some("django-api-0.0.16"), &list).as_deref(),
            Some("django-api-0.0.17")
        );
        assert_eq!(pick(&s, Some("django-api-0.0.17"), &list), None);
    }

    #[test]
    fn v_prefix_is_ignored_for_order_and_kept_in_ties() {
        let s = spec(">=1.0.0");
        assert_eq!(
            pick(&s, Some("v1.0.0"), &["v1.2.0", "v1.10.0", "1.3.0"]).as_deref(),
            Some("v1.10.0")
        );
        assert_eq!(
            pick(&s, Some("v1.0.0"), &["1.2.0", "v1.2.0"]).as_deref(),
            Some("v1.2.0")
        );
        assert_eq!(
            pick(&s, Some("1.0.0"), &["v1.2.0", "1.2.0"]).as_deref(),
            Some("1.2.0")
        );
        assert_eq!(pick(&s, None, &["V2.0.0"]).as_deref(), Some("V2.0.0"));
    }

    #[test]
    fn suffix_of_the_tag_in_use_is_kept() {
        let s = spec(">=1.0.0");
        let list = [
            "1.3.0",
            "1.3.0-alpine",
            "1.2.9-alpine",
            "1.4.0-arm64",
            "1.3.1-alpine3.20",
        ];
        assert_eq!(
            pick(&s, Some("1.2.0-alpine"), &list).as_deref(),
            Some("1.3.0-alpine")
        );
        assert_eq!(pick(&s, Some("1.2.0"), &list).as_deref(), Some("1.3.0"));
        assert_eq!(
            pick(&s, Some("1.2.0-arm64"), &list).as_deref(),
            Some("1.4.0-arm64")
        );
        assert_eq!(
            pick(&s, None, &list).as_deref(),
            Some("1.3.0"),
            "no tag in use: plain tags only"
        );
    }

    #[test]
    fn explicit_suffix_wins_and_gets_its_dash() {
        let mut s = spec(">=1.0.0");
        s.tag_suffix = Some("alpine".into());
        assert_eq!(
            pick(&s, Some("1.2.0"), &["1.3.0", "1.3.0-alpine"]).as_deref(),
            Some("1.3.0-alpine")
        );
        s.tag_suffix = Some(String::new());
        assert_eq!(
            pick(&s, Some("1.2.0-alpine"), &["1.3.0", "1.3.0-alpine"]).as_deref(),
            Some("1.3.0")
        );
    }

    #[test]
    fn prereleases_only_when_asked_and_rank_numerically() {
        let mut s = spec(">=1.0.0 <2.0.0");
        let list = [
            "1.2.0",
            "1.3.0-rc.1",
            "1.3.0-rc.10",
            "1.3.0-rc.9",
            "2.0.0-rc.1",
        ];
        assert_eq!(pick(&s, Some("1.1.0"), &list).as_deref(), Some("1.2.0"));
        s.pre_release = true;
        assert_eq!(
            pick(&s, Some("1.1.0"), &list).as_deref(),
            Some("1.3.0-rc.10")
        );
        assert_eq!(
            pick(&s, Some("1.3.0-rc.10"), &["1.3.0", "1.3.0-rc.2"]).as_deref(),
            Some("1.3.0")
        );
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
        let parsed = parse_tag("1.0.0-beta", "").unwrap();
        assert_eq!(parsed.version.to_string(), "1.0.0-beta");
        assert_eq!(parse_tag("1.2.3-bookworm", "").unwrap().suffix, "-bookworm");
        assert_eq!(
            parse_tag("1.2.3-rcx", "").unwrap().suffix,
            "-rcx",
            "a word that merely starts like rc"
        );
        // The tag in use is a pre-release with a suffix: its suffix is kept.
        let mut s = spec(">=1.0.0");
        s.pre_release = true;
        let list = ["1.3.0-rc.2", "1.3.0-rc.2-alpine", "1.3.0-alpine"];
        assert_eq!(
            pick(&s, Some("1.3.0-rc.1-alpine"), &list).as_deref(),
            Some("1.3.0-alpine")
        );
    }

    #[test]
    fn floating_tags_only_when_asked_and_at_the_same_precision() {
        let list = [
            "latest", "stable", "16", "16.4", "17", "17.2", "16.4.1", "17.2.1", "alpine",
        ];
        let mut s = spec(">=16.0.0");
        assert_eq!(pick(&s, Some("16.4.0"), &list).as_deref(), Some("17.2.1"));
        assert_eq!(
            pick(&s, Some("latest"), &list).as_deref(),
            Some("17.2.1"),
            "a word in use: newest proposed"
        );
        s.floating_tags = true;
        assert_eq!(pick(&s, Some("16"), &list).as_deref(), Some("17"));
        assert_eq!(pick(&s, Some("16.4"), &list).as_deref(), Some("17.2"));
        assert_eq!(pick(&s, Some("16.4.1"), &list).as_deref(), Some("17.2.1"));
        let parsed = parse_tag("16.4", "").unwrap();
        assert_eq!((parsed.version, parsed.parts), (Version::new(16, 4, 0), 2));
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
        assert_eq!(
            parse_tag("1.2.3.4", "").unwrap().suffix,
            ".4",
            "a fourth number is a suffix"
        );
    }

    #[test]
    fn tag_pattern_filters() {
        let mut s = spec(">=1.0.0");
        s.tag_pattern = Some("^1\\.[0-9]+\\.[0-9]+$".into());
        assert_eq!(
            pick(&s, None, &["1.5.0", "2.0.0", "1.6.0-alpine"]).as_deref(),
            Some("1.5.0")
        );
        s.tag_pattern = Some("([".into());
        let e = select_tag(&s, None, &[]).unwrap_err().to_string();
        assert!(e.contains("tagPattern") && e.contains("(["), "{e}");
    }

    #[test]
    fn tag_pattern_version_capture_ranks_revisions_naturally() {
        let mut s = spec("~16.4");
        s.tag_pattern = Some(r"^(?P<version>\d+\.\d+\.\d+)-debian-12-r\d+$".into());
        let list = [
            "16.4.0-debian-12-r9",
            "16.4.0-debian-12-r10",
            "16.4.1-debian-11-r1",
            "16.5.0-debian-12-r1",
        ];
        assert_eq!(
            pick(&s, Some("16.4.0-debian-12-r5"), &list).as_deref(),
            Some("16.4.0-debian-12-r10")
        );
        assert_eq!(pick(&s, Some("16.4.0-debian-12-r10"), &list), None);
    }

    #[test]
    fn ten_thousand_tags_pick_the_newest() {
        let mut list: Vec<String> = (0..10_000)
            .map(|i| format!("{}.{}.{}", i / 1000, (i / 10) % 100, i % 10))
            .collect();
        list.push("latest".into());
        let c = select_tag(&spec(">=0.0.0"), Some("0.0.1"), &list)
            .unwrap()
            .unwrap();
        assert_eq!(c.tag, "9.99.9");
    }
}

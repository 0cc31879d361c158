//! ImagePolicy: which of an image's tags to move to.
//!
//! A tag is read as `<tagPrefix>[v]<version>[<pre-release>]<suffix>` (see
//! [`tag`] for the grammar):
//!
//! - `tagPrefix` must match exactly (`django-api-` for `django-api-0.0.17`);
//!   a `v`/`V` before the version is allowed and ignored for ordering.
//! - `<version>` is dot-separated numbers, every one compared (`1.2.3.10` >
//!   `1.2.3.9`). A tag moves to tags with the **same number of parts**, as
//!   Renovate moves them: `16` → `17`, `16.4` → `17.2`, `1.2.3.4` →
//!   `1.2.3.5`, a date `20240101` → `20240315`, `18.04` → `22.04`. Docker
//!   official images move `16.4` to each new 16.4.x, so a floating tag stays
//!   floating; `floatingTags: pin` moves one with fewer than three parts to
//!   the newest full version instead (`16` → `17.2.1`). With no tag in use,
//!   only full versions (three or more parts) are candidates. The `semver`
//!   range sees the first three numbers (`16.4` is 16.4.0, a date is a major).
//! - Words (`latest`, `stable`, `main`) are never versions. When one is in
//!   use, relbot proposes no version change and says why ([`Choice::NotAVersion`]):
//!   whoever wrote `latest` asked for whatever is newest, not for a version.
//! - `<pre-release>` is one of `alpha`, `beta`, `rc`, `pre`, `preview`, `dev`,
//!   `canary`, `nightly`, `snapshot` (also `a<N>`/`b<N>` as Python writes
//!   them), optionally after `-` or `.`, optionally followed by a number:
//!   `1.2.3-rc.1`, `1.2.3-rc1`, `3.13.0b2`. It ranks as semver's `rc.1`, so
//!   `rc.10` > `rc.9`. Candidates only with `preRelease: true` — or, when the
//!   tag in use is itself a pre-release, newer pre-releases of the same
//!   version (`3.7.0b1` → `3.7.0b5`) until that version's release ships.
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
//! A candidate must be inside the `semver` range and newer than the tag in
//! use: never a downgrade.

mod tag;

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

use crate::config::{FloatingTags, ImagePolicySpec};
use crate::release::registry::{ImageRef, ReferenceError, RegistryClient, RegistryError};
use tag::natural_cmp;
pub use tag::{ParsedTag, TagVersion, parse_tag};

/// The tag to move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tag: String,
    pub version: TagVersion,
}

/// What the policy makes of one tag in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Move to this tag.
    Newer(Candidate),
    /// Nothing allowed is newer than the tag in use.
    Current,
    /// The tag in use is not a version this policy reads (`latest`,
    /// `stable`, a branch name), so no version is proposed.
    NotAVersion { tag: String },
}

impl Choice {
    pub fn candidate(self) -> Option<Candidate> {
        match self {
            Choice::Newer(c) => Some(c),
            Choice::Current | Choice::NotAVersion { .. } => None,
        }
    }
}

/// Why a tag in use is left as it is, for the bump report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// `latest`, `main`, no tag at all: not a version.
    NotAVersion { tag: Option<String> },
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::NotAVersion { tag } => {
                match tag {
                    Some(tag) => write!(f, "{tag} is not a version")?,
                    None => f.write_str("no tag (which means latest) is not a version")?,
                }
                f.write_str(
                    "; relbot moves versions only, as Renovate does: write the version to run \
                     (e.g. 1.2.3) to have it bumped",
                )
            }
        }
    }
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
    version: TagVersion,
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
        self.choose(current_tag, tags).candidate()
    }

    /// What to do with `current_tag` (`None`: no tag in use, as for a new
    /// reference): the newest allowed tag newer than it, or why not.
    pub fn choose(&self, current_tag: Option<&str>, tags: &[String]) -> Choice {
        let current = match current_tag {
            Some(t) => match self.read(t) {
                Some(p) => Some((t, p)),
                None => {
                    return Choice::NotAVersion { tag: t.to_string() };
                }
            },
            None => None,
        };
        let suffix = self.wanted_suffix(current.as_ref().map(|(_, p)| p.suffix));
        let current_parts = current.as_ref().map(|(_, p)| p.parts());
        let current_v = current.as_ref().is_some_and(|(_, p)| p.v_prefix);
        let current_rank = current.as_ref().map(|(t, p)| Ranked {
            tag: t,
            version: p.version.clone(),
            v_prefix: p.v_prefix,
        });
        // A pre-release in use may move to a newer pre-release of the same
        // numbers even with pre-releases off: whoever runs 3.7.0b1 is
        // waiting for 3.7.0 and wants its fixes on the way.
        let same_release_pre = current
            .as_ref()
            .filter(|(_, p)| p.version.is_prerelease())
            .map(|(_, p)| p.version.numbers().to_vec());

        let mut best: Option<Ranked> = None;
        for tag in tags {
            let Some(parsed) = self.read(tag) else {
                continue;
            };
            if !self.extracts_version && parsed.suffix != suffix {
                continue;
            }
            if !self.precision_ok(current_parts, parsed.parts()) {
                continue;
            }
            let pre_ok = !parsed.version.is_prerelease()
                || self.spec.pre_release
                || same_release_pre.as_deref() == Some(parsed.version.numbers());
            if !pre_ok
                || !self
                    .spec
                    .semver
                    .matches(&parsed.version.semver(), parsed.version.is_prerelease())
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
        match best {
            Some(b) => Choice::Newer(Candidate {
                tag: b.tag.to_string(),
                version: b.version,
            }),
            None => Choice::Current,
        }
    }

    /// Whether a candidate with `parts` numbers may replace a tag in use
    /// with `in_use` numbers (`None`: no tag in use).
    fn precision_ok(&self, in_use: Option<usize>, parts: usize) -> bool {
        match (in_use, self.spec.floating_tags) {
            (None, _) => parts >= 3,
            (Some(n), FloatingTags::Pin) if n < 3 => parts == 3,
            (Some(n), _) => parts == n,
        }
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

    /// Every number first; with a `version` capture, equal versions by natural order of the tag.
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
    pub version: Option<TagVersion>,
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

#[cfg(test)]
mod tests;

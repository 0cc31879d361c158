//! Commit messages to version bumps: Conventional Commits types, `!` and
//! `BREAKING CHANGE:`, `#major`/`#minor`/`#patch` tokens; and the version a
//! tag name carries.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use semver::Version;

/// How much a version moves. Ordered: the highest of a range wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Bump {
    #[default]
    None,
    Patch,
    Minor,
    Major,
}

impl Bump {
    /// `version` moved by this bump; lower components reset, pre-release
    /// and build metadata are dropped. `None` returns the version unchanged.
    pub fn apply(self, version: &Version) -> Version {
        let (major, minor, patch) = (version.major, version.minor, version.patch);
        match self {
            Bump::None => version.clone(),
            Bump::Patch => Version::new(major, minor, patch + 1),
            Bump::Minor => Version::new(major, minor + 1, 0),
            Bump::Major => Version::new(major + 1, 0, 0),
        }
    }
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bump::None => "none",
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        })
    }
}

impl FromStr for Bump {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Bump::None),
            "patch" => Ok(Bump::Patch),
            "minor" => Ok(Bump::Minor),
            "major" => Ok(Bump::Major),
            other => Err(format!(
                "unknown bump \"{other}\": expected none, patch, minor or major"
            )),
        }
    }
}

/// What one commit message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageBump {
    pub bump: Bump,
    /// The major bump comes from a breaking-change marker (`!` or a
    /// `BREAKING CHANGE:` footer) rather than a `#major` token; only such a
    /// bump is softened to minor below 1.0.0.
    pub breaking: bool,
    /// The subject follows Conventional Commits (`type(scope)!: text`).
    pub conventional: bool,
}

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<type>[A-Za-z][A-Za-z0-9_-]*)(?:\((?P<scope>[^()\r\n]*)\))?(?P<bang>!)?:\s*\S")
        .expect("valid regex")
});
static BREAKING_FOOTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^BREAKING[ -]CHANGE:").expect("valid regex"));
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[^\w#])#(major|minor|patch)\b").expect("valid regex"));

/// Reads one commit message (subject, body and footers).
///
/// `feat` → minor; `fix`, `perf` → patch; any other type (`chore`, `docs`,
/// `ci`, `refactor`, …) → none; `!` before the colon or a
/// `BREAKING CHANGE:`/`BREAKING-CHANGE:` footer line → major (breaking);
/// `#major`/`#minor`/`#patch` anywhere → at least that much. Messages that
/// are not Conventional Commits ask for nothing unless they carry a token or
/// a breaking-change footer.
pub fn classify_message(message: &str) -> MessageBump {
    let subject = message.lines().next().unwrap_or("").trim();
    let header = HEADER.captures(subject);
    let conventional = header.is_some();
    let mut type_bump = Bump::None;
    let mut breaking = false;
    if let Some(caps) = &header {
        type_bump = match caps["type"].to_ascii_lowercase().as_str() {
            "feat" => Bump::Minor,
            "fix" | "perf" => Bump::Patch,
            _ => Bump::None,
        };
        breaking = caps.name("bang").is_some();
    }
    // The footer lives after the subject line, in the body.
    let body = message.split_once('\n').map(|(_, b)| b).unwrap_or("");
    breaking |= BREAKING_FOOTER.is_match(body);
    if breaking {
        type_bump = Bump::Major;
    }
    let token_bump = TOKEN
        .captures_iter(message)
        .map(|c| match c[1].to_ascii_lowercase().as_str() {
            "major" => Bump::Major,
            "minor" => Bump::Minor,
            _ => Bump::Patch,
        })
        .max()
        .unwrap_or(Bump::None);
    MessageBump {
        bump: type_bump.max(token_bump),
        breaking: breaking && token_bump < Bump::Major,
        conventional,
    }
}

/// Version a tag name carries for `prefix`: `<prefix>X.Y.Z` or
/// `<prefix>vX.Y.Z`. Pre-releases (`1.2.0-rc.1`) are not releases and give
/// None, like anything that is not semver. The bool says whether a `v` was used.
pub fn parse_tag_version(tag: &str, prefix: &str) -> Option<(Version, bool)> {
    let rest = tag.strip_prefix(prefix)?;
    let (rest, with_v) = match rest.strip_prefix(['v', 'V']) {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let version = Version::parse(rest).ok()?;
    version.pre.is_empty().then_some((version, with_v))
}

//! What one policy's bump changes: the newest allowed tag for each reference
//! to the policy's image, and the byte-span edits that write it. Reads files
//! and asks the registry; writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BumpError;
use crate::config::ImagePolicy;
use crate::progress::{Progress, ProgressEvent};
use crate::release::policy::{Choice, Held, TagPolicy, TagVersion};
use crate::release::registry::error::RegistryError;
use crate::release::registry::{ImageRef, RegistryClient};
use crate::release::rewrite::{
    Edit, ExpectedChange, ImageReference, PolicyTarget, ReferenceKind, RewriteError, apply_edits,
    files_mentioning, find_references, matches_policy, verify,
};

/// The bump one policy proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BumpPlan {
    pub policy: String,
    /// The policy's image, normalised (`docker.io/ahuora/django-api`).
    pub image: String,
    /// The tags in use that this bump replaces, sorted.
    pub from: Vec<String>,
    /// The newest tag proposed (the PR's version).
    pub to: String,
    /// With `pinDigest`: the manifest digest of `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub files: Vec<BumpFile>,
}

/// One file's new content and the lines that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BumpFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub changes: Vec<BumpLine>,
    #[serde(skip)]
    pub new_text: String,
}

/// One changed line, 1-based, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BumpLine {
    pub line: usize,
    pub old: String,
    pub new: String,
}

impl BumpPlan {
    /// `from → to` as people read it: `0.0.17 → 0.0.18`, `16.4, 16.5 → 16.6`.
    pub fn versions(&self) -> String {
        format!("{} → {}", self.from.join(", "), self.to)
    }

    pub fn changed_lines(&self) -> usize {
        self.files.iter().map(|f| f.changes.len()).sum()
    }
}

/// What the scan of one policy found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyScan {
    pub policy: String,
    pub image: String,
    /// Every tag in use by a reference to the image (sorted, distinct).
    pub current: Vec<String>,
    /// `None` when every reference is current (or none was found).
    pub plan: Option<BumpPlan>,
    /// Files matching the globs that could not be read as YAML (Helm
    /// templates, say): reported, not fatal.
    pub skipped: Vec<String>,
    /// Tags in use that the policy leaves alone on purpose, and why.
    pub held: Vec<HeldTag>,
}

/// A tag in use that no version was proposed for, and why (`latest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldTag {
    /// The tag as written; `None` for a reference without a tag.
    pub tag: Option<String>,
    pub reason: String,
}

/// How many policies are scanned at once: a registry answers a tag list in
/// tens to hundreds of milliseconds, so a handful in flight hides most of that
/// latency while staying gentle with one registry's rate limits.
const SCANS_IN_FLIGHT: usize = 4;

/// Scans every policy (all, or those named in `only`), a few at a time, with
/// one registry client; results come back in the policies' order. A policy
/// that fails does not stop the others.
pub async fn plan_bumps(
    root: &Path,
    policies: &[ImagePolicy],
    only: &[String],
    client: &RegistryClient,
    progress: &Progress,
) -> Vec<(ImagePolicy, Result<PolicyScan, BumpError>)> {
    use futures::StreamExt;
    use futures::stream::FuturesOrdered;
    // A plain loop rather than `stream::iter(..).map(..).buffered(..)`: the
    // closure form trips rustc's higher-ranked lifetime check (rust#102211)
    // once the future must be Send, as in relbot serve.
    let mut in_flight = FuturesOrdered::new();
    let mut out = Vec::new();
    for policy in selected(policies, only) {
        if in_flight.len() == SCANS_IN_FLIGHT
            && let Some(done) = in_flight.next().await
        {
            out.push(done);
        }
        in_flight.push_back(scan_one(root, policy, client, progress));
    }
    while let Some(done) = in_flight.next().await {
        out.push(done);
    }
    out
}

async fn scan_one(
    root: &Path,
    policy: &ImagePolicy,
    client: &RegistryClient,
    progress: &Progress,
) -> (ImagePolicy, Result<PolicyScan, BumpError>) {
    progress.emit(|| ProgressEvent::PolicyStarted {
        policy: policy.name().to_string(),
        image: policy.spec.image.clone(),
    });
    let result = plan_policy_observed(root, policy, client, progress).await;
    if let Err(error) = &result {
        // Not a warning here: the failure is in the report, which the CLI
        // prints and the server logs as the run's error.
        tracing::info!(policy = %policy.name(), %error, "bump check failed");
    }
    (policy.clone(), result)
}

/// Policies named in `only` (all when empty), in the order given by `policies`.
pub fn selected<'p>(policies: &'p [ImagePolicy], only: &[String]) -> Vec<&'p ImagePolicy> {
    policies
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|n| n == p.name()))
        .collect()
}

/// The edits planned in one file and the values they are expected to
/// change, each scalar once.
#[derive(Default)]
struct FileEdits {
    edits: Vec<Edit>,
    expected: Vec<ExpectedChange>,
}

impl FileEdits {
    fn add(&mut self, planned: Vec<(Edit, ExpectedChange)>) {
        for (edit, change) in planned {
            // The same scalar reached twice (an alias) is one edit.
            if !self.edits.contains(&edit) {
                self.edits.push(edit);
                self.expected.push(change);
            }
        }
    }
}

/// A reference found in a file, with the file's text it was read from.
struct Found {
    path: PathBuf,
    text: String,
    references: Vec<ImageReference>,
}

impl Found {
    /// The file with `edits` applied and checked by re-parsing (only the
    /// expected values changed); None when there is nothing to edit.
    fn rewritten(&self, edits: &FileEdits) -> Result<Option<BumpFile>, RewriteError> {
        let FileEdits { edits, expected } = edits;
        if edits.is_empty() {
            return Ok(None);
        }
        let new_text = apply_edits(&self.text, edits)?;
        verify(&self.path, &self.text, &new_text, expected)?;
        Ok(Some(BumpFile {
            path: slash_path(&self.path),
            changes: changed_lines(&self.text, &new_text, edits),
            new_text,
        }))
    }
}

/// The scan of one policy against the files under `root`.
pub async fn plan_policy(
    root: &Path,
    policy: &ImagePolicy,
    client: &RegistryClient,
) -> Result<PolicyScan, BumpError> {
    plan_policy_observed(root, policy, client, &Progress::none()).await
}

/// [`plan_policy`], reporting tag pages and file rewrites to `progress`.
pub async fn plan_policy_observed(
    root: &Path,
    policy: &ImagePolicy,
    client: &RegistryClient,
    progress: &Progress,
) -> Result<PolicyScan, BumpError> {
    let name = policy.name().to_string();
    let spec = &policy.spec;
    let image = policy_image(policy)?;
    let tag_policy = TagPolicy::new(spec).map_err(|source| BumpError::Policy {
        policy: name.clone(),
        source,
    })?;
    let rewrite_err = |source| BumpError::Rewrite {
        policy: name.clone(),
        source,
    };

    let (found, skipped) = find_in_files(root, policy).map_err(rewrite_err)?;
    let current: BTreeSet<String> = found
        .iter()
        .flat_map(|f| f.references.iter())
        .filter_map(|r| r.tag.clone())
        .collect();
    let mut scan = PolicyScan {
        policy: name.clone(),
        image: image.name(),
        current: current.iter().cloned().collect(),
        plan: None,
        skipped: skipped.iter().map(ToString::to_string).collect(),
        held: Vec::new(),
    };
    if found.is_empty() {
        return Ok(scan);
    }

    let mut on_page = |pages, tags| {
        progress.emit(|| ProgressEvent::TagsListed {
            policy: name.clone(),
            pages,
            tags,
        })
    };
    let tags = client
        .list_tags_observed(&image, &mut on_page)
        .await
        .map_err(registry_error(&name))?;
    // One choice per distinct tag in use: references written differently
    // (`16.4` next to `16.5`) each move to the newest tag newer than theirs.
    // A reference without a tag runs `latest`: like a word in use, it gets
    // no version (only its digest moves, with pinDigest).
    let mut choices: BTreeMap<Option<String>, Option<(String, TagVersion)>> = BTreeMap::new();
    for reference in found.iter().flat_map(|f| f.references.iter()) {
        if choices.contains_key(&reference.tag) {
            continue;
        }
        let choice = reference
            .tag
            .as_deref()
            .map(|tag| tag_policy.choose(Some(tag), &tags));
        let chosen = match choice {
            Some(Choice::Newer(c)) => Some((c.tag, c.version)),
            Some(Choice::Current) => None,
            Some(Choice::NotAVersion { .. }) | None => {
                scan.held.push(HeldTag {
                    tag: reference.tag.clone(),
                    reason: Held::NotAVersion {
                        tag: reference.tag.clone(),
                    }
                    .to_string(),
                });
                None
            }
        };
        choices.insert(reference.tag.clone(), chosen);
    }
    let newest = choices
        .values()
        .flatten()
        .max_by(|a, b| a.1.cmp(&b.1))
        .cloned();

    // Digests: of each chosen tag; with nothing newer, of the tag in use, so
    // a re-pushed tag moves its pin.
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    if spec.pin_digest {
        let mut wanted: BTreeSet<String> =
            choices.values().flatten().map(|c| c.0.clone()).collect();
        for reference in found.iter().flat_map(|f| f.references.iter()) {
            if let Some(tag) = &reference.tag
                && reference.digest.is_some()
                && choices.get(&reference.tag).is_some_and(Option::is_none)
                && tags.contains(tag)
            {
                wanted.insert(tag.clone());
            }
        }
        for tag in wanted {
            let digest = client
                .manifest_digest(&image, &tag)
                .await
                .map_err(registry_error(&name))?;
            digests.insert(tag, digest);
        }
    }

    progress.emit(|| ProgressEvent::RewritingFiles {
        policy: name.clone(),
        files: found.len(),
    });
    let mut files = Vec::new();
    let mut from = BTreeSet::new();
    for file in &found {
        let mut edits = FileEdits::default();
        for reference in &file.references {
            let new_tag = match choices.get(&reference.tag).cloned().flatten() {
                Some((tag, _)) => tag,
                // Nothing newer: only a moved digest of the same tag.
                None => match (&reference.tag, &reference.digest) {
                    (Some(tag), Some(old)) if digests.get(tag).is_some_and(|d| d != old) => {
                        tag.clone()
                    }
                    _ => continue,
                },
            };
            let digest = digests.get(&new_tag).map(String::as_str);
            let planned = reference.plan(&new_tag, digest).map_err(rewrite_err)?;
            if planned.is_empty() {
                continue;
            }
            if let Some(tag) = &reference.tag {
                from.insert(tag.clone());
            } else {
                from.insert("(no tag)".to_string());
            }
            edits.add(planned);
        }
        if let Some(rewritten) = file.rewritten(&edits).map_err(rewrite_err)? {
            files.push(rewritten);
        }
    }
    if files.is_empty() {
        return Ok(scan);
    }
    let to = match &newest {
        Some((tag, _)) => tag.clone(),
        // Only digests moved: the version stays the tag in use.
        None => from.iter().next().cloned().unwrap_or_default(),
    };
    scan.plan = Some(BumpPlan {
        policy: name.clone(),
        image: image.name(),
        from: from.into_iter().collect(),
        digest: digests.get(&to).cloned(),
        to,
        files,
    });
    Ok(scan)
}

/// The revert of a bump to `failed`: every reference to the policy's image
/// at `failed` goes back to `to` (with `to`'s digest where the file pins
/// one). Only the image fields change; other references are left alone.
/// `None` when no reference uses `failed` any more.
pub async fn plan_revert(
    root: &Path,
    policy: &ImagePolicy,
    failed: &str,
    to: &str,
    client: &RegistryClient,
) -> Result<Option<BumpPlan>, BumpError> {
    let name = policy.name().to_string();
    let image = policy_image(policy)?;
    let rewrite_err = |source| BumpError::Rewrite {
        policy: name.clone(),
        source,
    };
    let (found, _) = find_in_files(root, policy).map_err(rewrite_err)?;
    let at_failed = |r: &ImageReference| r.tag.as_deref() == Some(failed);
    let pinned = found
        .iter()
        .flat_map(|f| f.references.iter())
        .any(|r| at_failed(r) && r.digest.is_some());
    let digest = if pinned {
        Some(
            client
                .manifest_digest(&image, to)
                .await
                .map_err(registry_error(&name))?,
        )
    } else {
        None
    };
    let mut files = Vec::new();
    for file in &found {
        let mut edits = FileEdits::default();
        for reference in file.references.iter().filter(|r| at_failed(r)) {
            // A reference without a digest keeps none.
            let digest = digest.as_deref().filter(|_| reference.digest.is_some());
            edits.add(reference.plan(to, digest).map_err(rewrite_err)?);
        }
        if let Some(rewritten) = file.rewritten(&edits).map_err(rewrite_err)? {
            files.push(rewritten);
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(BumpPlan {
        policy: name,
        image: image.name(),
        from: vec![failed.to_string()],
        to: to.to_string(),
        digest,
        files,
    }))
}

/// The policy's image, without its version.
fn policy_image(policy: &ImagePolicy) -> Result<ImageRef, BumpError> {
    let image = &policy.spec.image;
    ImageRef::parse(image)
        .map(|parsed| parsed.without_version())
        .map_err(|source| BumpError::Image {
            policy: policy.name().to_string(),
            image: image.clone(),
            source,
        })
}

/// A registry failure while planning `policy`.
fn registry_error(policy: &str) -> impl Fn(RegistryError) -> BumpError + '_ {
    move |source| BumpError::Registry {
        policy: policy.to_string(),
        source: Box::new(source),
    }
}

/// References to the policy in the files its globs match that mention it
/// ([`files_mentioning`]). Kustomize entries that only rename an image
/// (no `newTag`, no `digest`) carry no version and are left out.
fn find_in_files(
    root: &Path,
    policy: &ImagePolicy,
) -> Result<(Vec<Found>, Vec<RewriteError>), RewriteError> {
    let target = &PolicyTarget {
        name: policy.name(),
        image: &policy.spec.image,
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (relative, text) in files_mentioning(root, &policy.spec.files, target)? {
        let references = match find_references(&relative, &text) {
            Ok(references) => references,
            Err(error @ RewriteError::Syntax { .. }) => {
                skipped.push(error);
                continue;
            }
            Err(error) => return Err(error),
        };
        let references: Vec<ImageReference> = references
            .into_iter()
            .filter(|r| matches_policy(r, target))
            .filter(|r| {
                !(matches!(r.kind, ReferenceKind::KustomizeImage { .. })
                    && r.tag.is_none()
                    && r.digest.is_none())
            })
            .collect();
        if !references.is_empty() {
            found.push(Found {
                path: relative,
                text,
                references,
            });
        }
    }
    Ok((found, skipped))
}

/// The lines the edits touched, before and after. Tags and digests hold no
/// line breaks, so line numbers are the same in both texts.
fn changed_lines(old: &str, new: &str, edits: &[Edit]) -> Vec<BumpLine> {
    let mut lines: Vec<usize> = edits
        .iter()
        .map(|e| old[..e.span.start].matches('\n').count() + 1)
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines
        .into_iter()
        .map(|line| BumpLine {
            line,
            old: nth_line(old, line),
            new: nth_line(new, line),
        })
        .collect()
}

fn nth_line(text: &str, line: usize) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .nth(line - 1)
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string()
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_reads_both_texts() {
        let old = "a: 1\nimage: x:1.0.0\r\nb: 2\n";
        let new = "a: 1\nimage: x:1.1.0\r\nb: 2\n";
        let start = old.find("1.0.0").unwrap();
        let edits = [Edit {
            span: start..start + 5,
            new_text: "1.1.0".into(),
        }];
        assert_eq!(
            changed_lines(old, new, &edits),
            vec![BumpLine {
                line: 2,
                old: "image: x:1.0.0".into(),
                new: "image: x:1.1.0".into()
            }]
        );
    }

    #[test]
    fn selected_keeps_order_and_filters() {
        let policy = |name: &str| -> ImagePolicy {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "relbot.dev/v1alpha1", "kind": "ImagePolicy",
                "metadata": {"name": name},
                "spec": {"image": "nginx", "semver": ">=1.0.0"}
            }))
            .unwrap()
        };
        let all = [policy("a"), policy("b"), policy("c")];
        let names =
            |v: Vec<&ImagePolicy>| v.iter().map(|p| p.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(selected(&all, &[])), ["a", "b", "c"]);
        assert_eq!(names(selected(&all, &["c".into(), "a".into()])), ["a", "c"]);
    }
}

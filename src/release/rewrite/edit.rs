//! Turning a reference and a new version into byte-span edits, and applying
//! edits to text. Nothing outside an edit's span is ever touched.

use std::ops::Range;

use super::RewriteError;
use super::find::{ImageReference, Site, Target};
use super::scalar::plain_scalar_is_not_string;
use crate::image::{is_valid_digest, is_valid_tag};

/// Replace the bytes `span` of a text with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub new_text: String,
}

/// A scalar value a bump is meant to change: where, and to what. The
/// verifier checks the re-parsed file against these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChange {
    pub doc_index: usize,
    /// JSON pointer of the scalar inside its document.
    pub pointer: String,
    pub new_value: String,
}

/// Apply non-overlapping edits (in any order) to `text`.
pub fn apply_edits(text: &str, edits: &[Edit]) -> Result<String, RewriteError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let bad = |edit: &Edit| RewriteError::BadEdit {
        span: edit.span.clone(),
        len: text.len(),
    };
    let mut out = String::with_capacity(text.len() + 64);
    let mut copied = 0;
    let mut previous_start = None;
    for edit in sorted {
        let Range { start, end } = edit.span;
        // Two edits at the same start (even empty ones) would have an
        // order-dependent result, so they count as overlapping.
        if start < copied
            || previous_start == Some(start)
            || start > end
            || text.get(start..end).is_none()
        {
            return Err(bad(edit));
        }
        out.push_str(&text[copied..start]);
        out.push_str(&edit.new_text);
        copied = end;
        previous_start = Some(start);
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

impl ImageReference {
    /// The edits that set this reference to `new_tag` (and `new_digest`,
    /// where the file pins a digest). Empty when it is already there.
    pub fn edits_for(
        &self,
        new_tag: &str,
        new_digest: Option<&str>,
    ) -> Result<Vec<Edit>, RewriteError> {
        Ok(self
            .plan(new_tag, new_digest)?
            .into_iter()
            .map(|(edit, _)| edit)
            .collect())
    }

    /// Edits plus the value each one should produce.
    pub(crate) fn plan(
        &self,
        new_tag: &str,
        new_digest: Option<&str>,
    ) -> Result<Vec<(Edit, ExpectedChange)>, RewriteError> {
        if !is_valid_tag(new_tag) {
            return Err(RewriteError::InvalidTag {
                tag: new_tag.to_string(),
            });
        }
        if let Some(digest) = new_digest.filter(|d| !is_valid_digest(d)) {
            return Err(RewriteError::InvalidDigest {
                digest: digest.to_string(),
            });
        }
        let digest_required = || RewriteError::DigestRequired {
            file: self.file.clone(),
            line: self.line,
            image: self.image.clone(),
            tag: new_tag.to_string(),
        };
        let mut planned = Vec::new();
        match &self.target {
            Target::Unsupported { reason } => {
                // Nothing to write when it is already current.
                let current = self.tag.as_deref() == Some(new_tag)
                    && (self.digest.is_none() || self.digest.as_deref() == new_digest);
                if current {
                    return Ok(planned);
                }
                return Err(RewriteError::Unsupported {
                    file: self.file.clone(),
                    line: self.line,
                    image: self.image.clone(),
                    reason: reason.clone(),
                });
            }
            Target::Combined { site, suffix } => {
                // Keep the file's style: a digest is written only where one
                // was pinned, and then it must be replaced, never dropped.
                let mut new_suffix = format!(":{new_tag}");
                if self.digest.is_some() {
                    new_suffix.push('@');
                    new_suffix.push_str(new_digest.ok_or_else(digest_required)?);
                }
                let relative = suffix.start - site.content.start..suffix.end - site.content.start;
                let mut value = site.value.clone();
                value.replace_range(relative, &new_suffix);
                let edit = Edit {
                    span: suffix.clone(),
                    new_text: new_suffix,
                };
                planned.extend(self.change(site, edit, value));
            }
            Target::TagOnly { site } => {
                planned.extend(self.change(site, tag_edit(site, new_tag), new_tag.to_string()));
            }
            Target::Kustomize { tag, digest } => {
                match tag {
                    Some(site) => {
                        planned.extend(self.change(site, tag_edit(site, new_tag), new_tag.into()));
                    }
                    // A digest-only entry can still follow the digest.
                    None if digest.is_some() && new_digest.is_some() => {}
                    None => {
                        let name = match &self.kind {
                            super::ReferenceKind::KustomizeImage { name } => name.clone(),
                            _ => self.image.clone(),
                        };
                        return Err(RewriteError::MissingNewTag {
                            file: self.file.clone(),
                            line: self.line,
                            name,
                        });
                    }
                }
                if let Some(site) = digest {
                    let new = new_digest.ok_or_else(digest_required)?;
                    let edit = Edit {
                        span: site.content.clone(),
                        new_text: new.to_string(),
                    };
                    planned.extend(self.change(site, edit, new.to_string()));
                }
            }
        }
        Ok(planned)
    }

    /// Pair an edit with its expected value, dropping edits that change
    /// nothing.
    fn change(&self, site: &Site, edit: Edit, new_value: String) -> Option<(Edit, ExpectedChange)> {
        (new_value != site.value).then(|| {
            let expected = ExpectedChange {
                doc_index: self.doc_index,
                pointer: site.pointer.clone(),
                new_value,
            };
            (edit, expected)
        })
    }
}

/// Replace a scalar that is only a tag. A plain scalar whose new text would
/// read as a number or bool (`1.10`, `2`) is quoted, so it stays a string.
fn tag_edit(site: &Site, new_tag: &str) -> Edit {
    if site.plain && plain_scalar_is_not_string(new_tag) {
        Edit {
            span: site.span.clone(),
            new_text: format!("\"{new_tag}\""),
        }
    } else {
        Edit {
            span: site.content.clone(),
            new_text: new_tag.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(span: Range<usize>, new_text: &str) -> Edit {
        Edit {
            span,
            new_text: new_text.to_string(),
        }
    }

    #[test]
    fn applies_edits_in_any_order() {
        let text = "a: x:1\nb: y:2\n";
        let edits = [edit(11..13, ":3"), edit(4..6, ":9")];
        assert_eq!(apply_edits(text, &edits).unwrap(), "a: x:9\nb: y:3\n");
    }

    #[test]
    fn inserts_with_empty_spans() {
        assert_eq!(
            apply_edits("a: nginx\n", &[edit(8..8, ":1.2")]).unwrap(),
            "a: nginx:1.2\n"
        );
    }

    #[test]
    fn rejects_overlaps_and_bad_boundaries() {
        assert!(apply_edits("abcdef", &[edit(1..3, "x"), edit(2..4, "y")]).is_err());
        assert!(apply_edits("abc", &[edit(2..9, "x")]).is_err());
        assert!(apply_edits("é", &[edit(1..2, "x")]).is_err());
    }
}

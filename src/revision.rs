//! How a commit is named to people: the first 12 hex digits of its SHA (as
//! Flux and `git log --abbrev=12` show it), anything else as written.

/// `3f2a…` (40 hex digits) → its first 12; a tag or branch name unchanged.
pub fn short_revision(revision: &str) -> &str {
    let is_hex = revision.len() >= 12 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex { &revision[..12] } else { revision }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas_are_shortened_and_names_kept() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short_revision(sha), "0123456789ab");
        assert_eq!(short_revision("v1.2.3"), "v1.2.3");
        assert_eq!(short_revision("abc"), "abc");
    }
}

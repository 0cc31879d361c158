//! Credentials out of text meant for people: the one URL redactor used by
//! logs, errors, the status page and PR bodies.

/// Replaces the password in every `scheme://user:password@` with `***`.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let authority_len = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    // A bare user part may be the token itself
                    // (`https://TOKEN@github.com/…` works with git).
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_bare_tokens_in_urls() {
        assert_eq!(
            redact_userinfo("failed: http://x-access-token:s3cr3t@host/repo.git: 401"),
            "failed: http://x-access-token:***@host/repo.git: 401"
        );
        assert_eq!(
            redact_userinfo("https://ghp_token@host/a https://a:b@c"),
            "https://***@host/a https://a:***@c"
        );
        assert_eq!(redact_userinfo("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_userinfo("file:///tmp/x"), "file:///tmp/x");
        assert_eq!(redact_userinfo("no url here"), "no url here");
    }
}

//! Kubernetes object-name rules (RFC 1123 labels and subdomains, RFC 1035
//! labels), shared by the configuration checks and manifest validation.

/// An RFC 1123 label: what Namespaces and most names must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1035 label: a label that starts with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_subdomains_and_1035() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web") && !is_dns_label("-a") && !is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("apps.example.com") && !is_dns_subdomain("a..b"));
        assert!(is_dns1035_label("web") && !is_dns1035_label("1web"));
    }
}

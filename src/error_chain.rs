//! The innermost cause of an error. Client libraries wrap a failure in
//! layers ("error sending request" → "client error (Connect)" → "dns error:
//! failed to lookup address information"); the last says what to fix.

/// The innermost error's message.
pub fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn names_the_innermost_cause() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(deepest_cause(&error), "Connection refused");
        assert_eq!(deepest_cause(&error.0), "Connection refused");
    }
}

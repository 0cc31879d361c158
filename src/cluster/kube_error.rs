//! kube-rs errors in the words of whoever reads the log. `kube::Error`'s own
//! Display for a refused request ends in a Debug dump of the API server's
//! `Status { status: Some(Failure), code: 404, … }`; what a person needs is
//! the server's message and code, which the dump buries.

/// The API server's message and code for a refused request (`leases
/// "relbot" is forbidden: … (403 Forbidden)`), else the innermost cause of a
/// transport failure (`Connection refused`).
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                "the API server refused the request"
            } else {
                status.message.as_str()
            };
            match (status.code, status.reason.as_str()) {
                (0, "") => message.to_string(),
                (code, "") => format!("{message} ({code})"),
                (code, reason) => format!("{message} ({code} {reason})"),
            }
        }
        other => crate::error_chain::deepest_cause(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_the_servers_message_and_code() {
        let status = kube::core::Status::failure(
            "leases.coordination.k8s.io \"relbot\" is forbidden",
            "Forbidden",
        )
        .with_code(403);
        let text = describe(&kube::Error::Api(Box::new(status)));
        assert_eq!(
            text,
            "leases.coordination.k8s.io \"relbot\" is forbidden (403 Forbidden)"
        );
        assert!(!text.contains("Some(") && !text.contains("{ "), "{text}");
    }
}

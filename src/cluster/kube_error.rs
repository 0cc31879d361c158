//! kube-rs errors in the words of whoever reads the log. `kube::Error`'s own
//! Display for a refused request ends in a Debug dump of the API server's
//! `Status { status: Some(Failure), code: 404, … }`; what a person needs is
//! the server's message and code, which the dump buries.
//!
//! The server's own message can bury its point too: a refused change to an
//! immutable field quotes the whole new value as a Go struct literal
//! (`spec.template: Invalid value: core.PodTemplateSpec{ObjectMeta:…}: field
//! is immutable`, thousands of characters) and some refusals append a Go
//! diff of the spec. [`server_words`] keeps the field and the verdict.
//! A server-side apply names its own internals first (`failed to create typed
//! patch object (default/web; apps/v1, Kind=Deployment): `), and the object it
//! names may be a dry-run's stand-in namespace; relbot names the object itself
//! and says [`SCHEMA_REFUSAL`] instead.

/// The API server's message and code for a refused request (`leases
/// "relbot" is forbidden: … (403 Forbidden)`), else the innermost cause of a
/// transport failure (`Connection refused`).
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                "the API server refused the request".to_string()
            } else {
                server_words(&status.message)
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

/// The server's message without its Go dumps: a struct, slice or map quoted
/// after "Invalid value: " is dropped with those words (the field and the
/// verdict stay), and a Go diff on the lines after the first is left out
/// (relbot shows its own diff). Anything else is kept word for word.
pub fn server_words(message: &str) -> String {
    let mut lines = message.lines();
    let first = lines.next().unwrap_or_default();
    // Lines after the first are kept unless they are the indented, `-`/`+`
    // marked lines of a Go diff (`  core.PersistentVolumeClaimSpec{`).
    let rest: Vec<&str> = lines
        .filter(|line| !line.trim().is_empty() && !is_go_diff_line(line))
        .collect();
    let mut text = without_go_values(&without_patch_preamble(first));
    for line in rest {
        text.push('\n');
        text.push_str(&without_go_values(line));
    }
    text
}

const TYPED_PATCH: &str = "failed to create typed patch object (";

/// What relbot says where a server-side apply said [`TYPED_PATCH`]: the body
/// does not fit the kind's schema (an unknown field, a wrong type, a
/// duplicate list key), which no retry changes.
pub const SCHEMA_REFUSAL: &str = "not in the kind's schema: ";

/// `failed to create typed patch object (ns/name; apps/v1, Kind=Deployment):
/// .spec.x: field not declared in schema` → `not in the kind's schema:
/// .spec.x: field not declared in schema`: what is wrong stays, the server's
/// name for the object goes.
fn without_patch_preamble(line: &str) -> std::borrow::Cow<'_, str> {
    match line
        .strip_prefix(TYPED_PATCH)
        .and_then(|rest| rest.split_once("): "))
    {
        Some((_, point)) => format!("{SCHEMA_REFUSAL}{point}").into(),
        None => line.into(),
    }
}

const INVALID_VALUE: &str = "Invalid value: ";

/// `x: Invalid value: core.Foo{…}: field is immutable` → `x: field is
/// immutable`; a plain value (`Invalid value: "abc": must be …`) stays.
fn without_go_values(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(INVALID_VALUE) {
        let value = &rest[at + INVALID_VALUE.len()..];
        match go_literal_len(value).filter(|&n| value[n..].starts_with(": ")) {
            Some(n) => {
                out.push_str(&rest[..at]);
                rest = &value[n + 2..];
            }
            None => {
                out.push_str(&rest[..at + INVALID_VALUE.len()]);
                rest = value;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The length of a Go composite literal at the start of `text`
/// (`core.PodTemplateSpec{…}`, `[]string{…}`, `map[string]string{…}`,
/// `&v1.Foo{…}`), braces matched outside quoted strings; `None` for
/// anything else.
fn go_literal_len(text: &str) -> Option<usize> {
    let type_end = text.find('{')?;
    let type_name = text[..type_end].trim_start_matches('&');
    let is_type = !type_name.is_empty()
        && type_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '[' | ']' | '*'));
    if !is_type {
        return None;
    }
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices().skip_while(|&(i, _)| i < type_end) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_go_diff_line(line: &str) -> bool {
    line.starts_with([' ', '\t', '-', '+', '}'])
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

    #[test]
    fn an_immutable_field_reads_as_the_field_and_the_verdict() {
        // As kube-apiserver v1.32 words a changed Job template (shortened).
        let message = r#"Job.batch "migrate" is invalid: spec.template: Invalid value: core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:"", Labels:map[string]string{"job-name":"migrate"}}, Spec:core.PodSpec{Containers:[]core.Container{core.Container{Name:"m", Command:[]string{"echo", "}{\"v2"}}}}}: field is immutable"#;
        assert_eq!(
            server_words(message),
            r#"Job.batch "migrate" is invalid: spec.template: field is immutable"#
        );
    }

    #[test]
    fn an_unknown_field_reads_without_the_apply_machinerys_preamble() {
        // As kube-apiserver v1.28 answers an apply with a field it does not
        // know, for an object dry-run in a stand-in namespace.
        let message = r#"failed to create typed patch object (default/django-api; apps/v1, Kind=Deployment): .spec.template.spec.containers[name="django-api"].lifecycle.preStop.sleep: field not declared in schema"#;
        assert_eq!(
            server_words(message),
            r#"not in the kind's schema: .spec.template.spec.containers[name="django-api"].lifecycle.preStop.sleep: field not declared in schema"#
        );
        // Anything else that starts alike is kept word for word.
        assert_eq!(
            server_words("failed to create typed patch object (x"),
            "failed to create typed patch object (x"
        );
    }

    #[test]
    fn a_go_diff_after_the_verdict_is_left_out() {
        let message = "PersistentVolumeClaim \"scratch\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n  core.PersistentVolumeClaimSpec{\n  \tAccessModes: {\"ReadWriteOnce\"},\n- \t\tRequests: core.ResourceList{},\n+ \t\tRequests: core.ResourceList{},\n  }\n";
        assert_eq!(
            server_words(message),
            "PersistentVolumeClaim \"scratch\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
        );
    }

    #[test]
    fn plain_values_and_several_errors_are_kept() {
        let message = r#"Service "web" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.clusterIPs[0]: Invalid value: []string{"10.0.0.9"}: may not change once set, spec.type: Unsupported value: "Nope"]"#;
        assert_eq!(
            server_words(message),
            r#"Service "web" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.clusterIPs[0]: may not change once set, spec.type: Unsupported value: "Nope"]"#
        );
        // A brace that never closes is not a Go literal: left as it is.
        assert_eq!(
            server_words("x: Invalid value: a{b: c"),
            "x: Invalid value: a{b: c"
        );
    }
}

//! `metav1.Status` errors with the reasons and codes kube-apiserver uses, so
//! clients that branch on `reason`/`code` behave the same against the emulator.

use serde_json::{Value, json};

/// An API error rendered as a `metav1.Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: a Status body is large and errors are a hot path of an API server.
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429/503 fault injection).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        let mut d = json!({ "kind": kind });
        // metav1.StatusDetails has `omitempty` on name and group.
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = Some(Box::new(d));
        self
    }

    /// `<resource>[.<group>]` as the real server prints it in messages.
    pub fn qualified(group: &str, plural: &str) -> String {
        if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(404, "NotFound", format!("{q} \"{name}\" not found"))
            .with_details(group, plural, name)
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::not_found("", "namespaces", ns)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(
            409,
            "AlreadyExists",
            format!("{q} \"{name}\" already exists"),
        )
        .with_details(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {q} \"{name}\": {why}"),
        )
        .with_details(group, plural, name)
    }

    pub fn modified(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid. `kind_q` is `Deployment.apps`, `causes` are `(field, message)`.
    pub fn invalid(kind_q: &str, name: &str, causes: &[(String, String)]) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let msg = if text.len() == 1 {
            format!("{kind_q} \"{name}\" is invalid: {}", text[0])
        } else {
            format!("{kind_q} \"{name}\" is invalid: [{}]", text.join(", "))
        };
        let (kind, group) = kind_q.split_once('.').unwrap_or((kind_q, ""));
        let mut e = Self::new(422, "Invalid", msg).with_details(group, kind, name);
        if let Some(d) = e.details.as_mut() {
            d["causes"] = causes
                .iter()
                .map(|(f, m)| json!({"reason": cause_reason(m), "message": m, "field": f}))
                .collect();
        }
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/merge-patch+json (got {ct:?})"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// A 500 without a reason: what kube-apiserver answers when a handler
    /// returns a plain Go error rather than a StatusError (e.g. a server-side
    /// apply whose configuration has a field the schema lacks, kubernetes#122480).
    pub fn plain_500(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        // `reason` is omitempty: errors that are not StatusErrors carry none.
        if !self.reason.is_empty() {
            v["reason"] = json!(self.reason);
        }
        let mut details = self.details.as_deref().cloned();
        if let Some(s) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(s);
        }
        if let Some(d) = details {
            v["details"] = d;
        }
        v
    }
}

/// The `CauseType` of a field error, read off the message prefix that
/// apimachinery's `field.ErrorType.String()` gives it.
fn cause_reason(message: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 7] = [
        ("Invalid value", "FieldValueInvalid"),
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| message.starts_with(p))
        .map_or("FieldValueInvalid", |(_, r)| r)
}

//! Tests of how API failures read.

use super::ApiFailure;

fn failure(code: u16, reason: &str, message: &str) -> ApiFailure {
    ApiFailure {
        code,
        reason: reason.into(),
        message: message.into(),
    }
}

#[test]
fn an_unknown_field_under_apply_is_not_retried() {
    let schema = failure(
        500,
        "",
        "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema",
    );
    assert!(schema.is_schema_rejection());
    assert!(!schema.is_transient());
    assert!(failure(500, "InternalError", "etcd timeout").is_transient());
}

#[test]
fn the_status_is_said_without_an_empty_reason() {
    assert_eq!(failure(500, "", "boom").to_string(), "boom (500)");
    assert_eq!(
        failure(422, "Invalid", "bad").to_string(),
        "bad (422 Invalid)"
    );
}

#[test]
fn a_create_asks_for_strict_field_validation() {
    let request = |uri: &str| http::Request::post(uri).body(Vec::new()).expect("request");
    let strict = super::strictly_validated(request("/api/v1/namespaces/a/pods?dryRun=All"));
    assert_eq!(
        strict.uri(),
        "/api/v1/namespaces/a/pods?dryRun=All&fieldValidation=Strict"
    );
    let strict = super::strictly_validated(request("/api/v1/namespaces"));
    assert_eq!(strict.uri(), "/api/v1/namespaces?fieldValidation=Strict");
}

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
    // As the server answers it, through the words relbot gives it.
    let status = kube::core::Status::failure(
        "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema",
        "",
    )
    .with_code(500);
    let schema = ApiFailure::from_kube(kube::Error::Api(Box::new(status)));
    assert!(schema.is_schema_rejection());
    assert_eq!(
        schema.to_string(),
        "not in the kind's schema: .spec.replicaz: field not declared in schema (500)"
    );
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

#[test]
fn every_wording_of_a_change_that_cannot_be_made_in_place_is_immutable() {
    // As kube-apiserver words them (v1.28 and v1.32).
    for message in [
        r#"Job.batch "migrate" is invalid: spec.template: field is immutable"#,
        r#"StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"#,
        r#"RoleBinding.rbac.authorization.k8s.io "reader" is invalid: roleRef: cannot change roleRef"#,
        r#"Service "web" is invalid: spec.clusterIPs[0]: may not change once set"#,
        r#"StorageClass.storage.k8s.io "fast" is invalid: parameters: Forbidden: updates to parameters are forbidden."#,
        r#"Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"#,
    ] {
        assert!(failure(422, "Invalid", message).is_immutable(), "{message}");
    }
    for (code, message) in [
        (
            422,
            r#"Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"#,
        ),
        (
            403,
            r#"rolebindings.rbac.authorization.k8s.io "reader" is forbidden: user cannot bind"#,
        ),
    ] {
        assert!(!failure(code, "", message).is_immutable(), "{message}");
    }
}

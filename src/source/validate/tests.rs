//! Tests of offline validation.

use super::*;
use serde_json::json;

fn object(value: Value) -> RenderedObject {
    RenderedObject {
        manifest: Manifest {
            object: value,
            origin: Origin {
                file: "x.yaml".into(),
                line: 1,
            },
        },
        locator: Locator::Generated,
    }
}

fn check(value: Value, ns: Option<&str>) -> (RenderedObject, Vec<ValidationProblem>) {
    let mut objects = vec![object(value)];
    let tmp = std::env::temp_dir();
    let problems = validate_application(
        &mut objects,
        ns,
        &CustomScopes::default(),
        &mut LineResolver::new(&tmp),
    );
    (objects.remove(0), problems)
}

fn messages(problems: &[ValidationProblem]) -> Vec<String> {
    problems.iter().map(|p| p.message.clone()).collect()
}

#[test]
fn valid_deployment_passes_and_gets_the_namespace() {
    let (o, problems) = check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "creationTimestamp": null},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                  "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "a:1",
                    "resources": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": "1.5"}},
                    "ports": [{"containerPort": 8000}], "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}}]}}}}),
        Some("ahuora"),
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(o.manifest.namespace(), Some("ahuora"));
}

#[test]
fn misplaced_field_is_unknown() {
    let (_, problems) = check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "x"},
                "spec": {"selector": {}, "template": {"spec": {"image": "a:1", "containers": []}}}}),
        None,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].code, ProblemCode::UnknownField);
    assert!(
        problems[0]
            .message
            .contains("\"image\" in spec.template.spec"),
        "{}",
        problems[0].message
    );
}

#[test]
fn wrong_api_version_names_the_right_one() {
    let (_, problems) = check(
        json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "x"}}),
        None,
    );
    assert_eq!(
        messages(&problems),
        ["Deployment is not part of apiVersion v1; use apiVersion: apps/v1"]
    );
    let (_, problems) = check(
        json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "a", "namespace": "x"}}),
        None,
    );
    assert!(
        problems[0].message.contains("use apiVersion: apps/v1"),
        "{problems:?}"
    );
    let (_, problems) = check(
        json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "a", "namespace": "x"}}),
        None,
    );
    assert!(
        problems[0]
            .message
            .contains("use apiVersion: networking.k8s.io/v1"),
        "{problems:?}"
    );
}

#[test]
fn namespace_rules() {
    let (_, problems) = check(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}}),
        None,
    );
    assert_eq!(problems[0].code, ProblemCode::Namespace);
    let (_, problems) = check(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        None,
    );
    assert_eq!(problems[0].code, ProblemCode::Namespace);
    let (o, problems) = check(
        json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "a"}}),
        Some("x"),
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(
        (problems[0].code, problems[0].severity),
        (ProblemCode::NeedsDiscovery, Severity::Warning)
    );
    assert_eq!(o.manifest.namespace(), None, "unknown scope: not guessed");
}

#[test]
fn identity_and_metadata_problems() {
    let (_, problems) = check(
        json!({"kind": "ConfigMap", "metadata": {"labels": {"a": "b c"}}}),
        Some("x"),
    );
    assert_eq!(messages(&problems), [
            "missing apiVersion".to_string(),
            "missing metadata.name".to_string(),
            "label a: value \"b c\" must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric".to_string(),
        ]);
    let (_, problems) = check(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name",
            "annotations": {"argocd.argoproj.io/sync-wave": "one"}}}),
        Some("x"),
    );
    let codes: Vec<_> = problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, [ProblemCode::InvalidObject, ProblemCode::SyncWave]);
    let (_, problems) = check(
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a", "namespace": "x",
            "annotations": {"n": 1}}}),
        None,
    );
    assert!(
        problems
            .iter()
            .any(|p| p.code == ProblemCode::InvalidValue
                && p.message.contains("metadata.annotations.n")),
        "{problems:?}"
    );
}

#[test]
fn duplicates_name_both_places_and_ignore_version() {
    let a = Manifest {
        object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"}}),
        origin: Origin {
            file: "one.yaml".into(),
            line: 3,
        },
    };
    let mut b = a.clone();
    b.object["apiVersion"] = json!("apps/v1beta1");
    b.origin = Origin {
        file: "two.yaml".into(),
        line: 7,
    };
    let problems = find_duplicates([("app", &a), ("other", &b)]);
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "two.yaml:7: error: Deployment.apps n/a: duplicate object: already declared by application \"app\" at one.yaml:3"
    );
}

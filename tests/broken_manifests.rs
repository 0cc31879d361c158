//! Each file in `manifests-sample/broken/manifests` holds one realistic
//! mistake; each must yield exactly its own error, at the right line, with a
//! message that says what is wrong. The valid file next to them yields none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use relbot::source::{self, KustomizeTool, ProblemCode, RenderOptions, ValidationProblem};

fn broken_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests-sample/broken")
}

/// Every problem of the broken sample, by file name.
fn problems_by_file() -> BTreeMap<String, Vec<ValidationProblem>> {
    let root = broken_root();
    let loaded = relbot::config::load(&root.join("relbot.yaml")).expect("broken/relbot.yaml loads");
    let options = RenderOptions {
        kustomize: KustomizeTool::Disabled,
    };
    let err = source::load_desired_with(&root, &loaded.config, &options)
        .expect_err("the broken sample must not validate");
    let mut by_file: BTreeMap<String, Vec<ValidationProblem>> = BTreeMap::new();
    for problem in err.problems {
        let name = problem
            .origin
            .file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        by_file.entry(name).or_default().push(problem);
    }
    by_file
}

/// Asserts `file` has exactly one error, at `line`, of `code`, mentioning
/// every `needle`.
fn assert_one(
    by_file: &BTreeMap<String, Vec<ValidationProblem>>,
    file: &str,
    line: usize,
    code: ProblemCode,
    needles: &[&str],
) {
    let problems: Vec<_> = by_file
        .get(file)
        .into_iter()
        .flatten()
        .filter(|p| p.is_error())
        .collect();
    assert_eq!(
        problems.len(),
        1,
        "{file}: expected one error, got {problems:#?}"
    );
    let p = problems[0];
    assert_eq!(p.origin.file, Path::new("manifests").join(file), "{p}");
    assert_eq!((p.origin.line, p.code), (line, code), "{p}");
    assert_eq!(p.application.as_deref(), Some("broken"), "{p}");
    for needle in needles {
        assert!(
            p.message.contains(needle),
            "{file}: message lacks {needle:?}: {p}"
        );
    }
    let text = p.to_string();
    assert!(
        text.starts_with(&format!("manifests/{file}:{line}")),
        "{text}"
    );
}

#[test]
fn bad_indentation_is_a_syntax_error_at_the_line() {
    let by_file = problems_by_file();
    assert_one(
        &by_file,
        "bad-indentation.yaml",
        6,
        ProblemCode::Syntax,
        &["mapping values are not allowed"],
    );
    assert!(by_file["bad-indentation.yaml"][0].column.is_some());
}

#[test]
fn field_at_the_wrong_level_is_an_unknown_field() {
    assert_one(
        &problems_by_file(),
        "wrong-level.yaml",
        15,
        ProblemCode::UnknownField,
        &["\"image\"", "spec.template.spec", "Deployment apps/v1"],
    );
}

#[test]
fn duplicate_object_names_both_places() {
    assert_one(
        &problems_by_file(),
        "duplicate.yaml",
        9,
        ProblemCode::Duplicate,
        &["duplicate object", "manifests/duplicate.yaml:1"],
    );
}

#[test]
fn missing_name_is_reported() {
    assert_one(
        &problems_by_file(),
        "missing-name.yaml",
        3,
        ProblemCode::InvalidObject,
        &["missing metadata.name"],
    );
}

#[test]
fn missing_document_separator_is_a_repeated_key() {
    assert_one(
        &problems_by_file(),
        "missing-separator.yaml",
        5,
        ProblemCode::Syntax,
        &["apiVersion"],
    );
}

#[test]
fn wrong_api_version_names_the_right_one() {
    assert_one(
        &problems_by_file(),
        "wrong-apiversion.yaml",
        2,
        ProblemCode::ApiVersion,
        &["extensions/v1beta1", "use apiVersion: apps/v1"],
    );
}

#[test]
fn namespace_on_a_cluster_scoped_kind() {
    assert_one(
        &problems_by_file(),
        "namespaced-cluster-kind.yaml",
        5,
        ProblemCode::Namespace,
        &["ClusterRole is cluster-scoped"],
    );
}

#[test]
fn bad_sync_wave_is_an_error_at_the_annotation() {
    assert_one(
        &problems_by_file(),
        "bad-sync-wave.yaml",
        6,
        ProblemCode::SyncWave,
        &["\"first\"", "argocd.argoproj.io/sync-wave"],
    );
}

#[test]
fn valid_file_yields_nothing_and_every_file_is_accounted_for() {
    let by_file = problems_by_file();
    assert!(
        !by_file.contains_key("valid.yaml"),
        "{:#?}",
        by_file.get("valid.yaml")
    );
    let files: Vec<_> = by_file.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "bad-indentation.yaml",
            "bad-sync-wave.yaml",
            "duplicate.yaml",
            "missing-name.yaml",
            "missing-separator.yaml",
            "namespaced-cluster-kind.yaml",
            "wrong-apiversion.yaml",
            "wrong-level.yaml",
        ]
    );
}

#[test]
fn problems_serialise_for_the_cli_json_form() {
    let by_file = problems_by_file();
    let p = &by_file["wrong-level.yaml"][0];
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["file"], "manifests/wrong-level.yaml");
    assert_eq!(json["line"], 15);
    assert_eq!(json["code"], "unknown-field");
    assert_eq!(json["application"], "broken");
    assert_eq!(json["object"]["name"], "report-generator");
    assert_eq!(json["object"]["namespace"], "broken");
}

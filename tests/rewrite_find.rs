//! Finding image references: which scalars count, what they report, and
//! the byte spans a bump would replace.

use std::path::Path;

use relbot::release::rewrite::{
    ContainerField, ImageReference, PolicyTarget, ReferenceKind, files_for_policy, find_references,
    matches_policy,
};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rewrite")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn find(name: &str) -> (String, Vec<ImageReference>) {
    let text = fixture(name);
    let references = find_references(Path::new(name), &text).unwrap();
    (text, references)
}

fn container(reference: &ImageReference) -> (&str, &str, ContainerField) {
    match &reference.kind {
        ReferenceKind::Container {
            kind,
            container,
            field,
            ..
        } => (kind.as_str(), container.as_str(), *field),
        other => panic!("not a container reference: {other:?}"),
    }
}

#[test]
fn find_workload_containers_and_init_containers() {
    let (text, refs) = find("deployment_comments.yaml");
    assert_eq!(refs.len(), 3, "{refs:#?}");
    assert_eq!(
        container(&refs[0]),
        ("Deployment", "migrate", ContainerField::InitContainers)
    );
    assert_eq!(
        container(&refs[1]),
        ("Deployment", "api", ContainerField::Containers)
    );
    assert_eq!(
        container(&refs[2]),
        ("Deployment", "proxy", ContainerField::Containers)
    );
    let api = &refs[1];
    assert_eq!((api.line, api.column, api.doc_index), (27, 18, 0));
    assert_eq!(api.image, "docker.io/ahuora/django-api");
    assert_eq!(api.tag.as_deref(), Some("0.0.17"));
    assert_eq!(&text[api.span.clone()], ":0.0.17");
    let ReferenceKind::Container {
        name, namespace, ..
    } = &api.kind
    else {
        unreachable!()
    };
    assert_eq!(
        (name.as_str(), namespace.as_deref()),
        ("django-api", Some("ahuora"))
    );
}

#[test]
fn find_across_documents_and_kinds() {
    let (text, refs) = find("multi_doc.yaml");
    let summary: Vec<(usize, &str, &str, &str)> = refs
        .iter()
        .map(|r| {
            let (kind, name, _) = container(r);
            (r.doc_index, kind, name, &text[r.span.clone()])
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "CronJob", "report", ":0.0.17"),
            (3, "Pod", "shell", ":16.1"),
            (3, "Pod", "probe", ":0.0.17"),
        ]
    );
    assert_eq!(container(&refs[2]).2, ContainerField::EphemeralContainers);
}

#[test]
fn find_alias_is_not_a_second_reference() {
    let (text, refs) = find("anchors.yaml");
    let images: Vec<&str> = refs.iter().map(|r| r.image.as_str()).collect();
    assert_eq!(images, vec!["docker.io/ahuora/django-api", "busybox"]);
    assert_eq!(&text[refs[0].span.clone()], ":0.0.17");
}

#[test]
fn find_flow_style_ports_digests_and_untagged() {
    let (text, refs) = find("flow.yaml");
    assert_eq!(refs.len(), 3, "{refs:#?}");
    let agent = &refs[0];
    assert_eq!(agent.image, "registry.local:5000/ahuora/agent");
    assert_eq!(agent.tag.as_deref(), Some("1.2"));
    assert!(agent.digest.as_deref().unwrap().starts_with("sha256:0000"));
    assert!(text[agent.span.clone()].starts_with(":1.2@sha256:"));
    assert_eq!(refs[1].image, "registry.local:5000/other");
    let untagged = &refs[2];
    assert_eq!((untagged.tag.as_deref(), untagged.span.len()), (None, 0));
    assert_eq!(&text[untagged.span.start..untagged.span.start + 2], " }");
}

#[test]
fn find_kustomize_images() {
    let text = fixture("kustomization.yaml");
    let refs = find_references(Path::new("base/kustomization.yaml"), &text).unwrap();
    let summary: Vec<(&str, Option<&str>, usize)> = refs
        .iter()
        .map(|r| (r.image.as_str(), r.tag.as_deref(), r.line))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ahuora/django-api", Some("0.0.17"), 10),
            ("registry.local:5000/mirror/postgres", Some("16.1"), 13),
            ("docker.io/library/redis", None, 14),
            ("pinned", Some("2.0"), 17),
        ]
    );
    assert_eq!(&text[refs[1].span.clone()], "16.1");
    assert!(
        matches!(&refs[0].kind, ReferenceKind::KustomizeImage { name } if name == "ahuora/django-api")
    );
    // The same content under another name and without `kind` is no
    // kustomization.
    let plain = text.replace("kind: Kustomization\n", "");
    assert!(
        find_references(Path::new("images.yaml"), &plain)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn find_marker_comments_win_over_structure() {
    let (text, refs) = find("markers.yaml");
    let markers: Vec<(&str, bool, &str)> = refs
        .iter()
        .map(|r| match &r.kind {
            ReferenceKind::Marker { policy, tag_only } => {
                (policy.as_str(), *tag_only, &text[r.span.clone()])
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        markers,
        vec![
            ("django-api", true, "0.0.17"),
            ("django-api", false, ":0.0.17"),
            ("something-else", true, "1.0.0"),
            ("numeric", true, "1.9"),
            ("plainnum", true, "v1"),
        ]
    );
    // A container image marked for another policy belongs to that policy.
    let pod = "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: postgres:16 # relbot: policy=pg-mirror\n";
    let refs = find_references(Path::new("p.yaml"), pod).unwrap();
    assert_eq!(refs.len(), 1);
    let by_image = PolicyTarget {
        name: "postgres",
        image: "postgres",
    };
    let by_name = PolicyTarget {
        name: "pg-mirror",
        image: "other",
    };
    assert!(!matches_policy(&refs[0], &by_image));
    assert!(matches_policy(&refs[0], &by_name));
}

#[test]
fn find_columns_count_characters_after_multibyte_text() {
    let text =
        "kind: Pod\nmetadata: {name: é}\nspec:\n  containers: [{name: ü, image: \"nginx:1\"}]\n";
    let refs = find_references(Path::new("p.yaml"), text).unwrap();
    assert_eq!((refs[0].line, refs[0].column), (4, 33));
    assert_eq!(&text[refs[0].span.clone()], ":1");
}

#[test]
fn find_policy_files_by_glob() {
    let dir = tempfile::tempdir().unwrap();
    for (file, body) in [
        ("manifests/ahuora/a.yaml", "x: 1\n"),
        ("manifests/other/b.yaml", "x: 1\n"),
    ] {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let files = files_for_policy(dir.path(), &["manifests/ahuora/**/*.yaml".to_string()]).unwrap();
    assert_eq!(
        files,
        vec![Path::new("manifests/ahuora/a.yaml").to_path_buf()]
    );
}

#[test]
fn find_objects_inside_a_list() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - kind: Job\n    metadata: {name: once}\n    spec:\n      template:\n        spec:\n          containers: [{name: run, image: \"busybox:1.36\"}]\n  - kind: Pod\n    metadata: {name: p}\n    spec:\n      initContainers:\n        - {name: i, image: alpine:3.19}\n";
    let refs = find_references(Path::new("list.yaml"), text).unwrap();
    let found: Vec<(&str, &str, &str)> = refs
        .iter()
        .map(|r| {
            let (kind, name, _) = container(r);
            (kind, name, r.image.as_str())
        })
        .collect();
    assert_eq!(
        found,
        vec![("Job", "run", "busybox"), ("Pod", "i", "alpine")]
    );
}

//! The sample repository (manifests-sample + policies) copied into a
//! temporary directory as one tree, and the tags the sample images have in
//! the test registry: newer patches, a newer minor outside a range,
//! pre-releases, floating tags (`latest`, `16`) and suffixed variants.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Registry repository → tags pushed to it.
pub const SAMPLE_TAGS: &[(&str, &[&str])] = &[
    (
        "ahuora/django-api",
        &[
            "0.0.16",
            "0.0.17",
            "0.0.18",
            "0.0.19-rc.1",
            "1.0.0",
            "0.0.18-alpine",
            "latest",
        ],
    ),
    (
        "ahuora/frontend",
        &["0.0.11", "0.0.12", "0.0.13-beta.1", "1.2.0", "latest"],
    ),
    (
        "ahuora/idaes",
        &[
            "0.0.9",
            "0.0.10",
            "0.0.11",
            "0.0.12",
            "0.0.12-arm64",
            "latest",
        ],
    ),
    (
        "bitnami/pgbouncer",
        &[
            "1.23.1",
            "1.24.0",
            "1.24.1",
            "1.24.1-debian-12-r3",
            "2.0.0",
            "latest",
        ],
    ),
    (
        "library/postgres",
        &[
            "16",
            "16.4",
            "16.5",
            "16.6",
            "16.6-alpine",
            "17",
            "17.2",
            "latest",
        ],
    ),
];

/// (policy, file, old line text, new line text) the dry-run must propose.
pub const EXPECTED_BUMPS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "django-api",
        "0.0.17",
        "0.0.18",
        "platform/api/deployment.yaml",
        "ahuora/django-api:0.0.17",
        "ahuora/django-api:0.0.18",
    ),
    (
        "idaes",
        "0.0.10",
        "0.0.12",
        "platform/worker/deployment.yaml",
        "ahuora/idaes:0.0.10",
        "ahuora/idaes:0.0.12",
    ),
    (
        "pgbouncer",
        "1.23.1",
        "1.24.1",
        "platform/pgbouncer/pgbouncer.yaml",
        "bitnami/pgbouncer:1.23.1",
        "bitnami/pgbouncer:1.24.1",
    ),
    (
        "postgres",
        "16.4",
        "16.6",
        "platform/postgres/statefulset.yaml",
        "postgres:16.4",
        "postgres:16.6",
    ),
];

pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The sample as one repository tree at `dir`: relbot.yaml, platform/,
/// monitoring/ and policies/ (relbot.yaml's `policies:` pointed inside).
/// `extra` is appended to relbot.yaml (e.g. a `registries:` block).
pub fn write_sample_tree(dir: &Path, extra: &str) {
    let samples = crate_root().join("manifests-sample");
    for sub in ["platform", "monitoring"] {
        copy_dir(&samples.join(sub), &dir.join(sub));
    }
    copy_dir(&crate_root().join("policies"), &dir.join("policies"));
    let config = std::fs::read_to_string(samples.join("relbot.yaml")).unwrap();
    assert!(config.contains("policies: ../policies"));
    let config = config.replace("policies: ../policies", "policies: policies");
    std::fs::write(dir.join("relbot.yaml"), format!("{config}{extra}")).unwrap();
}

/// The original text of a sample file.
pub fn sample_file(relative: &str) -> String {
    std::fs::read_to_string(crate_root().join("manifests-sample").join(relative)).unwrap()
}

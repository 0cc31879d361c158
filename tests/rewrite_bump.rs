//! End-to-end rewrite tests on hand-written manifests: every byte outside
//! the changed tag must survive.

use std::path::Path;

use relbot::release::rewrite::{FileChange, PolicyTarget, RewriteError, bump_file};

const API: PolicyTarget<'static> = PolicyTarget {
    name: "django-api",
    image: "docker.io/ahuora/django-api",
};
const DIGEST_0: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const DIGEST_1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_9: &str = "sha256:9999999999999999999999999999999999999999999999999999999999999999";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rewrite")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The expected text, built independently of relbot: replace `from` with
/// `to` exactly once on each given 1-based line, leave everything else.
fn replace_on_lines(text: &str, replacements: &[(usize, &str, &str)]) -> String {
    let mut out = String::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let mut line = line.to_string();
        for (_, from, to) in replacements.iter().filter(|(l, _, _)| *l == index + 1) {
            assert_eq!(
                line.matches(from).count(),
                1,
                "fixture line {}: {line:?}",
                index + 1
            );
            line = line.replacen(from, to, 1);
        }
        out.push_str(&line);
    }
    out
}

/// Assert the bump produced exactly `expected`, and that its line report
/// names exactly `lines`.
fn assert_bump(change: Option<FileChange>, expected: &str, lines: &[usize]) -> FileChange {
    let change = change.expect("a change");
    assert_eq!(change.new_text, expected);
    let reported: Vec<usize> = change.changes.iter().map(|c| c.line).collect();
    assert_eq!(reported, lines);
    for line in &change.changes {
        assert_ne!(line.old, line.new);
        assert!(!line.old.contains('\n') && !line.old.ends_with('\r'));
    }
    change
}

#[test]
fn rewrite_keeps_comments_blank_lines_tabs_and_unicode() {
    let text = fixture("deployment_comments.yaml");
    let change = bump_file(Path::new("d.yaml"), &text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(
        &text,
        &[
            (22, "django-api:0.0.17", "django-api:0.0.18"),
            (27, "django-api:0.0.17", "django-api:0.0.18"),
        ],
    );
    let change = assert_bump(change, &expected, &[22, 27]);
    assert_eq!(
        change.changes[1].new,
        "          image: docker.io/ahuora/django-api:0.0.18    # trailing spaces before comment"
    );
    // The annotation that merely mentions the image is untouched.
    assert!(
        change
            .new_text
            .contains("image: docker.io/ahuora/django-api:0.0.17 is not a field")
    );
}

#[test]
fn rewrite_is_a_no_op_when_current_or_unrelated() {
    let text = fixture("deployment_comments.yaml");
    assert!(
        bump_file(Path::new("d.yaml"), &text, &API, "0.0.17", None)
            .unwrap()
            .is_none()
    );
    let other = PolicyTarget {
        name: "redis",
        image: "redis",
    };
    assert!(
        bump_file(Path::new("d.yaml"), &text, &other, "7", None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn rewrite_multi_document_files_with_separators_and_ends() {
    let text = fixture("multi_doc.yaml");
    let change = bump_file(Path::new("m.yaml"), &text, &API, "0.1.0", None).unwrap();
    let expected = replace_on_lines(
        &text,
        &[
            (25, "django-api:0.0.17", "django-api:0.1.0"),
            (38, "django-api:0.0.17", "django-api:0.1.0"),
        ],
    );
    assert_bump(change, &expected, &[25, 38]);

    // Docker Hub spellings: `index.docker.io/library/postgres` is `postgres`.
    let postgres = PolicyTarget {
        name: "postgres",
        image: "postgres",
    };
    let change = bump_file(Path::new("m.yaml"), &text, &postgres, "16.2", None).unwrap();
    let expected = replace_on_lines(&text, &[(35, "postgres:16.1\"", "postgres:16.2\"")]);
    assert_bump(change, &expected, &[35]);
}

#[test]
fn rewrite_crlf_and_bom_survive() {
    let lf = fixture("deployment_comments.yaml");
    let text = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
    let change = bump_file(Path::new("crlf.yaml"), &text, &API, "0.0.18", None)
        .unwrap()
        .unwrap();
    let expected = format!(
        "\u{feff}{}",
        lf.replace("django-api:0.0.17\t", "django-api:0.0.18\t")
    )
    .replace("django-api:0.0.17    #", "django-api:0.0.18    #")
    .replace('\n', "\r\n");
    assert_eq!(change.new_text, expected);
    assert!(change.changes.iter().all(|c| !c.new.ends_with('\r')));
}

#[test]
fn rewrite_anchor_once_and_leave_alias() {
    let text = fixture("anchors.yaml");
    let change = bump_file(Path::new("a.yaml"), &text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(&text, &[(10, "django-api:0.0.17", "django-api:0.0.18")]);
    let change = assert_bump(change, &expected, &[10]);
    assert!(change.new_text.contains("image: *api   # alias"));
}

#[test]
fn rewrite_flow_style_quotes_ports_and_digests() {
    let text = fixture("flow.yaml");
    let agent = PolicyTarget {
        name: "agent",
        image: "registry.local:5000/ahuora/agent",
    };
    // The digest-pinned reference needs a digest.
    let error = bump_file(Path::new("f.yaml"), &text, &agent, "1.3", None).unwrap_err();
    assert!(
        matches!(error, RewriteError::DigestRequired { line: 7, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("f.yaml:7"), "{error}");

    let change = bump_file(Path::new("f.yaml"), &text, &agent, "1.3", Some(DIGEST_9)).unwrap();
    // Tag and digest replaced inside the quotes; the untagged init image
    // gets a tag appended; nothing else moves.
    let expected = replace_on_lines(
        &text,
        &[
            (
                7,
                &format!("agent:1.2@{DIGEST_0}\""),
                &format!("agent:1.3@{DIGEST_9}\""),
            ),
            (8, "ahuora/agent }", "ahuora/agent:1.3 }"),
        ],
    );
    assert_bump(change, &expected, &[7, 8]);
}

#[test]
fn rewrite_kustomization_new_tag() {
    let text = fixture("kustomization.yaml");
    let path = Path::new("overlays/prod/kustomization.yaml");
    let change = bump_file(path, &text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(&text, &[(10, "0.0.17 #", "0.0.18 #")]);
    assert_bump(change, &expected, &[10]);

    // newName decides the repository; the quotes stay.
    let mirror = PolicyTarget {
        name: "pg",
        image: "registry.local:5000/mirror/postgres",
    };
    let change = bump_file(path, &text, &mirror, "16.2", None).unwrap();
    assert_bump(
        change,
        &replace_on_lines(&text, &[(13, "\"16.1\"", "\"16.2\"")]),
        &[13],
    );

    // No newTag: refused with a message saying what to add.
    let redis = PolicyTarget {
        name: "redis",
        image: "redis",
    };
    let error = bump_file(path, &text, &redis, "7.2", None).unwrap_err();
    assert!(
        matches!(error, RewriteError::MissingNewTag { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("newTag"), "{error}");

    // Tag and digest are separate fields.
    let pinned = PolicyTarget {
        name: "pinned",
        image: "pinned",
    };
    assert!(bump_file(path, &text, &pinned, "2.1", None).is_err());
    let change = bump_file(path, &text, &pinned, "2.1", Some(DIGEST_9)).unwrap();
    let expected = replace_on_lines(
        &text,
        &[(17, "\"2.0\"", "\"2.1\""), (18, DIGEST_1, DIGEST_9)],
    );
    assert_bump(change, &expected, &[17, 18]);
}

#[test]
fn rewrite_marker_comments() {
    let text = fixture("markers.yaml");
    let change = bump_file(Path::new("hr.yaml"), &text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(
        &text,
        &[
            (9, "tag: 0.0.17 #", "tag: 0.0.18 #"),
            (11, "django-api:0.0.17\"", "django-api:0.0.18\""),
        ],
    );
    assert_bump(change, &expected, &[9, 11]);

    // A quoted tag stays quoted; a plain one that would read as a number
    // gets quotes so it stays a string.
    let numeric = PolicyTarget {
        name: "numeric",
        image: "unused",
    };
    let change = bump_file(Path::new("hr.yaml"), &text, &numeric, "1.10", None).unwrap();
    assert_bump(
        change,
        &replace_on_lines(&text, &[(15, "\"1.9\"", "\"1.10\"")]),
        &[15],
    );
    let plainnum = PolicyTarget {
        name: "plainnum",
        image: "unused",
    };
    let change = bump_file(Path::new("hr.yaml"), &text, &plainnum, "2", None).unwrap();
    assert_bump(
        change,
        &replace_on_lines(&text, &[(17, "tag: v1 #", "tag: \"2\" #")]),
        &[17],
    );
}

#[test]
fn rewrite_refuses_unsafe_tags_and_scalars() {
    let text = fixture("deployment_comments.yaml");
    for bad in ["0.0.18 # x", "1\n2", "", "-rc", "a\"b"] {
        let error = bump_file(Path::new("d.yaml"), &text, &API, bad, None).unwrap_err();
        assert!(
            matches!(error, RewriteError::InvalidTag { .. }),
            "{bad:?}: {error}"
        );
    }
    let escaped = "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: \"docker.io/ahuora/django-api:0.0.\\x31\"\n";
    let error = bump_file(Path::new("p.yaml"), escaped, &API, "0.0.18", None).unwrap_err();
    assert!(
        matches!(error, RewriteError::Unsupported { line: 5, .. }),
        "{error}"
    );
    // Already current: nothing to write, so nothing to refuse.
    assert!(
        bump_file(Path::new("p.yaml"), escaped, &API, "0.0.1", None)
            .unwrap()
            .is_none()
    );
    let block = "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: >-\n        docker.io/ahuora/django-api:0.0.17\n";
    let error = bump_file(Path::new("p.yaml"), block, &API, "0.0.18", None).unwrap_err();
    assert!(error.to_string().contains("block scalar"), "{error}");
}

#[test]
fn rewrite_reports_invalid_yaml_with_position() {
    let error = bump_file(
        Path::new("bad.yaml"),
        "a: [1, 2\nb: {\n",
        &API,
        "1.0.0",
        None,
    )
    .unwrap_err();
    assert!(matches!(error, RewriteError::Syntax { .. }), "{error}");
    assert!(error.to_string().starts_with("bad.yaml:"), "{error}");
}

#[test]
fn rewrite_verification_refuses_an_edit_in_the_wrong_place() {
    use relbot::release::rewrite::{Edit, ExpectedChange, apply_edits, find_references, verify};

    let text = fixture("deployment_comments.yaml");
    let path = Path::new("d.yaml");
    let references = find_references(path, &text).unwrap();
    let api = &references[1];
    let edits = api.edits_for("0.0.18", None).unwrap();
    assert_eq!(
        edits,
        vec![Edit {
            span: api.span.clone(),
            new_text: ":0.0.18".to_string()
        }]
    );
    let expected = [ExpectedChange {
        doc_index: 0,
        pointer: "/spec/template/spec/containers/0/image".to_string(),
        new_value: "docker.io/ahuora/django-api:0.0.18".to_string(),
    }];
    let good = apply_edits(&text, &edits).unwrap();
    verify(path, &text, &good, &expected).unwrap();

    // The same edit shifted onto the sidecar's tag must be refused.
    let sidecar = &references[2];
    let wrong = [Edit {
        span: sidecar.span.clone(),
        new_text: ":0.0.18".to_string(),
    }];
    let bad = apply_edits(&text, &wrong).unwrap();
    let error = verify(path, &text, &bad, &expected).unwrap_err();
    assert!(
        matches!(error, RewriteError::Verification { .. }),
        "{error}"
    );
    // An edit that breaks the YAML is refused too.
    let broken = [Edit {
        span: api.span.start..api.span.start,
        new_text: "\n  - x".to_string(),
    }];
    let bad = apply_edits(&text, &broken).unwrap();
    assert!(verify(path, &text, &bad, &expected).is_err());
}

#[test]
fn rewrite_markers_apply_only_to_their_own_line() {
    let text = "kind: ConfigMap\ndata:\n  a: docker.io/ahuora/django-api:0.0.17\n  # relbot: policy=django-api\n  b: docker.io/ahuora/django-api:0.0.17 # relbot: policy=django-api\n  c: x # {\"$imagepolicy\": \"ns:django-api:name\"}\n  d: # relbot: policy=django-api\n";
    let change = bump_file(Path::new("cm.yaml"), text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(text, &[(5, "0.0.17 #", "0.0.18 #")]);
    assert_bump(change, &expected, &[5]);
}

#[test]
fn rewrite_marked_alias_edits_its_anchor_once() {
    let text = "x-images:\n  api: &api docker.io/ahuora/django-api:0.0.17\nvalues:\n  image: *api # relbot: policy=django-api\n  again: *api # relbot: policy=django-api\n";
    let change = bump_file(Path::new("v.yaml"), text, &API, "0.0.18", None).unwrap();
    let expected = replace_on_lines(text, &[(2, "0.0.17", "0.0.18")]);
    assert_bump(change, &expected, &[2]);
}

#[test]
fn rewrite_skips_empty_images_and_non_workloads() {
    let text = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image:\n---\nkind: ConfigMap\nspec:\n  template:\n    spec:\n      containers:\n        - {name: b, image: docker.io/ahuora/django-api:0.0.17}\n";
    assert!(
        bump_file(Path::new("x.yaml"), text, &API, "0.0.18", None)
            .unwrap()
            .is_none()
    );
}

/// Every byte outside the edits' spans is the same, in order.
fn assert_only_spans_changed(old: &str, new: &str, edits: &[relbot::release::rewrite::Edit]) {
    let mut edits = edits.to_vec();
    edits.sort_by_key(|e| e.span.start);
    let (mut old_at, mut new_at) = (0, 0);
    for edit in &edits {
        let gap = edit.span.start - old_at;
        assert_eq!(&old[old_at..edit.span.start], &new[new_at..new_at + gap]);
        assert_eq!(
            &new[new_at + gap..new_at + gap + edit.new_text.len()],
            edit.new_text
        );
        new_at += gap + edit.new_text.len();
        old_at = edit.span.end;
    }
    assert_eq!(&old[old_at..], &new[new_at..]);
}

#[test]
fn rewrite_every_reference_in_every_fixture_changes_only_its_span() {
    use relbot::release::rewrite::{apply_edits, find_references};

    let mut checked = 0;
    for name in [
        "anchors.yaml",
        "deployment_comments.yaml",
        "flow.yaml",
        "kustomization.yaml",
        "markers.yaml",
        "multi_doc.yaml",
    ] {
        let lf = fixture(name);
        for text in [lf.clone(), format!("\u{feff}{}", lf.replace('\n', "\r\n"))] {
            let path = Path::new(name);
            for reference in find_references(path, &text).unwrap() {
                let edits = match reference.edits_for("9.9.9", Some(DIGEST_9)) {
                    Ok(edits) => edits,
                    Err(RewriteError::MissingNewTag { .. }) => continue,
                    Err(error) => panic!("{name}: {error}"),
                };
                let new = apply_edits(&text, &edits).unwrap();
                assert_only_spans_changed(&text, &new, &edits);
                // Read back: the same reference now carries the new tag.
                let after = find_references(path, &new).unwrap();
                let same = after
                    .iter()
                    .find(|r| r.line == reference.line && r.column == reference.column)
                    .unwrap_or_else(|| panic!("{name}:{} vanished", reference.line));
                assert_eq!(
                    same.tag.as_deref(),
                    Some("9.9.9"),
                    "{name}:{}",
                    reference.line
                );
                assert_eq!(same.image, reference.image);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 38, "references checked");
}

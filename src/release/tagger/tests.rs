//! Tests of `relbot tag`.

use super::*;

fn bump(message: &str) -> Bump {
    classify_message(message).bump
}

#[test]
fn conventional_types() {
    assert_eq!(bump("feat: add x"), Bump::Minor);
    assert_eq!(bump("feat(api): add x"), Bump::Minor);
    assert_eq!(bump("Feat(api): add x"), Bump::Minor);
    assert_eq!(bump("fix: y"), Bump::Patch);
    assert_eq!(bump("perf(db): faster"), Bump::Patch);
    for none in [
        "chore: deps",
        "docs: readme",
        "ci: cache",
        "refactor(x): y",
        "test: z",
    ] {
        assert_eq!(bump(none), Bump::None, "{none}");
        assert!(classify_message(none).conventional);
    }
}

#[test]
fn breaking_changes() {
    let m = classify_message("fix!: drop old flag");
    assert_eq!((m.bump, m.breaking), (Bump::Major, true));
    let m = classify_message("feat(api)!: new shape");
    assert_eq!((m.bump, m.breaking), (Bump::Major, true));
    let m = classify_message("feat: x\n\nBREAKING CHANGE: removed y");
    assert_eq!((m.bump, m.breaking), (Bump::Major, true));
    let m = classify_message("refactor: x\n\nsome text\nBREAKING-CHANGE: removed y");
    assert_eq!((m.bump, m.breaking), (Bump::Major, true));
    // Only as a footer line, in capitals, not in the subject or mid-line.
    assert_eq!(
        bump("feat: mention BREAKING CHANGE: in subject"),
        Bump::Minor
    );
    assert_eq!(
        bump("fix: x\n\nthis is not a BREAKING CHANGE: really"),
        Bump::Patch
    );
    assert_eq!(bump("fix: x\n\nbreaking change: lower case"), Bump::Patch);
}

#[test]
fn tokens() {
    assert_eq!(bump("update things #minor"), Bump::Minor);
    assert_eq!(bump("update things\n\n#major"), Bump::Major);
    assert_eq!(bump("#patch: tweak"), Bump::Patch);
    // The higher of token and type wins.
    assert_eq!(bump("fix: y #minor"), Bump::Minor);
    assert_eq!(bump("feat: y #patch"), Bump::Minor);
    assert_eq!(bump("chore: release #major"), Bump::Major);
    // An explicit #major is not a "breaking change": never softened.
    let m = classify_message("feat!: x #major");
    assert_eq!((m.bump, m.breaking), (Bump::Major, false));
    // Word boundaries: not a token.
    assert_eq!(bump("issue#minor2 and ##patches"), Bump::None);
    assert_eq!(bump("see #majority"), Bump::None);
}

#[test]
fn non_conventional_messages_ask_for_nothing() {
    for m in [
        "Update README",
        "Merge pull request #12 from a/b",
        "feat add x",
        "fix :x",
        "",
    ] {
        let c = classify_message(m);
        assert_eq!(c.bump, Bump::None, "{m}");
    }
    assert!(!classify_message("Update README").conventional);
}

#[test]
fn bump_apply_resets_lower_components() {
    let v = Version::parse("1.4.7").unwrap();
    assert_eq!(Bump::Patch.apply(&v), Version::new(1, 4, 8));
    assert_eq!(Bump::Minor.apply(&v), Version::new(1, 5, 0));
    assert_eq!(Bump::Major.apply(&v), Version::new(2, 0, 0));
    assert_eq!(Bump::None.apply(&v), v);
    let pre = Version::parse("1.4.7+build.5").unwrap();
    assert_eq!(Bump::Patch.apply(&pre), Version::new(1, 4, 8));
}

#[test]
fn tag_versions_with_prefixes() {
    let v = |s| Some((Version::parse(s).unwrap(), false));
    assert_eq!(
        parse_tag_version("django-api-0.1.2", "django-api-"),
        v("0.1.2")
    );
    assert_eq!(
        parse_tag_version("django-api-v0.1.2", "django-api-"),
        Some((Version::new(0, 1, 2), true))
    );
    assert_eq!(
        parse_tag_version("v1.2.3", ""),
        Some((Version::new(1, 2, 3), true))
    );
    assert_eq!(parse_tag_version("1.2.3", ""), v("1.2.3"));
    assert_eq!(parse_tag_version("django-api-0.1.2", ""), None);
    assert_eq!(parse_tag_version("web-0.1.2", "django-api-"), None);
    assert_eq!(parse_tag_version("release-2024", ""), None);
    assert_eq!(parse_tag_version("1.2", ""), None);
    assert_eq!(parse_tag_version("1.2.0-rc.1", ""), None);
}

#[test]
fn below_one_breaking_bumps_minor_unless_configured() {
    let breaking = classify_message("feat!: x");
    let token = classify_message("x #major");
    let zero = Version::new(0, 3, 1);
    let one = Version::new(1, 3, 1);
    let mut options = TagOptions::default();
    assert_eq!(effective_bump(breaking, Some(&zero), &options), Bump::Minor);
    assert_eq!(effective_bump(breaking, Some(&one), &options), Bump::Major);
    assert_eq!(effective_bump(token, Some(&zero), &options), Bump::Major);
    options.breaking_bumps_major_before_1 = true;
    assert_eq!(effective_bump(breaking, Some(&zero), &options), Bump::Major);
}

#[test]
fn default_bump_applies_only_to_non_conventional_messages() {
    let options = TagOptions {
        default_bump: Bump::Patch,
        ..TagOptions::default()
    };
    let base = Version::new(1, 0, 0);
    assert_eq!(
        effective_bump(classify_message("Update README"), Some(&base), &options),
        Bump::Patch
    );
    assert_eq!(
        effective_bump(classify_message("chore: deps"), Some(&base), &options),
        Bump::None
    );
}

#[test]
fn bump_parses_from_cli_words() {
    assert_eq!("Patch".parse::<Bump>(), Ok(Bump::Patch));
    assert!("huge".parse::<Bump>().is_err());
}

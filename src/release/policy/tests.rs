//! Tests of image policies.

use super::*;
use crate::config::VersionRange;

fn spec(range: &str) -> ImagePolicySpec {
    ImagePolicySpec {
        image: "docker.io/ahuora/django-api".into(),
        semver: VersionRange::parse(range).unwrap(),
        tag_prefix: String::new(),
        tag_suffix: None,
        pre_release: false,
        tag_pattern: None,
        floating_tags: FloatingTags::Keep,
        pin_digest: false,
        files: Vec::new(),
        schedule: None,
        automerge: None,
        application: None,
        rollback: Default::default(),
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

fn pick(spec: &ImagePolicySpec, current: Option<&str>, list: &[&str]) -> Option<String> {
    select_tag(spec, current, &tags(list))
        .unwrap()
        .map(|c| c.tag)
}

#[test]
fn versions_compare_as_numbers() {
    let s = spec(">=0.0.1");
    assert_eq!(
        pick(&s, None, &["0.0.9", "0.0.10", "0.0.2"]).as_deref(),
        Some("0.0.10")
    );
    assert_eq!(
        pick(&s, Some("0.0.9"), &["0.0.9", "0.0.10"]).as_deref(),
        Some("0.0.10")
    );
    let c = select_tag(&s, None, &tags(&["1.10.0", "1.9.99"]))
        .unwrap()
        .unwrap();
    assert_eq!(c.version.numbers(), &[1, 10, 0]);
}

#[test]
fn never_downgrades_or_repeats() {
    let s = spec("*");
    assert_eq!(pick(&s, Some("2.0.0"), &["1.0.0", "1.9.9", "2.0.0"]), None);
    assert_eq!(
        pick(&s, Some("v2.0.0"), &["2.0.0"]),
        None,
        "same version, other spelling"
    );
    // Above the range already: nothing in range is newer.
    assert_eq!(pick(&spec("<2.0.0"), Some("3.0.0"), &["1.5.0"]), None);
}

#[test]
fn range_bounds_candidates() {
    let s = spec(">=0.1.0 <1.0.0");
    assert_eq!(
        pick(&s, Some("0.1.0"), &["0.1.1", "0.9.3", "1.0.0", "2.3.4"]).as_deref(),
        Some("0.9.3")
    );
    assert_eq!(
        pick(&spec("~1.2"), Some("1.2.0"), &["1.2.9", "1.3.0"]).as_deref(),
        Some("1.2.9")
    );
    assert_eq!(
        pick(&spec("^0.3"), Some("0.3.0"), &["0.3.7", "0.4.0"]).as_deref(),
        Some("0.3.7")
    );
    assert_eq!(
        pick(&spec("1.x"), None, &["1.4.0", "2.0.0"]).as_deref(),
        Some("1.4.0")
    );
    assert_eq!(
        pick(
            &spec("~1.2 || ^3.0"),
            Some("1.2.0"),
            &["1.2.4", "2.5.0", "3.1.0"]
        )
        .as_deref(),
        Some("3.1.0")
    );
}

#[test]
fn tag_prefix_must_match() {
    let mut s = spec(">=0.0.1");
    s.tag_prefix = "django-api-".into();
    let list = [
        "django-api-0.0.17",
        "django-api-0.0.9",
        "frontend-0.0.99",
        "0.0.50",
        "django-api-latest",
    ];
    assert_eq!(
        pick(&s, Some("django-api-0.0.16"), &list).as_deref(),
        Some("django-api-0.0.17")
    );
    assert_eq!(pick(&s, Some("django-api-0.0.17"), &list), None);
}

#[test]
fn v_prefix_is_ignored_for_order_and_kept_in_ties() {
    let s = spec(">=1.0.0");
    assert_eq!(
        pick(&s, Some("v1.0.0"), &["v1.2.0", "v1.10.0", "1.3.0"]).as_deref(),
        Some("v1.10.0")
    );
    assert_eq!(
        pick(&s, Some("v1.0.0"), &["1.2.0", "v1.2.0"]).as_deref(),
        Some("v1.2.0")
    );
    assert_eq!(
        pick(&s, Some("1.0.0"), &["v1.2.0", "1.2.0"]).as_deref(),
        Some("1.2.0")
    );
    assert_eq!(pick(&s, None, &["V2.0.0"]).as_deref(), Some("V2.0.0"));
}

#[test]
fn suffix_of_the_tag_in_use_is_kept() {
    let s = spec(">=1.0.0");
    let list = [
        "1.3.0",
        "1.3.0-alpine",
        "1.2.9-alpine",
        "1.4.0-arm64",
        "1.3.1-alpine3.20",
    ];
    assert_eq!(
        pick(&s, Some("1.2.0-alpine"), &list).as_deref(),
        Some("1.3.0-alpine")
    );
    assert_eq!(pick(&s, Some("1.2.0"), &list).as_deref(), Some("1.3.0"));
    assert_eq!(
        pick(&s, Some("1.2.0-arm64"), &list).as_deref(),
        Some("1.4.0-arm64")
    );
    assert_eq!(
        pick(&s, None, &list).as_deref(),
        Some("1.3.0"),
        "no tag in use: plain tags only"
    );
}

#[test]
fn explicit_suffix_wins_and_gets_its_dash() {
    let mut s = spec(">=1.0.0");
    s.tag_suffix = Some("alpine".into());
    assert_eq!(
        pick(&s, Some("1.2.0"), &["1.3.0", "1.3.0-alpine"]).as_deref(),
        Some("1.3.0-alpine")
    );
    s.tag_suffix = Some(String::new());
    assert_eq!(
        pick(&s, Some("1.2.0-alpine"), &["1.3.0", "1.3.0-alpine"]).as_deref(),
        Some("1.3.0")
    );
}

#[test]
fn prereleases_only_when_asked_and_rank_numerically() {
    let mut s = spec(">=1.0.0 <2.0.0");
    let list = [
        "1.2.0",
        "1.3.0-rc.1",
        "1.3.0-rc.10",
        "1.3.0-rc.9",
        "2.0.0-rc.1",
    ];
    assert_eq!(pick(&s, Some("1.1.0"), &list).as_deref(), Some("1.2.0"));
    s.pre_release = true;
    assert_eq!(
        pick(&s, Some("1.1.0"), &list).as_deref(),
        Some("1.3.0-rc.10")
    );
    assert_eq!(
        pick(&s, Some("1.3.0-rc.10"), &["1.3.0", "1.3.0-rc.2"]).as_deref(),
        Some("1.3.0")
    );
}

#[test]
fn prerelease_suffix_of_the_tag_in_use_is_kept() {
    // The tag in use is a pre-release with a suffix: its suffix is kept.
    let mut s = spec(">=1.0.0");
    s.pre_release = true;
    let list = ["1.3.0-rc.2", "1.3.0-rc.2-alpine", "1.3.0-alpine"];
    assert_eq!(
        pick(&s, Some("1.3.0-rc.1-alpine"), &list).as_deref(),
        Some("1.3.0-alpine")
    );
}

#[test]
fn four_part_tags_compare_every_number() {
    let s = spec("*");
    assert_eq!(
        pick(&s, Some("1.2.3.4"), &["1.2.3.5", "1.2.3.10", "1.2.3.3"]).as_deref(),
        Some("1.2.3.10")
    );
    assert_eq!(
        pick(&s, Some("1.2.3.4"), &["1.2.4.4", "1.2.4.7", "1.2.4"]).as_deref(),
        Some("1.2.4.7"),
        "the newest four-part tag, not a three-part one"
    );
    assert_eq!(pick(&s, Some("1.2.3.10"), &["1.2.3.9", "1.2.3.10"]), None);
    // The range sees the first three numbers.
    assert_eq!(
        pick(&spec("<1.2.4"), Some("1.2.3.4"), &["1.2.3.9", "1.2.4.0"]).as_deref(),
        Some("1.2.3.9")
    );
    assert_eq!(
        pick(&s, Some("1.2.3.4-alpine"), &["1.2.3.5", "1.2.3.6-alpine"]).as_deref(),
        Some("1.2.3.6-alpine")
    );
}

#[test]
fn floating_tags_keep_their_number_of_parts() {
    let list = [
        "latest", "stable", "16", "16.4", "17", "17.2", "16.4.1", "17.2.1", "alpine",
    ];
    let s = spec(">=16.0.0");
    assert_eq!(pick(&s, Some("16"), &list).as_deref(), Some("17"));
    assert_eq!(pick(&s, Some("16.4"), &list).as_deref(), Some("17.2"));
    assert_eq!(pick(&s, Some("16.4.1"), &list).as_deref(), Some("17.2.1"));
    assert_eq!(pick(&s, Some("17"), &list), None);
    assert_eq!(
        pick(&s, None, &list).as_deref(),
        Some("17.2.1"),
        "no tag in use: full versions only"
    );
}

#[test]
fn floating_tags_pin_moves_to_the_newest_full_version() {
    let list = ["16", "16.4", "17", "17.2", "16.4.1", "17.2.1"];
    let mut s = spec(">=16.0.0");
    s.floating_tags = FloatingTags::Pin;
    assert_eq!(pick(&s, Some("16"), &list).as_deref(), Some("17.2.1"));
    assert_eq!(pick(&s, Some("16.4"), &list).as_deref(), Some("17.2.1"));
    assert_eq!(pick(&s, Some("16.4.1"), &list).as_deref(), Some("17.2.1"));
    // Four parts are not floating: they stay four.
    assert_eq!(
        pick(&s, Some("1.2.3.4"), &["1.2.3.5", "1.2.4"]).as_deref(),
        None,
        "outside the range"
    );
    assert_eq!(
        pick(&spec("*"), Some("1.2.3.4"), &["1.2.3.5", "1.2.4"]).as_deref(),
        Some("1.2.3.5")
    );
}

#[test]
fn date_and_ubuntu_style_tags_get_bumps() {
    let s = spec("*");
    assert_eq!(
        pick(
            &s,
            Some("20240101"),
            &["20231201", "20240101", "20240315", "latest"]
        )
        .as_deref(),
        Some("20240315")
    );
    assert_eq!(
        pick(
            &s,
            Some("18.04"),
            &["16.04", "18.04", "20.04", "22.04", "22.10", "jammy"]
        )
        .as_deref(),
        Some("22.10")
    );
    assert_eq!(
        pick(
            &spec("<22.5.0"),
            Some("18.04"),
            &["20.04", "22.04", "22.10"]
        )
        .as_deref(),
        Some("22.04"),
        "a range keeps to LTS releases"
    );
    assert_eq!(
        pick(
            &s,
            Some("20240101-alpine"),
            &["20240315", "20240201-alpine"]
        )
        .as_deref(),
        Some("20240201-alpine")
    );
}

#[test]
fn a_word_in_use_gets_no_version_and_a_reason() {
    let list = tags(&["1.0.0", "2.0.0", "latest", "stable"]);
    let s = spec("*");
    let policy = TagPolicy::new(&s).unwrap();
    for word in ["latest", "stable", "main", "sha-abc123"] {
        assert_eq!(
            policy.choose(Some(word), &list),
            Choice::NotAVersion { tag: word.into() },
            "{word}"
        );
        assert_eq!(pick(&s, Some(word), &["1.0.0", "2.0.0"]), None, "{word}");
    }
    assert_eq!(policy.choose(Some("2.0.0"), &list), Choice::Current);
    assert!(matches!(
        policy.choose(Some("1.0.0"), &list),
        Choice::Newer(Candidate { tag, .. }) if tag == "2.0.0"
    ));
    let why = Held::NotAVersion {
        tag: Some("latest".into()),
    }
    .to_string();
    assert!(
        why.starts_with("latest is not a version;") && why.contains("1.2.3"),
        "{why}"
    );
    assert!(
        Held::NotAVersion { tag: None }
            .to_string()
            .contains("no tag (which means latest)")
    );
}

#[test]
fn a_prerelease_in_use_moves_to_newer_prereleases_of_its_version() {
    let s = spec("*");
    let list = ["3.7.0b5", "3.7.0b10", "3.7.0rc1", "3.8.0b1", "3.6.9"];
    assert_eq!(
        pick(&s, Some("3.7.0b1"), &list).as_deref(),
        Some("3.7.0rc1"),
        "rc1 > b10 > b5, and not the next version's beta"
    );
    assert_eq!(
        pick(&s, Some("3.7.0b1"), &["3.7.0b5", "3.7.0b10"]).as_deref(),
        Some("3.7.0b10"),
        "b10 > b5"
    );
    // Once the release ships it wins, and no pre-release follows it.
    let shipped = ["3.7.0b10", "3.7.0", "3.8.0b1"];
    assert_eq!(
        pick(&s, Some("3.7.0b5"), &shipped).as_deref(),
        Some("3.7.0")
    );
    assert_eq!(pick(&s, Some("3.7.0"), &shipped), None);
    // A stable tag in use never moves to a pre-release with them off.
    assert_eq!(pick(&s, Some("3.6.9"), &["3.7.0b10"]), None);
}

#[test]
fn dash_rc_and_beta_are_prereleases_not_a_suffix_family() {
    let s = spec("*");
    // Renovate reads `-rc1` as a suffix and would move 1.0.0-rc1 to
    // 1.1.0-rc1 only; relbot reads a pre-release and moves to the release.
    assert_eq!(
        pick(&s, Some("1.0.0-rc1"), &["1.0.0", "1.1.0-rc1"]).as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        pick(&s, Some("1.0.0-beta"), &["1.0.0-beta.2", "1.0.0-rc1"]).as_deref(),
        Some("1.0.0-rc1")
    );
    assert_eq!(pick(&s, Some("1.0.0"), &["1.1.0-beta", "1.1.0-rc1"]), None);
}

#[test]
fn tag_pattern_filters() {
    let mut s = spec(">=1.0.0");
    s.tag_pattern = Some("^1\\.[0-9]+\\.[0-9]+$".into());
    assert_eq!(
        pick(&s, None, &["1.5.0", "2.0.0", "1.6.0-alpine"]).as_deref(),
        Some("1.5.0")
    );
    s.tag_pattern = Some("([".into());
    let e = select_tag(&s, None, &[]).unwrap_err().to_string();
    assert!(e.contains("tagPattern") && e.contains("(["), "{e}");
}

#[test]
fn tag_pattern_version_capture_ranks_revisions_naturally() {
    let mut s = spec("~16.4");
    s.tag_pattern = Some(r"^(?P<version>\d+\.\d+\.\d+)-debian-12-r\d+$".into());
    let list = [
        "16.4.0-debian-12-r9",
        "16.4.0-debian-12-r10",
        "16.4.1-debian-11-r1",
        "16.5.0-debian-12-r1",
    ];
    assert_eq!(
        pick(&s, Some("16.4.0-debian-12-r5"), &list).as_deref(),
        Some("16.4.0-debian-12-r10")
    );
    assert_eq!(pick(&s, Some("16.4.0-debian-12-r10"), &list), None);
}

#[test]
fn ten_thousand_tags_pick_the_newest() {
    let mut list: Vec<String> = (0..10_000)
        .map(|i| format!("{}.{}.{}", i / 1000, (i / 10) % 100, i % 10))
        .collect();
    list.push("latest".into());
    let c = select_tag(&spec(">=0.0.0"), Some("0.0.1"), &list)
        .unwrap()
        .unwrap();
    assert_eq!(c.tag, "9.99.9");
}

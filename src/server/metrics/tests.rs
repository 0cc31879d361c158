//! The scrape, read back: every family keeps its name, type, labels and
//! help, and the text parses as the exposition format.

use std::collections::BTreeMap;

use super::*;

/// Label pairs in the order scraped.
type Pairs = Vec<(String, String)>;
/// (sample name, label pairs, value)
type Sample = (String, Pairs, f64);
/// A histogram sample: (suffix, `le`, value).
type Part<'a> = (&'a str, Option<&'a str>, f64);

/// One family of a scrape, read back line by line.
#[derive(Debug, Default)]
struct ScrapedFamily {
    name: String,
    help: String,
    kind: String,
    /// (sample name, label pairs, value)
    samples: Vec<Sample>,
}

/// Reads the text exposition format (0.0.4) strictly: `# HELP`, then
/// `# TYPE`, then the family's samples; names, label pairs and values
/// well formed; a histogram's buckets cumulative up to `+Inf`, which
/// equals its `_count`; no other comment (0.0.4 has no `# EOF`).
fn parse_exposition(text: &str) -> Vec<ScrapedFamily> {
    assert!(text.ends_with('\n'), "no final newline");
    let is_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut families: Vec<ScrapedFamily> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(is_name(name), "bad name in {line:?}");
            assert!(families.iter().all(|f| f.name != name), "{name} twice");
            families.push(ScrapedFamily {
                name: name.into(),
                help: help.into(),
                ..Default::default()
            });
            continue;
        }
        let family = families.last_mut().expect("a sample before any HELP");
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert_eq!(name, family.name, "TYPE for another family than HELP");
            assert!(
                family.kind.is_empty() && family.samples.is_empty(),
                "{line:?}"
            );
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{line:?}"
            );
            family.kind = kind.into();
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        assert!(!family.kind.is_empty(), "sample before TYPE: {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect(line))),
        };
        let suffixes: &[&str] = match family.kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|s| name == format!("{}{s}", family.name)),
            "sample {name} outside family {}",
            family.name
        );
        family.samples.push((name.into(), labels, value));
    }
    for family in families.iter().filter(|f| f.kind == "histogram") {
        check_histogram(family);
    }
    families
}

/// `a="x",b="y\"z"` → pairs, unescaped.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label name=\"value\"");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((name.to_string(), value));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    pairs
}

fn check_histogram(family: &ScrapedFamily) {
    // Samples per series: the labels other than `le`.
    let mut series: BTreeMap<Pairs, Vec<Part>> = BTreeMap::new();
    for (name, labels, value) in &family.samples {
        let suffix = &name[family.name.len()..];
        let le = labels
            .iter()
            .find(|(k, _)| k == "le")
            .map(|(_, v)| v.as_str());
        assert_eq!(le.is_some(), suffix == "_bucket", "{name} {labels:?}");
        let rest = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        series.entry(rest).or_default().push((suffix, le, *value));
    }
    for (labels, samples) in series {
        let buckets: Vec<(Option<&str>, f64)> = samples
            .iter()
            .filter(|s| s.0 == "_bucket")
            .map(|s| (s.1, s.2))
            .collect();
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{} {labels:?}: buckets not cumulative",
            family.name
        );
        let one = |suffix: &str| {
            let found: Vec<f64> = samples
                .iter()
                .filter(|s| s.0 == suffix)
                .map(|s| s.2)
                .collect();
            assert_eq!(found.len(), 1, "{}{suffix} {labels:?}", family.name);
            found[0]
        };
        let (last_le, last) = *buckets.last().expect("buckets");
        assert_eq!(last_le, Some("+Inf"), "{} {labels:?}", family.name);
        assert_eq!(
            last,
            one("_count"),
            "{} {labels:?}: +Inf is not the count",
            family.name
        );
        one("_sum");
    }
}

/// Every family: name, type, label names and help, as docs/metrics.md lists them.
const EXPECTED: &[(&str, &str, &[&str], &str)] = &[
    (
        "relbot_syncs_total",
        "counter",
        &["application", "result"],
        "Application syncs by result.",
    ),
    (
        "relbot_sync_duration_seconds",
        "histogram",
        &["application", "result"],
        "Duration of application syncs.",
    ),
    (
        "relbot_objects",
        "gauge",
        &["application", "sync_status", "health"],
        "Objects per application by sync status and health.",
    ),
    (
        "relbot_drift_corrections_total",
        "counter",
        &["application"],
        "Live objects changed back to the state in git.",
    ),
    (
        "relbot_prunes_total",
        "counter",
        &["application"],
        "Objects deleted because they left git.",
    ),
    (
        "relbot_webhook_deliveries_total",
        "counter",
        &["event", "verdict"],
        "Webhook deliveries by event and verdict.",
    ),
    (
        "relbot_registry_requests_total",
        "counter",
        &["registry", "result"],
        "Requests to container registries by result.",
    ),
    (
        "relbot_registry_rate_limit_waits_total",
        "counter",
        &["registry"],
        "Times relbot waited for a registry rate limit.",
    ),
    (
        "relbot_registry_rate_limit_wait_seconds_total",
        "counter",
        &["registry"],
        "Seconds spent waiting for registry rate limits.",
    ),
    (
        "relbot_pull_requests_total",
        "counter",
        &["action"],
        "Bump pull requests by action.",
    ),
    (
        "relbot_commit_statuses_total",
        "counter",
        &["result"],
        "Commit statuses posted to GitHub, by result.",
    ),
    (
        "relbot_notifications_total",
        "counter",
        &["result"],
        "Webhook notifications about failed, Degraded or recovered applications, by result.",
    ),
    (
        "relbot_clock_skew_seconds",
        "gauge",
        &["peer"],
        "Local clock minus the Date of the peer's last answer, by peer.",
    ),
    (
        "relbot_lease_held",
        "gauge",
        &[],
        "1 while this replica holds the leader Lease.",
    ),
    (
        "relbot_triggers_total",
        "counter",
        &["kind"],
        "Update triggers submitted, by kind.",
    ),
    (
        "relbot_triggers_coalesced_total",
        "counter",
        &["kind"],
        "Triggers merged into an already pending update.",
    ),
    (
        "relbot_triggers_without_news_total",
        "counter",
        &["kind"],
        "Triggers dropped because a finished update already saw what they announced.",
    ),
    (
        "relbot_updates_total",
        "counter",
        &["part", "result"],
        "Parts of updates run, by result.",
    ),
    (
        "relbot_update_duration_seconds",
        "histogram",
        &["part"],
        "Duration of update parts.",
    ),
    (
        "relbot_update_running",
        "gauge",
        &[],
        "1 while an update runs.",
    ),
    (
        "relbot_config_reloads_total",
        "counter",
        &["result"],
        "Configuration reloads by result.",
    ),
    (
        "relbot_ready",
        "gauge",
        &[],
        "1 once relbot is ready to serve.",
    ),
    (
        "relbot_shards_held",
        "gauge",
        &[],
        "Shard Leases this replica holds.",
    ),
    (
        "relbot_shard_takeovers_total",
        "counter",
        &[],
        "Shards taken over from a replica that stopped renewing.",
    ),
    (
        "relbot_metrics_series_dropped_total",
        "counter",
        &[],
        "Observations dropped by the per-family series cap.",
    ),
];

/// A scrape with a series in every family.
fn touched() -> Metrics {
    let m = Metrics::new();
    m.syncs.inc(&["app", "synced"]);
    m.sync_duration.observe(&["app", "synced"], 0.3);
    m.objects.set(&["app", "Synced", "Healthy"], 4.0);
    m.drift_corrections.inc(&["app"]);
    m.prunes.inc(&["app"]);
    m.webhook_deliveries.inc(&["push", "accepted"]);
    m.registry_requests.inc(&["ghcr.io", "ok"]);
    m.registry_rate_limit_waits.inc(&["ghcr.io"]);
    m.registry_rate_limit_wait_seconds.inc_by(&["ghcr.io"], 1.5);
    m.pull_requests.inc(&["opened"]);
    m.commit_statuses.inc(&["posted"]);
    m.notifications.inc(&["sent"]);
    m.clock_skew.set(&["github"], -42.5);
    m.lease_held.set(&[], 1.0);
    m.triggers.inc(&["sync"]);
    m.triggers_coalesced.inc(&["sync"]);
    m.triggers_without_news.inc(&["bump"]);
    m.updates.inc(&["sync", "ok"]);
    m.update_duration.observe(&["sync"], 12.0);
    m.update_running.set(&[], 0.0);
    m.config_reloads.inc(&["ok"]);
    m.ready.set(&[], 1.0);
    m.shards_held.set(&[], 2.0);
    m.shard_takeovers.inc(&[]);
    m
}

#[test]
fn every_family_keeps_its_name_type_labels_and_help() {
    let families = parse_exposition(&touched().render());
    let found: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(found, expected);
    for (family, (name, kind, labels, help)) in families.iter().zip(EXPECTED) {
        assert_eq!(
            (family.kind.as_str(), family.help.as_str()),
            (*kind, *help),
            "{name}"
        );
        assert!(!family.samples.is_empty(), "{name} has no sample");
        for (sample, pairs, _) in &family.samples {
            let names: Vec<&str> = pairs
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !(*kind == "histogram" && sample.ends_with("_bucket") && *k == "le"))
                .collect();
            assert_eq!(names, *labels, "{sample}");
        }
    }
}

#[test]
fn the_operations_docs_list_every_family_with_its_type_and_labels() {
    let docs = include_str!("../../../docs/metrics.md");
    for (name, kind, labels, _) in EXPECTED {
        let labels = if labels.is_empty() {
            "—".to_string()
        } else {
            labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = format!("| `{name}` | {kind} | {labels} |");
        assert!(docs.contains(&row), "docs/metrics.md lacks the row {row}");
    }
}

#[test]
fn families_without_series_are_still_announced() {
    let families = parse_exposition(&Metrics::new().render());
    assert_eq!(families.len(), EXPECTED.len());
    let dropped = families.last().unwrap();
    assert_eq!(dropped.samples, vec![(dropped.name.clone(), vec![], 0.0)]);
    assert!(
        families[..families.len() - 1]
            .iter()
            .all(|f| f.samples.is_empty())
    );
}

#[test]
fn counters_and_gauges_move() {
    let m = Metrics::new();
    m.syncs.inc(&["app", "synced"]);
    m.syncs.inc(&["app", "synced"]);
    m.lease_held.set(&[], 1.0);
    m.objects.add(&["app", "Synced", "Healthy"], 3.0);
    m.objects.add(&["app", "Synced", "Healthy"], -1.0);
    m.syncs.inc_by(&["app", "synced"], -5.0);
    assert_eq!(m.syncs.get(&["app", "synced"]), 2.0);
    assert_eq!(m.syncs.get(&["app", "failed"]), 0.0);
    assert_eq!(m.lease_held.get(&[]), 1.0);
    assert_eq!(m.objects.get(&["app", "Synced", "Healthy"]), 2.0);
    let text = m.render();
    assert!(
        text.contains("relbot_syncs_total{application=\"app\",result=\"synced\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("relbot_lease_held 1\n"));
}

#[test]
fn measured_counters_keep_their_fractions() {
    let m = Metrics::new();
    m.registry_rate_limit_wait_seconds
        .inc_by(&["ghcr.io"], 1.25);
    m.registry_rate_limit_wait_seconds.inc_by(&["ghcr.io"], 0.5);
    let text = m.render();
    assert!(
        text.contains("relbot_registry_rate_limit_wait_seconds_total{registry=\"ghcr.io\"} 1.75\n"),
        "{text}"
    );
}

#[test]
fn histogram_buckets_are_cumulative() {
    let m = Metrics::new();
    m.update_duration.observe(&["sync"], 0.07);
    m.update_duration.observe(&["sync"], 3.0);
    let text = m.render();
    parse_exposition(&text);
    for line in [
        "relbot_update_duration_seconds_bucket{part=\"sync\",le=\"0.05\"} 0\n",
        "relbot_update_duration_seconds_bucket{part=\"sync\",le=\"0.1\"} 1\n",
        "relbot_update_duration_seconds_bucket{part=\"sync\",le=\"5\"} 2\n",
        "relbot_update_duration_seconds_bucket{part=\"sync\",le=\"+Inf\"} 2\n",
        "relbot_update_duration_seconds_count{part=\"sync\"} 2\n",
        "relbot_update_duration_seconds_sum{part=\"sync\"} 3.07\n",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.prunes.inc(&["a\"b\\c\nd"]);
    let text = m.render();
    assert!(text.contains(r#"relbot_prunes_total{application="a\"b\\c\nd"} 1"#));
    let prunes = parse_exposition(&text)
        .into_iter()
        .find(|f| f.name == "relbot_prunes_total");
    let (_, labels, _) = &prunes.unwrap().samples[0];
    assert_eq!(labels[0].1, "a\"b\\c\nd");
}

#[test]
fn series_are_capped() {
    let m = Metrics::new();
    for i in 0..(MAX_SERIES_PER_FAMILY + 10) {
        m.prunes.inc(&[&format!("app{i}")]);
    }
    // A series that exists still moves at the cap.
    m.prunes.inc(&["app0"]);
    let text = m.render();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("relbot_prunes_total{"))
            .count(),
        MAX_SERIES_PER_FAMILY
    );
    assert_eq!(m.prunes.get(&["app0"]), 2.0);
    assert!(text.contains("relbot_metrics_series_dropped_total 10\n"));
}

#[test]
fn long_label_values_are_cut() {
    let m = Metrics::new();
    let long = "x".repeat(MAX_LABEL_VALUE_LEN + 40);
    m.prunes.inc(&[&long]);
    assert_eq!(m.prunes.get(&[&long[..MAX_LABEL_VALUE_LEN]]), 1.0);
}

#[test]
fn retained_series_stay_and_the_rest_leave_the_scrape() {
    let m = Metrics::new();
    m.objects.set(&["a", "Synced", "Healthy"], 3.0);
    m.objects.set(&["a", "OutOfSync", "Degraded"], 1.0);
    m.objects.set(&["b", "Synced", "Healthy"], 2.0);
    m.objects.retain(|labels| labels[0] != "a");
    let text = m.render();
    assert!(!text.contains("application=\"a\""), "{text}");
    assert!(text.contains(
        "relbot_objects{application=\"b\",sync_status=\"Synced\",health=\"Healthy\"} 2\n"
    ));
    // A removed series no longer counts against the cap and comes back at 0.
    assert_eq!(m.objects.get(&["a", "Synced", "Healthy"]), 0.0);
}

#[test]
fn unknown_events_collapse_to_other() {
    assert_eq!(webhook_event_label("push"), "push");
    assert_eq!(webhook_event_label("x-attacker-chosen"), "other");
}

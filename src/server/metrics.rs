//! Prometheus metrics, hand-written: a few counter, gauge and histogram
//! families rendered in the text exposition format (0.0.4).
//!
//! Hand-written rather than a client crate because relbot needs a dozen
//! families and one guarantee a generic crate does not give: a hard cap on
//! series per family, so a label fed from outside (an event name, a registry
//! host) can never grow the scrape without bound. Callers pass label values
//! from small fixed sets (results, actions) or from configuration
//! (application, policy, registry names); anything else is normalised first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Series per family before new label sets are dropped (and counted in
/// `relbot_metrics_series_dropped_total`).
const MAX_SERIES_PER_FAMILY: usize = 512;
/// Label values are cut to this many characters.
const MAX_LABEL_VALUE_LEN: usize = 128;

/// Durations of syncs and updates: 50 ms … 10 min.
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// One family's series, keyed by label values in the family's label order.
struct Family<V> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, V>>,
    /// Shared by all families of one [`Metrics`].
    dropped: Arc<AtomicU64>,
}

impl<V: Default> Family<V> {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        dropped: &Arc<AtomicU64>,
    ) -> Self {
        Family {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
            dropped: dropped.clone(),
        }
    }

    /// Runs `f` on the series for `values`, creating it if the cap allows.
    fn with<R>(&self, values: &[&str], f: impl FnOnce(&mut V) -> R) -> Option<R> {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "metric {} takes labels {:?}",
            self.name,
            self.labels
        );
        let key: Vec<String> = values.iter().map(|v| truncate(v)).collect();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if !series.contains_key(&key) && series.len() >= MAX_SERIES_PER_FAMILY {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(f(series.entry(key).or_default()))
    }

    fn read<R>(&self, values: &[&str], f: impl FnOnce(&V) -> R) -> Option<R> {
        let key: Vec<String> = values.iter().map(|v| truncate(v)).collect();
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.get(&key).map(f)
    }

    fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|k, _| keep(k));
    }

    fn header(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, kind);
    }

    fn label_text(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let mut pairs: Vec<String> = self
            .labels
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        if let Some((k, v)) = extra {
            pairs.push(format!("{k}=\"{}\"", escape_label(v)));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        }
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(MAX_LABEL_VALUE_LEN).collect()
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A monotonically increasing count.
pub struct Counter {
    family: Family<f64>,
}

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.inc_by(labels, 1.0);
    }

    pub fn inc_by(&self, labels: &[&str], by: f64) {
        if by >= 0.0 {
            self.family.with(labels, |v| *v += by);
        }
    }

    /// Current value (0 for a series never touched).
    pub fn get(&self, labels: &[&str]) -> f64 {
        self.family.read(labels, |v| *v).unwrap_or(0.0)
    }

    fn render(&self, out: &mut String) {
        self.family.header(out, "counter");
        for (key, value) in self
            .family
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.family.name,
                self.family.label_text(key, None),
                format_value(*value)
            );
        }
    }
}

/// A value that goes up and down.
pub struct Gauge {
    family: Family<f64>,
}

impl Gauge {
    pub fn set(&self, labels: &[&str], value: f64) {
        self.family.with(labels, |v| *v = value);
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        self.family.with(labels, |v| *v += by);
    }

    pub fn get(&self, labels: &[&str]) -> f64 {
        self.family.read(labels, |v| *v).unwrap_or(0.0)
    }

    /// Drops series (e.g. an application's old sync/health combinations
    /// before setting the new ones).
    pub fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        self.family.retain(keep);
    }

    fn render(&self, out: &mut String) {
        self.family.header(out, "gauge");
        for (key, value) in self
            .family
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.family.name,
                self.family.label_text(key, None),
                format_value(*value)
            );
        }
    }
}

#[derive(Default)]
struct HistogramSeries {
    /// Count per bucket (not cumulative; summed when rendering).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Observations in fixed buckets.
pub struct Histogram {
    family: Family<HistogramSeries>,
    bounds: &'static [f64],
}

impl Histogram {
    pub fn observe(&self, labels: &[&str], value: f64) {
        let bounds = self.bounds;
        self.family.with(labels, |s| {
            if s.buckets.is_empty() {
                s.buckets = vec![0; bounds.len()];
            }
            if let Some(i) = bounds.iter().position(|b| value <= *b) {
                s.buckets[i] += 1;
            }
            s.sum += value;
            s.count += 1;
        });
    }

    /// Number of observations in a series.
    pub fn count(&self, labels: &[&str]) -> u64 {
        self.family.read(labels, |s| s.count).unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let name = self.family.name;
        self.family.header(out, "histogram");
        for (key, s) in self
            .family
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let mut cumulative = 0;
            for (i, bound) in self.bounds.iter().enumerate() {
                cumulative += s.buckets.get(i).copied().unwrap_or(0);
                let le = format_value(*bound);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    self.family.label_text(key, Some(("le", &le)))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                self.family.label_text(key, Some(("le", "+Inf"))),
                s.count
            );
            let _ = writeln!(
                out,
                "{name}_sum{} {}",
                self.family.label_text(key, None),
                format_value(s.sum)
            );
            let _ = writeln!(
                out,
                "{name}_count{} {}",
                self.family.label_text(key, None),
                s.count
            );
        }
    }
}

fn counter(
    d: &Arc<AtomicU64>,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Counter {
    Counter {
        family: Family::new(name, help, labels, d),
    }
}

fn gauge(
    d: &Arc<AtomicU64>,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Gauge {
    Gauge {
        family: Family::new(name, help, labels, d),
    }
}

fn histogram(
    d: &Arc<AtomicU64>,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Histogram {
    Histogram {
        family: Family::new(name, help, labels, d),
        bounds: DURATION_BUCKETS,
    }
}

/// Every metric relbot exports. Label values must come from fixed sets or
/// from configuration (see the field docs).
pub struct Metrics {
    /// `application`, `result` (`synced`, `failed`, `no_change`, …).
    pub syncs: Counter,
    /// `application`, `result`.
    pub sync_duration: Histogram,
    /// `application`, `sync_status`, `health`: objects in each state.
    pub objects: Gauge,
    /// `application`: live objects changed back to git (self-heal).
    pub drift_corrections: Counter,
    /// `application`: objects deleted because they left git.
    pub prunes: Counter,
    /// `event` (see [`webhook_event_label`]), `verdict`.
    pub webhook_deliveries: Counter,
    /// `registry` (configured host), `result` (`ok`, `error`, `rate_limited`).
    pub registry_requests: Counter,
    /// `registry`.
    pub registry_rate_limit_waits: Counter,
    /// `registry`: seconds spent waiting for rate limits.
    pub registry_rate_limit_wait_seconds: Counter,
    /// `action` (`opened`, `updated`, `merged`, `closed`).
    pub pull_requests: Counter,
    /// Commit statuses posted to GitHub by `result` (`posted`, `failed`).
    pub commit_statuses: Counter,
    /// Webhook notifications by `result` (`sent`, `failed`).
    pub notifications: Counter,
    /// `peer` (`apiserver`, `registry`, `github`): local clock minus the
    /// peer's `Date`, filled from [`crate::clock`] at each scrape.
    pub clock_skew: Gauge,
    /// 1 while this replica holds the leader Lease.
    pub lease_held: Gauge,
    /// `kind` (`sync`, `bump`, `continue_merge`): triggers submitted.
    pub triggers: Counter,
    /// `kind`: triggers merged into an already pending run.
    pub triggers_coalesced: Counter,
    /// `part` (`sync`, `bump`, `continue_merge`), `result` (`ok`, `error`, `cancelled`).
    pub updates: Counter,
    /// `part`.
    pub update_duration: Histogram,
    /// 1 while an update runs.
    pub update_running: Gauge,
    /// `result` (`ok`, `rejected`).
    pub config_reloads: Counter,
    /// 1 once ready (first fetch done and, in a cluster, discovery).
    pub ready: Gauge,
    series_dropped: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let d = Arc::new(AtomicU64::new(0));
        Metrics {
            syncs: counter(
                &d,
                "relbot_syncs_total",
                "Application syncs by result.",
                &["application", "result"],
            ),
            sync_duration: histogram(
                &d,
                "relbot_sync_duration_seconds",
                "Duration of application syncs.",
                &["application", "result"],
            ),
            objects: gauge(
                &d,
                "relbot_objects",
                "Objects per application by sync status and health.",
                &["application", "sync_status", "health"],
            ),
            drift_corrections: counter(
                &d,
                "relbot_drift_corrections_total",
                "Live objects changed back to the state in git.",
                &["application"],
            ),
            prunes: counter(
                &d,
                "relbot_prunes_total",
                "Objects deleted because they left git.",
                &["application"],
            ),
            webhook_deliveries: counter(
                &d,
                "relbot_webhook_deliveries_total",
                "Webhook deliveries by event and verdict.",
                &["event", "verdict"],
            ),
            registry_requests: counter(
                &d,
                "relbot_registry_requests_total",
                "Requests to container registries by result.",
                &["registry", "result"],
            ),
            registry_rate_limit_waits: counter(
                &d,
                "relbot_registry_rate_limit_waits_total",
                "Times relbot waited for a registry rate limit.",
                &["registry"],
            ),
            registry_rate_limit_wait_seconds: counter(
                &d,
                "relbot_registry_rate_limit_wait_seconds_total",
                "Seconds spent waiting for registry rate limits.",
                &["registry"],
            ),
            pull_requests: counter(
                &d,
                "relbot_pull_requests_total",
                "Bump pull requests by action.",
                &["action"],
            ),
            commit_statuses: counter(
                &d,
                "relbot_commit_statuses_total",
                "Commit statuses posted to GitHub, by result.",
                &["result"],
            ),
            notifications: counter(
                &d,
                "relbot_notifications_total",
                "Webhook notifications about failed, Degraded or recovered applications, by result.",
                &["result"],
            ),
            clock_skew: gauge(
                &d,
                "relbot_clock_skew_seconds",
                "Local clock minus the Date of the peer's last answer, by peer.",
                &["peer"],
            ),
            lease_held: gauge(
                &d,
                "relbot_lease_held",
                "1 while this replica holds the leader Lease.",
                &[],
            ),
            triggers: counter(
                &d,
                "relbot_triggers_total",
                "Update triggers submitted, by kind.",
                &["kind"],
            ),
            triggers_coalesced: counter(
                &d,
                "relbot_triggers_coalesced_total",
                "Triggers merged into an already pending update.",
                &["kind"],
            ),
            updates: counter(
                &d,
                "relbot_updates_total",
                "Parts of updates run, by result.",
                &["part", "result"],
            ),
            update_duration: histogram(
                &d,
                "relbot_update_duration_seconds",
                "Duration of update parts.",
                &["part"],
            ),
            update_running: gauge(&d, "relbot_update_running", "1 while an update runs.", &[]),
            config_reloads: counter(
                &d,
                "relbot_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            ready: gauge(&d, "relbot_ready", "1 once relbot is ready to serve.", &[]),
            series_dropped: d,
        }
    }

    /// The whole registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.syncs.render(&mut out);
        self.sync_duration.render(&mut out);
        self.objects.render(&mut out);
        self.drift_corrections.render(&mut out);
        self.prunes.render(&mut out);
        self.webhook_deliveries.render(&mut out);
        self.registry_requests.render(&mut out);
        self.registry_rate_limit_waits.render(&mut out);
        self.registry_rate_limit_wait_seconds.render(&mut out);
        self.pull_requests.render(&mut out);
        self.commit_statuses.render(&mut out);
        self.notifications.render(&mut out);
        for skew in crate::clock::book().skews() {
            self.clock_skew.set(&[skew.peer.as_str()], skew.seconds);
        }
        self.clock_skew.render(&mut out);
        self.lease_held.render(&mut out);
        self.triggers.render(&mut out);
        self.triggers_coalesced.render(&mut out);
        self.updates.render(&mut out);
        self.update_duration.render(&mut out);
        self.update_running.render(&mut out);
        self.config_reloads.render(&mut out);
        self.ready.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP relbot_metrics_series_dropped_total Observations dropped by the per-family series cap."
        );
        let _ = writeln!(out, "# TYPE relbot_metrics_series_dropped_total counter");
        let _ = writeln!(
            out,
            "relbot_metrics_series_dropped_total {}",
            self.series_dropped.load(Ordering::Relaxed)
        );
        out
    }
}

/// GitHub event names relbot knows; anything else is counted as `other`
/// (the header is sender-controlled until the signature is checked).
pub fn webhook_event_label(event: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "ping",
        "push",
        "pull_request",
        "pull_request_review",
        "check_suite",
        "check_run",
        "status",
        "workflow_run",
        "repository_dispatch",
        "registry_package",
        "package",
        "registry",
    ];
    KNOWN
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_move() {
        let m = Metrics::new();
        m.syncs.inc(&["app", "synced"]);
        m.syncs.inc(&["app", "synced"]);
        m.lease_held.set(&[], 1.0);
        assert_eq!(m.syncs.get(&["app", "synced"]), 2.0);
        assert_eq!(m.lease_held.get(&[]), 1.0);
        let text = m.render();
        assert!(
            text.contains("relbot_syncs_total{application=\"app\",result=\"synced\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("relbot_lease_held 1\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.update_duration.observe(&["sync"], 0.07);
        m.update_duration.observe(&["sync"], 3.0);
        let text = m.render();
        assert!(
            text.contains("relbot_update_duration_seconds_bucket{part=\"sync\",le=\"0.05\"} 0\n")
        );
        assert!(
            text.contains("relbot_update_duration_seconds_bucket{part=\"sync\",le=\"0.1\"} 1\n")
        );
        assert!(text.contains("relbot_update_duration_seconds_bucket{part=\"sync\",le=\"5\"} 2\n"));
        assert!(
            text.contains("relbot_update_duration_seconds_bucket{part=\"sync\",le=\"+Inf\"} 2\n")
        );
        assert!(text.contains("relbot_update_duration_seconds_count{part=\"sync\"} 2\n"));
        assert!(text.contains("relbot_update_duration_seconds_sum{part=\"sync\"} 3.07\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.prunes.inc(&["a\"b\\c\nd"]);
        assert!(
            m.render()
                .contains(r#"relbot_prunes_total{application="a\"b\\c\nd"} 1"#)
        );
    }

    #[test]
    fn series_are_capped() {
        let m = Metrics::new();
        for i in 0..(MAX_SERIES_PER_FAMILY + 10) {
            m.prunes.inc(&[&format!("app{i}")]);
        }
        let text = m.render();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("relbot_prunes_total{"))
                .count(),
            MAX_SERIES_PER_FAMILY
        );
        assert!(text.contains("relbot_metrics_series_dropped_total 10\n"));
    }

    #[test]
    fn unknown_events_collapse_to_other() {
        assert_eq!(webhook_event_label("push"), "push");
        assert_eq!(webhook_event_label("x-attacker-chosen"), "other");
    }
}

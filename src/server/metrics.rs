//! Prometheus metrics: families kept by the `prometheus-client` crate and
//! encoded by its Prometheus text encoder (exposition format 0.0.4).
//!
//! Around the crate's families relbot keeps one guarantee the crate does not
//! give: a hard cap on series per family, so a label fed from outside (an
//! event name, a registry host) can never grow the scrape without bound.
//! Callers pass label values from small fixed sets (results, actions) or from
//! configuration (application, policy, registry names); anything else is
//! normalised first.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, prometheus_text};
use prometheus_client::metrics::counter::Counter as ClientCounter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge as ClientGauge;
use prometheus_client::metrics::histogram::Histogram as ClientHistogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]: the Prometheus text format
/// 0.0.4, not OpenMetrics. Every Prometheus version scrapes it (as do the
/// agents that read Prometheus endpoints), it is what relbot always served,
/// and in it a counter's `# TYPE` line names the family as exported
/// (`relbot_syncs_total`), so scraped metadata stays as it was. OpenMetrics
/// would name that family `relbot_syncs` and end the body with `# EOF`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Series per family before new label sets are dropped (and counted in
/// `relbot_metrics_series_dropped_total`).
const MAX_SERIES_PER_FAMILY: usize = 512;
/// Label values are cut to this many characters.
const MAX_LABEL_VALUE_LEN: usize = 128;

/// Durations of syncs and updates: 50 ms … 10 min.
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Label names with their values, in the family's label order.
type LabelSet = Vec<(&'static str, String)>;

/// One family's series with the cap on their number.
struct Series<M> {
    name: &'static str,
    labels: &'static [&'static str],
    family: Family<LabelSet, M, fn() -> M>,
    /// Label values of the series in `family`: the crate counts a family's
    /// series only in its own tests, and the cap needs the count.
    present: Mutex<BTreeSet<Vec<String>>>,
    /// Shared by all families of one [`Metrics`].
    dropped: ClientCounter,
}

impl<M> Series<M>
where
    M: EncodeMetric + TypedMetric + std::fmt::Debug + Send + Sync + 'static,
{
    fn new(
        builder: &mut Builder,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        new_series: fn() -> M,
    ) -> Self {
        // The crate adds `_total` to counters and a full stop to every help
        // text; relbot's tables carry both, as they appear in the scrape.
        let registered = match M::TYPE {
            MetricType::Counter => name
                .strip_suffix("_total")
                .unwrap_or_else(|| panic!("counter {name} must end in _total")),
            _ => name,
        };
        let help = help
            .strip_suffix('.')
            .unwrap_or_else(|| panic!("help of {name} must end in a full stop"));
        let family = Family::new_with_constructor(new_series);
        builder
            .registry
            .register(registered, help, Listed(family.clone()));
        Series {
            name,
            labels,
            family,
            present: Mutex::new(BTreeSet::new()),
            dropped: builder.dropped.clone(),
        }
    }

    fn label_set(&self, values: &[String]) -> LabelSet {
        self.labels
            .iter()
            .copied()
            .zip(values.iter().cloned())
            .collect()
    }

    fn values(&self, values: &[&str]) -> Vec<String> {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "metric {} takes labels {:?}",
            self.name,
            self.labels
        );
        values
            .iter()
            .map(|v| v.chars().take(MAX_LABEL_VALUE_LEN).collect())
            .collect()
    }

    /// Runs `f` on the series for `values`, creating it if the cap allows.
    fn with<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Option<R> {
        let values = self.values(values);
        // Held while the family changes, so `present` and the family agree.
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        if !present.contains(&values) {
            if present.len() >= MAX_SERIES_PER_FAMILY {
                self.dropped.inc();
                return None;
            }
            present.insert(values.clone());
        }
        Some(f(&self.family.get_or_create(&self.label_set(&values))))
    }

    fn read<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Option<R> {
        let values = self.values(values);
        self.family.get(&self.label_set(&values)).map(|m| f(&m))
    }

    fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        present.retain(|values| {
            let kept = keep(values);
            if !kept {
                self.family.remove(&self.label_set(values));
            }
            kept
        });
    }
}

/// A family that keeps its `# HELP` and `# TYPE` lines while it has no
/// series: the crate leaves empty families out, and a scraper (or a person
/// reading `/metrics`) should see every family relbot exports from the start.
#[derive(Debug)]
struct Listed<M>(Family<LabelSet, M, fn() -> M>);

impl<M> EncodeMetric for Listed<M>
where
    M: EncodeMetric + TypedMetric,
    fn() -> M: MetricConstructor<M>,
{
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A monotonically increasing count.
pub struct Counter(CounterSeries);

enum CounterSeries {
    /// Counts of things: exported as integers (`2`).
    Whole(Series<ClientCounter<u64>>),
    /// Measured amounts such as seconds: exported as decimals (`2.5`).
    Measured(Series<ClientCounter<f64, AtomicU64>>),
}

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.inc_by(labels, 1.0);
    }

    /// Adds `by`; a negative or not-a-number `by` is ignored (a counter never
    /// goes down), and a counter of whole things rounds it.
    pub fn inc_by(&self, labels: &[&str], by: f64) {
        if by.is_nan() || by < 0.0 {
            return;
        }
        match &self.0 {
            CounterSeries::Whole(s) => s.with(labels, |c| {
                c.inc_by(by.round() as u64);
            }),
            CounterSeries::Measured(s) => s.with(labels, |c| {
                c.inc_by(by);
            }),
        };
    }

    /// Current value (0 for a series never touched).
    pub fn get(&self, labels: &[&str]) -> f64 {
        match &self.0 {
            CounterSeries::Whole(s) => s.read(labels, |c| c.get() as f64),
            CounterSeries::Measured(s) => s.read(labels, |c| c.get()),
        }
        .unwrap_or(0.0)
    }
}

/// A value that goes up and down.
pub struct Gauge(GaugeSeries);

enum GaugeSeries {
    /// Numbers of things and 0/1 flags: exported as integers (`1`).
    Whole(Series<ClientGauge<i64, AtomicI64>>),
    /// Measured amounts such as seconds: exported as decimals (`-42.5`).
    Measured(Series<ClientGauge<f64, AtomicU64>>),
}

impl Gauge {
    /// Sets the value; a gauge of whole things rounds it.
    pub fn set(&self, labels: &[&str], value: f64) {
        match &self.0 {
            GaugeSeries::Whole(s) => s.with(labels, |g| {
                g.set(value.round() as i64);
            }),
            GaugeSeries::Measured(s) => s.with(labels, |g| {
                g.set(value);
            }),
        };
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        match &self.0 {
            GaugeSeries::Whole(s) => s.with(labels, |g| {
                g.inc_by(by.round() as i64);
            }),
            GaugeSeries::Measured(s) => s.with(labels, |g| {
                g.inc_by(by);
            }),
        };
    }

    /// Current value (0 for a series never set).
    pub fn get(&self, labels: &[&str]) -> f64 {
        match &self.0 {
            GaugeSeries::Whole(s) => s.read(labels, |g| g.get() as f64),
            GaugeSeries::Measured(s) => s.read(labels, |g| g.get()),
        }
        .unwrap_or(0.0)
    }

    /// Drops series (e.g. an application's old sync/health combinations
    /// before setting the new ones).
    pub fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        match &self.0 {
            GaugeSeries::Whole(s) => s.retain(keep),
            GaugeSeries::Measured(s) => s.retain(keep),
        }
    }
}

/// Observations in fixed buckets ([`DURATION_BUCKETS`]).
pub struct Histogram(Series<ClientHistogram>);

impl Histogram {
    pub fn observe(&self, labels: &[&str], value: f64) {
        self.0.with(labels, |h| h.observe(value));
    }
}

fn duration_histogram() -> ClientHistogram {
    ClientHistogram::new(DURATION_BUCKETS.iter().copied())
}

/// Registers families in the order they appear in the scrape.
struct Builder {
    registry: Registry,
    dropped: ClientCounter,
}

impl Builder {
    fn new() -> Self {
        Builder {
            registry: Registry::default(),
            dropped: ClientCounter::default(),
        }
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter(CounterSeries::Whole(Series::new(
            self,
            name,
            help,
            labels,
            Default::default,
        )))
    }

    fn measured_counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter(CounterSeries::Measured(Series::new(
            self,
            name,
            help,
            labels,
            Default::default,
        )))
    }

    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge(GaugeSeries::Whole(Series::new(
            self,
            name,
            help,
            labels,
            Default::default,
        )))
    }

    fn measured_gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge(GaugeSeries::Measured(Series::new(
            self,
            name,
            help,
            labels,
            Default::default,
        )))
    }

    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Histogram {
        Histogram(Series::new(self, name, help, labels, duration_histogram))
    }

    /// The cap's own counter comes last, as it always did.
    fn finish(mut self) -> Registry {
        self.registry.register(
            "relbot_metrics_series_dropped",
            "Observations dropped by the per-family series cap",
            self.dropped,
        );
        self.registry
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
    /// `kind`: triggers dropped because a finished run already saw what
    /// they announced (a pushed tag a bump run found).
    pub triggers_without_news: Counter,
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
    /// Shard Leases this replica holds (`--shards`).
    pub shards_held: Gauge,
    /// Shards taken over from a replica that stopped renewing.
    pub shard_takeovers: Counter,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut b = Builder::new();
        // Fields are built in the order written, which is the scrape's order.
        Metrics {
            syncs: b.counter(
                "relbot_syncs_total",
                "Application syncs by result.",
                &["application", "result"],
            ),
            sync_duration: b.histogram(
                "relbot_sync_duration_seconds",
                "Duration of application syncs.",
                &["application", "result"],
            ),
            objects: b.gauge(
                "relbot_objects",
                "Objects per application by sync status and health.",
                &["application", "sync_status", "health"],
            ),
            drift_corrections: b.counter(
                "relbot_drift_corrections_total",
                "Live objects changed back to the state in git.",
                &["application"],
            ),
            prunes: b.counter(
                "relbot_prunes_total",
                "Objects deleted because they left git.",
                &["application"],
            ),
            webhook_deliveries: b.counter(
                "relbot_webhook_deliveries_total",
                "Webhook deliveries by event and verdict.",
                &["event", "verdict"],
            ),
            registry_requests: b.counter(
                "relbot_registry_requests_total",
                "Requests to container registries by result.",
                &["registry", "result"],
            ),
            registry_rate_limit_waits: b.counter(
                "relbot_registry_rate_limit_waits_total",
                "Times relbot waited for a registry rate limit.",
                &["registry"],
            ),
            registry_rate_limit_wait_seconds: b.measured_counter(
                "relbot_registry_rate_limit_wait_seconds_total",
                "Seconds spent waiting for registry rate limits.",
                &["registry"],
            ),
            pull_requests: b.counter(
                "relbot_pull_requests_total",
                "Bump pull requests by action.",
                &["action"],
            ),
            commit_statuses: b.counter(
                "relbot_commit_statuses_total",
                "Commit statuses posted to GitHub, by result.",
                &["result"],
            ),
            notifications: b.counter(
                "relbot_notifications_total",
                "Webhook notifications about failed, Degraded or recovered applications, by result.",
                &["result"],
            ),
            clock_skew: b.measured_gauge(
                "relbot_clock_skew_seconds",
                "Local clock minus the Date of the peer's last answer, by peer.",
                &["peer"],
            ),
            lease_held: b.gauge(
                "relbot_lease_held",
                "1 while this replica holds the leader Lease.",
                &[],
            ),
            triggers: b.counter(
                "relbot_triggers_total",
                "Update triggers submitted, by kind.",
                &["kind"],
            ),
            triggers_coalesced: b.counter(
                "relbot_triggers_coalesced_total",
                "Triggers merged into an already pending update.",
                &["kind"],
            ),
            triggers_without_news: b.counter(
                "relbot_triggers_without_news_total",
                "Triggers dropped because a finished update already saw what they announced.",
                &["kind"],
            ),
            updates: b.counter(
                "relbot_updates_total",
                "Parts of updates run, by result.",
                &["part", "result"],
            ),
            update_duration: b.histogram(
                "relbot_update_duration_seconds",
                "Duration of update parts.",
                &["part"],
            ),
            update_running: b.gauge("relbot_update_running", "1 while an update runs.", &[]),
            config_reloads: b.counter(
                "relbot_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            ready: b.gauge("relbot_ready", "1 once relbot is ready to serve.", &[]),
            shards_held: b.gauge(
                "relbot_shards_held",
                "Shard Leases this replica holds.",
                &[],
            ),
            shard_takeovers: b.counter(
                "relbot_shard_takeovers_total",
                "Shards taken over from a replica that stopped renewing.",
                &[],
            ),
            registry: b.finish(),
        }
    }

    /// The whole registry in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        for skew in crate::clock::book().skews() {
            self.clock_skew.set(&[skew.peer.as_str()], skew.seconds);
        }
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail and relbot's label sets always
        // encode, so an error here is a bug in the encoder; the scrape still
        // gets what was written.
        if prometheus_text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("the metrics encoder failed part way; /metrics is incomplete");
        }
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
mod tests;

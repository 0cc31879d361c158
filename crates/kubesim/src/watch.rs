//! The watch verb: replay from a resourceVersion (or synthetic ADDED events),
//! then live events, bookmarks, `sendInitialEvents`, timeouts, 410 Gone for a
//! resourceVersion older than the kept history, and fault-injected drops.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::api::{Params, Target, present};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::WatchEvent;
use crate::{Sim, WatchList};

struct Filter {
    key: String,
    ns: String,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// The event type a watcher with this filter sees, if any: an object that
    /// starts matching is ADDED, one that stops matching is DELETED.
    fn event_type(&self, e: &WatchEvent) -> Option<&'static str> {
        let now = self.matches(&e.key, &e.namespace, &e.object);
        match (e.etype, &e.previous) {
            ("MODIFIED", Some(prev)) => {
                let before = self.matches(&e.key, &e.namespace, prev);
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
            (t, _) => now.then_some(t),
        }
    }

    fn matches(&self, key: &str, ns: &str, obj: &Value) -> bool {
        key == self.key
            && (self.ns.is_empty() || self.ns == ns)
            && self
                .name
                .as_deref()
                .is_none_or(|n| obj["metadata"]["name"].as_str() == Some(n))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

fn line(etype: &str, object: Value) -> Bytes {
    let mut s = json!({"type": etype, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": t.res.kind, "apiVersion": t.res.api_version(), "metadata": meta}),
    )
}

/// A watch body of one event, then the end of the stream.
fn single_event(event: Bytes) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let _ = tx.try_send(event);
    body_from(rx)
}

/// kube-apiserver's refusal of `sendInitialEvents` while the WatchList gate is off.
fn watch_list_forbidden() -> ApiError {
    ApiError::invalid(
        "ListOptions.meta.k8s.io",
        "",
        &[(
            "sendInitialEvents".into(),
            "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled".into(),
        )],
    )
}

/// Starts a watch; the body streams newline-delimited watch events.
pub fn watch(sim: Arc<Sim>, t: Target, q: &Params) -> ApiResult<Body> {
    let filter = Filter {
        key: t.res.key(),
        ns: t.ns.clone(),
        name: t.name.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?,
    };
    let bookmarks = q.get("allowWatchBookmarks") == Some("true");
    let send_initial = q.get("sendInitialEvents") == Some("true");
    if send_initial {
        match sim.opts.watch_list {
            WatchList::Served => {}
            WatchList::GateOff => return Err(watch_list_forbidden()),
            WatchList::NoProgressNotify => {
                let e = ApiError::new(
                    500,
                    "InternalError",
                    "a watch stream was requested by the client but the required storage feature RequestWatchProgress is disabled",
                );
                return Ok(single_event(line("ERROR", e.to_status())));
            }
        }
    }
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800),
    );
    let rv_param = q.get("resourceVersion").unwrap_or("0");
    let from: u64 = rv_param
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_param:?}")))?;

    let mut initial: Vec<Bytes> = Vec::new();
    let (rx, start_rv) = {
        let inner = sim.store.lock();
        // Subscribing under the lock means no event falls between replay and live.
        let rx = sim.store.subscribe();
        if from == 0 || send_initial {
            for o in inner.all(&filter.key) {
                let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
                if filter.matches(&filter.key, ns, o) {
                    initial.push(line("ADDED", present(&t.res, o)));
                }
            }
            if send_initial && bookmarks {
                initial.push(bookmark(&t, inner.rv, true));
            }
        } else {
            match inner.events_since(from) {
                Some(events) => {
                    for e in events {
                        if let Some(etype) = filter.event_type(&e) {
                            initial.push(line(etype, present(&t.res, &e.object)));
                        }
                    }
                }
                None => {
                    let gone = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {from} ({})", inner.rv),
                    );
                    return Ok(single_event(line("ERROR", gone.to_status())));
                }
            }
        }
        (rx, inner.rv)
    };

    let (tx, out) = mpsc::channel::<Bytes>(256);
    let mut drops = sim.faults.drops.subscribe();
    let interval = sim.opts.bookmark_interval;
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        pump(
            rx, tx, &t, &filter, bookmarks, interval, timeout, start_rv, &mut drops,
        )
        .await;
    });
    Ok(body_from(out))
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    mut rx: broadcast::Receiver<Arc<WatchEvent>>,
    tx: mpsc::Sender<Bytes>,
    t: &Target,
    filter: &Filter,
    bookmarks: bool,
    interval: Duration,
    timeout: Duration,
    mut last_rv: u64,
    drops: &mut tokio::sync::watch::Receiver<u64>,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => return,
            _ = drops.changed() => return,
            _ = tx.closed() => return,
            _ = ticker.tick() => {
                if !bookmarks { continue; }
                bookmark(t, last_rv, false)
            }
            ev = rx.recv() => match ev {
                Ok(e) => {
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    match filter.event_type(&e) {
                        Some(etype) => line(etype, present(&t.res, &e.object)),
                        None => continue,
                    }
                }
                // A watcher that fell behind is closed; the client resumes from its last RV.
                Err(_) => return,
            },
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

fn body_from(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Body::from_stream(stream)
}

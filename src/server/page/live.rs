//! Live updates: `GET /api/v1/events` is a Server-Sent Events stream with
//! one JSON event each time a run of an application starts or ends; the
//! page's script fetches the page again and swaps its `<main>` in place, so
//! nothing reloads and the page still works where scripts are off.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::store::PageEvent;

/// relbot's one script, served from `/assets/live.js` (the page's
/// Content-Security-Policy allows scripts from this server only).
pub const SCRIPT: &str = r#"(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource || !window.fetch || !window.DOMParser) return;
  document.body.setAttribute("data-live", "connecting");
  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) main.replaceWith(fresh);
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/api/v1/events");
  source.onopen = function () { document.body.setAttribute("data-live", "connected"); live.textContent = "Live: updates appear here as runs start and end."; };
  source.onmessage = function (e) {
    var event;
    try { event = JSON.parse(e.data); } catch (_) { return; }
    if (event.kind === "hello") return;
    if (event.kind === "resync") { refresh(); return; }
    var words = event.kind === "started" ? "started" : "finished" + (event.outcome ? " (" + event.outcome + ", " + event.health + ")" : "");
    live.textContent = "Live: " + (event.application || "relbot") + " " + words + " at " + event.at + ".";
    document.body.setAttribute("data-last-event", event.kind + " " + (event.application || ""));
    refresh();
  };
  source.onerror = function () { live.textContent = "Live updates paused; reconnecting…"; };
})();
"#;

/// The stream for one listener: a `hello` first (so a client knows it is
/// connected), then every event; a listener too slow to keep up is told to
/// `resync` rather than cut off.
pub fn stream(
    events: broadcast::Receiver<PageEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hello = futures::stream::once(async { Ok(Event::default().data(r#"{"kind":"hello"}"#)) });
    let updates = futures::stream::unfold(events, |mut events| async move {
        let event = match events.recv().await {
            Ok(event) => Event::default()
                .json_data(&event)
                .unwrap_or_else(|_| Event::default().data(r#"{"kind":"resync"}"#)),
            Err(RecvError::Lagged(_)) => Event::default().data(r#"{"kind":"resync"}"#),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), events))
    });
    Sse::new(futures::StreamExt::chain(hello, updates))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

//! The status pages (`/`, `/applications/{name}`), their JSON
//! (`/api/v1/applications…`) and live updates (`/api/v1/events`).
//!
//! Server-rendered HTML that works without JavaScript; one small script of
//! relbot's own (`/assets/live.js`) refreshes the page's `<main>` when a run
//! starts or ends. No external assets: the Content-Security-Policy forbids
//! them, so a page can never load a CDN by mistake. Every value is escaped;
//! only http(s) links become anchors.

pub mod application;
pub mod links;
pub mod live;
pub mod overview;
pub mod store;
pub mod views;

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

pub use crate::server::status_page::escape_html;

/// Sent with every page: nothing from elsewhere, scripts only relbot's own.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Colour marks state, but the word is always written too.
const STYLE: &str = concat!(
    "body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:80em;color:#1d1d1d;line-height:1.4}",
    "header,footer{color:#444}a{color:#0b57d0}",
    ".wrap{overflow-x:auto}table{border-collapse:collapse;margin:.5em 0 1.5em;min-width:100%}",
    "th,td{border:1px solid #bbb;padding:.3em .5em;text-align:left;vertical-align:top}",
    "th{background:#eee}caption{text-align:left;font-weight:600;padding:.3em 0}",
    "td.n{text-align:right;font-variant-numeric:tabular-nums}code,pre{font-size:.9em}",
    "pre{background:#f6f6f6;border:1px solid #ddd;padding:.5em;overflow-x:auto;white-space:pre}",
    ".ok{color:#176f2c}.warn{color:#7a5500}.bad{color:#b00020;font-weight:600}",
    ".badge::before{content:'● '}.bad.badge::before{content:'✕ '}.ok.badge::before{content:'✓ '}",
    "#live{font-size:.9em;color:#444;min-height:1.4em}",
    "form{margin:.5em 0}label{margin-right:1em}",
    "@media (max-width:40em){body{padding:.5em}th,td{padding:.2em .3em}}",
);

/// A state word with its colour class: ok, warn or bad.
pub fn tone(word: &str) -> &'static str {
    match word {
        "Synced" | "Healthy" | "created" | "updated" | "re-created" | "pruned" | "unchanged"
        | "success" => "ok",
        "Failed" | "Degraded" | "Missing" | "failed" | "failure" | "error" => "bad",
        _ => "warn",
    }
}

/// `<span class="…">word</span>`: the word carries the meaning, the
/// colour and mark only repeat it.
pub fn badge(word: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        tone(word),
        escape_html(word)
    )
}

/// Only http(s) links become anchors; anything else (e.g. `javascript:`) is text.
pub fn link(url: Option<&str>, text: &str) -> String {
    match url {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            format!("<a href=\"{}\">{}</a>", escape_html(url), escape_html(text))
        }
        _ => escape_html(text),
    }
}

pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

pub fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

pub fn short(rev: Option<&str>) -> String {
    rev.map(|r| r.chars().take(12).collect())
        .unwrap_or_else(|| "—".into())
}

/// The page around `main`: head, header with navigation, live region.
pub fn layout(title: &str, main: &str) -> String {
    let mut html = String::with_capacity(main.len() + 2048);
    let _ = write!(
        html,
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>{title}</title><style>{style}</style>",
            "<script src=\"/assets/live.js\" defer></script></head><body>\n",
            "<header><nav aria-label=\"relbot\"><a href=\"/\">relbot</a> · ",
            "<a href=\"/api/v1/applications\">JSON</a> · <a href=\"/metrics\">Metrics</a> · ",
            "<a href=\"/readyz\">Readiness</a></nav>",
            "<p id=\"live\" role=\"status\" aria-live=\"polite\"></p></header>\n",
            "<main>\n{main}</main>\n</body></html>\n"
        ),
        title = escape_html(title),
        style = STYLE,
        main = main,
    );
    html
}

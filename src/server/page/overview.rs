//! `/`: every application in one table, the update queue, the leader and
//! the pending bump pull requests.

use std::fmt::Write as _;

use super::views::{ClockView, Overview, QueueView};
use super::{badge, duration, escape_html, layout, link, short, time};
use crate::redact::redact_userinfo;

fn queue_words(queue: &QueueView) -> String {
    let now = match (queue.running, queue.queued) {
        (true, true) => "an update is running; another is queued",
        (true, false) => "an update is running",
        (false, true) => "an update is queued",
        (false, false) => "idle",
    };
    format!(
        "{now}. {} triggers received, {} merged into a queued run, {} runs since start.",
        queue.submitted, queue.coalesced, queue.runs
    )
}

/// The clock line: each peer's figure, and in words (never colour alone)
/// when one is beyond the bar.
fn clock_item(clock: &[ClockView]) -> String {
    if clock.is_empty() {
        return String::new();
    }
    let figures: Vec<String> = clock
        .iter()
        .map(|c| format!("{} {:+.0} s", c.peer, c.skew_seconds))
        .collect();
    let off: Vec<&str> = clock
        .iter()
        .filter(|c| c.beyond_warning)
        .map(|c| c.sentence.as_str())
        .collect();
    let verdict = if off.is_empty() {
        "in step (within 30 s)".to_string()
    } else {
        format!(
            "<strong>off: {}</strong>; tokens and signatures may be refused and health ages are wrong: set this node's time (NTP)",
            escape_html(&off.join("; "))
        )
    };
    format!(
        "<li>Clock (local minus peer): {}, {verdict}</li>",
        escape_html(&figures.join(", "))
    )
}

pub fn render(view: &Overview) -> String {
    let mut main = String::with_capacity(8192);
    main.push_str("<h1>relbot status</h1>\n");
    let _ = writeln!(
        main,
        "<p>Repository <code>{}</code>, branch <code>{}</code>, at {}.</p>",
        escape_html(
            &view
                .repository
                .as_deref()
                .map(redact_userinfo)
                .unwrap_or_else(|| "—".into())
        ),
        escape_html(view.branch.as_deref().unwrap_or("—")),
        link(
            view.revision_url.as_deref(),
            &short(view.revision.as_deref())
        ),
    );
    let server = &view.server;
    let leader = match (&server.leader_name, server.leader) {
        (Some(name), true) => format!("this replica, <code>{}</code>", escape_html(name)),
        (None, true) => "this replica".into(),
        (Some(name), false) => format!(
            "<code>{}</code> (this replica stands by)",
            escape_html(name)
        ),
        (None, false) => "nobody yet (this replica stands by)".into(),
    };
    let _ = writeln!(
        main,
        "<ul><li>Readiness: {}</li><li>Leader: {leader}</li><li>Update queue: {}</li>{}</ul>",
        if server.ready {
            "ready"
        } else {
            "not ready yet"
        },
        escape_html(&queue_words(&server.queue)),
        clock_item(&server.clock),
    );

    main.push_str("<h2 id=\"applications\">Applications</h2>\n");
    if view.applications.is_empty() {
        main.push_str("<p>No application is configured.</p>\n");
    } else {
        main.push_str(concat!(
            "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Application</th>",
            "<th scope=\"col\">Revision</th><th scope=\"col\">Sync</th><th scope=\"col\">Health</th>",
            "<th scope=\"col\">Last run</th><th scope=\"col\">Duration</th>",
            "<th scope=\"col\">Applied</th><th scope=\"col\">Unchanged</th>",
            "<th scope=\"col\">Pruned</th><th scope=\"col\">Failed</th><th scope=\"col\">Message</th>",
            "</tr></thead><tbody>\n"
        ));
        for app in &view.applications {
            let counts = |f: fn(&super::views::Counts) -> usize| {
                app.counts
                    .as_ref()
                    .map(|c| f(c).to_string())
                    .unwrap_or_else(|| "—".into())
            };
            let last_run = match app.running_since {
                Some(since) => format!("running since {}", time(Some(since))),
                None => time(app.last_run),
            };
            let _ = writeln!(
                main,
                concat!(
                    "<tr data-app=\"{name}\"><th scope=\"row\"><a href=\"/applications/{name_url}\">{name}</a></th>",
                    "<td><code>{rev}</code></td><td>{sync}</td><td>{health}</td><td>{last}</td>",
                    "<td class=\"n\">{dur}</td><td class=\"n\">{applied}</td><td class=\"n\">{unchanged}</td>",
                    "<td class=\"n\">{pruned}</td><td class=\"n\">{failed}</td><td>{message}</td></tr>"
                ),
                name = escape_html(&app.name),
                name_url = escape_html(&url_segment(&app.name)),
                rev = link(app.revision_url.as_deref(), &short(app.revision.as_deref())),
                sync = badge(&app.sync),
                health = badge(&app.health),
                last = escape_html(&last_run),
                dur = escape_html(&duration(app.duration_ms)),
                applied = counts(|c| c.applied),
                unchanged = counts(|c| c.unchanged),
                pruned = counts(|c| c.pruned),
                failed = counts(|c| c.failed),
                message = escape_html(app.message.as_deref().unwrap_or("")),
            );
        }
        main.push_str("</tbody></table></div>\n");
    }

    main.push_str("<h2 id=\"pull-requests\">Pending bump pull requests</h2>\n");
    if view.pending_pull_requests.is_empty() {
        main.push_str("<p>None.</p>\n");
    } else {
        main.push_str(concat!(
            "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Policy</th>",
            "<th scope=\"col\">Pull request</th><th scope=\"col\">State</th></tr></thead><tbody>\n"
        ));
        for pr in &view.pending_pull_requests {
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                escape_html(&pr.policy),
                link(Some(&pr.url), &format!("#{} {}", pr.number, pr.title)),
                escape_html(pr.state.as_deref().unwrap_or("open")),
            );
        }
        main.push_str("</tbody></table></div>\n");
    }
    layout("relbot status", &main)
}

/// An application name as one URL path segment.
pub fn url_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::super::views::{AppSummary, Counts, PullRequestView, ServerView};
    use super::*;

    fn view() -> Overview {
        Overview {
            repository: Some("https://x-access-token:ghp_SECRET@github.com/acme/<repo>.git".into()),
            branch: Some("main".into()),
            revision: Some("0123456789abcdef".into()),
            revision_url: Some("https://github.com/acme/x/commit/0123456789abcdef".into()),
            server: ServerView {
                ready: true,
                leader: true,
                leader_name: Some("relbot-0".into()),
                clock: vec![
                    ClockView {
                        peer: "apiserver".into(),
                        skew_seconds: 1.0,
                        beyond_warning: false,
                        sentence: "the local clock is 1 s ahead of the Kubernetes API server's"
                            .into(),
                    },
                    ClockView {
                        peer: "github".into(),
                        skew_seconds: -2700.0,
                        beyond_warning: true,
                        sentence: "the local clock is 2700 s behind GitHub's".into(),
                    },
                ],
                queue: QueueView {
                    running: true,
                    queued: true,
                    coalesced: 3,
                    submitted: 7,
                    runs: 2,
                },
            },
            applications: vec![AppSummary {
                name: "<script>alert(1)</script>".into(),
                revision: Some("0123456789abcdef".into()),
                revision_url: Some("javascript:alert(1)".into()),
                sync: "Synced".into(),
                health: "Healthy\" onmouseover=\"x".into(),
                last_run: None,
                duration_ms: Some(1500),
                counts: Some(Counts {
                    applied: 2,
                    unchanged: 5,
                    pruned: 1,
                    failed: 0,
                }),
                message: Some("a & b".into()),
                running_since: None,
            }],
            pending_pull_requests: vec![PullRequestView {
                policy: "api".into(),
                number: 4,
                title: "bump api".into(),
                url: "https://github.com/acme/x/pull/4".into(),
                state: Some("waiting for checks".into()),
            }],
        }
    }

    #[test]
    fn escapes_everything_user_controlled_and_links_only_http() {
        let html = render(&view());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("ghp_SECRET"));
        assert!(html.contains("https://x-access-token:***@github.com/acme/&lt;repo&gt;.git"));
        assert!(!html.contains("onmouseover=\"x"));
        assert!(!html.contains("href=\"javascript"));
        assert!(html.contains("<a href=\"https://github.com/acme/x/pull/4\">#4 bump api</a>"));
        assert!(html.contains("<td>waiting for checks</td>"));
        assert!(html.contains("a &amp; b"));
        assert!(html.contains(
            "<a href=\"https://github.com/acme/x/commit/0123456789abcdef\">0123456789ab</a>"
        ));
        assert!(html.contains("href=\"/applications/%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""));
    }

    #[test]
    fn shows_counts_duration_queue_and_leader_in_words() {
        let html = render(&view());
        assert!(html.contains("<td class=\"n\">1.5 s</td><td class=\"n\">2</td><td class=\"n\">5</td><td class=\"n\">1</td><td class=\"n\">0</td>"), "{html}");
        assert!(html.contains("an update is running; another is queued. 7 triggers received, 3 merged into a queued run, 2 runs since start."));
        assert!(html.contains("Leader: this replica, <code>relbot-0</code>"));
        assert!(
            html.contains("<span class=\"badge ok\">Synced</span>"),
            "the word is written, not only coloured"
        );
        assert!(html.contains("<th scope=\"col\">Health</th>"));
        // The only script is relbot's own, from this server.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script src=\"/assets/live.js\" defer></script>"));
        assert!(!html.contains("://cdn"), "no external assets");
    }

    #[test]
    fn shows_the_clock_against_each_peer_and_says_when_it_is_off() {
        let html = render(&view());
        assert!(
            html.contains("<li>Clock (local minus peer): apiserver +1 s, github -2700 s, <strong>off: the local clock is 2700 s behind GitHub&#39;s</strong>"),
            "{html}"
        );
        let mut in_step = view();
        in_step.server.clock.truncate(1);
        assert!(render(&in_step).contains("apiserver +1 s, in step (within 30 s)"));
        in_step.server.clock.clear();
        assert!(!render(&in_step).contains("Clock"));
    }
}

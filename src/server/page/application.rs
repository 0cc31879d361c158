//! `/applications/{name}`: every object of the last run with its outcome,
//! health and source line; the diffs of what changed; the last runs. The
//! filter is a plain GET form, so it works without JavaScript.

use std::fmt::Write as _;

use super::views::{AppPage, ObjectFilter};
use super::{badge, duration, escape_html, layout, link, short, time};

/// Bytes of object rows shown before the table is cut (the JSON has them
/// all). With the diff and run budgets this keeps a page of a very large
/// application under 50 KB: rows ≤ 24 KB, diffs ≤ 8 KB, 20 runs ≤ 12 KB.
const ROWS_BUDGET: usize = 24 * 1024;
/// Bytes of diff shown per object, and for the whole page.
const DIFF_PER_OBJECT: usize = 3 * 1024;
const DIFF_TOTAL: usize = 8 * 1024;

const HEALTH_CHOICES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Missing",
    "Suspended",
    "Unknown",
];
const OUTCOME_CHOICES: [(&str, &str); 5] = [
    ("changed", "changed"),
    ("unchanged", "unchanged"),
    ("held", "held back"),
    ("failed", "failed"),
    ("not-attempted", "not attempted"),
];

fn select(name: &str, label: &str, chosen: Option<&str>, choices: &[(&str, &str)]) -> String {
    let mut html =
        format!("<label>{label} <select name=\"{name}\"><option value=\"\">any</option>");
    for (value, text) in choices {
        let _ = write!(
            html,
            "<option value=\"{value}\"{}>{text}</option>",
            if chosen == Some(*value) {
                " selected"
            } else {
                ""
            }
        );
    }
    html.push_str("</select></label>");
    html
}

/// Cuts `text` at a char boundary at most `max` bytes in.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub fn render(page: &AppPage, filter: &ObjectFilter) -> String {
    let app = &page.summary;
    let mut main = String::with_capacity(16 * 1024);
    let _ = writeln!(
        main,
        "<h1>Application <code>{}</code></h1>",
        escape_html(&app.name)
    );
    let _ = writeln!(
        main,
        "<p>Sync {} · health {} · revision {} · last run {} ({}).</p>",
        badge(&app.sync),
        badge(&app.health),
        link(app.revision_url.as_deref(), &short(app.revision.as_deref())),
        escape_html(&match app.running_since {
            Some(since) => format!("running since {}", time(Some(since))),
            None => time(app.last_run),
        }),
        escape_html(&duration(app.duration_ms)),
    );
    for error in &page.errors {
        let _ = writeln!(
            main,
            "<p><strong class=\"bad\">Error:</strong> {}</p>",
            escape_html(error)
        );
    }
    for note in &page.notes {
        let _ = writeln!(main, "<p>Note: {}</p>", escape_html(note));
    }

    main.push_str("<h2 id=\"objects\">Objects</h2>\n<form method=\"get\">");
    let health: Vec<(&str, &str)> = HEALTH_CHOICES.iter().map(|h| (*h, *h)).collect();
    main.push_str(&select(
        "health",
        "Health",
        filter.health.as_deref(),
        &health,
    ));
    main.push_str(&select(
        "outcome",
        "Effect",
        filter.outcome.as_deref(),
        &OUTCOME_CHOICES,
    ));
    main.push_str("<button type=\"submit\">Filter</button></form>\n");
    if page.total_objects == 0 {
        main.push_str("<p>No run of this application has finished since relbot started.</p>\n");
    } else {
        let _ = writeln!(
            main,
            "<p>{} of {} objects{}.</p>",
            page.objects.len(),
            page.total_objects,
            if filter.is_active() {
                " match the filter"
            } else {
                ""
            }
        );
        main.push_str(concat!(
            "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Kind</th>",
            "<th scope=\"col\">Namespace/name</th><th scope=\"col\">Last outcome</th>",
            "<th scope=\"col\">Health</th><th scope=\"col\">Source</th></tr></thead><tbody>\n"
        ));
        let rows_start = main.len();
        let mut shown_rows = 0;
        for object in &page.objects {
            if main.len() - rows_start > ROWS_BUDGET {
                break;
            }
            shown_rows += 1;
            let kind = if object.group.is_empty() {
                object.kind.clone()
            } else {
                format!("{}.{}", object.kind, object.group)
            };
            let outcome = match &object.outcome_detail {
                Some(why) => format!("{}: {}", badge(&object.outcome), escape_html(why)),
                None => badge(&object.outcome),
            };
            let health = match (&object.health, &object.health_reason) {
                (Some(h), Some(why)) => format!("{}: {}", badge(h), escape_html(why)),
                (Some(h), None) => badge(h),
                (None, _) => "—".into(),
            };
            let source = match &object.source {
                Some(source) => link(object.source_url.as_deref(), source),
                None => "—".into(),
            };
            let _ = writeln!(
                main,
                "<tr data-outcome=\"{}\" data-health=\"{}\"><td>{}</td><th scope=\"row\">{}</th><td>{outcome}</td><td>{health}</td><td><code>{source}</code></td></tr>",
                object.outcome_group(),
                escape_html(object.health.as_deref().unwrap_or("")),
                escape_html(&kind),
                escape_html(&object.path()),
            );
        }
        main.push_str("</tbody></table></div>\n");
        if page.objects.len() > shown_rows {
            let _ = writeln!(
                main,
                "<p>{} more objects are not shown here; filter the table or read them all from <a href=\"/api/v1/applications/{}\">the JSON</a>.</p>",
                page.objects.len() - shown_rows,
                escape_html(&super::overview::url_segment(&app.name)),
            );
        }
    }

    main.push_str("<h2 id=\"diff\">Last diff</h2>\n");
    let mut room = DIFF_TOTAL;
    let mut shown = 0;
    let mut left_out = 0;
    for object in &page.objects {
        let Some(diff) = &object.diff else { continue };
        if room < 256 {
            left_out += 1;
            continue;
        }
        let cut = clip(diff, DIFF_PER_OBJECT.min(room));
        room -= cut.len();
        shown += 1;
        let _ = writeln!(
            main,
            "<h3>{} <code>{}</code></h3><pre>{}{}</pre>",
            escape_html(&object.kind),
            escape_html(&object.path()),
            escape_html(cut),
            if cut.len() < diff.len() {
                "\n… (cut; the full diff is in the JSON)"
            } else {
                ""
            }
        );
    }
    if shown == 0 {
        main.push_str("<p>Nothing changed in the last run.</p>\n");
    }
    if left_out > 0 {
        let _ = writeln!(
            main,
            "<p>{left_out} more diffs are in <a href=\"/api/v1/applications/{}\">the JSON</a>.</p>",
            escape_html(&super::overview::url_segment(&app.name)),
        );
    }

    main.push_str("<h2 id=\"runs\">Recent runs</h2>\n");
    if page.runs.is_empty() {
        main.push_str("<p>No run recorded yet.</p>\n");
    } else {
        main.push_str(concat!(
            "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Started</th>",
            "<th scope=\"col\">Trigger</th><th scope=\"col\">Revision</th>",
            "<th scope=\"col\">Duration</th><th scope=\"col\">Effect</th>",
            "<th scope=\"col\">Health</th><th scope=\"col\">Error</th></tr></thead><tbody>\n"
        ));
        for run in &page.runs {
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&time(Some(run.started_at))),
                escape_html(&run.trigger),
                escape_html(&short(run.revision.as_deref())),
                escape_html(&duration(Some(run.duration_ms))),
                badge(&run.outcome),
                badge(&run.health),
                escape_html(run.error.as_deref().unwrap_or("")),
            );
        }
        main.push_str("</tbody></table></div>\n");
    }
    layout(&format!("{} · relbot", app.name), &main)
}

#[cfg(test)]
mod tests {
    use super::super::links::RepoLinks;
    use super::super::store::AppDetail;
    use super::super::views::AppPage;
    use super::*;
    use crate::cluster::health::HealthStatus;
    use crate::server::fixture::{self, object};
    use crate::server::status_page::AppStatus;
    use crate::sync::result::{Effect, ObjectOutcome, RunPhase, SyncResult, Timings};
    use crate::sync::status::RunRecord;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn detail(objects: Vec<ObjectOutcome>) -> AppDetail {
        let result = SyncResult {
            server: "https://cluster".into(),
            objects,
            status_recorded: true,
            timings: Timings {
                total_ms: 420,
                ..Default::default()
            },
            ..fixture::result_with("shop", SHA, RunPhase::Synced, HealthStatus::Progressing)
        };
        AppDetail {
            runs: [RunRecord::of(&result, "push 0123456")].into(),
            result: Some(result),
            running_since: None,
        }
    }

    fn status() -> AppStatus {
        AppStatus {
            name: "shop".into(),
            revision: Some(SHA.into()),
            sync: "Synced".into(),
            health: "Progressing".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_object_with_health_reason_linked_source_diff_and_runs() {
        let detail = detail(vec![
            object(
                "Deployment",
                "web",
                Effect::Applied,
                HealthStatus::Progressing,
                "0 of 2 updated replicas available",
            ),
            object(
                "ConfigMap",
                "settings",
                Effect::Failed("forbidden".into()),
                HealthStatus::Healthy,
                "",
            ),
        ]);
        let links = RepoLinks::for_repository(Some("acme/config"));
        let filter = ObjectFilter::default();
        let page = AppPage::new(&status(), Some(&detail), &links, &filter);
        let html = render(&page, &filter);
        assert!(html.contains("<td>Deployment.apps</td><th scope=\"row\">shop/web</th><td><span class=\"badge ok\">updated</span></td><td><span class=\"badge warn\">Progressing</span>: 0 of 2 updated replicas available</td>"), "{html}");
        assert!(html.contains(&format!("<a href=\"https://github.com/acme/config/blob/{SHA}/apps/shop/deploy.yaml#L12\">apps/shop/deploy.yaml:12</a>")));
        assert!(html.contains("<span class=\"badge bad\">failed</span>: forbidden"));
        assert!(
            html.contains("+   a: &lt;b&gt;2&lt;/b&gt;"),
            "diffs are escaped"
        );
        assert!(html.contains("<td>push 0123456</td>"));
        assert!(html.contains("2 of 2 objects."));
    }

    #[test]
    fn the_filter_narrows_rows_and_is_kept_in_the_form() {
        let detail = detail(vec![
            object(
                "Deployment",
                "web",
                Effect::Applied,
                HealthStatus::Degraded,
                "crash loop",
            ),
            fixture::settings(),
        ]);
        let links = RepoLinks::default();
        let filter = ObjectFilter {
            health: Some("Degraded".into()),
            outcome: None,
        };
        let page = AppPage::new(&status(), Some(&detail), &links, &filter);
        assert_eq!(page.objects.len(), 1);
        let html = render(&page, &filter);
        assert!(html.contains("1 of 2 objects match the filter."));
        assert!(html.contains("<option value=\"Degraded\" selected>"));
        assert!(!html.contains("shop/settings"));
        assert!(
            html.contains("<code>apps/shop/deploy.yaml:12</code>"),
            "no GitHub: plain text"
        );
        let unchanged = ObjectFilter {
            health: None,
            outcome: Some("unchanged".into()),
        };
        let page = AppPage::new(&status(), Some(&detail), &links, &unchanged);
        assert_eq!(page.objects[0].name, "settings");
    }

    #[test]
    fn a_very_large_application_stays_under_fifty_kilobytes() {
        let objects: Vec<ObjectOutcome> = (0..3000)
            .map(|i| {
                let mut o = object(
                    "ConfigMap",
                    &format!("config-{i:05}"),
                    Effect::Applied,
                    HealthStatus::Healthy,
                    "",
                );
                o.diff = Some("x".repeat(2000));
                o
            })
            .collect();
        let detail = detail(objects);
        let filter = ObjectFilter::default();
        let page = AppPage::new(&status(), Some(&detail), &RepoLinks::default(), &filter);
        let html = render(&page, &filter);
        assert!(html.len() < 50 * 1024, "{} bytes", html.len());
        assert!(
            html.contains("more objects are not shown here"),
            "the cut is said"
        );
    }
}

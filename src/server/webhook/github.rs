//! GitHub events to triggers: pushes sync the applications they touch, pull
//! request and check signals continue merges, workflow runs, dispatches and
//! package publications bump.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::registry::bump_for_images;
use super::{Routed, Routes, Verdict};
use crate::revision::short_revision;
use crate::server::trigger::{News, Selector, Trigger};

#[derive(Debug, thiserror::Error)]
#[error("cannot parse the {event} payload: {source}")]
pub struct PayloadError {
    pub event: String,
    #[source]
    pub source: serde_json::Error,
}

#[derive(Debug, Deserialize)]
struct RepositoryRef {
    full_name: Option<String>,
}

/// The fields of a `push` event relbot reads.
#[derive(Debug, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    pub repository: PushRepository,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
}

#[derive(Debug, Deserialize)]
pub struct PushRepository {
    pub full_name: String,
}

#[derive(Debug, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

/// GitHub lists at most this many commits in a push; beyond it the file
/// lists are incomplete and everything is re-synced.
const GITHUB_PUSH_COMMIT_LIMIT: usize = 2048;

/// Maps a verified GitHub event to triggers.
pub fn route_github_event(
    event: &str,
    body: &[u8],
    routes: &Routes,
) -> Result<Routed, PayloadError> {
    let parse_error = |source| PayloadError {
        event: event.to_string(),
        source,
    };
    match event {
        "ping" => Ok(Routed {
            verdict: Verdict::Pong,
            triggers: Vec::new(),
            note: "ping".into(),
        }),
        "push" => Ok(route_push(
            serde_json::from_slice(body).map_err(parse_error)?,
            routes,
        )),
        "pull_request" | "pull_request_review" | "check_suite" | "check_run" | "status" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_merge_signal(event, &value, routes))
        }
        "workflow_run" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_workflow_run(&value))
        }
        "repository_dispatch" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_dispatch(&value, routes))
        }
        "registry_package" | "package" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_package(&value, routes))
        }
        other => Ok(Routed {
            verdict: Verdict::UnknownEvent,
            triggers: Vec::new(),
            note: format!(
                "event {:?} is not handled",
                other.chars().take(64).collect::<String>()
            ),
        }),
    }
}

fn route_push(push: PushEvent, routes: &Routes) -> Routed {
    if !routes.is_our_repository(Some(&push.repository.full_name)) {
        return Routed::ignored(format!(
            "push to {}, not the configured repository",
            push.repository.full_name
        ));
    }
    let branch_ref = format!("refs/heads/{}", routes.branch);
    if push.git_ref != branch_ref {
        return Routed::ignored(format!("push to {}, not {branch_ref}", push.git_ref));
    }
    if push.deleted {
        return Routed::ignored("the branch was deleted; keeping the cluster as it is");
    }
    let revision = Some(push.after.clone());
    let complete_file_list = !push.forced
        && !push.created
        && !push.commits.is_empty()
        && push.commits.len() < GITHUB_PUSH_COMMIT_LIMIT;
    let apps = if complete_file_list {
        routes.apps_for_paths(
            push.commits
                .iter()
                .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
                .map(String::as_str),
        )
    } else {
        // A force-push, a new branch or a truncated list: the changed files
        // are unknown, so every application is checked.
        Selector::All
    };
    if apps.is_empty() {
        return Routed::ignored(format!(
            "push {} touched no application path",
            short_revision(&push.after)
        ));
    }
    let note = format!("push {} → sync {apps}", short_revision(&push.after));
    Routed::accepted(
        Trigger::Sync {
            apps,
            revision,
            reason: format!("push {}", short_revision(&push.after)),
        },
        note,
    )
}

fn route_merge_signal(event: &str, value: &Value, routes: &Routes) -> Routed {
    let repo: Option<RepositoryRef> = value
        .get("repository")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok());
    if !routes.is_our_repository(repo.as_ref().and_then(|r| r.full_name.as_deref())) {
        return Routed::ignored(format!("{event} from another repository"));
    }
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let prs: Selector<u64> = match event {
        "pull_request" | "pull_request_review" => {
            match value
                .pointer("/pull_request/number")
                .and_then(Value::as_u64)
            {
                Some(n) => Selector::only([n]),
                None => return Routed::ignored(format!("{event} without a pull request number")),
            }
        }
        "check_suite" | "check_run" => {
            if action != "completed" {
                return Routed::ignored(format!("{event} {action}: waiting for completion"));
            }
            let key = if event == "check_suite" {
                "/check_suite/pull_requests"
            } else {
                "/check_run/pull_requests"
            };
            let numbers: BTreeSet<u64> = value
                .pointer(key)
                .and_then(Value::as_array)
                .map(|prs| {
                    prs.iter()
                        .filter_map(|p| p.get("number").and_then(Value::as_u64))
                        .collect()
                })
                .unwrap_or_default();
            if numbers.is_empty() {
                Selector::All
            } else {
                Selector::Only(numbers)
            }
        }
        // `status` names a commit, not a pull request.
        _ => {
            let state = value.get("state").and_then(Value::as_str).unwrap_or("");
            if state == "pending" {
                return Routed::ignored("status pending");
            }
            Selector::All
        }
    };
    let note = format!("{event} {action} → continue merge of {prs}");
    Routed::accepted(
        Trigger::ContinueMerge {
            prs,
            reason: event.to_string(),
        },
        note,
    )
}

fn route_workflow_run(value: &Value) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let conclusion = value
        .pointer("/workflow_run/conclusion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if action != "completed" || conclusion != "success" {
        return Routed::ignored(format!("workflow_run {action} {conclusion}"));
    }
    let name = value
        .pointer("/workflow_run/name")
        .and_then(Value::as_str)
        .unwrap_or("workflow");
    Routed::accepted(
        Trigger::bump_all("workflow_run"),
        format!("workflow {name:?} succeeded → bump all"),
    )
}

/// `repository_dispatch` is the "trigger by API": `event_type` `relbot-sync`
/// syncs (`client_payload.applications` narrows it); anything else bumps
/// (`client_payload.policies` or `client_payload.images` narrow it).
fn route_dispatch(value: &Value, routes: &Routes) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let payload = value.get("client_payload").cloned().unwrap_or(Value::Null);
    let strings = |key: &str| -> Option<BTreeSet<String>> {
        payload.get(key).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    if matches!(action, "relbot-sync" | "relbot.sync" | "sync") {
        let apps = strings("applications")
            .map(Selector::Only)
            .unwrap_or(Selector::All);
        let revision = payload
            .get("revision")
            .and_then(Value::as_str)
            .map(str::to_string);
        let note = format!("repository_dispatch {action} → sync {apps}");
        return Routed::accepted(
            Trigger::Sync {
                apps,
                revision,
                reason: "repository_dispatch".into(),
            },
            note,
        );
    }
    let mut policies = strings("policies");
    if let Some(images) = strings("images") {
        let matched = images.iter().flat_map(|i| routes.policies_for_text(i).0);
        policies.get_or_insert_with(BTreeSet::new).extend(matched);
    }
    let policies = match policies {
        Some(set) if set.is_empty() => {
            return Routed::no_match("repository_dispatch named no known policy or image");
        }
        Some(set) => Selector::Only(set),
        None => Selector::All,
    };
    let note = format!("repository_dispatch {action} → bump {policies}");
    Routed::accepted(Trigger::bump(policies, "repository_dispatch"), note)
}

/// GitHub Packages: a container version was published to ghcr.io.
fn route_package(value: &Value, routes: &Routes) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    if action != "published" && action != "updated" {
        return Routed::ignored(format!("package {action}"));
    }
    let package = value
        .get("registry_package")
        .or_else(|| value.get("package"))
        .unwrap_or(&Value::Null);
    let kind = package
        .get("package_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind != "container" && kind != "docker" {
        return Routed::ignored(format!("package of type {kind:?}, not a container"));
    }
    // GitHub reports owners as spelled (`Acme`); ghcr.io names are their
    // lower-case form.
    let image = package
        .pointer("/package_version/package_url")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            let name = package.get("name").and_then(Value::as_str)?;
            let owner = package
                .get("namespace")
                .and_then(Value::as_str)
                .or_else(|| package.pointer("/owner/login").and_then(Value::as_str))?;
            Some(format!("ghcr.io/{owner}/{name}").to_ascii_lowercase())
        });
    let Some(image) = image else {
        return Routed::ignored("package event without a name");
    };
    bump_for_images(&[image], News::Unknown, routes, "registry_package")
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::webhook::routes::fixture::routes;
    use serde_json::json;

    fn push(files: &[&str]) -> Vec<u8> {
        json!({
            "ref": "refs/heads/main", "before": "a".repeat(40), "after": "b".repeat(40),
            "repository": {"full_name": "Acme/Cluster-Config"},
            "commits": [{"added": [], "modified": files, "removed": []}]
        })
        .to_string()
        .into_bytes()
    }

    /// What `event` with this JSON body routes to.
    fn route_json(event: &str, body: &serde_json::Value) -> Routed {
        route_github_event(event, body.to_string().as_bytes(), &routes()).unwrap()
    }

    #[test]
    fn push_triggers_only_touched_apps() {
        let routed = route_github_event(
            "push",
            &push(&["manifests/ahuora/deploy.yaml", "README.md"]),
            &routes(),
        )
        .unwrap();
        assert_eq!(routed.verdict, Verdict::Accepted);
        assert_eq!(
            routed.triggers,
            vec![Trigger::Sync {
                apps: Selector::only(["ahuora".to_string()]),
                revision: Some("b".repeat(40)),
                reason: format!("push {}", "b".repeat(12)),
            }]
        );
    }

    #[test]
    fn push_of_config_syncs_everything_and_unrelated_push_nothing() {
        let all = route_github_event("push", &push(&["policies/web.yaml"]), &routes()).unwrap();
        assert!(matches!(
            &all.triggers[0],
            Trigger::Sync {
                apps: Selector::All,
                ..
            }
        ));
        let none = route_github_event("push", &push(&["docs/readme.md"]), &routes()).unwrap();
        assert_eq!(none.verdict, Verdict::Ignored);
        assert!(none.triggers.is_empty());
        // A path sharing only a string prefix is not inside the app.
        let prefix =
            route_github_event("push", &push(&["manifests/ahuora-old/x.yaml"]), &routes()).unwrap();
        assert!(prefix.triggers.is_empty());
    }

    #[test]
    fn push_elsewhere_is_ignored_and_force_push_syncs_all() {
        let mut other: Value = serde_json::from_slice(&push(&["manifests/ahuora/a.yaml"])).unwrap();
        other["ref"] = json!("refs/heads/feature");
        let r = route_json("push", &other);
        assert_eq!(r.verdict, Verdict::Ignored);
        let mut forced: Value = serde_json::from_slice(&push(&["docs/x"])).unwrap();
        forced["forced"] = json!(true);
        let r = route_json("push", &forced);
        assert!(matches!(
            &r.triggers[0],
            Trigger::Sync {
                apps: Selector::All,
                ..
            }
        ));
        let mut repo: Value = serde_json::from_slice(&push(&["manifests/ahuora/a.yaml"])).unwrap();
        repo["repository"]["full_name"] = json!("evil/fork");
        assert_eq!(route_json("push", &repo).verdict, Verdict::Ignored);
    }

    #[test]
    fn merge_signals_continue_merges() {
        let pr = json!({"action": "synchronize", "pull_request": {"number": 42}, "repository": {"full_name": "acme/cluster-config"}});
        let r = route_json("pull_request", &pr);
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::only([42]),
                reason: "pull_request".into()
            }
        );
        let suite = json!({"action": "completed", "check_suite": {"pull_requests": [{"number": 7}]}, "repository": {"full_name": "acme/cluster-config"}});
        let r = route_json("check_suite", &suite);
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::only([7]),
                reason: "check_suite".into()
            }
        );
        let status = json!({"state": "success", "sha": "abc", "repository": {"full_name": "acme/cluster-config"}});
        let r = route_json("status", &status);
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::All,
                reason: "status".into()
            }
        );
    }

    #[test]
    fn api_triggers_bump() {
        let run = json!({"action": "completed", "workflow_run": {"name": "build", "conclusion": "success"}});
        let r = route_json("workflow_run", &run);
        assert_eq!(r.triggers, vec![Trigger::bump_all("workflow_run")]);
        let failed = json!({"action": "completed", "workflow_run": {"name": "build", "conclusion": "failure"}});
        assert!(route_json("workflow_run", &failed).triggers.is_empty());
        let dispatch = json!({"action": "new-image", "client_payload": {"images": ["ghcr.io/acme/web:1.2.3"]}});
        let r = route_json("repository_dispatch", &dispatch);
        assert_eq!(
            r.triggers[0],
            Trigger::bump(Selector::only(["web".to_string()]), "repository_dispatch")
        );
        let sync =
            json!({"action": "relbot-sync", "client_payload": {"applications": ["platform"]}});
        let r = route_json("repository_dispatch", &sync);
        assert!(
            matches!(&r.triggers[0], Trigger::Sync { apps: Selector::Only(a), .. } if a.contains("platform"))
        );
        let package = json!({"action": "published", "registry_package": {"name": "web", "namespace": "acme", "package_type": "CONTAINER"}});
        let r = route_json("registry_package", &package);
        assert_eq!(
            r.triggers[0],
            Trigger::bump(Selector::only(["web".to_string()]), "registry_package")
        );
        // GitHub spells the owner as the account does; ghcr.io lower-cases it.
        for package in [
            json!({"action": "published", "registry_package": {"name": "web", "owner": {"login": "Acme"}, "package_type": "container"}}),
            json!({"action": "published", "registry_package": {"name": "web", "package_type": "container", "package_version": {"package_url": "ghcr.io/Acme/web:1.0"}}}),
        ] {
            let r = route_json("registry_package", &package);
            assert_eq!(r.verdict, Verdict::Accepted, "{package}");
        }
        let unknown = json!({"action": "x", "client_payload": {"images": ["Not An Image"]}});
        let r = route_json("repository_dispatch", &unknown);
        assert_eq!(r.verdict, Verdict::NoMatch);
    }

    #[test]
    fn unknown_events_and_bad_payloads() {
        let r = route_github_event("star", b"{}", &routes()).unwrap();
        assert_eq!(r.verdict, Verdict::UnknownEvent);
        assert!(route_github_event("push", b"not json", &routes()).is_err());
    }
}

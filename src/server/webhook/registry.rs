//! Registry webhooks to triggers: a Docker Hub push or a distribution
//! notification of a tagged manifest bumps the policies watching that image.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::{Routed, Routes};
use crate::server::trigger::{News, Selector, Trigger};

pub(super) fn bump_for_images(
    images: &[String],
    news: News,
    routes: &Routes,
    reason: &str,
) -> Routed {
    let mut policies = BTreeSet::new();
    let mut names = Vec::new();
    for image in images {
        let (matched, name) = routes.policies_for_text(image);
        policies.extend(matched);
        names.push(name);
    }
    if policies.is_empty() {
        return Routed::no_match(format!("no policy watches {}", names.join(", ")));
    }
    let selector = Selector::Only(policies);
    let note = format!("{} pushed → bump {selector}", names.join(", "));
    Routed::accepted(
        Trigger::Bump {
            policies: selector,
            news,
            reason: reason.to_string(),
        },
        note,
    )
}

/// Docker Hub's webhook body (unsigned; the path token authenticates it).
#[derive(Debug, Deserialize)]
struct DockerHubPush {
    push_data: DockerHubPushData,
    repository: DockerHubRepository,
}

#[derive(Debug, Deserialize)]
struct DockerHubPushData {
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DockerHubRepository {
    repo_name: String,
}

/// A distribution registry notification envelope.
#[derive(Debug, Deserialize)]
struct Notification {
    events: Vec<NotificationEvent>,
}

#[derive(Debug, Deserialize)]
struct NotificationEvent {
    action: String,
    #[serde(default)]
    target: NotificationTarget,
    #[serde(default)]
    request: NotificationRequest,
}

#[derive(Debug, Default, Deserialize)]
struct NotificationTarget {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NotificationRequest {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("not a Docker Hub webhook nor a registry notification: {0}")]
pub struct RegistryPayloadError(String);

/// Maps a registry webhook body (Docker Hub or distribution notifications)
/// to a bump of the policies watching the pushed image.
pub fn route_registry_event(body: &[u8], routes: &Routes) -> Result<Routed, RegistryPayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RegistryPayloadError(e.to_string()))?;
    if value.get("events").is_some() {
        let notification: Notification =
            serde_json::from_value(value).map_err(|e| RegistryPayloadError(e.to_string()))?;
        let mut policies = BTreeSet::new();
        let mut images = Vec::new();
        let mut tags = Vec::new();
        for event in notification.events {
            // Blob uploads and pushes by digest carry no tag; only a tagged
            // manifest push can be a new version.
            if event.action != "push" || event.target.tag.as_deref().unwrap_or("").is_empty() {
                continue;
            }
            tags.extend(event.target.tag.clone());
            let matched = match &event.request.host {
                Some(host) => {
                    let (matched, name) =
                        routes.policies_for_text(&format!("{host}/{}", event.target.repository));
                    images.push(name);
                    matched
                }
                None => {
                    images.push(event.target.repository.clone());
                    routes.policies_for_path(&event.target.repository)
                }
            };
            policies.extend(matched);
        }
        if images.is_empty() {
            return Ok(Routed::ignored(
                "no tagged manifest push in the notification",
            ));
        }
        if policies.is_empty() {
            return Ok(Routed::no_match(format!(
                "no policy watches {}",
                images.join(", ")
            )));
        }
        let selector = Selector::Only(policies);
        let note = format!("{} pushed → bump {selector}", images.join(", "));
        return Ok(Routed::accepted(
            Trigger::Bump {
                policies: selector,
                news: News::tags(tags),
                reason: "registry notification".into(),
            },
            note,
        ));
    }
    let hub: DockerHubPush =
        serde_json::from_value(value).map_err(|e| RegistryPayloadError(e.to_string()))?;
    if hub.push_data.tag.as_deref().unwrap_or("").is_empty() {
        return Ok(Routed::ignored("Docker Hub push without a tag"));
    }
    Ok(bump_for_images(
        &[format!("docker.io/{}", hub.repository.repo_name)],
        News::tags(hub.push_data.tag),
        routes,
        "docker hub",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::webhook::Verdict;
    use crate::server::webhook::routes::fixture::routes;
    use serde_json::json;

    #[test]
    fn docker_hub_webhook_matches_policy() {
        let body = json!({"push_data": {"tag": "0.3.1", "pusher": "ci"}, "repository": {"repo_name": "ahuora/django-api", "name": "django-api", "namespace": "ahuora"}});
        let r = route_registry_event(body.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["django-api".to_string()]),
                news: News::tags(["0.3.1".to_string()]),
                reason: "docker hub".into()
            }
        );
        let official =
            json!({"push_data": {"tag": "16.4"}, "repository": {"repo_name": "library/postgres"}});
        let r = route_registry_event(official.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["postgres".to_string()]),
                news: News::tags(["16.4".to_string()]),
                reason: "docker hub".into()
            }
        );
        let unknown =
            json!({"push_data": {"tag": "1"}, "repository": {"repo_name": "someone/else"}});
        assert_eq!(
            route_registry_event(unknown.to_string().as_bytes(), &routes())
                .unwrap()
                .verdict,
            Verdict::NoMatch
        );
    }

    #[test]
    fn distribution_notifications_match_by_host_and_repository() {
        let body = json!({"events": [
            {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "team/svc"}, "request": {"host": "127.0.0.1:5000"}},
            {"action": "push", "target": {"repository": "team/svc", "tag": "1.4.0"}, "request": {"host": "127.0.0.1:5000"}},
            {"action": "pull", "target": {"repository": "ahuora/django-api", "tag": "1"}, "request": {"host": "docker.io"}}
        ]});
        let r = route_registry_event(body.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["local".to_string()]),
                news: News::tags(["1.4.0".to_string()]),
                reason: "registry notification".into()
            }
        );
        let blobs_only = json!({"events": [{"action": "push", "target": {"repository": "team/svc"}, "request": {"host": "x"}}]});
        assert_eq!(
            route_registry_event(blobs_only.to_string().as_bytes(), &routes())
                .unwrap()
                .verdict,
            Verdict::Ignored
        );
        assert!(route_registry_event(b"[]", &routes()).is_err());
    }
}

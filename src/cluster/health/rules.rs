//! The user's per-kind health rules (relbot.yaml `health:`), applied before
//! relbot's own assessment. See `config::HealthRule` for their shape.

use std::sync::Arc;

use serde_json::Value;

use super::read::{describe, find_condition};
use super::{Health, HealthStatus};
use crate::config::{HealthRule, HealthTest, RuleHealth};

/// The rules of one configuration, cheap to clone into each run.
#[derive(Debug, Clone, Default)]
pub struct HealthRules(Arc<[HealthRule]>);

impl HealthRules {
    pub fn new(rules: &[HealthRule]) -> Self {
        HealthRules(rules.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The health the first matching rule for this object's kind assigns.
    pub(super) fn judge(&self, object: &Value, group: &str, kind: &str) -> Option<Health> {
        self.0
            .iter()
            .filter(|r| r.kind == kind && r.group.as_deref().is_none_or(|g| g == group))
            .find_map(|r| matches(r, object).map(|found| outcome(r, found)))
    }
}

/// What a matching rule found, to say in the default message.
fn matches(rule: &HealthRule, object: &Value) -> Option<String> {
    match &rule.test {
        HealthTest::Condition { kind, status } => {
            let c = find_condition(object.pointer("/status/conditions")?, kind)?;
            (c["status"].as_str()? == status).then(|| {
                let detail = describe(c);
                if detail.is_empty() {
                    format!("condition {kind} is {status}")
                } else {
                    format!("condition {kind} is {status}: {detail}")
                }
            })
        }
        HealthTest::Field { pointer, values } => {
            let found = scalar_text(object.pointer(pointer)?)?;
            values
                .iter()
                .any(|v| same_scalar(&found, v))
                .then(|| format!("{pointer} is {found}"))
        }
    }
}

/// Strings as they are; numbers and booleans as JSON writes them. Arrays and
/// objects are never equal to a value from the table.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// YAML users write `True` where JSON holds `true`: booleans compare without
/// case, everything else exactly.
fn same_scalar(found: &str, wanted: &str) -> bool {
    found == wanted || (matches!(found, "true" | "false") && found.eq_ignore_ascii_case(wanted))
}

fn outcome(rule: &HealthRule, found: String) -> Health {
    let status = match rule.health {
        RuleHealth::Healthy => HealthStatus::Healthy,
        RuleHealth::Progressing => HealthStatus::Progressing,
        RuleHealth::Suspended => HealthStatus::Suspended,
        RuleHealth::Degraded => HealthStatus::Degraded,
    };
    let message = match &rule.message {
        Some(m) => m.clone(),
        // A healthy object needs no explanation, as with built-in kinds.
        None if status == HealthStatus::Healthy => String::new(),
        None => found,
    };
    Health::new(status, message)
}

#[cfg(test)]
mod tests {
    use super::super::assess_with;
    use super::*;
    use serde_json::json;

    fn rule(group: Option<&str>, kind: &str, test: HealthTest, health: RuleHealth) -> HealthRule {
        HealthRule {
            group: group.map(str::to_string),
            kind: kind.into(),
            test,
            health,
            message: None,
        }
    }

    fn condition(kind: &str, status: &str) -> HealthTest {
        HealthTest::Condition {
            kind: kind.into(),
            status: status.into(),
        }
    }

    fn sealed(status: &str) -> Value {
        json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "status": {"conditions": [{"type": "Synced", "status": status,
                "message": "no key could decrypt secret"}]}})
    }

    #[test]
    fn condition_rules_decide_in_order() {
        let rules = HealthRules::new(&[
            rule(
                Some("bitnami.com"),
                "SealedSecret",
                condition("Synced", "False"),
                RuleHealth::Degraded,
            ),
            rule(
                Some("bitnami.com"),
                "SealedSecret",
                condition("Synced", "True"),
                RuleHealth::Healthy,
            ),
        ]);
        let h = assess_with(&sealed("False"), &rules);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "condition Synced is False: no key could decrypt secret"
        );
        assert_eq!(
            assess_with(&sealed("True"), &rules).status,
            HealthStatus::Healthy
        );
        // No rule matches: relbot's own reading applies (Unknown for this status).
        assert_eq!(
            assess_with(&sealed("Unknown"), &rules).status,
            HealthStatus::Unknown
        );
    }

    #[test]
    fn group_must_match_when_given() {
        let other_group = HealthRules::new(&[rule(
            Some("example.com"),
            "SealedSecret",
            condition("Synced", "True"),
            RuleHealth::Healthy,
        )]);
        assert_eq!(
            assess_with(&sealed("True"), &other_group).status,
            HealthStatus::Unknown
        );
        let any_group = HealthRules::new(&[rule(
            None,
            "SealedSecret",
            condition("Synced", "True"),
            RuleHealth::Healthy,
        )]);
        assert_eq!(
            assess_with(&sealed("True"), &any_group).status,
            HealthStatus::Healthy
        );
        // "" is the core group only.
        let core = HealthRules::new(&[rule(
            Some(""),
            "SealedSecret",
            condition("Synced", "True"),
            RuleHealth::Healthy,
        )]);
        assert_eq!(
            assess_with(&sealed("True"), &core).status,
            HealthStatus::Unknown
        );
    }

    #[test]
    fn pointer_rules_compare_scalars_as_text() {
        let mut up = rule(
            Some("example.com"),
            "Database",
            HealthTest::Field {
                pointer: "/status/state".into(),
                values: vec!["up".into(), "ready".into()],
            },
            RuleHealth::Healthy,
        );
        up.message = Some("database is up".into());
        let paused = rule(
            None,
            "Database",
            HealthTest::Field {
                pointer: "/spec/paused".into(),
                values: vec!["True".into()],
            },
            RuleHealth::Suspended,
        );
        let replicas = rule(
            None,
            "Database",
            HealthTest::Field {
                pointer: "/status/replicas".into(),
                values: vec!["0".into()],
            },
            RuleHealth::Progressing,
        );
        let rules = HealthRules::new(&[paused, up, replicas]);
        let db = |spec: Value, status: Value| json!({"apiVersion": "example.com/v1", "kind": "Database", "spec": spec, "status": status});
        let h = assess_with(&db(json!({}), json!({"state": "up"})), &rules);
        assert_eq!(
            (h.status, h.message.as_str()),
            (HealthStatus::Healthy, "database is up")
        );
        let h = assess_with(&db(json!({"paused": true}), json!({"state": "up"})), &rules);
        assert_eq!(
            (h.status, h.message.as_str()),
            (HealthStatus::Suspended, "/spec/paused is true")
        );
        let h = assess_with(&db(json!({}), json!({"replicas": 0})), &rules);
        assert_eq!(h.status, HealthStatus::Progressing);
        // An object where the pointer leads to a list matches no value.
        let h = assess_with(&db(json!({}), json!({"state": ["up"]})), &rules);
        assert_eq!(h.status, HealthStatus::Unknown);
    }

    #[test]
    fn rules_override_built_in_kinds_but_not_deletion() {
        let rules = HealthRules::new(&[rule(
            Some(""),
            "Service",
            HealthTest::Field {
                pointer: "/spec/type".into(),
                values: vec!["LoadBalancer".into()],
            },
            RuleHealth::Healthy,
        )]);
        let lb = json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"type": "LoadBalancer"}, "status": {}});
        assert_eq!(assess_with(&lb, &rules).status, HealthStatus::Healthy);
        let mut deleting = lb.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2024-01-01T00:00:00Z"});
        assert_eq!(
            assess_with(&deleting, &rules).status,
            HealthStatus::Progressing
        );
    }
}

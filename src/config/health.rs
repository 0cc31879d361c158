//! `health:` in relbot.yaml: per-kind health rules, for custom resources
//! whose status relbot cannot read by itself (Argo CD's resource
//! customizations, as a table instead of Lua).
//!
//! ```yaml
//! health:
//!   - group: bitnami.com            # "" for core kinds; omitted: any group
//!     kind: SealedSecret
//!     condition: { type: Synced, status: "False" }
//!     health: Degraded
//!   - group: example.com
//!     kind: Database
//!     jsonPointer: /status/state
//!     values: [up, ready]
//!     health: Healthy
//!     message: database is up       # optional; default names what matched
//! ```
//!
//! Rules for a kind are tried in order before relbot's own assessment; the
//! first that matches decides. When none matches, relbot's own applies.

use serde::{Deserialize, Serialize};

/// One row of the table: a kind, a test, and the health it means.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "HealthRuleFields", into = "HealthRuleFields")]
pub struct HealthRule {
    /// API group; `Some("")` is the core group, `None` any group.
    pub group: Option<String>,
    pub kind: String,
    pub test: HealthTest,
    pub health: RuleHealth,
    /// Said instead of the default description of what matched.
    pub message: Option<String>,
}

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `status.conditions[type == kind].status == status`.
    Condition { kind: String, status: String },
    /// The value at an RFC 6901 pointer is one of `values` (scalars compared
    /// as text: `true`, `3`, `Running`).
    Field {
        pointer: String,
        values: Vec<String>,
    },
}

/// The health a rule assigns (the statuses a user can mean; `Missing` and
/// `Unknown` are relbot's own findings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RuleHealth {
    Healthy,
    Progressing,
    Suspended,
    Degraded,
}

/// The YAML shape; checked into a [`HealthRule`] so a rule with both tests,
/// or neither, is an error at its line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthRuleFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<ConditionFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
    health: RuleHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ConditionFields {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

impl TryFrom<HealthRuleFields> for HealthRule {
    type Error = String;

    fn try_from(f: HealthRuleFields) -> Result<Self, String> {
        if f.kind.trim().is_empty() {
            return Err("health rule: kind must not be empty".into());
        }
        let test = match (f.condition, f.json_pointer) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "health rule for {}: give either condition or jsonPointer, not both",
                    f.kind
                ));
            }
            (None, None) => {
                return Err(format!(
                    "health rule for {}: give a condition ({{ type, status }}) or a jsonPointer with values",
                    f.kind
                ));
            }
            (Some(c), None) => {
                if !f.values.is_empty() {
                    return Err(format!(
                        "health rule for {}: values go with jsonPointer, not with condition",
                        f.kind
                    ));
                }
                HealthTest::Condition {
                    kind: c.kind,
                    status: c.status,
                }
            }
            (None, Some(pointer)) => {
                if !pointer.starts_with('/') {
                    return Err(format!(
                        "health rule for {}: jsonPointer {pointer} must start with '/' (e.g. /status/phase)",
                        f.kind
                    ));
                }
                if f.values.is_empty() {
                    return Err(format!(
                        "health rule for {}: jsonPointer needs values to compare with",
                        f.kind
                    ));
                }
                HealthTest::Field {
                    pointer,
                    values: f.values,
                }
            }
        };
        Ok(HealthRule {
            group: f.group,
            kind: f.kind,
            test,
            health: f.health,
            message: f.message,
        })
    }
}

impl From<HealthRule> for HealthRuleFields {
    fn from(r: HealthRule) -> Self {
        let (condition, json_pointer, values) = match r.test {
            HealthTest::Condition { kind, status } => {
                (Some(ConditionFields { kind, status }), None, Vec::new())
            }
            HealthTest::Field { pointer, values } => (None, Some(pointer), values),
        };
        HealthRuleFields {
            group: r.group,
            kind: r.kind,
            condition,
            json_pointer,
            values,
            health: r.health,
            message: r.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::config::load::parse_str;

    const APP: &str = "applications:\n  - name: web\n    path: apps/web\n";

    fn parse(health: &str) -> Result<Vec<HealthRule>, String> {
        parse_str::<Config>(Path::new("relbot.yaml"), &format!("{APP}health:\n{health}"))
            .map(|c| c.health)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn condition_and_pointer_rules_parse() {
        let rules = parse(
            "  - group: bitnami.com\n    kind: SealedSecret\n    condition: { type: Synced, status: \"False\" }\n    health: Degraded\n  - kind: Database\n    jsonPointer: /status/state\n    values: [up, 3, true]\n    health: Healthy\n    message: database is up\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].group.as_deref(), Some("bitnami.com"));
        assert_eq!(
            rules[0].test,
            HealthTest::Condition {
                kind: "Synced".into(),
                status: "False".into()
            }
        );
        assert_eq!(rules[0].health, RuleHealth::Degraded);
        assert_eq!(rules[1].group, None);
        assert_eq!(
            rules[1].test,
            HealthTest::Field {
                pointer: "/status/state".into(),
                values: vec!["up".into(), "3".into(), "true".into()]
            }
        );
        assert_eq!(rules[1].message.as_deref(), Some("database is up"));
    }

    #[test]
    fn unquoted_condition_status_reads_as_text() {
        let rules = parse(
            "  - kind: X\n    condition: { type: Ready, status: True }\n    health: Healthy\n",
        )
        .unwrap();
        assert_eq!(
            rules[0].test,
            HealthTest::Condition {
                kind: "Ready".into(),
                status: "True".into()
            }
        );
    }

    #[test]
    fn bad_rules_name_file_line_and_what_to_do() {
        let both = parse(
            "  - kind: X\n    condition: { type: Ready, status: \"True\" }\n    jsonPointer: /status/phase\n    values: [a]\n    health: Healthy\n",
        )
        .unwrap_err();
        assert!(both.starts_with("relbot.yaml:5:"), "{both}");
        assert!(both.contains("not both"), "{both}");
        let neither = parse("  - kind: X\n    health: Healthy\n").unwrap_err();
        assert!(neither.contains("give a condition"), "{neither}");
        let pointer = parse(
            "  - kind: X\n    jsonPointer: status.phase\n    values: [a]\n    health: Healthy\n",
        )
        .unwrap_err();
        assert!(pointer.contains("must start with '/'"), "{pointer}");
        let no_values = parse("  - kind: X\n    jsonPointer: /status/phase\n    health: Healthy\n")
            .unwrap_err();
        assert!(no_values.contains("needs values"), "{no_values}");
        let word = parse("  - kind: X\n    jsonPointer: /a\n    values: [b]\n    health: Fine\n")
            .unwrap_err();
        assert!(word.starts_with("relbot.yaml:8:"), "{word}");
        assert!(word.contains("Fine"), "{word}");
        let typo = parse("  - kind: X\n    jsonPointer: /a\n    value: [b]\n    health: Healthy\n")
            .unwrap_err();
        assert!(typo.contains("value"), "{typo}");
    }

    #[test]
    fn rules_round_trip_through_yaml_shape() {
        let rule = HealthRule {
            group: Some(String::new()),
            kind: "ConfigMap".into(),
            test: HealthTest::Field {
                pointer: "/data/ready".into(),
                values: vec!["yes".into()],
            },
            health: RuleHealth::Healthy,
            message: None,
        };
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"group": "", "kind": "ConfigMap", "jsonPointer": "/data/ready",
                "values": ["yes"], "health": "Healthy"})
        );
        assert_eq!(serde_json::from_value::<HealthRule>(json).unwrap(), rule);
    }
}

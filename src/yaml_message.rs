//! serde-saphyr's errors in the words of someone editing a YAML file.
//!
//! The library's default messages are written for the programmer calling it
//! ("set DuplicateKeyPolicy in Options if acceptable", "budget breached:
//! Nodes { nodes: 250001 }"); a person with the file open can act on neither.
//! Every YAML read in relbot (relbot.yaml, policies, manifests) goes through
//! [`describe`], so the same mistake reads the same everywhere.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Budget, Error};

/// A YAML error located in its text, with a message in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlMessage {
    /// 1-based; 0 when the parser could not tell.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Describes `error`, raised while parsing `text`.
pub fn describe(error: &Error, text: &str) -> YamlMessage {
    let (line, column) = error
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((0, 0));
    let message = match innermost(error) {
        Error::DuplicateMappingKey { key, .. } => duplicate_key(key.as_deref(), text, line, column),
        Error::Budget { breach, .. } => over_budget(breach),
        Error::AliasReplayCounterOverflow { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. } => ALIAS_LIMIT.to_string(),
        _ => strip_location(&error.to_string()),
    };
    YamlMessage {
        line,
        column,
        message,
    }
}

const ALIAS_LIMIT: &str = "aliases (*name) expand to more than relbot reads from one file; \
     write the repeated values out, or use fewer aliases of large anchors";

/// The error under the library's wrappers (snippets, alias context).
fn innermost(mut error: &Error) -> &Error {
    while let Error::WithSnippet { error: inner, .. } | Error::AliasError { error: inner, .. } =
        error
    {
        error = inner;
    }
    error
}

/// serde-saphyr appends " at line L column C"; callers print the location
/// in front, compiler-style.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// `duplicate key `name` (first at line 3)`, and for a repeated top-level
/// `apiVersion`/`kind`/`metadata` the likely cause: two objects in one
/// document because a `---` separator is missing.
fn duplicate_key(key: Option<&str>, text: &str, line: usize, column: usize) -> String {
    let Some(key) = key else {
        return "a key appears twice in the same mapping; remove or rename one".into();
    };
    let first = first_occurrence(text, key, line, column);
    let mut message = format!("duplicate key `{key}`");
    if let Some(first) = first {
        message.push_str(&format!(" (first at line {first})"));
    }
    if column == 1 && matches!(key, "apiVersion" | "kind" | "metadata") {
        message.push_str(&format!(
            ": two objects in one document? Put `---` on its own line before line {line} to start a new document"
        ));
    } else {
        message.push_str("; a key may appear once per mapping");
    }
    message
}

/// The line of the earlier `key:` in the same block mapping as the repeat at
/// `line`:`column`, found by walking up at the same indentation until the
/// mapping ends (a shallower line or a document marker).
fn first_occurrence(text: &str, key: &str, line: usize, column: usize) -> Option<usize> {
    let indent = column.checked_sub(1)?;
    let lines: Vec<&str> = text.lines().collect();
    let starts_key = |rest: &str| {
        [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .any(|k| rest.starts_with(k.as_str()))
    };
    for number in (1..line.min(lines.len() + 1)).rev() {
        let text = lines[number - 1];
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if text.starts_with("---") || text.starts_with("...") {
            return None;
        }
        let own = text.len() - trimmed.len();
        if own == indent && starts_key(trimmed) {
            return Some(number);
        }
        // The first key of a sequence item: `- key:` two columns left.
        if own + 2 == indent
            && let Some(rest) = trimmed.strip_prefix("- ")
            && starts_key(rest)
        {
            return Some(number);
        }
        if own < indent {
            return None;
        }
    }
    None
}

/// A file past one of the parser's safety limits, which exist so a small
/// file of nested aliases (a "billion laughs") cannot exhaust memory.
fn over_budget(breach: &BudgetBreach) -> String {
    let limits = Budget::default();
    let what = match breach {
        BudgetBreach::Nodes { .. } => format!(
            "more than {} values, lists and mappings, counting what each alias (*name) expands to",
            limits.max_nodes
        ),
        BudgetBreach::Aliases { .. } => format!("more than {} aliases (*name)", limits.max_aliases),
        BudgetBreach::Anchors { .. } => format!("more than {} anchors (&name)", limits.max_anchors),
        BudgetBreach::Depth { .. } => format!(
            "lists and mappings nested more than {} levels deep",
            limits.max_depth
        ),
        BudgetBreach::Documents { .. } => format!(
            "more than {} documents (--- separators)",
            limits.max_documents
        ),
        BudgetBreach::Events { .. } => format!(
            "more than {} YAML elements, counting what each alias expands to",
            limits.max_events
        ),
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => {
            "more text than relbot reads from one file".to_string()
        }
        BudgetBreach::MergeKeys { .. } => {
            format!("more than {} merge keys (<<)", limits.max_merge_keys)
        }
        BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => {
            "aliases that expand to far more than the file holds".to_string()
        }
        _ => "more than relbot reads from one file".to_string(),
    };
    format!(
        "the file has {what}; relbot stops there so no file can exhaust its memory. Split it into smaller files, or write the repeated values out instead of using aliases"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> YamlMessage {
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
        let error = serde_saphyr::from_multiple_with_options::<serde_json::Value>(text, options)
            .expect_err("invalid YAML");
        describe(&error, text)
    }

    #[test]
    fn a_repeated_key_names_both_lines_in_the_users_words() {
        let text = "metadata:\n  name: a\n  labels:\n    x: y\n  name: b\n";
        let m = parse_error(text);
        assert_eq!(m.line, 5, "{m:?}");
        assert_eq!(
            m.message,
            "duplicate key `name` (first at line 2); a key may appear once per mapping"
        );
        assert!(!m.message.contains("Options"), "{m:?}");
    }

    #[test]
    fn a_repeated_key_in_a_list_item_finds_the_dash_line() {
        let m = parse_error("items:\n  - name: a\n    image: x\n    name: b\n");
        assert!(m.message.contains("(first at line 2)"), "{m:?}");
    }

    #[test]
    fn two_objects_without_a_separator_hint_at_the_separator() {
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\napiVersion: v1\nkind: Role\n";
        let m = parse_error(text);
        assert_eq!(m.line, 5, "{m:?}");
        assert!(
            m.message
                .starts_with("duplicate key `apiVersion` (first at line 1)")
                && m.message
                    .contains("Put `---` on its own line before line 5"),
            "{m:?}"
        );
    }

    #[test]
    fn an_alias_bomb_is_described_without_library_internals() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f"][i];
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let m = parse_error(&text);
        assert!(
            !m.message.contains('{') && !m.message.contains("budget"),
            "{m:?}"
        );
        assert!(m.message.contains("alias"), "{m:?}");
    }
}

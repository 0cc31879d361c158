//! Reading the parts of an object that health looks at: numbers, strings,
//! conditions, generations. Absent fields read as `None`, never as errors:
//! a status is often partial while a controller catches up.

use serde_json::Value;

pub(super) fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The condition of type `kind` in `conditions` (a `status.conditions` array,
/// or the same shape read from elsewhere, such as an HPA annotation).
pub(super) fn find_condition<'a>(conditions: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
}

pub(super) fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    find_condition(object.pointer("/status/conditions")?, kind)
}

pub(super) fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"].as_str() == Some(status))
}

/// `reason: message` of a condition, each part only when present.
pub(super) fn describe(c: &Value) -> String {
    reason_and_message(
        c["reason"].as_str().unwrap_or(""),
        c["message"].as_str().unwrap_or(""),
    )
}

pub(super) fn condition_message(object: &Value, kind: &str) -> String {
    condition(object, kind).map(describe).unwrap_or_default()
}

/// Joins a machine reason and a human message without saying the reason
/// twice: controllers often start the message with it already
/// (`ErrImagePull: rpc error…` is not made `ErrImagePull: ErrImagePull: …`).
pub(super) fn reason_and_message(reason: &str, message: &str) -> String {
    let (reason, message) = (reason.trim(), message.trim());
    if reason.is_empty() {
        return message.to_string();
    }
    if message.is_empty() {
        return reason.to_string();
    }
    let starts_with_reason = message
        .get(..reason.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(reason));
    if starts_with_reason {
        message.to_string()
    } else {
        format!("{reason}: {message}")
    }
}

/// The status controller has not caught up with the latest spec yet. Lenient:
/// a kind whose controller never writes `observedGeneration` is not held.
pub(super) fn not_observed(object: &Value) -> bool {
    match (
        int(object, "/metadata/generation"),
        int(object, "/status/observedGeneration"),
    ) {
        (Some(generation), Some(observed)) => observed < generation,
        _ => false,
    }
}

/// For built-in workloads, whose controllers always write
/// `observedGeneration`: its absence means the controller has not looked yet
/// (the object was just created), so the rest of the status cannot be trusted.
pub(super) fn workload_not_observed(object: &Value) -> bool {
    match int(object, "/status/observedGeneration") {
        None => true,
        Some(observed) => observed < int(object, "/metadata/generation").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reason_is_said_once() {
        assert_eq!(
            reason_and_message(
                "ProgressDeadlineExceeded",
                "ReplicaSet \"web\" has timed out"
            ),
            "ProgressDeadlineExceeded: ReplicaSet \"web\" has timed out"
        );
        assert_eq!(
            reason_and_message("ErrImagePull", "ErrImagePull: rpc error: not found"),
            "ErrImagePull: rpc error: not found"
        );
        assert_eq!(reason_and_message("Failed", ""), "Failed");
        assert_eq!(reason_and_message("", "it broke"), "it broke");
        assert_eq!(reason_and_message("", ""), "");
        // A multi-byte message shorter than the reason must not panic.
        assert_eq!(reason_and_message("LongReason", "é"), "LongReason: é");
    }

    #[test]
    fn generations() {
        let fresh = json!({"metadata": {"generation": 1}, "status": {}});
        assert!(workload_not_observed(&fresh));
        assert!(
            !not_observed(&fresh),
            "kinds without observedGeneration are not held"
        );
        let stale = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2}});
        assert!(workload_not_observed(&stale) && not_observed(&stale));
        let current = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 3}});
        assert!(!workload_not_observed(&current) && !not_observed(&current));
    }
}

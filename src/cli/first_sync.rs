//! What `sync`, `diff` and `status` say about a cluster relbot has never
//! synced: everything looks new to it there, which reads like a problem
//! unless it is said plainly, with the command to run next.

/// Before a diff or dry-run's plans: why every object is "create".
pub fn before_plan(apps: &[String], server: &str) -> String {
    format!(
        "relbot has never synced {} to {server}: every object is new to it there. `relbot sync` applies {}.",
        apps.join(", "),
        if apps.len() == 1 { "it" } else { "them" }
    )
}

/// Before a real sync's results.
pub fn before_sync(apps: &[String], server: &str, namespace: &str) -> String {
    format!(
        "First sync of {} to {server}; the result is kept in namespace {namespace} for `relbot status` and the next diff.",
        apps.join(", ")
    )
}

/// `relbot status` with no results at all.
pub fn no_results(server: &str, namespace: &str) -> String {
    format!(
        "relbot has never synced to {server} (no sync results in namespace {namespace}).\nNext: `relbot diff` shows what a sync would change; `relbot sync` applies it."
    )
}

/// `relbot status` for a configured application without a result.
pub fn app_never_synced(app: &str) -> String {
    format!("{app}: never synced to this cluster; `relbot sync --app {app}` syncs it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_apps_the_server_and_the_next_command() {
        let apps = vec!["platform".to_string()];
        let text = before_plan(&apps, "https://k3s:6443");
        assert_eq!(
            text,
            "relbot has never synced platform to https://k3s:6443: every object is new to it there. `relbot sync` applies it."
        );
        assert!(no_results("https://k3s:6443", "relbot").contains("`relbot sync`"));
        assert!(app_never_synced("web").ends_with("`relbot sync --app web` syncs it"));
    }
}

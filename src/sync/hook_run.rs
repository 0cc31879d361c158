//! Running hooks (see [`super::hooks`]) during a sync: each is created when
//! its phase comes (after deleting the previous run's object under
//! BeforeHookCreation), waited for until it finished (a Job's Complete or
//! Failed condition, a Pod's Succeeded or Failed phase, any other kind's
//! health), then deleted as its policy says. Hooks of one phase and wave run
//! together; a wave with a failed hook stops its phase.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;

use super::hooks::{DeletePolicy, Hook, HookOutcome, HookPhase, HookRun};
use super::problem::PlanProblem;
use super::settings::SyncSettings;
use crate::cluster::client::{Cluster, Dependents, ReadOnlyCluster};
use crate::cluster::discovery::{KindIndex, ResolvedKind};
use crate::cluster::health::{self, HealthStatus};
use crate::config::Application;
use crate::progress::ProgressEvent;

/// The hooks of one sync and how they ran.
/// Owns what it needs (a cluster handle is cheap to clone), so a sync under
/// way can keep it between its steps.
pub struct HookRunner {
    cluster: Cluster,
    app: Application,
    settings: SyncSettings,
    hooks: Vec<Hook>,
    /// (hook, phase) pairs already run.
    done: BTreeSet<(usize, HookPhase)>,
    runs: Vec<HookRun>,
}

impl HookRunner {
    pub fn new(
        cluster: Cluster,
        app: Application,
        settings: SyncSettings,
        hooks: Vec<Hook>,
    ) -> Self {
        HookRunner {
            cluster,
            app,
            settings,
            hooks,
            done: BTreeSet::new(),
            runs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn has(&self, phase: HookPhase) -> bool {
        self.hooks.iter().any(|h| h.runs_in(phase))
    }

    /// The namespaces the hooks of `phase` are created in.
    pub fn namespaces(&self, phase: HookPhase) -> BTreeSet<String> {
        self.hooks
            .iter()
            .filter(|h| h.runs_in(phase))
            .filter_map(|h| h.manifest.key().namespace)
            .collect()
    }

    /// The waves that have Sync hooks.
    pub fn sync_waves(&self) -> BTreeSet<i64> {
        self.hooks
            .iter()
            .filter(|h| h.runs_in(HookPhase::Sync))
            .map(|h| h.wave)
            .collect()
    }

    /// Runs the hooks of `phase` (of one wave only, when given), wave by
    /// wave. A failure stops the phase there; the message names every
    /// failed hook.
    pub async fn run(
        &mut self,
        phase: HookPhase,
        wave: Option<i64>,
        index: &KindIndex,
    ) -> Result<(), String> {
        let mut waves: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, hook) in self.hooks.iter().enumerate() {
            if hook.runs_in(phase) && wave.is_none_or(|w| w == hook.wave) {
                waves.entry(hook.wave).or_default().push(i);
            }
        }
        let progress = &self.settings.progress;
        for (hook_wave, members) in waves {
            let count = members.len();
            let event = |done: bool, failed: usize| ProgressEvent::Hooks {
                app: self.app.name.clone(),
                phase: phase.as_str().to_string(),
                wave: hook_wave,
                hooks: count,
                done,
                failed,
            };
            progress.emit(|| event(false, 0));
            let results = futures::future::join_all(
                members
                    .iter()
                    .map(|&i| self.run_one(&self.hooks[i], phase, index)),
            )
            .await;
            let mut failed = Vec::new();
            for (i, run) in members.into_iter().zip(results) {
                if let HookOutcome::Failed(why) = &run.outcome {
                    failed.push(format!(
                        "{} hook {} ({}) failed: {why}",
                        phase.as_str(),
                        run.key,
                        run.origin
                    ));
                }
                self.done.insert((i, phase));
                self.runs.push(run);
            }
            progress.emit(|| event(true, failed.len()));
            if !failed.is_empty() {
                return Err(failed.join("; "));
            }
        }
        Ok(())
    }

    /// The hook runs of this sync; hooks of the phases the sync never
    /// reached are listed as not run, with `why`.
    pub fn finish(mut self, why: &str) -> Vec<HookRun> {
        for (i, hook) in self.hooks.iter().enumerate() {
            for &phase in &hook.phases {
                if phase == HookPhase::SyncFail || self.done.contains(&(i, phase)) {
                    continue;
                }
                let planned = hook.planned();
                self.runs.push(HookRun {
                    key: planned.key,
                    origin: planned.origin,
                    phase,
                    wave: hook.wave,
                    outcome: HookOutcome::NotRun(why.to_string()),
                    deleted: false,
                });
            }
        }
        self.runs
    }

    async fn run_one(&self, hook: &Hook, phase: HookPhase, index: &KindIndex) -> HookRun {
        let planned = hook.planned();
        let mut run = HookRun {
            key: planned.key.clone(),
            origin: planned.origin.clone(),
            phase,
            wave: hook.wave,
            outcome: HookOutcome::Succeeded,
            deleted: false,
        };
        let m = &hook.manifest;
        let Some(kind) = index
            .resolve(m.group(), m.version(), m.kind())
            .filter(|k| !k.pending)
            .cloned()
        else {
            run.outcome = HookOutcome::Failed(format!(
                "the cluster does not serve {} {}",
                m.api_version(),
                m.kind()
            ));
            return run;
        };
        let mut body = m.object.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("status");
        }
        let namespace = if kind.namespaced {
            let Some(ns) = m.namespace().or(self.app.namespace.as_deref()) else {
                run.outcome = HookOutcome::Failed(
                    "namespaced hook without a namespace: set metadata.namespace or the application's `namespace`".into(),
                );
                return run;
            };
            body["metadata"]["namespace"] = ns.into();
            run.key.namespace = Some(ns.to_string());
            Some(ns.to_string())
        } else {
            None
        };
        let namespace = namespace.as_deref();
        let created = if planned.generate_name {
            self.cluster
                .create(&kind, namespace, &body)
                .await
                .map_err(|f| f.to_string())
        } else {
            self.replace(hook, &kind, namespace, &body).await
        };
        let name = match created {
            Ok(object) => object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Err(why) => {
                run.outcome = HookOutcome::Failed(why);
                return run;
            }
        };
        run.key.name = name.clone();
        run.outcome = self.wait(&kind, namespace, &name).await;
        let delete = match &run.outcome {
            HookOutcome::Succeeded => DeletePolicy::HookSucceeded,
            _ => DeletePolicy::HookFailed,
        };
        if hook.delete_policies.contains(&delete) {
            match self
                .cluster
                .delete(&kind, namespace, &name, None, Dependents::Delete)
                .await
            {
                Ok(()) => run.deleted = true,
                Err(failure) => {
                    if let HookOutcome::Failed(why) = &mut run.outcome {
                        why.push_str(&format!("; deleting it failed too: {failure}"));
                    } else {
                        run.outcome = HookOutcome::Failed(format!(
                            "it ran, but deleting it failed: {failure}"
                        ));
                    }
                }
            }
        }
        run
    }

    /// Writes a named hook: under BeforeHookCreation the previous run's
    /// object goes first (a finished Job cannot run again), otherwise the
    /// hook is applied over whatever is there, as Argo CD does.
    async fn replace(
        &self,
        hook: &Hook,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        body: &Value,
    ) -> Result<Value, String> {
        let name = hook.manifest.name();
        let cluster = &self.cluster;
        if hook
            .delete_policies
            .contains(&DeletePolicy::BeforeHookCreation)
        {
            let deadline = Instant::now() + self.settings.health_timeout;
            while let Some(old) = cluster
                .get(kind, namespace, name)
                .await
                .map_err(|f| f.to_string())?
            {
                if old["metadata"]["deletionTimestamp"].is_null() {
                    let uid = old["metadata"]["uid"].as_str();
                    cluster
                        .delete(kind, namespace, name, uid, Dependents::Delete)
                        .await
                        .map_err(|f| format!("deleting the previous run's object: {f}"))?;
                }
                if Instant::now() > deadline {
                    return Err("the previous run's object was still being deleted".into());
                }
                tokio::time::sleep(self.settings.poll_interval).await;
            }
        }
        cluster
            .apply(kind, namespace, name, body)
            .await
            .map_err(|f| f.to_string())
    }

    async fn wait(&self, kind: &ResolvedKind, namespace: Option<&str>, name: &str) -> HookOutcome {
        let deadline = Instant::now() + self.settings.health_timeout;
        loop {
            match self.cluster.get(kind, namespace, name).await {
                Ok(Some(object)) => {
                    if let Some(done) = finished(&object, &self.settings.health_rules) {
                        return done;
                    }
                }
                Ok(None) => {
                    return HookOutcome::Failed("it was deleted before it finished".into());
                }
                Err(failure) if failure.is_transient() => {}
                Err(failure) => return HookOutcome::Failed(failure.to_string()),
            }
            if Instant::now() > deadline {
                return HookOutcome::Failed(format!(
                    "not finished after {}s (the application's health timeout)",
                    self.settings.health_timeout.as_secs()
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }
}

/// The dry-run of a plan's hooks: each is sent as a server-side dry-run
/// create under a generated name (a named hook's previous run may still
/// exist, and its new run replaces it), so a hook the server would refuse
/// is a plan problem, not a sync that stops at its phase. Hooks bound for a
/// namespace the plan creates are checked in `stand_in`; hooks of a kind a
/// CRD of the plan brings are left to their run.
pub async fn dry_run_hooks(
    cluster: &ReadOnlyCluster,
    index: &KindIndex,
    app: &Application,
    hooks: &[Hook],
    creating_namespaces: &BTreeSet<String>,
    stand_in: &str,
) -> Vec<PlanProblem> {
    let checks = hooks.iter().filter_map(|hook| {
        let m = &hook.manifest;
        let kind = index
            .resolve(m.group(), m.version(), m.kind())
            .filter(|k| !k.pending)?
            .clone();
        let mut body = m.object.clone();
        let metadata = body["metadata"].as_object_mut()?;
        if let Some(name) = metadata
            .remove("name")
            .and_then(|n| n.as_str().map(String::from))
        {
            metadata.insert("generateName".into(), format!("{name}-").into());
        }
        let namespace = if kind.namespaced {
            let ns = m.namespace().or(app.namespace.as_deref())?;
            let ns = if creating_namespaces.contains(ns) {
                stand_in
            } else {
                ns
            };
            metadata.insert("namespace".into(), ns.into());
            Some(ns.to_string())
        } else {
            metadata.remove("namespace");
            None
        };
        Some(async move {
            let result = cluster
                .dry_run_create(&kind, namespace.as_deref(), &body)
                .await;
            (hook, namespace, result)
        })
    });
    let mut problems = Vec::new();
    for (hook, namespace, result) in futures::future::join_all(checks).await {
        let Err(failure) = result else { continue };
        // relbot may not write in the stand-in namespace: leave the hook
        // to its run rather than fail a sync it may pass.
        if failure.code == 403 && namespace.as_deref() == Some(stand_in) {
            continue;
        }
        let phases: Vec<&str> = hook.phases.iter().map(|p| p.as_str()).collect();
        problems.push(PlanProblem {
            key: Some(hook.manifest.key()),
            origin: Some(hook.manifest.origin.clone()),
            message: format!(
                "the server rejected this {} hook: {failure}",
                phases.join(",")
            ),
        });
    }
    problems
}

/// Whether a hook object has finished, and how: `None` while it runs.
pub fn finished(object: &Value, rules: &health::HealthRules) -> Option<HookOutcome> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    match (api_version, object["kind"].as_str().unwrap_or("")) {
        ("batch/v1", "Job") => {
            let conditions = object["status"]["conditions"].as_array()?;
            let holds = |t: &str| {
                conditions
                    .iter()
                    .find(|c| c["type"] == t && c["status"] == "True")
            };
            if holds("Complete").is_some() {
                return Some(HookOutcome::Succeeded);
            }
            let failed = holds("Failed")?;
            Some(HookOutcome::Failed(condition_text(failed)))
        }
        ("v1", "Pod") => match object["status"]["phase"].as_str()? {
            "Succeeded" => Some(HookOutcome::Succeeded),
            "Failed" => Some(HookOutcome::Failed(pod_failure(object))),
            _ => None,
        },
        _ => {
            let h = health::assess_with(object, rules);
            match h.status {
                HealthStatus::Healthy => Some(HookOutcome::Succeeded),
                HealthStatus::Degraded => Some(HookOutcome::Failed(h.message)),
                _ => None,
            }
        }
    }
}

fn condition_text(condition: &Value) -> String {
    let reason = condition["reason"].as_str().unwrap_or("");
    let message = condition["message"].as_str().unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => "failed".to_string(),
    }
}

/// A failed Pod in a kubelet's words: the first container that exited
/// non-zero, or the Pod's own message.
fn pod_failure(pod: &Value) -> String {
    for status in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let terminated = &status["state"]["terminated"];
        if let Some(code) = terminated["exitCode"].as_i64().filter(|c| *c != 0) {
            let name = status["name"].as_str().unwrap_or("?");
            return format!("container {name} exited with code {code}");
        }
    }
    pod["status"]["message"]
        .as_str()
        .or(pod["status"]["reason"].as_str())
        .unwrap_or("the Pod failed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> health::HealthRules {
        Default::default()
    }

    #[test]
    fn jobs_finish_on_their_conditions() {
        let running = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"active": 1}});
        assert_eq!(finished(&running, &rules()), None);
        let done = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        assert_eq!(finished(&done, &rules()), Some(HookOutcome::Succeeded));
        let failed = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            finished(&failed, &rules()),
            Some(HookOutcome::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            ))
        );
    }

    #[test]
    fn pods_finish_on_their_phase_and_name_the_failed_container() {
        let pending = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"}});
        assert_eq!(finished(&pending, &rules()), None);
        let ok = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Succeeded"}});
        assert_eq!(finished(&ok, &rules()), Some(HookOutcome::Succeeded));
        let failed = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Failed",
            "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 1}}}]}});
        assert_eq!(
            finished(&failed, &rules()),
            Some(HookOutcome::Failed(
                "container main exited with code 1".into()
            ))
        );
    }

    #[test]
    fn other_kinds_finish_when_healthy() {
        let config_map =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(
            finished(&config_map, &rules()),
            Some(HookOutcome::Succeeded)
        );
    }
}

//! Prune, the step of a sync run that deletes what git no longer has: in
//! the plan's (reverse) order, once everything else went in.

use std::time::Instant;

use futures::{StreamExt, stream};

use super::{SyncRun, ms};
use crate::cluster::client::{ApiFailure, Dependents};
use crate::progress::ProgressEvent;
use crate::sync::gate::Latest;
use crate::sync::plan::Action;
use crate::sync::result::Effect;

impl SyncRun {
    /// Deletes what the application's inventory holds and git no longer
    /// has, in the plan's (reverse) order, once everything else went in.
    /// What the plan held back (prune off, `relbot.dev/prune: "false"`, a
    /// share above `sync.maxPrunePercent`) is left alone; nothing is pruned
    /// when an earlier step stopped the run.
    pub async fn prune(&mut self) {
        self.run_pending_hooks().await;
        let prune_start = Instant::now();
        let entries = &mut self.entries;
        let prunes: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].change.action == Action::Prune && entries[i].change.writes())
            .filter(|&i| matches!(entries[i].outcome, Effect::NotAttempted(_)))
            .collect();
        if self.stopped {
            for &i in &prunes {
                entries[i].outcome =
                    Effect::NotAttempted("prune waits for a run that applies everything".into());
            }
            return;
        }
        let (cluster, app, progress) = (&self.cluster, &self.app, &self.settings.progress);
        let total = prunes.len();
        let mut pruned = 0;
        if total > 0 {
            progress.emit(|| ProgressEvent::Pruning {
                app: app.name.clone(),
                done: 0,
                total,
            });
        }
        let results: Vec<(usize, Result<(), ApiFailure>)> = stream::iter(prunes)
            .map(|i| {
                let e = &entries[i];
                let uid = e
                    .object
                    .live
                    .as_ref()
                    .and_then(|l| l["metadata"]["uid"].as_str().map(str::to_string));
                async move {
                    let key = &e.change.key;
                    (
                        i,
                        cluster
                            .delete(
                                &e.object.kind,
                                key.namespace.as_deref(),
                                &key.name,
                                uid.as_deref(),
                                Dependents::Delete,
                            )
                            .await,
                    )
                }
            })
            .buffer_unordered(self.settings.concurrency)
            .inspect(|_| {
                pruned += 1;
                progress.emit(|| ProgressEvent::Pruning {
                    app: app.name.clone(),
                    done: pruned,
                    total,
                });
            })
            .collect()
            .await;
        for (i, result) in results {
            let e = &mut entries[i];
            match result {
                Ok(()) => {
                    e.outcome = Effect::Applied;
                    e.current = Latest::Gone;
                }
                Err(failure) => {
                    self.errors
                        .push(format!("prune {}: {failure}", e.change.key));
                    e.outcome = Effect::Failed(failure.to_string());
                }
            }
        }
        self.timings.prune_ms += ms(prune_start.elapsed());
    }
}

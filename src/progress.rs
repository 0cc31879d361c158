//! Progress of long runs (a sync, a bump) as typed events. The library never
//! prints: it hands events to whoever listens — the CLI draws a status line
//! on a terminal, tests collect them — and by default nobody does, so the
//! server, tests and benches pay nothing for them.

use std::fmt;
use std::sync::Arc;

/// Something that happened during a run. Counters are cumulative
/// (`done` of `total`), so a listener that skips events stays correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    // ---- sync, per application ----
    /// Reading the source and rendering every application's manifests.
    Rendering,
    /// Reading the cluster's state of the application's objects.
    Planning {
        app: String,
        objects: usize,
    },
    /// A stage or wave starts. `step` is 1-based, of `steps`; `name` says
    /// which (`stage 1` for CRDs and namespaces, `wave 0`, ...). `writes`:
    /// objects this step writes; `total`: objects the whole run writes.
    Wave {
        app: String,
        step: usize,
        steps: usize,
        name: String,
        writes: usize,
        total: usize,
    },
    /// Objects written so far in this application's run, of all it writes
    /// (prunes are counted by [`ProgressEvent::Pruning`]).
    Applied {
        app: String,
        done: usize,
        total: usize,
    },
    /// A step's objects are written; `waiting` of them are not healthy yet.
    WaitingForHealth {
        app: String,
        name: String,
        waiting: usize,
    },
    /// Argo CD hooks of one phase and wave: `done` false when they start
    /// (`hooks` of them), true when all of them finished (`failed` failed).
    Hooks {
        app: String,
        phase: String,
        wave: i64,
        hooks: usize,
        done: bool,
        failed: usize,
    },
    /// Objects deleted so far of those to prune.
    Pruning {
        app: String,
        done: usize,
        total: usize,
    },
    /// The application's run (or plan) is over.
    AppFinished {
        app: String,
    },

    // ---- bump, per policy ----
    /// Fetching the base branch into the working clone.
    FetchingBase,
    PolicyStarted {
        policy: String,
        image: String,
    },
    /// One more page of the image's tag list was read.
    TagsListed {
        policy: String,
        pages: usize,
        tags: usize,
    },
    /// Computing (dry-run) or committing the edits to `files` files.
    RewritingFiles {
        policy: String,
        files: usize,
    },
    PushingBranch {
        policy: String,
        branch: String,
    },
    /// Opening a pull request, or updating the policy's open one.
    OpeningPullRequest {
        policy: String,
        update: bool,
    },
    RequestingMerge {
        policy: String,
        pr: u64,
    },
    PolicyFinished {
        policy: String,
    },
}

/// A listener. Called from whichever task or thread the run is on, so it
/// must be cheap and must not block for long.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// Any `Fn(ProgressEvent)` closure listens too.
impl<F: Fn(ProgressEvent) + Send + Sync> ProgressSink for F {
    fn event(&self, event: ProgressEvent) {
        self(event)
    }
}

/// The handle runs carry: a listener, or none (the default).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn ProgressSink>>);

impl Progress {
    /// Nobody listens.
    pub fn none() -> Self {
        Progress(None)
    }

    pub fn to(sink: Arc<dyn ProgressSink>) -> Self {
        Progress(Some(sink))
    }

    pub fn is_listening(&self) -> bool {
        self.0.is_some()
    }

    /// Reports an event. It is built only when someone listens, so a
    /// per-object event costs an unobserved run no allocation.
    pub fn emit(&self, event: impl FnOnce() -> ProgressEvent) {
        if let Some(sink) = &self.0 {
            sink.event(event());
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_listening() {
            "Progress(listening)"
        } else {
            "Progress(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_listener_and_are_not_built_without_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::to(Arc::new(move |e| sink.lock().unwrap().push(e)));
        progress.emit(|| ProgressEvent::Rendering);
        assert_eq!(*seen.lock().unwrap(), vec![ProgressEvent::Rendering]);

        Progress::none().emit(|| panic!("built with nobody listening"));
        assert!(!Progress::default().is_listening());
    }
}

//! Fault injection for reliability tests: failing or stalling the next
//! requests and dropping open watch streams.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::status::ApiError;

/// One queued fault; `verb` limits it to requests of that verb (see [`crate::RequestRecord::verb`]).
struct Planned<T> {
    verb: Option<String>,
    what: T,
}

#[derive(Default)]
struct State {
    fail: VecDeque<Planned<(u16, Option<u64>)>>,
    stall: VecDeque<Planned<Duration>>,
}

fn take<T>(q: &mut VecDeque<Planned<T>>, verb: &str) -> Option<T> {
    let i = q
        .iter()
        .position(|p| p.verb.as_deref().is_none_or(|v| v == verb))?;
    q.remove(i).map(|p| p.what)
}

/// The fault switchboard of one emulator ([`crate::SimHandle::faults`]).
pub struct Faults {
    state: Mutex<State>,
    pub(crate) drops: tokio::sync::watch::Sender<u64>,
}

impl Faults {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            drops: tokio::sync::watch::channel(0).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the next `n` requests with `status` (500, 429 or 503 are the
    /// useful ones). `retry_after` becomes a `Retry-After` header.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<Duration>) {
        let secs = retry_after.map(|d| d.as_secs().max(1));
        let mut s = self.state();
        s.fail.extend((0..n).map(|_| Planned {
            verb: None,
            what: (status, secs),
        }));
    }

    /// Like [`Faults::fail_next`], but only for requests of `verb`
    /// (`get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`, ...).
    pub fn fail_next_verb(&self, verb: &str, n: usize, status: u16, retry_after: Option<Duration>) {
        let secs = retry_after.map(|d| d.as_secs().max(1));
        let mut s = self.state();
        s.fail.extend((0..n).map(|_| Planned {
            verb: Some(verb.to_string()),
            what: (status, secs),
        }));
    }

    /// Holds the next request for `duration` before serving it.
    pub fn stall_next(&self, duration: Duration) {
        self.state().stall.push_back(Planned {
            verb: None,
            what: duration,
        });
    }

    /// Holds the next request of `verb` for `duration`.
    pub fn stall_next_verb(&self, verb: &str, duration: Duration) {
        self.state().stall.push_back(Planned {
            verb: Some(verb.to_string()),
            what: duration,
        });
    }

    /// Ends every open watch stream now (clients see the stream close).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Forgets queued failures and stalls.
    pub fn clear(&self) {
        *self.state() = State::default();
    }

    pub(crate) fn take_stall(&self, verb: &str) -> Option<Duration> {
        take(&mut self.state().stall, verb)
    }

    pub(crate) fn take_failure(&self, verb: &str) -> Option<ApiError> {
        let (code, retry) = take(&mut self.state().fail, verb)?;
        let mut e = match code {
            429 => ApiError::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            503 => ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            500 => ApiError::internal("injected fault"),
            c => ApiError::new(c, "InternalError", format!("injected fault ({c})")),
        };
        e.retry_after = retry;
        Some(e)
    }
}

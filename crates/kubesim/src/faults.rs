//! Fault injection for reliability tests: failing or stalling the next
//! requests and dropping open watch streams.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::status::ApiError;

#[derive(Default)]
struct State {
    fail: VecDeque<(u16, Option<u64>)>,
    stall: VecDeque<Duration>,
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
        s.fail.extend(std::iter::repeat_n((status, secs), n));
    }

    /// Holds the next request for `duration` before serving it.
    pub fn stall_next(&self, duration: Duration) {
        self.state().stall.push_back(duration);
    }

    /// Ends every open watch stream now (clients see the stream close).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Forgets queued failures and stalls.
    pub fn clear(&self) {
        *self.state() = State::default();
    }

    pub(crate) fn take_stall(&self) -> Option<Duration> {
        self.state().stall.pop_front()
    }

    pub(crate) fn take_failure(&self) -> Option<ApiError> {
        let (code, retry) = self.state().fail.pop_front()?;
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

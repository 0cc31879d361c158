//! `GET /api/status`: the JSON `relbot status --server` reads, and its types.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Utc;
use serde::Serialize;

use super::http::AppState;
use super::queue::{LeaderState, RunSummary};
use super::status_page::StatusSnapshot;

/// What `GET /api/status` answers (and `relbot status --server` prints).
#[derive(Debug, Clone, Serialize)]
pub struct ApiStatus {
    pub ready: bool,
    pub leader: bool,
    pub running: bool,
    pub pending: bool,
    #[serde(flatten)]
    pub snapshot: StatusSnapshot,
    pub last_run: Option<ApiRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiRun {
    pub started: chrono::DateTime<Utc>,
    pub finished: chrono::DateTime<Utc>,
    pub reasons: Vec<String>,
    pub errors: Vec<(String, String)>,
    pub cancelled: bool,
}

impl From<RunSummary> for ApiRun {
    fn from(run: RunSummary) -> Self {
        ApiRun {
            started: run.started,
            finished: run.finished,
            reasons: run.reasons,
            errors: run.errors,
            cancelled: run.cancelled,
        }
    }
}

#[derive(Clone)]
struct ApiState {
    app: AppState,
    leader: LeaderState,
}

async fn api_status(State(state): State<ApiState>) -> axum::Json<ApiStatus> {
    let progress = state.app.queue().progress();
    axum::Json(ApiStatus {
        ready: state.app.readiness().is_ready(),
        leader: state.leader.is_leader(),
        running: progress.running,
        pending: progress.pending,
        snapshot: state.app.status(),
        last_run: state.app.queue().last_run().map(ApiRun::from),
    })
}

/// The `/api` routes.
pub fn routes(state: AppState, leader: LeaderState) -> Router {
    Router::new()
        .route("/api/status", get(api_status))
        .with_state(ApiState { app: state, leader })
}

//! The status pages' handlers: HTML pages, their JSON twins, the event
//! stream and the script. Apart from [`super::page`] (which renders and keeps
//! what the pages show, and which `http`'s state holds) so the page
//! rendering never depends on the HTTP layer; `app` mounts these routes.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::http::AppState;
use super::page::views::{AppPage, ObjectFilter, Overview, QueueView, ServerView};
use super::page::{CONTENT_SECURITY_POLICY, application, escape_html, layout, live, overview};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/applications/{name}", get(application_page))
        .route("/api/v1/applications", get(overview_json))
        .route("/api/v1/applications/{name}", get(application_json))
        .route("/api/v1/events", get(events))
        .route("/assets/live.js", get(script))
}

fn server_view(state: &AppState) -> ServerView {
    let progress = state.queue().progress();
    let stats = state.queue().stats();
    ServerView {
        ready: state.readiness().is_ready(),
        leader: state.is_leader(),
        leader_name: state.pages().leader_name(),
        queue: QueueView {
            running: progress.running,
            queued: progress.pending,
            coalesced: stats.coalesced,
            submitted: stats.submitted,
            runs: stats.executed,
        },
        clock: crate::clock::book()
            .skews()
            .iter()
            .map(super::page::views::ClockView::from_skew)
            .collect(),
    }
}

fn overview_view(state: &AppState) -> Overview {
    let snapshot = state.status();
    let links = state.pages().links();
    let server = server_view(state);
    state
        .pages()
        .with_all(|details| Overview::new(&snapshot, details, &links, server))
}

fn app_view(state: &AppState, name: &str, filter: &ObjectFilter) -> Option<AppPage> {
    let snapshot = state.status();
    let app = snapshot.apps.iter().find(|a| a.name == name)?;
    let detail = state.pages().detail(name);
    Some(AppPage::new(
        app,
        detail.as_ref(),
        &state.pages().links(),
        filter,
    ))
}

/// HTML with the policy that keeps every asset on this server.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn overview_page(State(state): State<AppState>) -> Response {
    page(StatusCode::OK, overview::render(&overview_view(&state)))
}

async fn application_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(filter): Query<ObjectFilter>,
) -> Response {
    match app_view(&state, &name, &filter) {
        Some(view) => page(StatusCode::OK, application::render(&view, &filter)),
        None => page(
            StatusCode::NOT_FOUND,
            layout(
                "Not found · relbot",
                &format!(
                    "<h1>No application <code>{}</code></h1><p>relbot.yaml names no such application. <a href=\"/\">All applications</a>.</p>\n",
                    escape_html(&name)
                ),
            ),
        ),
    }
}

async fn overview_json(State(state): State<AppState>) -> Response {
    axum::Json(overview_view(&state)).into_response()
}

async fn application_json(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(filter): Query<ObjectFilter>,
) -> Response {
    match app_view(&state, &name, &filter) {
        Some(view) => axum::Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!("relbot.yaml names no application {name:?}")
            })),
        )
            .into_response(),
    }
}

async fn events(State(state): State<AppState>) -> Response {
    live::stream(state.pages().subscribe()).into_response()
}

async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        live::SCRIPT,
    )
        .into_response()
}

//! The HTTP surface: routes, shared state, health endpoints.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::clock::Clock;
use crate::exposition::{self, SelfMetrics};
use crate::ingest::http_push;
use crate::recorder::Recorder;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub recorder: Arc<Recorder>,
    pub metrics: SelfMetrics,
    pub clock: Arc<dyn Clock>,
}

pub fn router(state: AppState, telemetry_path: &str) -> Router {
    let body_limit = state.recorder.catalog().limits.max_body_bytes;
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route(
            "/api/v1/deliveries",
            post(http_push::handle).layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let now = app.clock.now();
    // Figures are computed from sketches under per-SLA locks: keep it off the
    // async workers so a large scrape never stalls ingest.
    let rendered =
        tokio::task::spawn_blocking(move || exposition::render(&app.recorder, &app.metrics, now))
            .await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics task failed: {e}\n"),
        )
            .into_response(),
    }
}

//! Reads and administration: `/metrics`, `/api/v1/slas`
//! and `POST /-/reload`. Figures are computed from the recorder on a
//! blocking thread, so a large scrape never stalls ingest.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, caller, denied};
use crate::exposition;
use crate::ingest::Source;
use crate::reload::ReloadError;

/// `/api/v1/slas`: every SLA's promise, figures and open deliveries as JSON.
pub async fn slas(State(app): State<AppState>) -> Response {
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
    match tokio::task::spawn_blocking(move || exposition::summary::slas(&recorder, now)).await {
        Ok(slas) => axum::Json(serde_json::json!({ "slas": slas })).into_response(),
        Err(e) => failed("SLA summary", &e),
    }
}

/// `/metrics` in the format the scraper's `Accept` header asks for (see
/// [`exposition::Format`]); gzip is negotiated by the compression layer.
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
    let metrics = app.ingest.metrics().clone();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = exposition::Format::negotiate(accept);
    let rendered = tokio::task::spawn_blocking(move || {
        exposition::render_as(&recorder, &metrics, now, format)
    })
    .await;
    match rendered {
        // The answer depends on `Accept`: caches must keep them apart.
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::VARY, "accept"),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
        Err(e) => failed("metrics", &e),
    }
}

/// `POST /-/reload`: reloads the config file; 400 with every problem when it
/// is invalid. With tokens configured, only an admin token may.
pub async fn reload(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let catalog = app.ingest.catalog();
    if let Err(d) = caller(&catalog, &headers).and_then(|c| c.may_reload()) {
        app.ingest.refuse(Source::Reload, d.reason(), 1);
        return denied(&d);
    }
    match app.reloader.reload().await {
        // The SLAs changed, but a source did not follow the file.
        Ok(reloaded) if !reloaded.sources.failed.is_empty() => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("config reloaded, but not every source could follow it:\n{reloaded}"),
        )
            .into_response(),
        Ok(reloaded) => reloaded.to_string().into_response(),
        Err(ReloadError::Config(e)) => (
            StatusCode::BAD_REQUEST,
            format!("config rejected; the previous config keeps running.\n{e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// 500 for a task that panicked: a bug, said plainly.
fn failed(what: &str, e: &tokio::task::JoinError) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{what} failed: {e}\n"),
    )
        .into_response()
}

/// `/-/ready`: 200 while writes can be recorded; 503 once the log writer has
/// died (the exporter is then on its way out, to be restarted).
pub async fn ready(State(app): State<AppState>) -> Response {
    if app.ingest.writer_alive() {
        "Ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the log writer stopped; the exporter is exiting\n",
        )
            .into_response()
    }
}

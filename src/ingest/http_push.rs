//! `POST /api/v1/deliveries`: all-or-nothing batches with a report of every bad line.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::count_commit;
use super::json::{self, Framing, LineError};
use crate::delivery::{Delivery, Input};
use crate::http::{self, AppState};
use crate::persist::{CommitError, Pending};
use crate::sla::Catalog;
use crate::window::Millis;

/// Source label on the ingest self-metrics.
pub const SOURCE: &str = "http";

/// Bodies above this are decoded off the async workers so `/metrics` stays quick.
const BLOCKING_DECODE_BYTES: usize = 256 * 1024;

/// Admissions tried when reloads keep overtaking a batch.
const RELOAD_RETRIES: usize = 3;

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: u64,
    pub duplicates: u64,
}

#[derive(Debug, Serialize)]
pub struct Rejected {
    pub error: String,
    pub errors: Vec<LineError>,
}

pub async fn handle(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejected(&app, SOURCE, &e),
    };
    let framing = framing_of(&headers);
    // A reload between admission and commit makes the batch stale: admit it
    // again under the new config.
    for _ in 0..RELOAD_RETRIES {
        let catalog = app.journal.recorder().catalog().clone();
        let caller = match http::caller(&catalog, &headers) {
            Ok(c) => c,
            Err(d) => return http::denied(&app.metrics, SOURCE, &d),
        };
        let now = app.clock.now();
        let prepare = {
            let body = body.clone();
            move || decode(&catalog, &body, framing, now).map(|b| Pending::new(catalog, b, now))
        };
        let prepared = if body.len() > BLOCKING_DECODE_BYTES {
            match tokio::task::spawn_blocking(prepare).await {
                Ok(p) => p,
                Err(e) => {
                    return reject(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("decoding failed: {e}"),
                        Vec::new(),
                    );
                }
            }
        } else {
            prepare()
        };
        let pending = match prepared {
            Ok(p) => p,
            Err(errors) => return refused(&app, errors),
        };
        if let Err(d) = http::authorize(&caller, &pending) {
            return http::denied(&app.metrics, SOURCE, &d);
        }
        let deliveries = pending.len() as u64;
        let result = app.journal.commit(pending).await;
        count_commit(&app.metrics, SOURCE, deliveries, &result);
        match result {
            Ok(r) => {
                tracing::debug!(
                    accepted = r.accepted,
                    duplicates = r.duplicates,
                    "push recorded"
                );
                return Json(Accepted {
                    accepted: r.accepted,
                    duplicates: r.duplicates,
                })
                .into_response();
            }
            Err(CommitError::Stale) => continue,
            Err(e) => return unavailable(format!("{e}; nothing was recorded, retry later")),
        }
    }
    unavailable("the config kept changing while the batch was in flight; retry".into())
}

/// Every line's error; unknown SLAs alone are a "not found".
fn refused(app: &AppState, errors: Vec<LineError>) -> Response {
    for e in &errors {
        app.metrics.rejected(SOURCE, e.kind, 1);
    }
    let status =
        StatusCode::from_u16(json::refusal_status(&errors)).unwrap_or(StatusCode::BAD_REQUEST);
    let summary = format!(
        "{} delivery line{} rejected; nothing was recorded",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    reject(status, summary, errors)
}

/// How a write body is framed, by its `Content-Type`.
pub(super) fn framing_of(headers: &HeaderMap) -> Framing {
    Framing::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A body that could not be read (too large, cut short), counted under `source`.
pub(super) fn body_rejected(app: &AppState, source: &str, e: &BytesRejection) -> Response {
    let status = e.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "body is larger than limits.max_body_bytes ({} bytes)",
            app.journal.recorder().catalog().limits.max_body_bytes
        )
    } else {
        e.body_text()
    };
    app.metrics.rejected(source, "malformed", 1);
    reject(status, reason, Vec::new())
}

/// 503 with a hint to come back shortly: the condition is expected to clear.
pub(super) fn unavailable(error: String) -> Response {
    let mut response = reject(StatusCode::SERVICE_UNAVAILABLE, error, Vec::new());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

pub(super) fn reject(status: StatusCode, error: String, errors: Vec<LineError>) -> Response {
    (status, Json(Rejected { error, errors })).into_response()
}

/// Decodes and admits a whole body: every delivery, or every error.
pub fn decode(
    catalog: &Catalog,
    body: &[u8],
    framing: Framing,
    now: Millis,
) -> Result<Vec<Delivery>, Vec<LineError>> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count();
        vec![LineError {
            line,
            field: None,
            reason: format!("body is not UTF-8: {e}"),
            kind: "malformed",
        }]
    })?;
    let items =
        json::split(text, framing, catalog.limits.max_lines_per_request).map_err(|e| vec![e])?;
    let mut batch = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (line, item) in items {
        let raw = match json::parse(line, item) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let result = json::timing(&raw, line).and_then(|timing| {
            let labels = json::labels(&raw);
            let input = Input {
                sla: &raw.sla,
                labels: &labels,
                timing,
                id: raw.id.as_deref(),
            };
            catalog.admit(&input, now).map_err(|r| LineError {
                line,
                field: Some(r.field),
                reason: r.reason,
                kind: r.kind.as_str(),
            })
        });
        match result {
            Ok(d) if errors.is_empty() => batch.push(d),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(batch)
    } else {
        Err(errors)
    }
}

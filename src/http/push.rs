//! `POST /api/v1/deliveries` and `POST /api/v1/backfill`: all-or-nothing
//! batches with a report of every bad line.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{AppState, caller, framing_of, refused};
use crate::delivery::Reach;
use crate::ingest::{Admitted, Batch, Refused, Source, push};
use crate::sla::Catalog;

/// Bodies above this are decoded off the async workers so `/metrics` stays quick.
const BLOCKING_DECODE_BYTES: usize = 256 * 1024;

/// The answer to an accepted push.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Deliveries recorded.
    pub accepted: u64,
    /// Deliveries whose `(sla, id)` was already recorded: acknowledged,
    /// counted once.
    pub duplicates: u64,
    /// Backfill only: of `accepted`, those older than every window, which
    /// feed the history alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfilled: Option<u64>,
}

/// Decodes the body, checks the caller may write every SLA in it, and
/// commits it: 200 once durable, 400/404/413 with every bad line, 401/403,
/// or 503 when storage cannot take it.
pub async fn handle(
    State(app): State<AppState>,
    headers: HeaderMap,
    // Whole: the write guard received it within its limits.
    body: Bytes,
) -> Response {
    commit(app, headers, body, Reach::Windows).await
}

/// As [`handle`], for deliveries dated up to the history's 400 days back
/// (`amaze-exporter import` sends here): those older than every window
/// feed only the SLA's history, once per id.
///
/// With `?dry_run=true` nothing is recorded: the answer says how many would
/// be accepted, or every line that would be refused, exactly as a real
/// backfill would (duplicates aside: those are known only when recorded).
pub async fn backfill(
    State(app): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = match BackfillQuery::parse(pairs) {
        Ok(q) => q,
        Err(why) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": why })),
            )
                .into_response();
        }
    };
    if !query.dry_run {
        return commit(app, headers, body, Reach::History).await;
    }
    let catalog = app.ingest.catalog();
    let recorder = app.ingest.recorder();
    let now = app.ingest.now();
    let framing = framing_of(&headers);
    let checked = tokio::task::spawn_blocking(move || {
        let caller = caller(&catalog, &headers).map_err(Refused::Denied)?;
        let batch = push::decode(&catalog, &body, framing, now, Reach::History, |sla| {
            caller.may_write(sla)
        })?;
        // Against the catalog the recorder holds: a reload in between
        // leaves repeats uncounted rather than counted under another SLA.
        let repeats = if Arc::ptr_eq(recorder.catalog(), &catalog) {
            recorder.repeats(&batch, now)
        } else {
            0
        };
        Ok((batch.len() as u64, repeats))
    })
    .await
    .map_err(|e| Refused::Internal(e.to_string()))
    .and_then(|r| r);
    match checked {
        Ok((n, repeats)) => Json(serde_json::json!({
            "dry_run": true,
            "accepted": n - repeats,
            "duplicates": repeats,
        }))
        .into_response(),
        Err(r) => refused(r, "delivery line"),
    }
}

/// The query of `POST /api/v1/backfill`: `dry_run=true` checks only.
#[derive(Debug, Default)]
pub struct BackfillQuery {
    /// Check only; record nothing.
    pub dry_run: bool,
}

impl BackfillQuery {
    /// Reads `dry_run=true|false`; anything else is refused in words.
    fn parse(pairs: Vec<(String, String)>) -> Result<BackfillQuery, String> {
        let mut query = BackfillQuery::default();
        for (k, v) in pairs {
            match (k.as_str(), v.as_str()) {
                ("dry_run", "true") => query.dry_run = true,
                ("dry_run", "false") => query.dry_run = false,
                ("dry_run", other) => {
                    return Err(format!("dry_run `{other}` is not true or false"));
                }
                (other, _) => return Err(format!("unknown parameter `{other}`; use dry_run")),
            }
        }
        Ok(query)
    }
}

async fn commit(app: AppState, headers: HeaderMap, body: Bytes, reach: Reach) -> Response {
    let framing = framing_of(&headers);
    let admit = |catalog: Arc<Catalog>, now| {
        let (headers, body) = (&headers, body.clone());
        async move {
            let caller = caller(&catalog, headers)?;
            let large = body.len() > BLOCKING_DECODE_BYTES;
            let decode = {
                let catalog = catalog.clone();
                move || {
                    push::decode(&catalog, &body, framing, now, reach, |sla| {
                        caller.may_write(sla)
                    })
                }
            };
            let decoded = if large {
                tokio::task::spawn_blocking(decode)
                    .await
                    .map_err(|e| Refused::Internal(e.to_string()))?
            } else {
                decode()
            };
            Ok((Admitted::all(Batch::deliveries(decoded?)), ()))
        }
    };
    match app.ingest.commit(Source::Http, admit).await {
        Ok((r, ())) => {
            tracing::debug!(
                accepted = r.accepted,
                duplicates = r.duplicates,
                "push recorded"
            );
            Json(Accepted {
                accepted: r.accepted,
                duplicates: r.duplicates,
                backfilled: (reach == Reach::History).then_some(r.backfilled),
            })
            .into_response()
        }
        Err(r) => refused(r, "delivery line"),
    }
}

//! Open deliveries over HTTP: `POST /api/v1/deliveries/{start,pause,resume,finish}`
//! for one event, `POST /api/v1/deliveries/events` for many, and
//! `GET /api/v1/open` to list what is open.
//!
//! Events are logged and applied like deliveries (2xx means durable as the
//! SLA asks); whether an event follows the delivery's earlier ones is
//! decided in log order, so concurrent clients cannot race past the rules.

use std::borrow::Cow;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::count_commit;
use super::http_push::{body_rejected, framing_of, reject, unavailable};
use super::json::{self, Framing, Labels, LineError};
use crate::delivery::EventInput;
use crate::http::{self, AppState};
use crate::persist::{CommitError, Pending};
use crate::recorder::OpenView;
use crate::recorder::open::{Event, EventError, Kind, OpenState, Transition};
use crate::sla::Catalog;
use crate::window::Millis;

/// Source label on the ingest self-metrics.
pub const SOURCE: &str = "open";

/// One event as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    /// Batch form only: start, pause, resume or finish.
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sla: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    labels: Labels<'a>,
    /// RFC 3339; the time of arrival when absent.
    #[serde(borrow, default)]
    at: Option<Cow<'a, str>>,
    #[serde(default)]
    failed: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    line: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    transition: Option<Transition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

type Body = Result<Bytes, BytesRejection>;

pub async fn start(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Start, body).await
}

pub async fn pause(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Pause, body).await
}

pub async fn resume(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Resume, body).await
}

pub async fn finish(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Finish, body).await
}

/// One event of `kind`: 200 with what it did, 404/409 when it does not
/// follow, 400 when it is malformed.
async fn one(app: AppState, headers: HeaderMap, kind: Kind, body: Body) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejected(&app, SOURCE, &e),
    };
    match submit(&app, &headers, &body, Framing::Json, Some(kind)).await {
        Ok(mut outcomes) if outcomes.len() == 1 => {
            let o = outcomes.remove(0);
            match (o.transition, o.error, o.status) {
                (Some(t), _, _) => Json(t).into_response(),
                (None, Some(error), Some(status)) => reject(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                    error,
                    Vec::new(),
                ),
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Ok(_) => malformed(
            &app,
            StatusCode::BAD_REQUEST,
            "send one event object; use /api/v1/deliveries/events for many".into(),
            Vec::new(),
        ),
        Err(response) => response,
    }
}

/// Many events, each with an `event` field, as a JSON array or NDJSON: all
/// are admitted or none (400), then each applies or is refused on its own,
/// in order; 200 with every line's outcome.
pub async fn many(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejected(&app, SOURCE, &e),
    };
    let framing = framing_of(&headers);
    match submit(&app, &headers, &body, framing, None).await {
        Ok(outcomes) => Json(serde_json::json!({ "results": outcomes })).into_response(),
        Err(response) => response,
    }
}

async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    framing: Framing,
    kind: Option<Kind>,
) -> Result<Vec<Outcome>, Response> {
    for _ in 0..3 {
        let catalog = app.journal.recorder().catalog().clone();
        let caller =
            http::caller(&catalog, headers).map_err(|d| http::denied(&app.metrics, SOURCE, &d))?;
        let now = app.clock.now();
        let (lines, events) = match decode(&catalog, body, framing, kind, now) {
            Ok(e) => e,
            Err(errors) => {
                let status = StatusCode::from_u16(json::refusal_status(&errors))
                    .unwrap_or(StatusCode::BAD_REQUEST);
                let summary = format!(
                    "{} event{} rejected; nothing was recorded",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                return Err(malformed(app, status, summary, errors));
            }
        };
        let n = events.len() as u64;
        let pending = Pending::events(catalog, events, now);
        http::authorize(&caller, &pending).map_err(|d| http::denied(&app.metrics, SOURCE, &d))?;
        let result = app.journal.commit(pending).await;
        count_commit(&app.metrics, SOURCE, n, &result);
        match result {
            Ok(recorded) => {
                return Ok(lines
                    .into_iter()
                    .zip(recorded.events)
                    .map(|(line, r)| outcome(app, line, r))
                    .collect());
            }
            Err(CommitError::Stale) => continue,
            Err(e) => {
                return Err(unavailable(format!(
                    "{e}; nothing was recorded, retry later"
                )));
            }
        }
    }
    Err(malformed(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "the config kept changing while the events were in flight; retry".into(),
        Vec::new(),
    ))
}

fn outcome(app: &AppState, line: usize, r: Result<Transition, EventError>) -> Outcome {
    match r {
        Ok(t) => Outcome {
            line,
            transition: Some(t),
            error: None,
            status: None,
        },
        Err(e) => {
            let reason = if e.status() == 404 {
                "unknown_id"
            } else {
                "conflict"
            };
            app.metrics.rejected(SOURCE, reason, 1);
            Outcome {
                line,
                transition: None,
                error: Some(e.to_string()),
                status: Some(e.status()),
            }
        }
    }
}

fn malformed(
    app: &AppState,
    status: StatusCode,
    error: String,
    errors: Vec<LineError>,
) -> Response {
    if errors.is_empty() {
        app.metrics.rejected(SOURCE, "malformed", 1);
    }
    for e in &errors {
        app.metrics.rejected(SOURCE, e.kind, 1);
    }
    reject(status, error, errors)
}

/// Decodes and admits every event of a body (with their lines), or reports
/// every bad one. `kind` is the endpoint's; `None` reads each `event` field.
pub fn decode(
    catalog: &Catalog,
    body: &[u8],
    framing: Framing,
    kind: Option<Kind>,
    now: Millis,
) -> Result<(Vec<usize>, Vec<Event>), Vec<LineError>> {
    let bad = |line, field: Option<&str>, reason: String, kind: &'static str| LineError {
        line,
        field: field.map(str::to_owned),
        reason,
        kind,
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| vec![bad(1, None, format!("body is not UTF-8: {e}"), "malformed")])?;
    let items =
        json::split(text, framing, catalog.limits.max_lines_per_request).map_err(|e| vec![e])?;
    let (mut lines, mut events, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (line, item) in items {
        let raw: RawEvent<'_> = match serde_json::from_str(item) {
            Ok(r) => r,
            Err(e) => {
                errors.push(bad(line, None, format!("not an event: {e}"), "malformed"));
                continue;
            }
        };
        let kind = match (kind, raw.event.as_deref()) {
            (Some(k), None) => k,
            (Some(_), Some(_)) => {
                errors.push(bad(
                    line,
                    Some("event"),
                    "the endpoint names the event; leave `event` out".into(),
                    "malformed",
                ));
                continue;
            }
            (None, Some(e)) => match Kind::parse(e) {
                Some(k) => k,
                None => {
                    errors.push(bad(
                        line,
                        Some("event"),
                        format!("`{e}` is not an event; use start, pause, resume or finish"),
                        "malformed",
                    ));
                    continue;
                }
            },
            (None, None) => {
                errors.push(bad(
                    line,
                    Some("event"),
                    "required: start, pause, resume or finish".into(),
                    "malformed",
                ));
                continue;
            }
        };
        let at = match raw.at.as_deref().map(|s| s.parse::<jiff::Timestamp>()) {
            None => None,
            Some(Ok(t)) => Some(t.as_millisecond()),
            Some(Err(e)) => {
                errors.push(bad(
                    line,
                    Some("at"),
                    format!("not an RFC 3339 timestamp: {e}"),
                    "malformed",
                ));
                continue;
            }
        };
        let labels: Vec<(&str, &str)> = raw.labels.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        let input = EventInput {
            sla: &raw.sla,
            id: &raw.id,
            kind,
            labels: &labels,
            failed: raw.failed,
            at,
        };
        match catalog.admit_event(&input, now) {
            Ok(e) => {
                lines.push(line);
                events.push(e);
            }
            Err(r) => errors.push(bad(line, Some(&r.field), r.reason, r.kind.as_str())),
        }
    }
    if errors.is_empty() {
        Ok((lines, events))
    } else {
        Err(errors)
    }
}

/// `GET /api/v1/open?sla=..&state=..&label.<name>=..`: open deliveries,
/// soonest due first.
pub async fn list(
    State(app): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut sla = None;
    let mut state = None;
    let mut labels = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "sla" => sla = Some(v),
            "state" => match OpenState::parse(&v) {
                Some(s) => state = Some(s),
                None => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(serde_json::json!({
                            "error": format!("state `{v}` is not one of on_track, at_risk, overdue")
                        })),
                    )
                        .into_response();
                }
            },
            _ => match k.strip_prefix("label.") {
                Some(name) => labels.push((name.to_owned(), v)),
                None => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(serde_json::json!({
                            "error": format!("unknown parameter `{k}`; use sla, state or label.<name>")
                        })),
                    )
                        .into_response();
                }
            },
        }
    }
    let now = app.clock.now();
    let recorder = app.journal.recorder();
    if let Some(name) = &sla
        && recorder.catalog().index(name).is_none()
    {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("unknown SLA `{name}`") })),
        )
            .into_response();
    }
    let keep = move |v: &OpenView| {
        sla.as_ref().is_none_or(|s| *s == v.sla)
            && state.is_none_or(|s| s == v.state)
            && labels
                .iter()
                .all(|(k, want)| v.labels.get(k).is_some_and(|x| x == want))
    };
    let items = tokio::task::spawn_blocking(move || recorder.open_items(now, keep)).await;
    match items {
        Ok(open) => Json(serde_json::json!({ "open": open })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

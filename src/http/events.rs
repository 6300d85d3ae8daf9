//! Open deliveries over HTTP: `POST /api/v1/deliveries/{start,pause,resume,finish}`
//! for one event, `POST /api/v1/deliveries/events` for many, and
//! `GET /api/v1/open` to list what is open.
//!
//! Events are logged and applied like deliveries (2xx means durable as the
//! SLA asks); whether an event follows the delivery's earlier ones is
//! decided in log order, so concurrent clients cannot race past the rules.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{AppState, caller, framing_of, refused, reject};
use crate::delivery::Kind;
use crate::ingest::json::Framing;
use crate::ingest::{Admitted, Batch, Source, events};
use crate::recorder::OpenView;
use crate::recorder::open::{EventError, OpenState, Transition};
use crate::sla::Catalog;

/// What one event of a body did: its transition, or why it did not apply.
#[derive(Debug, Serialize)]
struct Outcome {
    line: usize,
    item: usize,
    #[serde(flatten)]
    result: Applied,
}

/// An event's result as the batch endpoint reports it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Applied {
    Done(Transition),
    Refused { error: String, status: u16 },
}

impl From<Result<Transition, EventError>> for Applied {
    fn from(r: Result<Transition, EventError>) -> Applied {
        match r {
            Ok(t) => Applied::Done(t),
            Err(e) => Applied::Refused {
                error: e.to_string(),
                status: e.status(),
            },
        }
    }
}

/// The body, whole: the write guard ([`super::load_shed`]) received it
/// within its limits or refused the request.
type Body = Bytes;

/// `POST /api/v1/deliveries/start`.
pub async fn start(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Start, body).await
}

/// `POST /api/v1/deliveries/pause`.
pub async fn pause(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Pause, body).await
}

/// `POST /api/v1/deliveries/resume`.
pub async fn resume(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Resume, body).await
}

/// `POST /api/v1/deliveries/finish`.
pub async fn finish(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    one(app, headers, Kind::Finish, body).await
}

/// One event of `kind`: 200 with what it did, 404/409/429 when it does not
/// follow, 400 when it is malformed.
async fn one(app: AppState, headers: HeaderMap, kind: Kind, body: Body) -> Response {
    match submit(&app, &headers, &body, Framing::Json, Some(kind)).await {
        Ok(mut outcomes) if outcomes.len() == 1 => match outcomes.remove(0).result {
            Applied::Done(t) => Json(t).into_response(),
            Applied::Refused { error, status } => reject(
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                error,
                Vec::new(),
            ),
        },
        Ok(outcomes) => reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} outcomes for one event", outcomes.len()),
            Vec::new(),
        ),
        Err(response) => response,
    }
}

/// Many events, each with an `event` field, as a JSON array or NDJSON: all
/// are admitted or none (400), then each applies or is refused on its own,
/// in order; 200 with every item's outcome.
pub async fn many(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
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
    let admit = |catalog: Arc<Catalog>, now| {
        std::future::ready((|| {
            let caller = caller(&catalog, headers)?;
            let decoded = events::decode(&catalog, body, framing, kind, now, |sla| {
                caller.may_write(sla)
            })?;
            let places: Vec<(usize, usize)> = decoded.iter().map(|d| (d.line, d.item)).collect();
            let batch = Batch::Events(decoded.into_iter().map(|d| d.event).collect());
            Ok((Admitted::all(batch), places))
        })())
    };
    match app.ingest.commit(Source::Events, admit).await {
        Ok((recorded, places)) => Ok(places
            .into_iter()
            .zip(recorded.events)
            .map(|((line, item), r)| Outcome {
                line,
                item,
                result: r.into(),
            })
            .collect()),
        Err(r) => Err(refused(r, "event")),
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
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
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

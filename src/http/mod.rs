//! The HTTP surface: routes, the state every handler receives, and the
//! answers every refusal gets. Writes go through the one way in
//! ([`SourceContext::commit`]); reads compute figures from the recorder.
//!
//! - [`push`]: `POST /api/v1/deliveries`.
//! - [`events`]: open-delivery events and `GET /api/v1/open`.
//! - [`read`]: `/`, `/metrics`, `/api/v1/slas`, `POST /-/reload`, health.
//! - [`load_shed`], [`basic_auth`]: what guards them.
//! - [`serve`]: connections, plain or TLS, with their timeouts and cap.

pub mod basic_auth;
pub mod events;
pub mod load_shed;
pub mod otlp;
pub mod pages;
pub mod push;
pub mod read;
pub mod serve;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Serialize;

use crate::auth::{Caller, Denied};
use crate::ingest::json::{self, Framing, ItemError};
use crate::ingest::{Refused, Source, SourceContext};
use crate::reload::Reloader;
use crate::sla::Catalog;
use load_shed::Shedder;

/// What every handler receives: the one way in (which owns the catalog in
/// force, the journal, the counters and the clock) and the reloader.
#[derive(Clone)]
pub struct AppState {
    /// Where writes go, and what reads read.
    pub ingest: SourceContext,
    /// `POST /-/reload` and SIGHUP.
    pub reloader: Arc<Reloader>,
}

/// Wraps a write route: its body bounded one by one and together with every
/// other write, its refusals counted under `source`. Limits are taken from
/// the config at start; a reload does not change them.
fn writes(
    state: &AppState,
    read_timeout: std::time::Duration,
) -> impl Fn(MethodRouter<AppState>, Source) -> MethodRouter<AppState> + use<> {
    let limits = state.ingest.catalog().limits.clone();
    let shedder = Shedder::new(
        limits.max_inflight_bytes,
        limits.max_body_bytes,
        read_timeout,
        state.ingest.clone(),
    );
    move |route: MethodRouter<AppState>, source: Source| {
        route
            // The guard below bounds the body and hands it on whole; axum's
            // own default limit (2 MB) would refuse what the config allows.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(
                (shedder.clone(), source),
                load_shed::shed,
            ))
    }
}

/// OTLP/HTTP alone, for `--otlp.http-listen-address`: `POST /v1/traces`
/// behind the same write guard.
pub fn otlp_router(state: AppState, read_timeout: std::time::Duration) -> Router {
    let write = writes(&state, read_timeout);
    Router::new()
        .route("/v1/traces", write(post(otlp::traces), Source::Otlp))
        .with_state(state)
}

/// Every route; `telemetry_path` is where `/metrics` is served, and write
/// bodies must arrive within `read_timeout`.
pub fn router(state: AppState, telemetry_path: &str, read_timeout: std::time::Duration) -> Router {
    let write = writes(&state, read_timeout);
    let landing_metrics = telemetry_path.to_owned();
    Router::new()
        .route(
            "/",
            get(move |state| pages::status(state, landing_metrics.clone())),
        )
        .route("/slas/{name}", get(pages::sla))
        .route("/report", get(pages::report_page))
        .route("/api/v1/report", get(pages::report))
        .route("/api/v1/advice", get(pages::advice))
        // Scrapers ask for gzip (Prometheus does): exposition text is so
        // repetitive that the fastest level shrinks it about 20-fold.
        .route(
            telemetry_path,
            get(read::metrics).layer(
                tower_http::compression::CompressionLayer::new()
                    .gzip(true)
                    .quality(tower_http::CompressionLevel::Fastest),
            ),
        )
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(read::ready))
        .route("/-/reload", post(read::reload).put(read::reload))
        .route(
            "/api/v1/deliveries",
            write(post(push::handle), Source::Http),
        )
        .route(
            "/api/v1/backfill",
            write(post(push::backfill), Source::Http),
        )
        .route(
            "/api/v1/deliveries/start",
            write(post(events::start), Source::Events),
        )
        .route(
            "/api/v1/deliveries/pause",
            write(post(events::pause), Source::Events),
        )
        .route(
            "/api/v1/deliveries/resume",
            write(post(events::resume), Source::Events),
        )
        .route(
            "/api/v1/deliveries/finish",
            write(post(events::finish), Source::Events),
        )
        .route(
            "/api/v1/deliveries/events",
            write(post(events::many), Source::Events),
        )
        .route("/v1/traces", write(post(otlp::traces), Source::Otlp))
        .route("/api/v1/open", get(events::list))
        .route("/api/v1/slas", get(read::slas))
        .with_state(state)
}

/// The caller of a write, by its `Authorization` header and the tokens of
/// `catalog`'s config.
pub fn caller(catalog: &Catalog, headers: &HeaderMap) -> Result<Caller, Denied> {
    catalog
        .auth
        .caller(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
}

/// How a write body is framed, by its `Content-Type`.
pub fn framing_of(headers: &HeaderMap) -> Framing {
    Framing::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Item errors listed in one answer; the rest are counted.
const LISTED_ERRORS: usize = 100;
/// Bytes of any one message or field kept in an answer: a value echoed back
/// (a 10 MB SLA name) is cut here.
const ECHOED_BYTES: usize = 256;
/// Bytes of a value quoted inside a message.
const ECHOED_VALUE_BYTES: usize = 64;

/// The body of every refused write: what went wrong, and each item's error.
#[derive(Debug, Serialize)]
pub struct Rejected {
    /// What went wrong, in words.
    pub error: String,
    /// The first refused items (line, item, field, reason), at most 100;
    /// empty when the request as a whole was refused.
    pub errors: Vec<ItemError>,
    /// Refused items beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `status` with a [`Rejected`] body: at most 100 item errors (the count of
/// the rest in `more` and in words), every text cut to 256 bytes.
pub fn reject(status: StatusCode, error: String, mut errors: Vec<ItemError>) -> Response {
    let more = errors.len().saturating_sub(LISTED_ERRORS);
    errors.truncate(LISTED_ERRORS);
    for e in &mut errors {
        shorten(&mut e.reason);
        if let Some(field) = &mut e.field {
            shorten(field);
        }
    }
    let mut error = error;
    shorten(&mut error);
    if more > 0 {
        error.push_str(&format!(
            " (the first {LISTED_ERRORS} are listed, and {more} more)"
        ));
    }
    (
        status,
        Json(Rejected {
            error,
            errors,
            more,
        }),
    )
        .into_response()
}

/// Cuts `text` to [`ECHOED_BYTES`]: first each value it echoes between
/// backticks to [`ECHOED_VALUE_BYTES`], so the words around it (why it was
/// refused) stay; then the whole, on a character boundary. Each cut says
/// how long the text was.
fn shorten(text: &mut String) {
    if text.len() <= ECHOED_BYTES {
        return;
    }
    let mut out = String::with_capacity(ECHOED_BYTES * 2);
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        // Odd parts are between backticks.
        if i % 2 == 1 && part.len() > ECHOED_VALUE_BYTES {
            out.push_str(&cut(part, ECHOED_VALUE_BYTES));
        } else {
            out.push_str(part);
        }
    }
    if out.len() > ECHOED_BYTES {
        out = cut(&out, ECHOED_BYTES);
    }
    *text = out;
}

/// `text`'s first `max` bytes (on a character boundary) and its length.
fn cut(text: &str, max: usize) -> String {
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The answer to a refused write; `what` names its items ("delivery line",
/// "event") in the summary. Counting was done by the one way in.
pub fn refused(refused: Refused, what: &str) -> Response {
    match refused {
        Refused::Input(errors) => {
            let status = StatusCode::from_u16(json::refusal_status(&errors))
                .unwrap_or(StatusCode::BAD_REQUEST);
            let summary = format!(
                "{} {what}{} rejected; nothing was recorded",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            reject(status, summary, errors)
        }
        Refused::Denied(d) => denied(&d),
        Refused::Storage(e) => unavailable(format!("{e}; nothing was recorded, retry later")),
        Refused::Unsettled => unavailable(format!("{}; retry", Refused::Unsettled)),
        Refused::Internal(why) => reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the body failed: {why}"),
            Vec::new(),
        ),
    }
}

/// 401 (with a `WWW-Authenticate` challenge) or 403.
pub fn denied(d: &Denied) -> Response {
    let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = (status, Json(serde_json::json!({ "error": d.to_string() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"amaze-exporter\""),
        );
    }
    r
}

/// 503 with a hint to come back shortly: the condition is expected to clear.
pub fn unavailable(error: String) -> Response {
    let mut response = reject(StatusCode::SERVICE_UNAVAILABLE, error, Vec::new());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_echoes_are_cut_and_the_reason_kept() {
        let mut t = format!(
            "`{}` is not a duration: write e.g. `300ms`",
            "9".repeat(5_000_000)
        );
        shorten(&mut t);
        assert_eq!(
            t,
            format!(
                "`{}… (5000000 bytes)` is not a duration: write e.g. `300ms`",
                "9".repeat(64)
            )
        );
        let mut short = "`fast` is not a duration".to_owned();
        shorten(&mut short);
        assert_eq!(short, "`fast` is not a duration");
        let mut plain = "é".repeat(200);
        shorten(&mut plain);
        assert!(
            plain.len() < 300 && plain.ends_with("(400 bytes)"),
            "{plain}"
        );
    }
}

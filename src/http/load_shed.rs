//! Load shedding for writes: the request bodies being handled at once are
//! bounded in bytes (`limits.max_inflight_bytes`). A write that does not fit
//! gets 429 with `Retry-After` without its body being kept (it is read and
//! dropped), so memory stays bounded however many clients push, and reads
//! (`/metrics`) are never shed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::ingest::{Reason, Source, SourceContext};

/// Permits count KiB: a semaphore holds at most `u32::MAX` per acquire.
const UNIT: usize = 1024;

/// The budget of write bytes in flight, shared by every write route.
#[derive(Clone)]
pub struct Shedder {
    budget: Arc<Semaphore>,
    /// Charged for a body of unknown length (chunked).
    max_body_bytes: usize,
    /// Where a shed write is counted.
    ingest: SourceContext,
}

impl Shedder {
    /// A budget of `max_inflight_bytes`; a body of unknown length is
    /// charged `max_body_bytes`.
    pub fn new(max_inflight_bytes: usize, max_body_bytes: usize, ingest: SourceContext) -> Shedder {
        Shedder {
            budget: Arc::new(Semaphore::new(max_inflight_bytes.div_ceil(UNIT))),
            max_body_bytes,
            ingest,
        }
    }
}

/// Middleware: holds the request's bytes of the budget until it is
/// answered; a refusal is counted under the route's `source`.
pub async fn shed(
    State((s, source)): State<(Shedder, Source)>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(s.max_body_bytes)
        // An oversized body is refused by the body limit (413), not here.
        .min(s.max_body_bytes);
    let units = u32::try_from(declared.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
    let Ok(_permit) = s.budget.clone().try_acquire_many_owned(units) else {
        s.ingest.refuse(source, Reason::Overloaded, 1);
        // Read the body to its end, keeping none of it, so the client gets
        // the answer instead of a reset while it is still sending.
        let mut body = request.into_body();
        let mut seen = 0;
        while seen <= s.max_body_bytes
            && let Some(Ok(frame)) = body.frame().await
        {
            seen += frame.data_ref().map_or(0, |d| d.len());
        }
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "too many request bytes in flight (limits.max_inflight_bytes); retry shortly"
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    };
    next.run(request).await
}

//! The guard of every write route: the caller is checked before any of the
//! body is read, the body must arrive within `--web.read-timeout` and fit
//! `limits.max_body_bytes`, and the bodies being received or handled at
//! once are bounded in bytes (`limits.max_inflight_bytes`), charged as they
//! arrive. A client that declares a large body and sends nothing holds no
//! budget and is cut off at the timeout; reads (`/metrics`) are never shed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{caller, denied, reject};
use crate::ingest::{Reason, Source, SourceContext};

/// Permits count KiB: a semaphore holds at most `u32::MAX` per acquire.
const UNIT: usize = 1024;

/// The budget of write bytes in flight, shared by every write route.
#[derive(Clone)]
pub struct Shedder {
    budget: Arc<Semaphore>,
    max_body_bytes: usize,
    read_timeout: Duration,
    /// Where a refused write is counted.
    ingest: SourceContext,
}

impl Shedder {
    /// A budget of `max_inflight_bytes`; each body at most `max_body_bytes`,
    /// received within `read_timeout`.
    pub fn new(
        max_inflight_bytes: usize,
        max_body_bytes: usize,
        read_timeout: Duration,
        ingest: SourceContext,
    ) -> Shedder {
        Shedder {
            budget: Arc::new(Semaphore::new(max_inflight_bytes.div_ceil(UNIT))),
            max_body_bytes,
            read_timeout,
            ingest,
        }
    }
}

/// Why a body was not taken.
enum Refusal {
    TooLarge,
    Timeout,
    Overloaded,
    Broken(String),
}

/// Middleware: checks the caller, receives the body charging the budget,
/// and holds those bytes of it until the request is answered. A refusal is
/// counted under the route's `source`.
pub async fn shed(
    State((s, source)): State<(Shedder, Source)>,
    request: Request,
    next: Next,
) -> Response {
    // Unauthenticated writes are turned away before they cost anything.
    if let Err(d) = caller(&s.ingest.catalog(), request.headers()) {
        s.ingest.refuse(source, d.reason(), 1);
        let mut r = denied(&d);
        // Its body is never read, so the connection cannot carry another
        // request; say so, or a client reuses it and meets a closed socket.
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return r;
    }
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes as u64) {
        // Refused before any of it is read (no `100 Continue` is sent).
        return refuse(&s, source, Refusal::TooLarge);
    }
    let deadline = Instant::now() + s.read_timeout;
    let mut body = body;
    match receive(&s, &mut body, deadline).await {
        Ok((bytes, _held)) => {
            let request = Request::from_parts(parts, Body::from(bytes));
            next.run(request).await
        }
        Err(refusal) => {
            if matches!(refusal, Refusal::Overloaded | Refusal::TooLarge) {
                // Read a little of what the client is still sending, keeping
                // none of it, so a client that sends before it reads gets
                // the answer rather than a reset mid-send.
                let soon = deadline.min(Instant::now() + DISCARD_TIME);
                discard(&mut body, DISCARD_BYTES, soon).await;
            }
            refuse(&s, source, refusal)
        }
    }
}

/// What a refused body may still be read for: the answer's sake, not more.
const DISCARD_BYTES: usize = 4 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// Reads and drops up to `limit` bytes of `body` until `deadline`.
async fn discard(body: &mut Body, limit: usize, deadline: Instant) {
    let mut seen = 0;
    while seen <= limit
        && let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await
    {
        seen += frame.data_ref().map_or(0, |d| d.len());
    }
}

/// Reads `body` whole before `deadline`, taking budget for each part as it
/// arrives.
async fn receive(
    s: &Shedder,
    body: &mut Body,
    deadline: Instant,
) -> Result<(Bytes, Held), Refusal> {
    let mut out = Vec::new();
    let mut held = Held(None);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Refusal::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Refusal::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = out.len() + data.len();
        if len > s.max_body_bytes {
            return Err(Refusal::TooLarge);
        }
        let needed = len.div_ceil(UNIT) - held.units();
        if needed > 0 {
            let units = u32::try_from(needed).unwrap_or(u32::MAX);
            let permit = s
                .budget
                .clone()
                .try_acquire_many_owned(units)
                .map_err(|_| Refusal::Overloaded)?;
            held.add(permit);
        }
        out.extend_from_slice(&data);
    }
    Ok((Bytes::from(out), held))
}

/// Budget held for a body until its request is answered.
struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    fn units(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
    }
}

fn refuse(s: &Shedder, source: Source, refusal: Refusal) -> Response {
    let (status, reason, error) = match refusal {
        Refusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::BodyTooLarge,
            format!(
                "body is larger than limits.max_body_bytes ({} bytes)",
                s.max_body_bytes
            ),
        ),
        Refusal::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            Reason::BodyTimeout,
            format!(
                "the body did not arrive within --web.read-timeout ({})",
                humantime::format_duration(s.read_timeout)
            ),
        ),
        Refusal::Overloaded => (
            StatusCode::TOO_MANY_REQUESTS,
            Reason::Overloaded,
            "too many request bytes in flight (limits.max_inflight_bytes); retry shortly"
                .to_owned(),
        ),
        Refusal::Broken(why) => (
            StatusCode::BAD_REQUEST,
            Reason::Malformed,
            format!("reading the body failed: {why}"),
        ),
    };
    s.ingest.refuse(source, reason, 1);
    let mut r = reject(status, error, Vec::new()).into_response();
    let headers = r.headers_mut();
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    // What is left of the body is not read: the connection cannot carry
    // another request.
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

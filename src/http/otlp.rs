//! `POST /v1/traces`: OTLP/HTTP trace export, protobuf or JSON. Answers as
//! the OTLP specification asks: 200 with an `ExportTraceServiceResponse`
//! (its partial success naming the spans refused); errors with a
//! `google.rpc.Status` body in the request's encoding: 400 for a body that
//! is not a request, 401/403 for callers, 413 past the limits, and 429/503
//! with `Retry-After` when budgets or storage refuse, which exporters retry.
//! (A refusal of the write guard before the body is read, and 415 for a
//! `Content-Type` that is neither of OTLP's, keep this exporter's own
//! error bodies: their encoding is not known.)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::{AppState, caller};
use crate::ingest::json;
use crate::ingest::otlp::{self, Encoding};
use crate::ingest::{Reason, Refused, Source};
use crate::persist::CommitError;
use crate::sla::Catalog;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Reads the spans, checks the caller may write every SLA they map to, and
/// commits them: the answer comes once they are as durable as their SLAs ask.
pub async fn traces(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let encoding = match content_type.as_str() {
        PROTOBUF => Encoding::Protobuf,
        JSON => Encoding::Json,
        other => {
            app.ingest.refuse(Source::Otlp, Reason::Malformed, 1);
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type `{other}` is not OTLP/HTTP: send {PROTOBUF} or {JSON}\n"),
            )
                .into_response();
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "gzip" => true,
        Some(e) if e == "identity" => false,
        Some(other) => {
            app.ingest.refuse(Source::Otlp, Reason::Malformed, 1);
            let mut r = status(
                encoding,
                &Refused::Input(vec![json::ItemError {
                    line: 1,
                    item: None,
                    field: None,
                    reason: format!(
                        "Content-Encoding `{other}` is not supported: send gzip or none"
                    ),
                    kind: Reason::Malformed,
                }]),
            );
            *r.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return r;
        }
    };
    let inflated;
    let body: &[u8] = if gzip {
        match otlp::gunzip(&body, app.ingest.catalog().limits.max_body_bytes) {
            Ok(b) => {
                inflated = b;
                &inflated
            }
            Err(r) => return refuse(&app, encoding, r),
        }
    } else {
        &body
    };
    let request = match otlp::decode(body, encoding) {
        Ok(r) => r,
        Err(r) => return refuse(&app, encoding, r),
    };
    let admit = |catalog: Arc<Catalog>, now| {
        let result = caller(&catalog, &headers)
            .map_err(Into::into)
            .and_then(|c| otlp::admit(&catalog, &request, now, |sla| c.may_write(sla)));
        std::future::ready(result)
    };
    match app.ingest.commit(Source::Otlp, admit).await {
        Ok((_, outcome)) => {
            let answer = ExportTraceServiceResponse {
                partial_success: (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
                    error_message: outcome.message,
                }),
            };
            match encoding {
                Encoding::Protobuf => {
                    ([(header::CONTENT_TYPE, PROTOBUF)], answer.encode_to_vec()).into_response()
                }
                // `{}` for a full success: OTLP/JSON leaves unset fields out.
                Encoding::Json => (
                    [(header::CONTENT_TYPE, JSON)],
                    match &answer.partial_success {
                        None => b"{}".to_vec(),
                        Some(_) => serde_json::to_vec(&answer).unwrap_or_default(),
                    },
                )
                    .into_response(),
            }
        }
        Err(r) => status(encoding, &r),
    }
}

/// Counts and answers a body refused before its spans are read.
fn refuse(app: &AppState, encoding: Encoding, r: Refused) -> Response {
    if let Refused::Input(errors) = &r {
        for e in errors {
            app.ingest.refuse(Source::Otlp, e.kind, 1);
        }
    }
    status(encoding, &r)
}

/// A refusal as OTLP/HTTP answers it: the HTTP status, and a
/// `google.rpc.Status` (gRPC code and message) in the request's encoding.
fn status(encoding: Encoding, r: &Refused) -> Response {
    use tonic::Code;
    let (http, code, message) = match r {
        Refused::Input(errors) => (
            StatusCode::from_u16(json::refusal_status(errors)).unwrap_or(StatusCode::BAD_REQUEST),
            Code::InvalidArgument,
            errors
                .first()
                .map_or_else(String::new, |e| e.reason.clone()),
        ),
        Refused::Denied(d) if d.status() == 401 => (
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            d.to_string(),
        ),
        Refused::Denied(d) => (StatusCode::FORBIDDEN, Code::PermissionDenied, d.to_string()),
        Refused::Storage(CommitError::Overloaded) => (
            StatusCode::TOO_MANY_REQUESTS,
            Code::ResourceExhausted,
            r.to_string(),
        ),
        Refused::Storage(_) | Refused::Unsettled => (
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            r.to_string(),
        ),
        Refused::Internal(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            why.clone(),
        ),
    };
    let body = tonic_types::Status {
        code: code as i32,
        message,
        details: Vec::new(),
    };
    let mut response = match encoding {
        Encoding::Protobuf => (
            http,
            [(header::CONTENT_TYPE, PROTOBUF)],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            http,
            axum::Json(serde_json::json!({ "code": body.code, "message": body.message })),
        )
            .into_response(),
    };
    if matches!(
        http,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        let secs = crate::ingest::otlp::grpc::RETRY_DELAY.as_secs().to_string();
        if let Ok(v) = header::HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if let Refused::Denied(d) = r
        && d.status() == 401
    {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"amaze-exporter\""),
        );
    }
    response
}

//! `POST /v1/traces`: OTLP/HTTP trace export, protobuf or JSON. Answers as
//! the OTLP specification asks: 200 with an `ExportTraceServiceResponse`
//! (its partial success naming the spans refused), 400 for a body that is
//! not a request, 415 for another encoding, and 429/503 with `Retry-After`
//! when budgets or storage refuse, which exporters retry.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::{AppState, caller, refused};
use crate::ingest::otlp::{self, Encoding};
use crate::ingest::{Reason, Refused, Source};
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
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding `{other}` is not supported: send gzip or none\n"),
            )
                .into_response();
        }
    };
    let inflated;
    let body: &[u8] = if gzip {
        match otlp::gunzip(&body, app.ingest.catalog().limits.max_body_bytes) {
            Ok(b) => {
                inflated = b;
                &inflated
            }
            Err(r) => return refuse(&app, r),
        }
    } else {
        &body
    };
    let request = match otlp::decode(body, encoding) {
        Ok(r) => r,
        Err(r) => return refuse(&app, r),
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
                Encoding::Json => (
                    [(header::CONTENT_TYPE, JSON)],
                    serde_json::to_vec(&answer).unwrap_or_default(),
                )
                    .into_response(),
            }
        }
        Err(r) => refused(r, "span"),
    }
}

/// Counts and answers a body refused before its spans are read.
fn refuse(app: &AppState, r: Refused) -> Response {
    if let Refused::Input(errors) = &r {
        for e in errors {
            app.ingest.refuse(Source::Otlp, e.kind, 1);
        }
    }
    refused(r, "request")
}

//! OTLP/gRPC: the `TraceService/Export` call on its own listener
//! (`--otlp.grpc-listen-address`, conventionally :4317), through the same
//! rules and the same one way in as OTLP/HTTP.
//!
//! Refusals map to the status codes the OTLP specification gives:
//! INVALID_ARGUMENT for a request that cannot be read, UNAUTHENTICATED and
//! PERMISSION_DENIED for callers, and the retryable RESOURCE_EXHAUSTED (a
//! full write budget) and UNAVAILABLE (storage, or a config that kept
//! changing) that exporters retry with backoff.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::super::{Reason, Refused, Shutdown, Source, SourceContext};
use super::{self as otlp};
use crate::persist::CommitError;

/// The `TraceService` of one exporter.
struct Receiver {
    ctx: SourceContext,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes().to_vec());
        let request = request.into_inner();
        let admit = |catalog: std::sync::Arc<crate::sla::Catalog>, now| {
            let result = catalog
                .auth
                .caller(token.as_deref())
                .map_err(Into::into)
                .and_then(|c| otlp::admit(&catalog, &request, now, |sla| c.may_write(sla)));
            std::future::ready(result)
        };
        match self.ctx.commit(Source::Otlp, admit).await {
            Ok((_, outcome)) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
                    error_message: outcome.message,
                }),
            })),
            Err(refused) => Err(status(&refused)),
        }
    }
}

/// The gRPC status of a refusal.
fn status(refused: &Refused) -> Status {
    match refused {
        Refused::Input(errors) => Status::invalid_argument(
            errors
                .first()
                .map_or_else(String::new, |e| e.reason.clone()),
        ),
        Refused::Denied(d) if d.status() == 401 => Status::unauthenticated(d.to_string()),
        Refused::Denied(d) => Status::permission_denied(d.to_string()),
        // Retryable: OTLP exporters wait the RetryInfo delay, then retry.
        Refused::Storage(CommitError::Overloaded) => retry(Code::ResourceExhausted, refused),
        Refused::Storage(_) | Refused::Unsettled => retry(Code::Unavailable, refused),
        Refused::Internal(why) => Status::internal(why.clone()),
    }
}

/// Rewrites the codes tonic's decoder answers with before a request
/// reaches [`Receiver`] into OTLP's permanent INVALID_ARGUMENT, and counts
/// them: a message over the size limit (OUT_OF_RANGE, or RESOURCE_EXHAUSTED
/// without a retry delay when it was gzipped) and one that is not protobuf
/// (INTERNAL). Exporters would retry the first two forever, and count
/// none of them. The receiver's own retryable refusals carry RetryInfo and
/// pass unchanged.
fn permanent(
    mut response: tonic::codegen::http::Response<tonic::body::Body>,
    metrics: &crate::exposition::SelfMetrics,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let headers = response.headers();
    let Some(status) = Status::from_header_map(headers) else {
        return response;
    };
    let decoding = status
        .message()
        .starts_with("failed to decode Protobuf message");
    let reason = match status.code() {
        Code::OutOfRange => Reason::BodyTooLarge,
        Code::ResourceExhausted if !headers.contains_key("grpc-status-details-bin") => {
            Reason::BodyTooLarge
        }
        Code::Internal if decoding => Reason::Malformed,
        _ => return response,
    };
    metrics.rejected(Source::Otlp, reason, 1);
    let message = match reason {
        Reason::BodyTooLarge => format!(
            "the message is larger than limits.max_body_bytes: send smaller batches ({})",
            status.message()
        ),
        _ => format!(
            "not an OTLP ExportTraceServiceRequest: {}",
            status.message()
        ),
    };
    let replaced = Status::invalid_argument(message);
    let headers = response.headers_mut();
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    if let Err(e) = replaced.add_header(headers) {
        tracing::warn!(error = %e, "could not rewrite a gRPC status");
    }
    response
}

/// A retryable status, asking for a second's wait (google.rpc.RetryInfo).
fn retry(code: Code, refused: &Refused) -> Status {
    Status::with_error_details(
        code,
        refused.to_string(),
        ErrorDetails::with_retry_info(Some(RETRY_DELAY)),
    )
}

/// How long a refused exporter is asked to wait, as `Retry-After: 1` over HTTP.
pub const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves OTLP/gRPC on `listener` until `shutdown`. Requests take gzip, as
/// OTel exporters send with compression on; message size is bounded by
/// `limits.max_body_bytes` as of the start.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: SourceContext,
    mut shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    let limit = ctx.catalog().limits.max_body_bytes;
    let metrics = ctx.metrics().clone();
    let service = TraceServiceServer::new(Receiver { ctx })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            move |response: tonic::codegen::http::Response<tonic::body::Body>| {
                permanent(response, &metrics)
            },
        ))
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move { shutdown.wait().await },
        )
        .await
}

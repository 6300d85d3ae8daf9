//! The pages for people and their JSON twins: the status page at `/`, each
//! SLA's page, the monthly report and the promise advisor. Figures are
//! computed on a blocking thread, like a scrape.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::decimal::Decimal;
use crate::exposition::advice::{self, AdviceError, Question};
use crate::exposition::monthly::{self, Month};
use crate::exposition::pages;
use crate::window::Millis;

type Params = Query<Vec<(String, String)>>;

/// A refused query: 400 (or 404 for an unknown SLA) with what was wrong.
struct Refused {
    status: StatusCode,
    message: String,
}

impl Refused {
    fn bad(message: String) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    fn json(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }

    fn text(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

impl From<AdviceError> for Refused {
    fn from(e: AdviceError) -> Refused {
        Refused {
            status: StatusCode::NOT_FOUND,
            message: e.to_string(),
        }
    }
}

/// Runs `f` on a blocking thread; a panic is a 500 said plainly.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} failed: {e}\n"),
        )
            .into_response()
    })
}

/// `/`: every SLA's state, margin, trend and budget at a glance.
pub async fn status(State(app): State<AppState>, telemetry_path: String) -> Response {
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
    match blocking("status page", move || {
        pages::status::render(&recorder, &telemetry_path, now)
    })
    .await
    {
        Ok(html) => Html(html).into_response(),
        Err(r) => r,
    }
}

/// Reads `promise`, `objective` and `target_margin` (and `sla` where
/// `name` is not given by the path).
fn question(name: Option<String>, params: Vec<(String, String)>) -> Result<Question, Refused> {
    let mut q = Question {
        sla: name.clone().unwrap_or_default(),
        ..Question::default()
    };
    for (k, v) in params {
        let v = v.trim().to_owned();
        match k.as_str() {
            "sla" if name.is_none() => q.sla = v,
            // An empty form field means "not asked".
            "promise" | "objective" | "target_margin" if v.is_empty() => {}
            "promise" => {
                let p = humantime::parse_duration(&v)
                    .ok()
                    .filter(|p| !p.is_zero())
                    .ok_or_else(|| {
                        Refused::bad(format!(
                            "promise `{v}` is not a positive duration such as 300ms or 4h"
                        ))
                    })?;
                q.promise = Some(p);
            }
            "objective" => {
                let o = Decimal::parse(&v)
                    .ok()
                    .filter(|o| *o > Decimal::ZERO && *o < Decimal::ONE)
                    .ok_or_else(|| {
                        Refused::bad(format!(
                            "objective `{v}` is not a share between 0 and 1 such as 99% or 0.99"
                        ))
                    })?;
                q.objective = Some(o);
            }
            "target_margin" => {
                let t = Decimal::parse(&v)
                    .ok()
                    .filter(|t| *t < Decimal::ONE)
                    .ok_or_else(|| {
                        Refused::bad(format!(
                            "target_margin `{v}` is not a share from 0 up to 1 such as 20%"
                        ))
                    })?;
                q.target_margin = Some(t);
            }
            _ => {
                let known = if name.is_none() {
                    "sla, promise, objective or target_margin"
                } else {
                    "promise, objective or target_margin"
                };
                return Err(Refused::bad(format!(
                    "unknown parameter `{k}`; use {known}"
                )));
            }
        }
    }
    if q.sla.is_empty() {
        return Err(Refused::bad("parameter `sla` is required".to_owned()));
    }
    Ok(q)
}

/// `GET /api/v1/advice?sla=...[&promise=..&objective=..&target_margin=..]`.
pub async fn advice(State(app): State<AppState>, Query(params): Params) -> Response {
    let q = match question(None, params) {
        Ok(q) => q,
        Err(r) => return r.json(),
    };
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
    match blocking("advice", move || advice::advise(&recorder, &q, now)).await {
        Ok(Ok(a)) => Json(a).into_response(),
        Ok(Err(e)) => Refused::from(e).json(),
        Err(r) => r,
    }
}

/// `GET /slas/{name}`: the SLA's page, with the advisor and a what-if form.
pub async fn sla(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Response {
    // A what-if that cannot be read is said on the page, beside the form.
    let (q, error) = match question(Some(name.clone()), params) {
        Ok(q) => (q, None),
        Err(r) => (
            Question {
                sla: name,
                ..Question::default()
            },
            Some(r.message),
        ),
    };
    let now = app.ingest.now();
    let recorder = app.ingest.recorder();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = move || pages::sla::render(&recorder, &q, error.as_deref(), now);
    match blocking("SLA page", page).await {
        Ok(Ok(html)) => (status, Html(html)).into_response(),
        Ok(Err(e)) => Refused::from(e).text(),
        Err(r) => r,
    }
}

/// The month and format asked for; the current UTC month by default.
fn month_and_format(
    params: Vec<(String, String)>,
    now: Millis,
    formats: &[&str],
) -> Result<(Month, String), Refused> {
    let mut month = None;
    let mut format = formats[0].to_owned();
    for (k, v) in params {
        match k.as_str() {
            "month" => {
                month = Some(Month::parse(v.trim()).map_err(|e| Refused::bad(e.to_string()))?)
            }
            "format" if formats.len() > 1 => {
                if !formats.contains(&v.as_str()) {
                    return Err(Refused::bad(format!(
                        "format `{v}` is not one of {}",
                        formats.join(", ")
                    )));
                }
                format = v;
            }
            _ => {
                return Err(Refused::bad(format!(
                    "unknown parameter `{k}`; use month{}",
                    if formats.len() > 1 { " or format" } else { "" }
                )));
            }
        }
    }
    let month = month.unwrap_or_else(|| Month::utc(now));
    Ok((month, format))
}

/// `GET /report?month=YYYY-MM`: the printable monthly report.
pub async fn report_page(State(app): State<AppState>, Query(params): Params) -> Response {
    let now = app.ingest.now();
    let (month, _) = match month_and_format(params, now, &["html"]) {
        Ok(m) => m,
        Err(r) => return r.text(),
    };
    let recorder = app.ingest.recorder();
    match blocking("report", move || {
        pages::report::render(&monthly::report(&recorder, month, now), now)
    })
    .await
    {
        Ok(html) => Html(html).into_response(),
        Err(r) => r,
    }
}

/// `GET /api/v1/report?month=YYYY-MM&format=json|markdown|csv`.
pub async fn report(State(app): State<AppState>, Query(params): Params) -> Response {
    let now = app.ingest.now();
    let (month, format) = match month_and_format(params, now, &["json", "markdown", "csv"]) {
        Ok(m) => m,
        Err(r) => return r.json(),
    };
    let recorder = app.ingest.recorder();
    let report = match blocking("report", move || monthly::report(&recorder, month, now)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match format.as_str() {
        "markdown" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            monthly::markdown(&report),
        )
            .into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            monthly::csv(&report),
        )
            .into_response(),
        _ => Json(report).into_response(),
    }
}

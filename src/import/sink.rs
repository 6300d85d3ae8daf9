//! Where imported rows go: a running exporter over HTTP, or a state
//! directory written directly. Both check with the exporter's own decoder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::rows::Row;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::delivery::Reach;
use crate::ingest::json::Framing;
use crate::ingest::{Batch, Refused, push};
use crate::persist::{Offline, Pending};
use crate::sla::Catalog;

/// Where an import writes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A running exporter's `POST /api/v1/backfill`.
    Exporter {
        /// Its base URL (`http://127.0.0.1:9797`).
        url: String,
        /// A bearer token, when the exporter requires one.
        token: Option<String>,
    },
    /// A state directory no exporter is using, with the config it serves.
    State {
        /// The directory (`--storage.path`).
        path: PathBuf,
        /// The config file.
        config: PathBuf,
    },
}

/// Why the destination cannot take the rows.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The config of an offline import is invalid.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// Every problem.
        reason: String,
    },
    /// The state directory cannot be opened (in use by a running exporter?).
    #[error("cannot open the state directory: {0}")]
    Storage(String),
    /// The exporter cannot be reached or answered unexpectedly.
    #[error("{url}: {reason}")]
    Exporter {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
}

/// What a destination said of one chunk.
#[derive(Debug, Default)]
pub struct ChunkResult {
    /// Deliveries recorded (or that would be).
    pub accepted: u64,
    /// Of them, older than every window.
    pub backfilled: u64,
    /// Ids already recorded.
    pub duplicates: u64,
    /// Refused rows: (file line, reason).
    pub refused: Vec<(u64, String)>,
}

/// An open destination.
pub enum Sink {
    /// Over HTTP.
    Exporter {
        /// The agent.
        agent: ureq::Agent,
        /// Base URL.
        url: String,
        /// Bearer token.
        token: Option<String>,
    },
    /// Straight into the state.
    State {
        /// The config's catalog.
        catalog: Arc<Catalog>,
        /// The open state directory.
        offline: Box<Offline>,
    },
}

/// Attempts at a chunk the exporter sheds (429, 503) before giving up.
const ATTEMPTS: u32 = 8;

impl Sink {
    /// Opens `destination`.
    pub fn open(destination: &Destination) -> Result<Sink, SinkError> {
        match destination {
            Destination::Exporter { url, token } => Ok(Sink::Exporter {
                agent: ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .new_agent(),
                url: url.trim_end_matches('/').to_owned(),
                token: token.clone(),
            }),
            Destination::State { path, config } => {
                let loaded = Config::load(config).map_err(|e| SinkError::Config {
                    path: config.display().to_string(),
                    reason: e.to_string(),
                })?;
                let catalog = Arc::new(loaded.catalog());
                let offline = Offline::open(path, catalog.clone()).map_err(SinkError::Storage)?;
                Ok(Sink::State {
                    catalog,
                    offline: Box::new(offline),
                })
            }
        }
    }

    /// What recording `chunk` would do, recording nothing.
    pub fn check(&mut self, chunk: &[Row]) -> Result<ChunkResult, SinkError> {
        match self {
            Sink::Exporter { .. } => self.post(chunk, true),
            Sink::State {
                catalog, offline, ..
            } => Ok(match decode(catalog, chunk) {
                Ok(batch) => {
                    let repeats = offline.recorder().repeats(&batch, SystemClock.now());
                    ChunkResult {
                        accepted: batch.len() as u64 - repeats,
                        duplicates: repeats,
                        ..ChunkResult::default()
                    }
                }
                Err(refused) => ChunkResult {
                    refused,
                    ..ChunkResult::default()
                },
            }),
        }
    }

    /// Records `chunk`, all or nothing.
    pub fn apply(&mut self, chunk: &[Row]) -> Result<ChunkResult, SinkError> {
        match self {
            Sink::Exporter { .. } => self.post(chunk, false),
            Sink::State { catalog, offline } => {
                let batch = match decode(catalog, chunk) {
                    Ok(b) => b,
                    Err(refused) => {
                        return Ok(ChunkResult {
                            refused,
                            ..ChunkResult::default()
                        });
                    }
                };
                let pending =
                    Pending::new(catalog.clone(), Batch::deliveries(batch), SystemClock.now());
                let recorded = offline
                    .commit(pending)
                    .map_err(|e| SinkError::Storage(e.to_string()))?;
                Ok(ChunkResult {
                    accepted: recorded.accepted,
                    backfilled: recorded.backfilled,
                    duplicates: recorded.duplicates,
                    refused: Vec::new(),
                })
            }
        }
    }

    /// Finishes: an offline import writes its snapshot.
    pub fn close(self) {
        if let Sink::State { offline, .. } = self {
            offline.close();
        }
    }

    fn post(&self, chunk: &[Row], dry_run: bool) -> Result<ChunkResult, SinkError> {
        let Sink::Exporter { agent, url, token } = self else {
            return Ok(ChunkResult::default());
        };
        let target = format!(
            "{url}/api/v1/backfill{}",
            if dry_run { "?dry_run=true" } else { "" }
        );
        let body = body(chunk);
        let failed = |reason: String| SinkError::Exporter {
            url: url.clone(),
            reason,
        };
        let mut wait = Duration::from_millis(250);
        for attempt in 1..=ATTEMPTS {
            let mut request = agent
                .post(&target)
                .header("content-type", "application/x-ndjson");
            if let Some(t) = token {
                request = request.header("authorization", &format!("Bearer {t}"));
            }
            let mut reply = request
                .send(body.as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            let status = reply.status().as_u16();
            let text = reply
                .body_mut()
                .read_to_string()
                .map_err(|e| failed(e.to_string()))?;
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let count = |k: &str| json.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            match status {
                200 => {
                    return Ok(ChunkResult {
                        accepted: count("accepted"),
                        backfilled: count("backfilled"),
                        duplicates: count("duplicates"),
                        refused: Vec::new(),
                    });
                }
                400 | 404 | 413 | 422 => return Ok(refusals(chunk, &json, &text)),
                401 | 403 => {
                    return Err(failed(format!(
                        "HTTP {status}: {}; give a token with --token or AMAZE_TOKEN",
                        text.trim()
                    )));
                }
                429 | 503 if attempt < ATTEMPTS => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                _ => return Err(failed(format!("HTTP {status}: {}", text.trim()))),
            }
        }
        Err(failed("still busy after retries".to_owned()))
    }
}

/// The chunk as an NDJSON body: row i is body line i + 1.
fn body(chunk: &[Row]) -> String {
    let mut body = String::with_capacity(chunk.iter().map(|r| r.json.len() + 1).sum());
    for row in chunk {
        body.push_str(&row.json);
        body.push('\n');
    }
    body
}

/// The file line of body line `line` (1-based).
fn file_line(chunk: &[Row], line: usize) -> u64 {
    chunk.get(line.saturating_sub(1)).map_or(0, |r| r.line)
}

/// Decodes `chunk` as the exporter would, dated up to the history's reach.
fn decode(
    catalog: &Catalog,
    chunk: &[Row],
) -> Result<Vec<crate::delivery::Delivery>, Vec<(u64, String)>> {
    let body = body(chunk);
    let now = SystemClock.now();
    push::decode(
        catalog,
        body.as_bytes(),
        Framing::Ndjson,
        now,
        Reach::History,
        |_| Ok(()),
    )
    .map_err(|r| match r {
        Refused::Input(errors) => errors
            .into_iter()
            .map(|e| {
                let reason = match e.field {
                    Some(f) => format!("{f}: {}", e.reason),
                    None => e.reason,
                };
                (file_line(chunk, e.line), reason)
            })
            .collect(),
        other => vec![(chunk.first().map_or(0, |r| r.line), other.to_string())],
    })
}

/// The refused rows of an exporter's 4xx answer.
fn refusals(chunk: &[Row], json: &serde_json::Value, text: &str) -> ChunkResult {
    let mut refused: Vec<(u64, String)> = json
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let line = e
                        .get("line")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0) as usize;
                    let reason = e
                        .get("reason")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("refused");
                    let reason = match e.get("field").and_then(serde_json::Value::as_str) {
                        Some(f) => format!("{f}: {reason}"),
                        None => reason.to_owned(),
                    };
                    (file_line(chunk, line), reason)
                })
                .collect()
        })
        .unwrap_or_default();
    let more = json
        .get("more")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    for _ in 0..more {
        refused.push((
            0,
            "refused by the exporter (not listed in its answer)".to_owned(),
        ));
    }
    if refused.is_empty() {
        refused.push((file_line(chunk, 1), text.trim().to_owned()));
    }
    ChunkResult {
        refused,
        ..ChunkResult::default()
    }
}

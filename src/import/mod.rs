//! `amaze-exporter import`: backfill from NDJSON and CSV exports.
//!
//! Every row is read and checked first, exactly as the destination will
//! admit it (the exporter's own decoder, dated up to the history's 400 days
//! back); a file with any bad row is reported line by line and nothing is
//! recorded. Then the rows go in chunks to a running exporter
//! (`POST /api/v1/backfill`) or straight into a state directory. Both
//! passes show a progress bar with the rate and the time left when stderr
//! is a terminal. Ids make a re-import count nothing twice.

pub mod rows;
mod sink;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use rows::{FileError, FileFormat, Mapping, Row, Rows};
pub use sink::{Destination, Sink, SinkError};

/// Rows per chunk: one request or one log record each.
pub const CHUNK_ROWS: usize = 10_000;
/// Bytes per chunk at most (a row or two over), well under the exporter's
/// default request limit of 16 MiB.
pub const CHUNK_BYTES: usize = 4 << 20;
/// The longest row taken: no delivery's fields come near it.
pub const MAX_ROW_BYTES: usize = 1 << 20;
/// Problems listed before the rest are only counted.
const LISTED: usize = 50;

/// What `amaze-exporter import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// Files, read in order.
    pub files: Vec<PathBuf>,
    /// Their format; by extension when `None`.
    pub format: Option<FileFormat>,
    /// How columns become delivery fields.
    pub mapping: Mapping,
    /// Check and report only.
    pub dry_run: bool,
    /// Where the rows go.
    pub destination: Destination,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file cannot be opened or read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The destination cannot be reached or refused a chunk.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Rows would be refused: nothing was recorded.
    #[error("{0} row{s} would be refused; nothing was imported", s = if *.0 == 1 { "" } else { "s" })]
    Refused(u64),
    /// The destination failed while rows were being recorded.
    #[error(
        "{error}; {recorded} deliveries were recorded before it; run the same import again: rows with ids count once"
    )]
    Lost {
        /// Deliveries recorded before the failure.
        recorded: u64,
        /// What failed.
        error: SinkError,
    },
    /// The destination refused a chunk it had accepted when checked (its
    /// config was reloaded, or a day aged out of the history meanwhile).
    #[error(
        "the destination refused rows it had accepted when checked; {0} deliveries were recorded before them (ids make a re-run count them once)"
    )]
    Interrupted(u64),
}

/// One refused row.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line it starts on.
    pub line: u64,
    /// What is wrong (the field first, when one is to blame).
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// What an import did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Rows read.
    pub rows: u64,
    /// Deliveries recorded (would be, dry).
    pub accepted: u64,
    /// Of them, older than every window: in the history only.
    pub backfilled: u64,
    /// Rows whose id was already recorded.
    pub duplicates: u64,
}

/// Runs the import; problems are printed to stderr as they are found.
pub fn run(args: &ImportArgs) -> Result<Summary, ImportError> {
    let mut sink = Sink::open(&args.destination)?;
    let total: u64 = args
        .files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .map(|m| m.len())
                .map_err(|e| FileError {
                    path: f.clone(),
                    reason: e.to_string(),
                })
        })
        .sum::<Result<u64, FileError>>()?;
    let check = pass(args, &mut sink, total, "checking", Mode::Check)?;
    if check.problems > 0 {
        return Err(ImportError::Refused(check.problems));
    }
    if args.dry_run {
        return Ok(check.summary);
    }
    let done = pass(args, &mut sink, total, "importing", Mode::Apply)?;
    sink.close();
    Ok(done.summary)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Check,
    Apply,
}

struct Passed {
    summary: Summary,
    problems: u64,
}

/// Reads every file once, checking or applying each chunk.
fn pass(
    args: &ImportArgs,
    sink: &mut Sink,
    total: u64,
    what: &str,
    mode: Mode,
) -> Result<Passed, ImportError> {
    let bar = progress_bar(total, what);
    let read = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut out = Passed {
        summary: Summary::default(),
        problems: 0,
    };
    // Listed once the pass is over, in file and line order.
    let mut listed: Vec<(usize, Problem)> = Vec::new();
    // (sla, id) of the rows checked so far, so a repeat in a later chunk
    // counts as the duplicate it will be.
    let mut ids: HashSet<u64> = HashSet::new();
    for (f, file) in args.files.iter().enumerate() {
        let format = args.format.unwrap_or_else(|| FileFormat::of(file));
        let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK_ROWS);
        let mut chunk_bytes = 0;
        let rows = Rows::open(file, format, args.mapping.clone(), read.clone())?;
        let mut problem = |line: u64, reason: String, out: &mut Passed| {
            out.problems += 1;
            if listed.len() < LISTED {
                let file = file.clone();
                listed.push((f, Problem { file, line, reason }));
            }
        };
        let mut flush = |chunk: &mut Vec<Row>,
                         out: &mut Passed,
                         problem: &mut dyn FnMut(u64, String, &mut Passed)|
         -> Result<(), ImportError> {
            if mode == Mode::Check {
                let before = chunk.len();
                chunk.retain(|row| !ids.contains(&key(&row.json)));
                out.summary.duplicates += (before - chunk.len()) as u64;
                ids.extend(chunk.iter().map(|row| key(&row.json)));
            }
            if chunk.is_empty() {
                return Ok(());
            }
            let result = match mode {
                Mode::Check => sink.check(chunk)?,
                Mode::Apply => sink.apply(chunk).map_err(|error| ImportError::Lost {
                    recorded: out.summary.accepted,
                    error,
                })?,
            };
            for (line, reason) in result.refused {
                problem(line, reason, out);
            }
            if mode == Mode::Apply && out.problems > 0 {
                // Checked a moment ago: the destination changed its mind
                // (a reload, a day aged out). What went before is recorded.
                return Err(ImportError::Interrupted(out.summary.accepted));
            }
            out.summary.accepted += result.accepted;
            out.summary.backfilled += result.backfilled;
            out.summary.duplicates += result.duplicates;
            chunk.clear();
            let rows = out.summary.rows;
            let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(read.load(Ordering::Relaxed));
            bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
            Ok(())
        };
        let rows_before = out.summary.rows;
        for row in rows {
            out.summary.rows += 1;
            match row {
                Ok(row) if row.json.len() > MAX_ROW_BYTES => problem(
                    row.line,
                    format!(
                        "the row is {} bytes, over the {MAX_ROW_BYTES} a delivery may take",
                        row.json.len()
                    ),
                    &mut out,
                ),
                Ok(row) => {
                    chunk_bytes += row.json.len() + 1;
                    chunk.push(row);
                    if chunk.len() >= CHUNK_ROWS || chunk_bytes >= CHUNK_BYTES {
                        flush(&mut chunk, &mut out, &mut problem)?;
                        chunk_bytes = 0;
                    }
                }
                Err(e) => problem(e.line, e.to_string(), &mut out),
            }
        }
        flush(&mut chunk, &mut out, &mut problem)?;
        if mode == Mode::Check && out.summary.rows == rows_before {
            bar.suspend(|| eprintln!("{}: no rows", file.display()));
        }
    }
    bar.set_position(total);
    bar.finish_and_clear();
    listed.sort_by_key(|(file, p)| (*file, p.line));
    for (_, p) in &listed {
        eprintln!("{p}");
    }
    if out.problems as usize > listed.len() {
        eprintln!(
            "(and {} more problems, counted, not listed)",
            out.problems as usize - listed.len()
        );
    }
    Ok(out)
}

/// A hash of a row's `(sla, id)`; rows without an id hash alike and are
/// never repeats.
fn key(json: &str) -> u64 {
    #[derive(serde::Deserialize)]
    struct Key<'a> {
        #[serde(borrow, default)]
        sla: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_str::<Key<'_>>(json) {
        Ok(Key { sla, id: Some(id) }) => {
            std::hash::BuildHasher::hash_one(&ID_HASH, (sla.as_deref(), id.as_ref()))
        }
        // No id (or unreadable: the destination says why): a fresh key.
        _ => NO_ID.fetch_add(1, Ordering::Relaxed),
    }
}

/// Keys for rows without an id, distinct from each other (and, being
/// small, from any hash in practice).
static NO_ID: AtomicU64 = AtomicU64::new(0);
/// A fixed hasher: keys only compare within one run.
static ID_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// A bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:30}] {percent:>3}% {msg}, {binary_bytes_per_sec}, {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

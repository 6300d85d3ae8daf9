//! Export files read as push-format deliveries: NDJSON lines as they are,
//! or CSV rows (and NDJSON objects) mapped field by field, each with the
//! line it started on.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// The push fields a column can feed, besides labels.
pub const FIELDS: [&str; 7] = [
    "sla",
    "duration",
    "duration_seconds",
    "started_at",
    "delivered_at",
    "failed",
    "id",
];

/// How files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// One push-format JSON object per line.
    Ndjson,
    /// A header row, then one delivery per row.
    Csv,
}

impl FileFormat {
    /// By extension: `.csv` is CSV, anything else NDJSON.
    pub fn of(path: &Path) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => FileFormat::Csv,
            _ => FileFormat::Ndjson,
        }
    }
}

/// Which column feeds which push field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    /// `(push field, column)`, from `--column FIELD=COLUMN`.
    pub fields: Vec<(String, String)>,
    /// `(label, column)`, from `--label NAME=COLUMN`.
    pub labels: Vec<(String, String)>,
    /// The SLA of rows without an `sla` column.
    pub sla: Option<String>,
    /// The zone of timestamps written without an offset (`2026-11-03 14:05`).
    pub time_zone: Option<jiff::tz::TimeZone>,
}

/// Why a `--column` or `--label` flag is not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MappingError {
    /// Not `NAME=COLUMN`.
    #[error("`{0}` is not NAME=COLUMN")]
    Shape(String),
    /// Not a push field.
    #[error("`{0}` is not a delivery field; use one of {fields}", fields = FIELDS.join(", "))]
    Field(String),
}

impl Mapping {
    /// Adds `--column FIELD=COLUMN`.
    pub fn column(&mut self, flag: &str) -> Result<(), MappingError> {
        let (field, column) = pair(flag)?;
        if !FIELDS.contains(&field.as_str()) {
            return Err(MappingError::Field(field));
        }
        self.fields.push((field, column));
        Ok(())
    }

    /// Adds `--label NAME=COLUMN`.
    pub fn label(&mut self, flag: &str) -> Result<(), MappingError> {
        let (name, column) = pair(flag)?;
        self.labels.push((name, column));
        Ok(())
    }

    /// Whether NDJSON lines must be mapped rather than taken as they are.
    fn maps(&self) -> bool {
        !self.fields.is_empty()
            || !self.labels.is_empty()
            || self.sla.is_some()
            || self.time_zone.is_some()
    }

    /// The push object for one row's values (by column name).
    fn apply(&self, row: &Map<String, Value>) -> Result<Map<String, Value>, RowError> {
        let mut out = Map::new();
        let mut labels = match row.get("labels") {
            Some(Value::Object(l)) => l.clone(),
            _ => Map::new(),
        };
        for field in FIELDS {
            let column = self
                .fields
                .iter()
                .find(|(f, _)| f == field)
                .map_or(field, |(_, c)| c.as_str());
            let Some(value) = row.get(column).filter(|v| !is_blank(v)) else {
                continue;
            };
            let value = match (field, value) {
                ("failed", Value::String(s)) => Value::Bool(boolean(s).ok_or_else(|| {
                    RowError::field(field, column, format!("`{s}` is not true or false"))
                })?),
                ("duration_seconds", Value::String(s)) => s
                    .trim()
                    .parse::<serde_json::Number>()
                    .map(Value::Number)
                    .map_err(|_| {
                        RowError::field(field, column, format!("`{s}` is not a number of seconds"))
                    })?,
                ("started_at" | "delivered_at", Value::String(s)) => Value::String(
                    self.timestamp(s)
                        .map_err(|reason| RowError::field(field, column, reason))?,
                ),
                _ => value.clone(),
            };
            out.insert(field.to_owned(), value);
        }
        for (name, column) in &self.labels {
            if let Some(v) = row.get(column).filter(|v| !is_blank(v)) {
                labels.insert(name.clone(), v.clone());
            }
        }
        // CSV headers `labels.NAME` (or `label.NAME`) are labels too.
        for (column, v) in row {
            if let Some(name) = column
                .strip_prefix("labels.")
                .or_else(|| column.strip_prefix("label."))
                && !is_blank(v)
            {
                labels.entry(name.to_owned()).or_insert_with(|| v.clone());
            }
        }
        if !labels.is_empty() {
            out.insert("labels".to_owned(), Value::Object(labels));
        }
        if !out.contains_key("sla")
            && let Some(sla) = &self.sla
        {
            out.insert("sla".to_owned(), Value::String(sla.clone()));
        }
        Ok(out)
    }

    /// RFC 3339 as it is; a civil date-time (`2026-11-03 14:05:00`) in
    /// `time_zone` (UTC by default), as RFC 3339.
    fn timestamp(&self, text: &str) -> Result<String, String> {
        let text = text.trim();
        if text.parse::<jiff::Timestamp>().is_ok() {
            return Ok(text.to_owned());
        }
        let civil: jiff::civil::DateTime = text.parse().map_err(|_| {
            format!("`{text}` is neither an RFC 3339 timestamp nor a date and time such as 2026-11-03 14:05:00")
        })?;
        let zone = self.time_zone.clone().unwrap_or(jiff::tz::TimeZone::UTC);
        civil
            .to_zoned(zone)
            .map(|z| z.timestamp().to_string())
            .map_err(|e| format!("`{text}`: {e}"))
    }
}

fn pair(flag: &str) -> Result<(String, String), MappingError> {
    match flag.split_once('=') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
            Ok((a.trim().to_owned(), b.trim().to_owned()))
        }
        _ => Err(MappingError::Shape(flag.to_owned())),
    }
}

fn is_blank(v: &Value) -> bool {
    matches!(v, Value::Null) || matches!(v, Value::String(s) if s.trim().is_empty())
}

fn boolean(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// One row, as one push-format JSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line of the file it starts on.
    pub line: u64,
    /// The delivery as push-format JSON, on one line.
    pub json: String,
}

/// Why a row cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{reason}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct RowError {
    /// 1-based line it starts on (0 until known).
    pub line: u64,
    /// The push field at fault (with the column it came from), if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl RowError {
    fn field(field: &str, column: &str, reason: String) -> RowError {
        let field = if field == column {
            field.to_owned()
        } else {
            format!("{field} (column {column})")
        };
        RowError {
            line: 0,
            field: Some(field),
            reason,
        }
    }
}

/// Counts the bytes read through it, for the progress bar.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The rows of one file, in order.
pub struct Rows {
    inner: Inner,
    mapping: Mapping,
}

enum Inner {
    Ndjson {
        lines: io::Lines<BufReader<Counted<File>>>,
        line: u64,
    },
    Csv {
        reader: csv::Reader<Counted<File>>,
        headers: Vec<String>,
    },
}

impl Rows {
    /// Opens `path`; `read` counts its bytes as they are read.
    pub fn open(
        path: &Path,
        format: FileFormat,
        mapping: Mapping,
        read: Arc<AtomicU64>,
    ) -> Result<Rows, FileError> {
        let file = File::open(path).map_err(|e| FileError::new(path, e.to_string()))?;
        let counted = Counted { inner: file, read };
        let inner = match format {
            FileFormat::Ndjson => Inner::Ndjson {
                lines: BufReader::new(counted).lines(),
                line: 0,
            },
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(false)
                    .from_reader(counted);
                let headers = reader
                    .headers()
                    .map_err(|e| FileError::new(path, format!("cannot read the header row: {e}")))?
                    .iter()
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
                    .collect::<Vec<String>>();
                if let Some(twice) = headers
                    .iter()
                    .enumerate()
                    .find(|(i, h)| headers[..*i].contains(h))
                    .map(|(_, h)| h)
                {
                    return Err(FileError::new(
                        path,
                        format!("column `{twice}` appears twice in the header row"),
                    ));
                }
                Inner::Csv { reader, headers }
            }
        };
        Ok(Rows { inner, mapping })
    }
}

impl Iterator for Rows {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Ndjson { lines, line } => loop {
                *line += 1;
                let at = *line;
                let text = match lines.next()? {
                    Ok(t) => t,
                    Err(e) => {
                        return Some(Err(RowError {
                            line: at,
                            field: None,
                            reason: format!("cannot read: {e}"),
                        }));
                    }
                };
                if text.trim().is_empty() {
                    continue;
                }
                if !self.mapping.maps() {
                    return Some(Ok(Row {
                        line: at,
                        json: text,
                    }));
                }
                let row: Map<String, Value> = match serde_json::from_str(&text) {
                    Ok(r) => r,
                    Err(e) => {
                        return Some(Err(RowError {
                            line: at,
                            field: None,
                            reason: format!("not a JSON object: {e}"),
                        }));
                    }
                };
                return Some(mapped(&self.mapping, &row, at));
            },
            Inner::Csv { reader, headers } => {
                let mut record = csv::StringRecord::new();
                match reader.read_record(&mut record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let at = record.position().map_or(0, |p| p.line());
                        let row: Map<String, Value> = headers
                            .iter()
                            .zip(record.iter())
                            .map(|(h, v)| (h.clone(), Value::String(v.to_owned())))
                            .collect();
                        Some(mapped(&self.mapping, &row, at))
                    }
                    Err(e) => {
                        let at = e.position().map_or(0, |p| p.line());
                        // A broken quote ends the file for the reader; say where.
                        Some(Err(RowError {
                            line: at,
                            field: None,
                            reason: format!("not a CSV row: {e}"),
                        }))
                    }
                }
            }
        }
    }
}

fn mapped(mapping: &Mapping, row: &Map<String, Value>, line: u64) -> Result<Row, RowError> {
    match mapping.apply(row) {
        Ok(object) => Ok(Row {
            line,
            json: Value::Object(object).to_string(),
        }),
        Err(e) => Err(RowError { line, ..e }),
    }
}

/// A file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl FileError {
    fn new(path: &Path, reason: String) -> FileError {
        FileError {
            path: path.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, format: FileFormat, mapping: Mapping) -> Vec<Result<Row, RowError>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        let read = Arc::new(AtomicU64::new(0));
        let out = Rows::open(&path, format, mapping, read.clone())
            .unwrap()
            .collect();
        assert_eq!(
            read.load(Ordering::Relaxed),
            text.len() as u64,
            "every byte counted"
        );
        out
    }

    #[test]
    fn a_ticket_export_maps_to_push_lines() {
        let mut m = Mapping {
            sla: Some("desk".into()),
            time_zone: Some(jiff::tz::TimeZone::get("Europe/Berlin").unwrap()),
            ..Mapping::default()
        };
        m.column("id=ticket").unwrap();
        m.column("started_at=created").unwrap();
        m.column("delivered_at=first_reply").unwrap();
        m.label("priority=prio").unwrap();
        let csv = "ticket,created,first_reply,prio,agent\n\
                   T-1,2026-11-03 09:00:00,2026-11-03T10:30:00Z,high,ann\n\
                   \"T,2\",2026-11-03 09:00:00,,low,bob\n";
        let got = rows(csv, FileFormat::Csv, m);
        assert_eq!(
            got[0].as_ref().unwrap(),
            &Row {
                line: 2,
                json: r#"{"delivered_at":"2026-11-03T10:30:00Z","id":"T-1","labels":{"priority":"high"},"sla":"desk","started_at":"2026-11-03T08:00:00Z"}"#.into()
            }
        );
        // A blank cell is an absent field: the push decoder names it.
        assert_eq!(got[1].as_ref().unwrap().line, 3);
        assert!(!got[1].as_ref().unwrap().json.contains("delivered_at"));
    }

    #[test]
    fn bad_cells_name_their_field_column_and_line() {
        let mut m = Mapping::default();
        m.column("failed=lost").unwrap();
        let got = rows(
            "sla,duration,lost,duration_seconds\na,1s,maybe,\na,,,fast\n",
            FileFormat::Csv,
            m,
        );
        let e = got[0].as_ref().unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (2, Some("failed (column lost)"))
        );
        let e = got[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (3, Some("duration_seconds")));
        let got = rows(
            "sla,started_at\na,yesterday\n",
            FileFormat::Csv,
            Mapping::default(),
        );
        assert!(
            got[0]
                .as_ref()
                .unwrap_err()
                .reason
                .contains("neither an RFC 3339")
        );
        let got = rows("a,b\n1,2,3\n", FileFormat::Csv, Mapping::default());
        assert_eq!(
            got[0].as_ref().unwrap_err().line,
            2,
            "a row with too many cells"
        );
    }

    #[test]
    fn ndjson_lines_pass_as_they_are_and_keep_their_line_numbers() {
        let text = "{\"sla\":\"a\",\"duration\":\"1s\"}\n\n{\"sla\":\"a\",\"extra\":1}\n";
        let got: Vec<Row> = rows(text, FileFormat::Ndjson, Mapping::default())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(
            got[1].json, "{\"sla\":\"a\",\"extra\":1}",
            "the decoder refuses it, naming the field"
        );
        let mut m = Mapping::default();
        m.column("duration=took").unwrap();
        let got = rows(
            "{\"sla\":\"a\",\"took\":\"2s\",\"note\":\"x\"}\n",
            FileFormat::Ndjson,
            m,
        );
        assert_eq!(
            got[0].as_ref().unwrap().json,
            r#"{"duration":"2s","sla":"a"}"#
        );
    }

    #[test]
    fn mapping_flags_are_checked() {
        let mut m = Mapping::default();
        assert_eq!(
            m.column("durration=x"),
            Err(MappingError::Field("durration".into()))
        );
        assert_eq!(m.column("id"), Err(MappingError::Shape("id".into())));
        assert_eq!(m.label("=x"), Err(MappingError::Shape("=x".into())));
        assert_eq!(FileFormat::of(Path::new("a.CSV")), FileFormat::Csv);
        assert_eq!(FileFormat::of(Path::new("a.ndjson")), FileFormat::Ndjson);
    }
}

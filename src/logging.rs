//! Log lines on stderr as logfmt or JSON, both with the keys Prometheus
//! exporters and Loki's parsers expect first: `ts`, `level`, `msg`, then the
//! event's fields (and `target`, the module that logged).

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, RunArgs};

/// Installs the global subscriber: `--log.level` (or `RUST_LOG`) and
/// `--log.format`, to stderr.
pub fn init(args: &RunArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.as_str()));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Logfmt => registry.with(layer.event_format(Line::Logfmt)).init(),
        LogFormat::Json => registry.with(layer.event_format(Line::Json)).init(),
    }
}

/// How an event is written: `ts` (RFC 3339, UTC), `level`, `msg`, the
/// event's fields in the order given, then `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// `key=value` pairs; values quoted when they hold spaces, `=`, quotes
    /// or control characters (the logfmt of go-kit/log and Loki's parser).
    Logfmt,
    /// One JSON object.
    Json,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = self.render(event, jiff::Timestamp::now());
        writeln!(writer, "{line}")
    }
}

impl Line {
    /// The line of `event`, logged at `at`.
    fn render(self, event: &Event<'_>, at: jiff::Timestamp) -> String {
        let meta = event.metadata();
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let msg = fields
            .0
            .iter()
            .position(|(k, _)| k == "message")
            .map(|i| fields.0.remove(i).1)
            .unwrap_or(Value::String(String::new()));
        let mut all = vec![
            ("ts".to_owned(), Value::String(at.to_string())),
            (
                "level".to_owned(),
                Value::String(meta.level().as_str().to_ascii_lowercase()),
            ),
            ("msg".to_owned(), msg),
        ];
        all.append(&mut fields.0);
        all.push(("target".to_owned(), Value::String(meta.target().to_owned())));
        match self {
            Line::Logfmt => all
                .iter()
                .map(|(k, v)| format!("{k}={}", logfmt_value(v)))
                .collect::<Vec<_>>()
                .join(" "),
            Line::Json => {
                let pairs: Vec<String> = all
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            }
        }
    }
}

/// A value as logfmt writes it.
fn logfmt_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if plain {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An event's fields as JSON values, in the order given: numbers and
/// booleans as such, the rest as the text they display as.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.push((field.name().to_owned(), value));
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_values_are_quoted_only_when_they_must_be() {
        let cases = [
            (Value::from("data"), "data"),
            (Value::from("state restored"), "\"state restored\""),
            (Value::from(""), "\"\""),
            (Value::from("a=b"), "\"a=b\""),
            (Value::from("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\""),
            (Value::from(42), "42"),
            (Value::from(true), "true"),
        ];
        for (value, want) in cases {
            assert_eq!(logfmt_value(&value), want, "{value}");
        }
    }
}

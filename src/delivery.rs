//! The one value every source emits, and the checks that admit it.

use std::sync::Arc;
use std::time::Duration;

use crate::decimal::Decimal;
use crate::sla::Catalog;
use crate::source::Reason;
use crate::window::Millis;

/// Unix time in nanoseconds: instants as RFC 3339 timestamps carry them.
pub type Nanos = i64;

/// Longest delivery time accepted; anything longer is a unit mistake.
pub const MAX_DURATION: Duration = Duration::from_secs(400 * 86400);

/// Separates label values inside a series key; refused inside values.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// A delivery admitted against a catalog: its SLA resolved, labels checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Index of the SLA in the catalog it was admitted against.
    pub sla: usize,
    /// Label values in the SLA's label order, joined by [`KEY_SEPARATOR`];
    /// shared by the deliveries of one series in a batch.
    pub key: Arc<str>,
    /// Delivered, and how long it took, or failed.
    pub outcome: Outcome,
    /// When it completed.
    pub at: Millis,
    /// Makes a retry idempotent per SLA.
    pub id: Option<Box<str>>,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered after `took` (whole nanoseconds, so every threshold
    /// compares exactly), at most [`MAX_DURATION`].
    Delivered {
        /// How long it took.
        took: Duration,
    },
    /// Never delivered: late by definition.
    Failed,
}

/// How long a delivery took, as a source read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timing {
    /// A measured duration; completed at `at`, or now.
    Took {
        /// How long it took.
        took: Duration,
        /// When it completed.
        at: Option<Millis>,
    },
    /// Started and completed at these times (unix nanoseconds, as
    /// RFC 3339 gives them).
    Between {
        /// When it started.
        started: Nanos,
        /// When it completed.
        delivered: Nanos,
    },
    /// Never delivered; failed at `at`, or now.
    Failed {
        /// When it failed.
        at: Option<Millis>,
    },
}

/// A delivery as a source read it, before admission.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The SLA's name.
    pub sla: &'a str,
    /// Label name and value pairs.
    pub labels: &'a [(&'a str, &'a str)],
    /// How long it took, or that it failed.
    pub timing: Timing,
    /// Makes a retry idempotent per SLA.
    pub id: Option<&'a str>,
}

/// What an open-delivery event does to its delivery's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// Opens the delivery; its clock starts.
    Start,
    /// Stops the clock (waiting on the customer, say).
    Pause,
    /// Starts the clock again.
    Resume,
    /// Delivered (or failed): records the clock time as a delivery.
    Finish,
}

impl Kind {
    /// The event's name in the API: `start`, `pause`, `resume`, `finish`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Pause => "pause",
            Kind::Resume => "resume",
            Kind::Finish => "finish",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Start, Kind::Pause, Kind::Resume, Kind::Finish]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An open-delivery event admitted against a catalog: the other value
/// sources emit besides [`Delivery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index of the SLA in the catalog.
    pub sla: usize,
    /// The delivery's id, unique per SLA.
    pub id: Box<str>,
    /// What it does.
    pub kind: Kind,
    /// Series key (label values); set on start only.
    pub key: Box<str>,
    /// Failed finish: never delivered.
    pub failed: bool,
    /// When it happened.
    pub at: Millis,
    /// Whether the client gave `at` (else it is the time of arrival).
    pub explicit_at: bool,
}

/// An open-delivery event as a client sent it, before admission.
#[derive(Debug, Clone, Copy)]
pub struct EventInput<'a> {
    /// The SLA's name.
    pub sla: &'a str,
    /// The delivery's id, unique per SLA.
    pub id: &'a str,
    /// What the event does.
    pub kind: Kind,
    /// Start only.
    pub labels: &'a [(&'a str, &'a str)],
    /// A finish that was never delivered.
    pub failed: bool,
    /// When it happened; the time of arrival when absent.
    pub at: Option<Millis>,
}

/// A series admitted against a catalog: its SLA resolved and its labels
/// checked, so the deliveries of a batch that share labels are admitted
/// against it once.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Index of the SLA in the catalog.
    pub sla: usize,
    /// Label values in the SLA's label order, joined by [`KEY_SEPARATOR`].
    pub key: Arc<str>,
}

/// Why a delivery was refused, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refusal {
    /// The field at fault, as the client wrote it (`labels.route`).
    pub field: String,
    /// What is wrong with it, in words.
    pub reason: String,
    /// The counted reason: one of [`Reason::UnknownSla`], [`Reason::Invalid`],
    /// [`Reason::TooOld`], [`Reason::InFuture`].
    pub kind: Reason,
}

impl Refusal {
    /// An [`Reason::Invalid`] refusal of `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            field: field.into(),
            reason: reason.into(),
            kind: Reason::Invalid,
        }
    }
}

/// How far back a delivery may be dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// Within the SLA's longest window: what live sources deliver.
    #[default]
    Windows,
    /// Within the days the history keeps ([`crate::calendar::HISTORY_DAYS`],
    /// dated in the SLA's calendar zone): backfill. Deliveries older than
    /// every window feed only the history.
    History,
}

impl Catalog {
    /// Checks `input` against this catalog at time `now`.
    pub fn admit(&self, input: &Input<'_>, now: Millis) -> Result<Delivery, Refusal> {
        self.admit_reaching(input, now, Reach::Windows)
    }

    /// Checks `input` at time `now`, dated as far back as `reach` allows.
    pub fn admit_reaching(
        &self,
        input: &Input<'_>,
        now: Millis,
        reach: Reach,
    ) -> Result<Delivery, Refusal> {
        let series = self.series(input.sla, input.labels)?;
        self.admit_series(&series, input.timing, input.id, now, reach)
    }

    /// Resolves `sla` and checks `labels`: the part of admission that
    /// depends on the series only.
    pub fn series(&self, sla: &str, labels: &[(&str, &str)]) -> Result<Series, Refusal> {
        let sla = self.sla_index(sla)?;
        let key = self.series_key(sla, labels)?;
        Ok(Series {
            sla,
            key: Arc::from(key),
        })
    }

    /// Checks the timing and id of a delivery of `series` (admitted
    /// against this catalog) at time `now`.
    pub fn admit_to(
        &self,
        series: &Series,
        timing: Timing,
        id: Option<&str>,
        now: Millis,
    ) -> Result<Delivery, Refusal> {
        self.admit_series(series, timing, id, now, Reach::Windows)
    }

    fn admit_series(
        &self,
        series: &Series,
        timing: Timing,
        id: Option<&str>,
        now: Millis,
        reach: Reach,
    ) -> Result<Delivery, Refusal> {
        let sla_index = series.sla;
        let sla = &self.slas[sla_index];
        let (outcome, at) = match timing {
            Timing::Took { took, at } => (
                Outcome::Delivered {
                    took: checked("duration", took)?,
                },
                at.unwrap_or(now),
            ),
            Timing::Between { started, delivered } => {
                if delivered < started {
                    return Err(Refusal::invalid("delivered_at", "is before started_at"));
                }
                let ms = |ns: Nanos| ns.div_euclid(1_000_000);
                // An SLA with business hours counts working time only, in
                // the milliseconds its calendar counts.
                let took = match &sla.calendar {
                    Some(c) => {
                        let clock = c.working_between(ms(started), ms(delivered));
                        Duration::from_millis(u64::try_from(clock).unwrap_or(0))
                    }
                    None => Duration::from_nanos((delivered - started).unsigned_abs()),
                };
                (
                    Outcome::Delivered {
                        took: checked("started_at", took)?,
                    },
                    ms(delivered),
                )
            }
            Timing::Failed { at } => (Outcome::Failed, at.unwrap_or(now)),
        };
        match reach {
            Reach::Windows => self.check_time(sla_index, "delivered_at", at, now)?,
            Reach::History => self.check_history_time(sla_index, at, now)?,
        }
        if let Some(id) = id {
            self.check_id(id)?;
        }
        Ok(Delivery {
            sla: sla_index,
            key: series.key.clone(),
            outcome,
            at,
            id: id.map(Box::from),
        })
    }

    /// Checks an open-delivery event against this catalog at time `now`.
    /// Whether it follows the delivery's earlier events is decided when it
    /// is applied, in log order.
    pub fn admit_event(&self, input: &EventInput<'_>, now: Millis) -> Result<Event, Refusal> {
        let sla = self.sla_index(input.sla)?;
        self.check_id(input.id)?;
        let key = match input.kind {
            Kind::Start => self.series_key(sla, input.labels)?,
            _ if !input.labels.is_empty() => {
                return Err(Refusal::invalid("labels", "labels are given on start only"));
            }
            _ => Box::from(""),
        };
        if input.failed && input.kind != Kind::Finish {
            return Err(Refusal::invalid("failed", "only a finish can fail"));
        }
        let at = input.at.unwrap_or(now);
        self.check_time(sla, "at", at, now)?;
        Ok(Event {
            sla,
            id: input.id.into(),
            kind: input.kind,
            key,
            failed: input.failed,
            at,
            explicit_at: input.at.is_some(),
        })
    }

    fn sla_index(&self, name: &str) -> Result<usize, Refusal> {
        self.index(name).ok_or_else(|| Refusal {
            field: "sla".into(),
            reason: format!(
                "unknown SLA `{name}`; configured: {}",
                self.names().join(", ")
            ),
            kind: Reason::UnknownSla,
        })
    }

    /// `at` must lie within the SLA's longest window and not in the future.
    fn check_time(&self, sla: usize, field: &str, at: Millis, now: Millis) -> Result<(), Refusal> {
        let span = self.slas[sla]
            .window
            .max(crate::window::LONGEST_ALERT_WINDOW);
        if at < now - millis(span) {
            return Err(Refusal {
                field: field.into(),
                reason: format!(
                    "is before the SLA's longest window ({}) began",
                    humantime::format_duration(span)
                ),
                kind: Reason::TooOld,
            });
        }
        if at > now + millis(self.limits.max_future_skew) {
            return Err(Refusal {
                field: field.into(),
                reason: format!(
                    "is more than {} in the future",
                    humantime::format_duration(self.limits.max_future_skew)
                ),
                kind: Reason::InFuture,
            });
        }
        Ok(())
    }

    /// `at` must fall on a day the SLA's history keeps, and not in the future.
    fn check_history_time(&self, sla: usize, at: Millis, now: Millis) -> Result<(), Refusal> {
        let kept = self.slas[sla].clock().in_history(at, now);
        if !kept {
            return Err(Refusal {
                field: "delivered_at".into(),
                reason: format!(
                    "is older than the {} days of history an SLA keeps",
                    crate::calendar::HISTORY_DAYS
                ),
                kind: Reason::TooOld,
            });
        }
        // The future is refused as for live deliveries.
        let span = self.slas[sla]
            .window
            .max(crate::window::LONGEST_ALERT_WINDOW);
        self.check_time(sla, "delivered_at", at.max(now - millis(span)), now)
    }

    fn check_id(&self, id: &str) -> Result<(), Refusal> {
        if id.is_empty() || id.len() > self.limits.max_label_value_length {
            return Err(Refusal::invalid(
                "id",
                format!(
                    "must be 1 to {} bytes long",
                    self.limits.max_label_value_length
                ),
            ));
        }
        Ok(())
    }

    /// Joins label values in the SLA's label order; unknown keys are refused.
    fn series_key(&self, sla_index: usize, labels: &[(&str, &str)]) -> Result<Box<str>, Refusal> {
        let sla = &self.slas[sla_index];
        if labels.is_empty() {
            return Ok(Box::from(""));
        }
        let mut values = vec![""; sla.labels.len()];
        for (k, v) in labels {
            let Some(i) = sla.labels.iter().position(|l| l == k) else {
                let allowed = if sla.labels.is_empty() {
                    "none".to_owned()
                } else {
                    sla.labels.join(", ")
                };
                return Err(Refusal::invalid(
                    format!("labels.{k}"),
                    format!(
                        "`{k}` is not a label of SLA `{}`; allowed: {allowed}",
                        sla.name
                    ),
                ));
            };
            if v.len() > self.limits.max_label_value_length {
                return Err(Refusal::invalid(
                    format!("labels.{k}"),
                    format!(
                        "value is {} bytes; the limit is {}",
                        v.len(),
                        self.limits.max_label_value_length
                    ),
                ));
            }
            if v.chars().any(char::is_control) {
                return Err(Refusal::invalid(
                    format!("labels.{k}"),
                    "value contains a control character",
                ));
            }
            values[i] = v;
        }
        let mut key = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            key.push_str(v);
        }
        Ok(key.into_boxed_str())
    }
}

/// A duration written as a number of `unit`s, as JSON, logs and StatsD
/// write them (`183`, `0.05`, `1.5e-3`): exact for plain decimals (`0.27`
/// seconds is exactly 270 ms), rounded to the nearest nanosecond otherwise,
/// so every source reads the same text as the same duration. Saturates past
/// [`Duration::MAX`]. `None` unless a non-negative number.
pub fn parse_amount(text: &str, unit: Duration) -> Option<Duration> {
    Amount::parse(text).map(|a| a.of(unit))
}

/// A non-negative number as written, read once and converted to a duration
/// in whatever unit applies ([`parse_amount`] in two steps, for sources that
/// learn the unit after the number).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// A plain decimal (`183.5`): converts exactly.
    Exact(Decimal),
    /// Anything else `f64` reads (`1.5e-3`): finite, non-negative.
    Approximate(f64),
}

impl Amount {
    /// Reads `text` (surrounding spaces ignored); `None` unless a finite,
    /// non-negative number.
    pub fn parse(text: &str) -> Option<Amount> {
        if let Some(exact) = Decimal::parse_plain(text.as_bytes()) {
            return Some(Amount::Exact(exact));
        }
        let text = text.trim();
        if let Some(exact) = Decimal::parse_plain(text.as_bytes()) {
            return Some(Amount::Exact(exact));
        }
        text.parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .map(Amount::Approximate)
    }

    /// This many `unit`s, to the nearest nanosecond, saturating.
    pub fn of(self, unit: Duration) -> Duration {
        match self {
            Amount::Exact(exact) => exact.of(unit),
            Amount::Approximate(value) => {
                Duration::try_from_secs_f64(value * unit.as_secs_f64()).unwrap_or(Duration::MAX)
            }
        }
    }
}

/// [`parse_amount`] with the refusal a client reads, naming `field`: not a
/// non-negative number, or longer than [`MAX_DURATION`].
pub fn amount(field: &str, text: &str, unit: Duration) -> Result<Duration, Refusal> {
    let shown: String = if text.len() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text.to_owned()
    };
    let unit_name = match unit.as_nanos() {
        1_000_000_000 => "s",
        1_000_000 => "ms",
        1_000 => "us",
        _ => "units",
    };
    let took = parse_amount(text, unit).ok_or_else(|| {
        Refusal::invalid(
            field,
            format!("`{shown}` is not a duration: give a number of {unit_name}, zero or more"),
        )
    })?;
    if took > MAX_DURATION {
        return Err(too_long(field, &format!("`{shown}` {unit_name}")));
    }
    Ok(took)
}

/// `took` if it is at most [`MAX_DURATION`].
fn checked(field: &str, took: Duration) -> Result<Duration, Refusal> {
    if took > MAX_DURATION {
        return Err(too_long(
            field,
            &humantime::format_duration(took).to_string(),
        ));
    }
    Ok(took)
}

fn too_long(field: &str, shown: &str) -> Refusal {
    Refusal::invalid(
        field,
        format!(
            "{shown} is longer than the {}-day limit",
            MAX_DURATION.as_secs() / 86_400
        ),
    )
}

/// `d` in whole milliseconds, saturating.
pub fn millis(d: Duration) -> Millis {
    d.as_millis().min(i64::MAX as u128) as Millis
}

/// Splits a series key back into its label values.
pub fn key_values(key: &str) -> impl Iterator<Item = &str> {
    key.split(KEY_SEPARATOR)
}

//! Validated SLAs: the promise, objective and margins every figure is judged against.

use std::sync::Arc;
use std::time::Duration;

use crate::calendar::Calendar;
use crate::decimal::Decimal;
use crate::margin::Policy;

/// One named promise, already validated (see `config::validate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    /// Its name, unique in the config; the `sla` label.
    pub name: String,
    /// What it promises, in words.
    pub description: String,
    /// The default promise T.
    pub promise: Duration,
    /// Fraction of deliveries that must be within the promise, in (0, 1),
    /// exactly as written.
    pub objective: Decimal,
    /// The amaze goal: margin at or above which the SLA is amazing, in (0, 1).
    pub target_margin: Option<Decimal>,
    /// Warn when the margin falls below this, in [0, target]; open
    /// deliveries are at risk past (1 - alert_margin) x promise.
    pub alert_margin: Decimal,
    /// Compliance window.
    pub window: Duration,
    /// Fewer deliveries than this and a window is counted, not assessed.
    pub min_deliveries: u64,
    /// Allowed label keys, in the order series keys are built.
    pub labels: Vec<String>,
    /// Per-label promises, first match wins.
    pub goals: Vec<Goal>,
    /// Label combinations tracked before new ones fold into the overflow series.
    pub max_series: usize,
    /// When a write of its deliveries is acknowledged.
    pub durability: Durability,
    /// Warn when the margin's trend reaches zero within this.
    pub forecast_horizon: Duration,
    /// Business hours every clock of this SLA runs on; `None` runs round the clock.
    pub calendar: Option<Arc<Calendar>>,
    /// Report compliance per calendar month (in the calendar's zone, else
    /// UTC) besides the rolling windows.
    pub calendar_month: bool,
    /// Labels of the windows exported per label set (`scope="series"`),
    /// [`DEFAULT_SERIES_WINDOWS`] unless configured. The SLA-wide series
    /// keeps every window.
    pub series_windows: Vec<String>,
}

/// Windows exported per label set when an SLA does not choose: the last
/// hour keeps each label set at 30 samples or fewer (the SLA-wide series
/// exports every window).
pub const DEFAULT_SERIES_WINDOWS: [&str; 1] = ["1h"];

/// When a push of this SLA's deliveries is acknowledged (DESIGN.md §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// After the batch is in the log and fdatasync'd: survives power loss.
    #[default]
    Sync,
    /// After the batch is written to the log; synced within a second. Survives
    /// a crash of the exporter, may lose the last second on power loss.
    Async,
    /// Not logged; kept by snapshots only. A crash loses what arrived since
    /// the last snapshot. For very high-volume latency data.
    None,
}

impl Durability {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
            Durability::None => "none",
        }
    }
}

/// A promise that replaces the default for deliveries whose labels match.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// (index into `Sla::labels`, required value).
    pub matches: Vec<(usize, String)>,
    /// The promise that applies.
    pub promise: Duration,
}

impl Goal {
    /// Whether label values `values` (in the SLA's label order) match.
    pub fn matches(&self, values: &[&str]) -> bool {
        self.matches
            .iter()
            .all(|(i, v)| values.get(*i).is_some_and(|x| x == v))
    }
}

/// The clock of an SLA without a calendar: round the clock, in UTC.
static ROUND_THE_CLOCK: std::sync::LazyLock<Calendar> = std::sync::LazyLock::new(Calendar::always);

impl Sla {
    /// The calendar its clocks run on and its days are dated in: its own,
    /// or round the clock in UTC.
    pub fn clock(&self) -> &Calendar {
        self.calendar.as_deref().unwrap_or(&ROUND_THE_CLOCK)
    }

    /// A goal's labels as `priority=P1` (several joined by `,`).
    pub fn goal_labels(&self, goal: &Goal) -> String {
        goal.matches
            .iter()
            .map(|(i, v)| format!("{}={v}", self.labels.get(*i).map_or("?", String::as_str)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The promise for a series with these label values (in `labels` order).
    pub fn promise_for(&self, values: &[&str]) -> Duration {
        self.goals
            .iter()
            .find(|g| g.matches(values))
            .map_or(self.promise, |g| g.promise)
    }

    /// What its windows are judged by.
    pub fn policy(&self) -> Policy {
        Policy {
            objective: self.objective,
            target_margin: self.target_margin,
            min_deliveries: self.min_deliveries,
        }
    }

    /// Whether every series of this SLA shares one promise.
    pub fn single_promise(&self) -> bool {
        self.goals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support() -> Sla {
        Sla {
            name: "support".into(),
            description: String::new(),
            promise: Duration::from_secs(8 * 3600),
            objective: Decimal::new(95, 2),
            target_margin: Some(Decimal::new(5, 1)),
            alert_margin: Decimal::new(25, 2),
            window: Duration::from_secs(30 * 86400),
            min_deliveries: 10,
            labels: vec!["priority".into(), "channel".into()],
            goals: vec![Goal {
                matches: vec![(0, "P1".into())],
                promise: Duration::from_secs(3600),
            }],
            max_series: 100,
            durability: Durability::Sync,
            forecast_horizon: Duration::from_secs(86400),
            calendar: None,
            calendar_month: false,
            series_windows: DEFAULT_SERIES_WINDOWS.map(str::to_owned).to_vec(),
        }
    }

    #[test]
    fn goal_overrides_the_promise_for_matching_labels() {
        let sla = support();
        assert_eq!(sla.promise_for(&["P1", "email"]), Duration::from_secs(3600));
        assert_eq!(
            sla.promise_for(&["P2", "email"]),
            Duration::from_secs(8 * 3600)
        );
        assert_eq!(sla.promise_for(&["", ""]), Duration::from_secs(8 * 3600));
    }
}

/// Input limits shared by every source.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How far in the future a delivery may claim to have completed.
    pub max_future_skew: Duration,
    /// Longest label value and id, in bytes.
    pub max_label_value_length: usize,
    /// Delivery ids remembered per SLA for idempotency; the oldest are forgotten first.
    pub max_tracked_ids: usize,
    /// Deliveries or events one request may carry.
    pub max_lines_per_request: usize,
    /// Request bodies being handled at once; past it writes get 429. Read
    /// at start only.
    pub max_inflight_bytes: usize,
    /// Open deliveries per SLA; past it a start gets 429.
    pub max_open_deliveries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_future_skew: Duration::from_secs(5 * 60),
            max_label_value_length: 256,
            max_tracked_ids: 1_000_000,
            max_lines_per_request: 100_000,
            max_inflight_bytes: 256 << 20,
            max_open_deliveries: 100_000,
        }
    }
}

/// Every SLA of one config, looked up by name, with the limits inputs obey.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Every SLA, in config order; a delivery's `sla` indexes this.
    pub slas: Vec<Sla>,
    /// What every input must keep to.
    pub limits: Limits,
    /// Who may write; read again from its files at every reload.
    pub auth: crate::auth::Auth,
    /// Which OTLP spans become deliveries of which SLA, first match wins.
    pub spans: Vec<crate::span_rule::SpanRule>,
    /// Looked up for every delivery: foldhash, not SipHash.
    by_name: foldhash::HashMap<String, usize>,
}

impl Catalog {
    /// Indexes `slas` by name; their names are unique (config validation).
    pub fn with(
        slas: Vec<Sla>,
        limits: Limits,
        auth: crate::auth::Auth,
        spans: Vec<crate::span_rule::SpanRule>,
    ) -> Self {
        let by_name = slas
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Catalog {
            slas,
            limits,
            auth,
            spans,
            by_name,
        }
    }

    /// The index of the SLA named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Names of every SLA, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.slas.iter().map(|s| s.name.as_str()).collect()
    }
}

/// The catalog in force, swapped whole by a reload. Handlers and sources
/// admit against it; the journal, which applies reloads in log order, is
/// its one writer. Reading never blocks.
#[derive(Clone)]
pub struct LiveCatalog(Arc<arc_swap::ArcSwap<Catalog>>);

impl LiveCatalog {
    /// Starts with `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> LiveCatalog {
        LiveCatalog(Arc::new(arc_swap::ArcSwap::new(catalog)))
    }

    /// The catalog in force now.
    pub fn get(&self) -> Arc<Catalog> {
        self.0.load_full()
    }

    /// Puts `catalog` in force.
    pub fn set(&self, catalog: Arc<Catalog>) {
        self.0.store(catalog);
    }
}

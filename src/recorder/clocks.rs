//! The recorder's side of open deliveries: events applied under each SLA's
//! lock (a finish records its delivery there too), at-risk summaries for
//! `/metrics`, and the open-items listing.

use serde::Serialize;

use super::open::{Event, Finished, OpenItems, OpenState, Transition, rfc3339};
use super::{Lsn, Recorded, Recorder, lock, retention};
use crate::decimal::Decimal;
use crate::delivery::{Delivery, Outcome, key_values};
use crate::sla::Sla;
use crate::window::Millis;

/// An SLA's open deliveries at one instant, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenSummary {
    /// Open deliveries per [`OpenState::ALL`].
    pub by_state: [u64; 3],
    /// Largest elapsed / promise among open deliveries; 0 when none.
    pub oldest_ratio: f64,
    /// Open deliveries that ever went past their promise.
    pub became_overdue: u64,
}

/// One open delivery as `GET /api/v1/open` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenView {
    /// The SLA.
    pub sla: String,
    /// The delivery's id.
    pub id: String,
    /// Its labels, by name; empty values left out.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `on_track`, `at_risk` or `overdue`.
    pub state: OpenState,
    /// Whether its clock is stopped.
    pub paused: bool,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// Its promise.
    pub promise_seconds: f64,
    /// Clock time so far: working time while not paused.
    pub elapsed_seconds: f64,
    /// Negative once overdue.
    pub remaining_seconds: f64,
    /// The instant its clock reaches (or reached) the promise; null while
    /// paused short of it.
    pub due_at: Option<String>,
    /// `due_at` in unix milliseconds, for ordering.
    #[serde(skip)]
    pub due: Option<Millis>,
}

/// Fraction of the promise past which an open delivery is at risk:
/// 1 - alert_margin, exact.
fn at_risk_after(sla: &Sla) -> Decimal {
    sla.alert_margin.complement().unwrap_or(Decimal::ONE)
}

impl Recorder {
    /// Applies open-delivery events admitted against [`Recorder::catalog`],
    /// each SLA's share under one hold of its lock; `lsn` as for
    /// [`Recorder::record`]. A log record holds events or deliveries, never
    /// both, so the two never share an SLA's `lsn` step.
    pub fn apply_events(&self, events: &[Event], now: Millis, lsn: Option<Lsn>) -> Recorded {
        let mut out = Recorded {
            events: vec![Ok(Transition::Unchanged); events.len()],
            ..Recorded::default()
        };
        let mut done = vec![false; self.slas.len()];
        for e in events {
            if std::mem::replace(&mut done[e.sla], true) {
                continue;
            }
            let mut state = lock(&self.slas[e.sla]);
            if let Some(lsn) = lsn {
                if state.data.lsn >= lsn {
                    continue;
                }
                state.data.lsn = lsn;
            }
            let sla = &self.catalog.slas[e.sla];
            let calendar = sla.clock();
            for (i, e) in events.iter().enumerate().filter(|(_, x)| x.sla == e.sla) {
                let values: Vec<&str> = key_values(&e.key).collect();
                let promise = sla.promise_for(&values);
                let finished = state.data.ids.contains(&e.id);
                let cap = self.catalog.limits.max_open_deliveries;
                let applied = state.data.open.apply(e, calendar, promise, finished, cap);
                out.events[i] = applied.map(|(transition, finish)| {
                    if let Some(Finished { key, took, at }) = finish {
                        let d = Delivery {
                            sla: e.sla,
                            key: key.into(),
                            outcome: took
                                .map_or(Outcome::Failed, |took| Outcome::Delivered { took }),
                            at,
                            id: Some(e.id.clone()),
                        };
                        state.data.ids.insert(
                            &e.id,
                            now,
                            retention(sla),
                            self.catalog.limits.max_tracked_ids,
                        );
                        state.record(sla, &d, now);
                        out.accepted += 1;
                    }
                    transition
                });
            }
        }
        out
    }

    /// Open deliveries at `now` that `keep` accepts, soonest due first (the
    /// most overdue leading), ties by SLA and id; then those paused short of
    /// their promise, least clock time remaining first, ties by SLA and id.
    pub fn open_items(&self, now: Millis, keep: impl Fn(&OpenView) -> bool) -> Vec<OpenView> {
        let mut out = Vec::new();
        for (sla, state) in self.catalog.slas.iter().zip(&self.slas) {
            let state = lock(state);
            let calendar = sla.clock();
            for (id, item) in state.data.open.iter() {
                let elapsed = item.elapsed(calendar, now);
                let due = item.due(calendar);
                let unknown_due = item.fell_due_unknown();
                let view = OpenView {
                    sla: sla.name.clone(),
                    id: id.to_owned(),
                    labels: sla
                        .labels
                        .iter()
                        .cloned()
                        .zip(key_values(&item.key).map(str::to_owned))
                        .filter(|(_, v)| !v.is_empty())
                        .collect(),
                    state: item.state(elapsed, at_risk_after(sla)),
                    paused: item.paused(),
                    started_at: rfc3339(item.started),
                    promise_seconds: item.promise.as_secs_f64(),
                    elapsed_seconds: elapsed as f64 / 1000.0,
                    remaining_seconds: (item.promise.as_nanos() as i128
                        - i128::from(elapsed) * 1_000_000)
                        as f64
                        / 1e9,
                    due_at: due.map(rfc3339),
                    // Fell due at an instant an older release did not keep:
                    // among the most overdue.
                    due: if unknown_due { Some(Millis::MIN) } else { due },
                };
                if keep(&view) {
                    out.push(view);
                }
            }
        }
        out.sort_by(|a, b| {
            // Items without a due instant go last, by remaining clock time.
            let remaining = |v: &OpenView| {
                if v.due.is_some() {
                    0.0
                } else {
                    v.remaining_seconds
                }
            };
            (a.due.is_none(), a.due)
                .cmp(&(b.due.is_none(), b.due))
                .then(remaining(a).total_cmp(&remaining(b)))
                .then_with(|| (&a.sla, &a.id).cmp(&(&b.sla, &b.id)))
        });
        out
    }
}

/// `sla`'s open deliveries at `now`, counting the ones that just went overdue.
pub(super) fn summarize(open: &mut OpenItems, sla: &Sla, now: Millis) -> OpenSummary {
    let calendar = sla.clock();
    open.count_overdue(calendar, now);
    let mut summary = OpenSummary {
        became_overdue: open.became_overdue,
        ..OpenSummary::default()
    };
    for (_, item) in open.iter() {
        let elapsed = item.elapsed(calendar, now);
        let state = item.state(elapsed, at_risk_after(sla));
        summary.by_state[state as usize] += 1;
        let ratio = elapsed as f64 / 1000.0 / item.promise.as_secs_f64().max(1e-9);
        summary.oldest_ratio = summary.oldest_ratio.max(ratio);
    }
    summary
}

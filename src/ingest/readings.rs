//! Deliveries as sources read them, before admission: one [`Reading`], and
//! [`Readings`], a batch grouped by series, the shape sources hand to
//! [`super::SourceContext::deliver`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::delivery::Timing;

/// Label name and value pairs, shared by the readings of a series.
pub type Labels = Arc<[(String, String)]>;

/// One delivery as a source read it, owning its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Shared: a source names the same SLA for millions of readings.
    pub sla: Arc<str>,
    /// Label name and value pairs.
    pub labels: Labels,
    /// How long it took, or that it failed.
    pub timing: Timing,
}

/// Where a series sits in one [`Readings`]; meaningless in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

/// Readings grouped by series: each series' SLA and labels once, then each
/// delivery as its series' slot and its timing (16 bytes), so a source that
/// reads a few series millions of times (StatsD) hands over no per-delivery
/// text, and admission checks each series once.
#[derive(Debug, Clone)]
pub struct Readings {
    /// Tells batches apart, so a source can keep slots per batch.
    id: u64,
    series: Vec<(Arc<str>, Labels)>,
    items: Vec<(Slot, Timing)>,
}

/// Batches made so far; each takes the next id.
static BATCHES: AtomicU64 = AtomicU64::new(0);

impl Default for Readings {
    fn default() -> Self {
        Readings::with_capacity(0)
    }
}

impl Readings {
    /// An empty batch with room for `items` deliveries.
    pub fn with_capacity(items: usize) -> Readings {
        Readings {
            id: BATCHES.fetch_add(1, Ordering::Relaxed),
            series: Vec::new(),
            items: Vec::with_capacity(items),
        }
    }

    /// This batch's identity: slots from [`Readings::series`] are valid for
    /// the batch with the same id only.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Adds a series and returns its slot (a series added twice is admitted
    /// twice, to the same result).
    pub fn series(&mut self, sla: &Arc<str>, labels: &Labels) -> Slot {
        self.series.push((sla.clone(), labels.clone()));
        Slot(u32::try_from(self.series.len() - 1).unwrap_or(u32::MAX))
    }

    /// Adds `copies` deliveries of the series in `slot` that took `timing`.
    pub fn push(&mut self, slot: Slot, timing: Timing, copies: usize) {
        self.items
            .extend(std::iter::repeat_n((slot, timing), copies));
    }

    /// Adds one reading as a series of its own.
    pub fn push_reading(&mut self, reading: Reading) {
        self.series.push((reading.sla, reading.labels));
        let slot = Slot(u32::try_from(self.series.len() - 1).unwrap_or(u32::MAX));
        self.items.push((slot, reading.timing));
    }

    /// Deliveries in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No deliveries.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The series, in slot order.
    pub fn all_series(&self) -> &[(Arc<str>, Labels)] {
        &self.series
    }

    /// Each delivery: its series' place in [`Readings::all_series`] and its
    /// timing.
    pub fn items(&self) -> impl Iterator<Item = (usize, Timing)> + '_ {
        self.items.iter().map(|(s, t)| (s.0 as usize, *t))
    }

    /// Delivery `i`: its series' place and its timing.
    pub fn item(&self, i: usize) -> Option<(usize, Timing)> {
        self.items.get(i).map(|(s, t)| (s.0 as usize, *t))
    }

    /// Each delivery as a [`Reading`] (tests and small batches).
    pub fn readings(&self) -> impl Iterator<Item = Reading> + '_ {
        self.items.iter().filter_map(|(slot, timing)| {
            let (sla, labels) = self.series.get(slot.0 as usize)?;
            Some(Reading {
                sla: sla.clone(),
                labels: labels.clone(),
                timing: *timing,
            })
        })
    }
}

impl FromIterator<Reading> for Readings {
    fn from_iter<I: IntoIterator<Item = Reading>>(iter: I) -> Readings {
        let mut out = Readings::default();
        for r in iter {
            out.push_reading(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn took(ms: u64) -> Timing {
        Timing::Took {
            took: Duration::from_millis(ms),
            at: None,
        }
    }

    #[test]
    fn deliveries_keep_their_series_and_order() {
        let sla: Arc<str> = "api".into();
        let a: Labels = vec![("route".to_owned(), "/a".to_owned())].into();
        let b: Labels = vec![("route".to_owned(), "/b".to_owned())].into();
        let mut batch = Readings::with_capacity(4);
        let (sa, sb) = (batch.series(&sla, &a), batch.series(&sla, &b));
        batch.push(sb, took(2), 1);
        batch.push(sa, took(1), 2);
        assert_eq!(batch.len(), 3);
        let got: Vec<(String, Timing)> = batch
            .readings()
            .map(|r| (r.labels[0].1.clone(), r.timing))
            .collect();
        assert_eq!(
            got,
            [
                ("/b".to_owned(), took(2)),
                ("/a".to_owned(), took(1)),
                ("/a".to_owned(), took(1))
            ]
        );
        assert_ne!(
            batch.id(),
            Readings::default().id(),
            "batches are told apart"
        );
    }
}

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

/// Series a [`SeriesCache`] remembers; past it, it starts afresh.
const REMEMBERED: usize = 10_000;

/// The SLA names and labels a source has built, by their text, so that the
/// readings of one series share them: built once, not per line, and added
/// to each batch once ([`SeriesCache::slot`]).
///
/// One serves one list of label names (one line spec, one mapping): it
/// tells series apart by SLA name and label values.
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// Places in `entries`, by SLA name and label values.
    known: foldhash::HashMap<Box<[u8]>, usize>,
    entries: Vec<Entry>,
    /// The entry found last: runs of one series skip the lookup.
    last: Option<usize>,
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    sla: Arc<str>,
    labels: Labels,
    /// Its slot in the batch being filled: valid while the batch id matches.
    slot: Option<(u64, Slot)>,
}

impl SeriesCache {
    /// The slot in `out` of the series of `sla` and `values` (named by
    /// `names`), added to `out` the first time.
    pub fn slot<'a>(
        &mut self,
        sla: &str,
        names: impl Iterator<Item = &'a str>,
        values: &[&str],
        out: &mut Readings,
    ) -> Slot {
        let i = self.find(sla, names, values);
        let e = &mut self.entries[i];
        match e.slot {
            Some((batch, slot)) if batch == out.id() => slot,
            _ => {
                let slot = out.series(&e.sla, &e.labels);
                e.slot = Some((out.id(), slot));
                slot
            }
        }
    }

    /// The place in `entries` of the series, added if new.
    fn find<'a>(
        &mut self,
        sla: &str,
        names: impl Iterator<Item = &'a str>,
        values: &[&str],
    ) -> usize {
        if let Some(i) = self.last
            && let Some(e) = self.entries.get(i)
            && *e.sla == *sla
            && e.labels.len() == values.len()
            && e.labels.iter().zip(values).all(|((_, a), b)| a == b)
        {
            return i;
        }
        encode_values(
            &mut self.scratch,
            std::iter::once(sla).chain(values.iter().copied()),
        );
        let i = match self.known.get(self.scratch.as_slice()) {
            Some(i) => *i,
            None => {
                if self.entries.len() >= REMEMBERED {
                    self.known.clear();
                    self.entries.clear();
                }
                self.entries.push(Entry {
                    sla: Arc::from(sla),
                    labels: names
                        .zip(values)
                        .map(|(n, v)| (n.to_owned(), (*v).to_owned()))
                        .collect(),
                    slot: None,
                });
                self.known
                    .insert(self.scratch.as_slice().into(), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        self.last = Some(i);
        i
    }
}

/// Writes `values` to `out` as one lookup key: each prefixed by its length,
/// so no two lists write the same bytes.
pub fn encode_values<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a str>) {
    out.clear();
    // Never empty: an empty boxed key has a dangling address, and comparing
    // against it costs a fault-suppressing masked load on every lookup.
    out.push(b'v');
    for v in values {
        out.extend_from_slice(&v.len().to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
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
    /// Slots of the series added by [`Readings::push_reading`], by the
    /// addresses of their SLA name and labels (held in `series`, so no
    /// other series can have them while the batch lives).
    shared: foldhash::HashMap<(usize, usize), Slot>,
    /// The last of `shared` pushed to: runs of one series skip the lookup.
    last: Option<((usize, usize), Slot)>,
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
            shared: Default::default(),
            last: None,
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

    /// Adds one reading: to the series of an earlier reading with the same
    /// SLA name and labels `Arc`s (see [`SeriesCache`]), else as a new one.
    pub fn push_reading(&mut self, reading: Reading) {
        let at = (
            Arc::as_ptr(&reading.sla).cast::<u8>() as usize,
            Arc::as_ptr(&reading.labels).cast::<u8>() as usize,
        );
        let slot = match (self.last, self.shared.get(&at)) {
            (Some((last, slot)), _) if last == at => slot,
            (_, Some(slot)) => *slot,
            (_, None) => {
                let slot = self.series(&reading.sla, &reading.labels);
                self.shared.insert(at, slot);
                slot
            }
        };
        self.last = Some((at, slot));
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

    #[test]
    fn a_series_cache_adds_each_series_once_a_batch() {
        let mut cache = SeriesCache::default();
        let names = || ["route", "code"].into_iter();
        let mut batch = Readings::default();
        let a = cache.slot("api", names(), &["/a", "200"], &mut batch);
        let b = cache.slot("api", names(), &["/b", "200"], &mut batch);
        assert_ne!(a, b);
        assert_eq!(cache.slot("api", names(), &["/a", "200"], &mut batch), a);
        assert_ne!(cache.slot("web", names(), &["/a", "200"], &mut batch), a);
        // Values that would join the same are apart.
        let x = cache.slot("api", names(), &["a,b", ""], &mut batch);
        assert_ne!(cache.slot("api", names(), &["a", "b,"], &mut batch), x);
        assert_eq!(batch.all_series().len(), 5);
        let (sla, labels) = &batch.all_series()[0];
        assert_eq!(
            (&**sla, &labels[1]),
            ("api", &("code".into(), "200".into()))
        );
        // A new batch gets the series anew.
        let mut next = Readings::default();
        cache.slot("api", names(), &["/a", "200"], &mut next);
        assert_eq!(next.all_series().len(), 1);
    }
}

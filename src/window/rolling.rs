//! One series' rolling windows: slot rings fed by a base ring, merged at read time.
//!
//! Deliveries land in the finest ring (the base). When a base slot closes it is
//! merged once into the current slot of every coarser ring, so recording costs
//! one sketch insert whatever the number of windows. A window is read as the
//! merge of its ring's slots plus the base slot not yet rolled up. Closed slots
//! of each ring are merged once and cached until the window slides or a late
//! delivery lands in them.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Digest, Millis, Observation, WindowSpec};

/// Serializable for snapshots; the read caches are rebuilt on demand.
/// A clone shares its slots' sketches until either side writes one, so a
/// snapshot copies a series in a few pointer copies while its lock is held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rolling {
    /// One ring per window, finest first; ring 0 is the base.
    rings: Vec<Ring>,
    /// Newest base slot seen.
    high: Option<i64>,
    /// Whether base slot `high` is still to be rolled into the coarser rings.
    pending: bool,
    /// Base slots as they close, (start, deliveries), for whoever follows
    /// them (an SLA's history); `None` when nobody does. Not stored: the
    /// follower asks again after a restore, and a slot still pending then
    /// closes into it as usual.
    #[serde(skip)]
    closed: Option<Vec<(Millis, Arc<Digest>)>>,
}

impl Rolling {
    /// Rings for `windows`, which must be finest first, each slot a multiple of
    /// the first window's slot (see [`super::windows_for`]).
    pub fn new(windows: &[WindowSpec]) -> Self {
        assert!(!windows.is_empty(), "at least one window");
        let base = windows[0].slot;
        assert!(
            windows.iter().all(|w| w.slot % base == 0 && w.slot > 0),
            "every slot is a multiple of the base slot"
        );
        Rolling {
            rings: windows.iter().map(Ring::new).collect(),
            high: None,
            pending: false,
            closed: None,
        }
    }

    /// Keeps every base slot as it closes, for [`Rolling::take_closed`].
    pub fn follow_closed(&mut self) {
        self.closed.get_or_insert_with(Vec::new);
    }

    /// Whether base slots closed since the last [`Rolling::take_closed`].
    #[inline]
    pub fn has_closed(&self) -> bool {
        self.closed.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The base slots closed since the last call, oldest first (none unless
    /// [`Rolling::follow_closed`] was called).
    pub fn take_closed(&mut self) -> Vec<(Millis, Arc<Digest>)> {
        match &mut self.closed {
            Some(closed) if !closed.is_empty() => std::mem::take(closed),
            _ => Vec::new(),
        }
    }

    /// The base slot still open, (start, deliveries), if it holds any.
    pub fn pending_base(&self) -> Option<(Millis, &Digest)> {
        let high = self.high.filter(|_| self.pending)?;
        let base = &self.rings[0];
        Some((high * base.width, base.get(high)?))
    }

    /// Records one delivery that completed at `at`. True when it went into
    /// the open base slot (so it reaches [`Rolling::take_closed`] when that
    /// closes); false for a late delivery, recorded only in the rings that
    /// still keep its time.
    pub fn record(&mut self, at: Millis, obs: Observation) -> bool {
        let slot = self.rings[0].slot_no(at);
        match self.high {
            Some(high) if slot == high && self.pending => {
                self.rings[0].entry(slot).record(obs);
                true
            }
            Some(high) if slot <= high => {
                self.record_late(at, high, obs);
                false
            }
            _ => {
                self.roll_up();
                // A new newest slot: also the moment to drop what has aged out,
                // so memory stays bounded even if nobody reads the windows.
                for ring in &mut self.rings {
                    ring.expire(at);
                }
                self.high = Some(slot);
                self.pending = true;
                self.rings[0].entry(slot).record(obs);
                true
            }
        }
    }

    /// A delivery for a base slot already rolled up goes straight into every
    /// ring that still keeps its time.
    fn record_late(&mut self, at: Millis, high: i64, obs: Observation) {
        let newest = high * self.rings[0].width;
        for ring in &mut self.rings {
            let slot = ring.slot_no(at);
            if slot > ring.slot_no(newest) - ring.len {
                ring.entry(slot).record(obs);
            }
        }
    }

    /// Merges the pending base slot into every coarser ring.
    fn roll_up(&mut self) {
        let Some(high) = self.high.filter(|_| self.pending) else {
            return;
        };
        self.pending = false;
        let (base, coarser) = self.rings.split_at_mut(1);
        let Some(digest) = base[0].get_shared(high) else {
            return;
        };
        let at = high * base[0].width;
        for ring in coarser {
            let slot = ring.slot_no(at);
            ring.entry(slot).merge(&digest);
        }
        if let Some(closed) = &mut self.closed {
            closed.push((at, digest));
        }
    }

    /// Moves every window's end to `now`: rolls up a closed base slot and drops
    /// slots that have left their window.
    pub fn advance(&mut self, now: Millis) {
        if let Some(high) = self.high
            && high < self.rings[0].slot_no(now)
        {
            self.roll_up();
        }
        for ring in &mut self.rings {
            ring.expire(now);
        }
    }

    /// The digest of window `index` ending at `now`. Call [`Rolling::advance`]
    /// with the same `now` first.
    pub fn window(&mut self, index: usize, now: Millis) -> Digest {
        if index == 0 {
            return self.rings[0].read(now);
        }
        let (base, rest) = self.rings.split_at_mut(1);
        let mut digest = rest[index - 1].read(now);
        if let Some(pending) = self.high.filter(|_| self.pending)
            && let Some(d) = base[0].get(pending)
        {
            digest.merge(d);
        }
        digest
    }

    /// Re-slices these windows into `windows` (a config change): rings of
    /// unchanged width and length carry over as they are; a new ring is filled
    /// from the widest old ring, each old slot placed by its start time, so its
    /// edge is blurred by one old slot until the window rolls over.
    pub fn reshape(mut self, windows: &[WindowSpec]) -> Rolling {
        self.roll_up();
        let mut old: Vec<Option<Ring>> = self.rings.into_iter().map(Some).collect();
        let widest = old
            .iter()
            .flatten()
            .map(|r| r.width * r.len)
            .enumerate()
            .max_by_key(|(_, span)| *span)
            .map(|(i, _)| i);
        let mut fresh = Vec::new();
        let mut rings: Vec<Ring> = windows.iter().map(Ring::new).collect();
        for (i, ring) in rings.iter_mut().enumerate() {
            let same = old
                .iter_mut()
                .find(|r| {
                    r.as_ref()
                        .is_some_and(|r| r.width == ring.width && r.len == ring.len)
                })
                .and_then(Option::take);
            match same {
                Some(same) => *ring = same,
                None => fresh.push(i),
            }
        }
        // The widest ring is never taken above unless it is unchanged, in
        // which case no ring is fresh.
        if let Some(source) = widest.and_then(|i| old[i].as_ref()) {
            for &i in &fresh {
                let ring = &mut rings[i];
                for (no, digest) in &source.slots {
                    ring.entry(ring.slot_no(no * source.width)).merge(digest);
                }
            }
        }
        Rolling {
            rings,
            high: self.high,
            pending: false,
            // What closed above still reaches the follower.
            closed: self.closed,
        }
    }

    /// Folds `other` (same windows) into this one: two series become one.
    pub fn absorb(&mut self, mut other: Rolling) {
        self.roll_up();
        other.roll_up();
        for (mine, theirs) in self.rings.iter_mut().zip(other.rings) {
            for (no, digest) in theirs.slots {
                mine.entry(no).merge(&digest);
            }
        }
        self.high = self.high.max(other.high);
    }

    /// Heap bytes held by every slot and cache, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let digest = std::mem::size_of::<(i64, Arc<Digest>)>() + std::mem::size_of::<Digest>();
        self.rings
            .iter()
            .map(|r| {
                let cache = r
                    .cache
                    .as_ref()
                    .map_or(0, |c| digest + c.digest.heap_bytes());
                let slots: usize = r.slots.iter().map(|(_, d)| digest + d.heap_bytes()).sum();
                cache + slots
            })
            .sum()
    }
}

/// Slots of one window: only those holding deliveries, oldest first.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Ring {
    width: Millis,
    len: i64,
    /// Shared with snapshot copies; written through [`Arc::make_mut`].
    slots: VecDeque<(i64, Arc<Digest>)>,
    #[serde(skip)]
    cache: Option<Closed>,
}

impl Clone for Ring {
    /// The slots, shared; not the read cache, which is rebuilt on demand.
    fn clone(&self) -> Ring {
        Ring {
            width: self.width,
            len: self.len,
            slots: self.slots.clone(),
            cache: None,
        }
    }
}

/// The merge of a ring's closed slots `lo..cur`.
#[derive(Debug)]
struct Closed {
    lo: i64,
    cur: i64,
    digest: Digest,
}

impl Ring {
    fn new(spec: &WindowSpec) -> Self {
        Ring {
            width: spec.slot,
            len: spec.slots(),
            slots: VecDeque::new(),
            cache: None,
        }
    }

    fn slot_no(&self, at: Millis) -> i64 {
        at.div_euclid(self.width)
    }

    fn get(&self, slot: i64) -> Option<&Digest> {
        let i = self.slots.binary_search_by_key(&slot, |(no, _)| *no).ok()?;
        Some(&self.slots[i].1)
    }

    /// The slot's digest, shared (a pointer copy).
    fn get_shared(&self, slot: i64) -> Option<Arc<Digest>> {
        let i = self.slots.binary_search_by_key(&slot, |(no, _)| *no).ok()?;
        Some(self.slots[i].1.clone())
    }

    fn entry(&mut self, slot: i64) -> &mut Digest {
        if self
            .cache
            .as_ref()
            .is_some_and(|c| (c.lo..c.cur).contains(&slot))
        {
            self.cache = None;
        }
        // The newest slot is by far the common case.
        if self.slots.back().is_none_or(|(no, _)| *no < slot) {
            self.slots.push_back((slot, Arc::new(Digest::new())));
            let last = self.slots.len() - 1;
            return Arc::make_mut(&mut self.slots[last].1);
        }
        let i = match self.slots.binary_search_by_key(&slot, |(no, _)| *no) {
            Ok(i) => i,
            Err(i) => {
                self.slots.insert(i, (slot, Arc::new(Digest::new())));
                i
            }
        };
        // Copied first if a snapshot still holds it.
        Arc::make_mut(&mut self.slots[i].1)
    }

    fn expire(&mut self, now: Millis) {
        let oldest = self.slot_no(now) - self.len + 1;
        while self.slots.front().is_some_and(|(no, _)| *no < oldest) {
            self.slots.pop_front();
        }
    }

    fn read(&mut self, now: Millis) -> Digest {
        let cur = self.slot_no(now);
        let lo = cur - self.len + 1;
        let cached = self
            .cache
            .as_ref()
            .is_some_and(|c| c.lo == lo && c.cur == cur);
        if !cached {
            let mut digest = Digest::new();
            for (_, d) in self.slots.iter().filter(|(no, _)| (lo..cur).contains(no)) {
                digest.merge(d);
            }
            self.cache = Some(Closed { lo, cur, digest });
        }
        let mut digest = self
            .cache
            .as_ref()
            .map(|c| c.digest.clone())
            .unwrap_or_default();
        // The current slot, and any a small clock skew put ahead of it.
        for (_, d) in self.slots.iter().rev().take_while(|(no, _)| *no >= cur) {
            digest.merge(d);
        }
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::super::windows_for;
    use super::*;

    const MIN: Millis = 60_000;

    fn obs(r: f64) -> Observation {
        Observation::Delivered {
            relative: r,
            late: r > 1.0,
            amazing: r < 0.5,
        }
    }

    fn rolling() -> (Rolling, Vec<WindowSpec>) {
        let (windows, _) = windows_for(30 * 24 * 60 * MIN);
        (Rolling::new(&windows), windows)
    }

    #[test]
    fn five_minute_window_forgets_after_five_minutes() {
        let (mut r, _) = rolling();
        let t0 = 1_700_000_000_000;
        r.record(t0, obs(0.2));
        r.advance(t0);
        assert_eq!(r.window(0, t0).count(), 1);
        r.advance(t0 + 4 * MIN);
        assert_eq!(r.window(0, t0 + 4 * MIN).count(), 1);
        r.advance(t0 + 6 * MIN);
        assert_eq!(r.window(0, t0 + 6 * MIN).count(), 0);
        assert_eq!(r.window(1, t0 + 6 * MIN).count(), 1, "30m still has it");
    }

    #[test]
    fn every_window_sees_a_fresh_delivery_before_roll_up() {
        let (mut r, windows) = rolling();
        let t0 = 1_700_000_000_000;
        r.record(t0, obs(0.2));
        r.advance(t0);
        for (i, w) in windows.iter().enumerate() {
            assert_eq!(r.window(i, t0).count(), 1, "{}", w.label);
        }
    }

    #[test]
    fn late_delivery_lands_in_every_window_that_covers_it() {
        let (mut r, windows) = rolling();
        let now = 1_700_000_000_000;
        r.record(now, obs(0.1));
        r.record(now - 2 * 60 * MIN, obs(3.0));
        r.advance(now);
        let counts: Vec<u64> = (0..windows.len())
            .map(|i| r.window(i, now).count())
            .collect();
        // 5m, 30m, 1h see only the fresh one; 6h and longer see both.
        assert_eq!(counts, vec![1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(r.window(3, now).bad(), 1);
    }

    #[test]
    fn cache_is_invalidated_by_late_writes() {
        let (mut r, _) = rolling();
        let now = 1_700_000_000_000;
        r.record(now - 3 * MIN, obs(0.1));
        r.record(now, obs(0.1));
        r.advance(now);
        assert_eq!(r.window(0, now).count(), 2);
        r.record(now - 2 * MIN, obs(0.1));
        assert_eq!(r.window(0, now).count(), 3);
    }

    #[test]
    fn memory_is_bounded_by_slot_count() {
        let (mut r, windows) = rolling();
        let t0: Millis = 1_700_000_000_000;
        let max_slots: i64 = windows.iter().map(|w| w.slots()).sum();
        // 40 days at one delivery a minute.
        for m in 0..40 * 24 * 60 {
            let t = t0 + m * MIN;
            r.record(t, obs(0.3));
            if m % 60 == 0 {
                r.advance(t);
            }
        }
        let held: usize = r.rings.iter().map(|ring| ring.slots.len()).sum();
        assert!(held as i64 <= max_slots + windows.len() as i64, "{held}");
    }
}

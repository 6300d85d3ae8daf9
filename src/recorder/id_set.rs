//! Delivery ids an SLA has seen, so a retried `(sla, id)` counts once.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};
use siphasher::sip128::SipHasher13;

use crate::window::Millis;

/// Ids seen recently, as keyed 128-bit SipHash values (stable, so snapshots
/// keep them; keyed per SLA, so clients cannot aim collisions), forgotten
/// after their retention or oldest first past the cap.
#[derive(Serialize, Deserialize)]
pub(super) struct IdSet {
    keys: (u64, u64),
    #[serde(skip)]
    seen: foldhash::HashSet<u128>,
    order: VecDeque<(Millis, u128)>,
    pub(super) forgotten: u64,
}

impl IdSet {
    /// The stored part only (keys, order, count), for a snapshot to encode;
    /// the lookup set is rebuilt when a snapshot is read back.
    pub(super) fn stored_copy(&self) -> IdSet {
        IdSet {
            keys: self.keys,
            seen: foldhash::HashSet::default(),
            order: self.order.clone(),
            forgotten: self.forgotten,
        }
    }
}

impl Default for IdSet {
    fn default() -> Self {
        // RandomState is the standard library's source of per-process keys;
        // unit tests use fixed ones so encodings can be compared byte for byte.
        let random = || std::collections::hash_map::RandomState::new().hash_one(0u8);
        IdSet {
            keys: if cfg!(test) {
                (1, 2)
            } else {
                (random(), random())
            },
            seen: foldhash::HashSet::default(),
            order: VecDeque::new(),
            forgotten: 0,
        }
    }
}

impl IdSet {
    /// Restores the lookup set after a snapshot load.
    pub(super) fn rebuild(&mut self) {
        self.seen = self.order.iter().map(|(_, h)| *h).collect();
    }

    /// Whether `id` was seen (and not yet forgotten).
    pub(super) fn contains(&self, id: &str) -> bool {
        self.contains_hash(self.hash(id))
    }

    /// As [`IdSet::contains`], for an id already hashed with [`IdSet::hash`].
    pub(super) fn contains_hash(&self, hash: u128) -> bool {
        self.seen.contains(&hash)
    }

    /// The keyed hash `id` is remembered by.
    pub(super) fn hash(&self, id: &str) -> u128 {
        SipHasher13::new_with_keys(self.keys.0, self.keys.1)
            .hash(id.as_bytes())
            .as_u128()
    }

    /// False when `id` was already seen.
    pub(super) fn insert(&mut self, id: &str, now: Millis, retention: Millis, cap: usize) -> bool {
        self.insert_hash(self.hash(id), now, retention, cap)
    }

    /// As [`IdSet::insert`], for an id already hashed with [`IdSet::hash`]
    /// (recording hashes once for the id set and the history's day).
    pub(super) fn insert_hash(
        &mut self,
        h: u128,
        now: Millis,
        retention: Millis,
        cap: usize,
    ) -> bool {
        while self
            .order
            .front()
            .is_some_and(|(expires, _)| *expires <= now)
        {
            if let Some((_, h)) = self.order.pop_front() {
                self.seen.remove(&h);
            }
        }
        if !self.seen.insert(h) {
            return false;
        }
        self.order.push_back((now + retention, h));
        while self.order.len() > cap {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.forgotten += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_their_retention_then_forgotten() {
        let mut ids = IdSet::default();
        assert!(ids.insert("a", 0, 100, 10));
        assert!(!ids.insert("a", 50, 100, 10), "seen within its retention");
        assert!(ids.insert("a", 100, 100, 10), "expired at 100");
        assert_eq!(ids.forgotten, 0, "expiry is not forgetting early");
    }

    #[test]
    fn past_the_cap_the_oldest_ids_are_forgotten_and_counted() {
        let mut ids = IdSet::default();
        for id in ["a", "b", "c"] {
            assert!(ids.insert(id, 0, 1_000, 2));
        }
        assert_eq!(ids.forgotten, 1);
        assert!(ids.insert("a", 1, 1_000, 2), "the oldest was forgotten");
        assert!(!ids.insert("c", 1, 1_000, 2));
    }

    #[test]
    fn stored_ids_read_back_and_still_match() {
        let mut ids = IdSet::default();
        ids.insert("x", 0, 1_000, 10);
        let mut back: IdSet = postcard::from_bytes(&postcard::to_stdvec(&ids).unwrap()).unwrap();
        back.rebuild();
        assert!(!back.insert("x", 1, 1_000, 10), "same keys, same hash");
        assert!(back.insert("y", 1, 1_000, 10));
    }
}

//! Source marks: how far a source has read its input (a log tail's file
//! offsets), recorded with the deliveries read up to there.
//!
//! A mark travels in the same log record as its deliveries and sits in the
//! same snapshot, so after any crash the recorded deliveries and the position
//! to resume from agree: nothing is read twice, nothing is skipped, and no
//! per-delivery id is needed for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Lsn;

/// A source's position, opaque to everything but the source.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The source's name (`log_tail/web`).
    pub source: String,
    /// Its position, encoded by the source.
    pub position: Vec<u8>,
}

/// The newest mark of every source, with the log position it came with.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks(BTreeMap<String, (Lsn, Vec<u8>)>);

impl Marks {
    /// Takes `mark`, which came with the log record ending at `lsn` or, when
    /// `logged` is false, with a batch applied after every record up to
    /// `lsn`. A logged mark older than the one held is a replay of what a
    /// snapshot already covers, and is ignored.
    pub fn apply(&mut self, mark: &Mark, lsn: Lsn, logged: bool) {
        if let Some((held, position)) = self.0.get_mut(mark.source.as_str()) {
            if logged && *held >= lsn {
                return;
            }
            *held = lsn;
            position.clone_from(&mark.position);
            return;
        }
        self.0
            .insert(mark.source.clone(), (lsn, mark.position.clone()));
    }

    /// The position `source` recorded last.
    pub fn get(&self, source: &str) -> Option<&[u8]> {
        self.0.get(source).map(|(_, p)| p.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(position: u8) -> Mark {
        Mark {
            source: "log_tail/web".into(),
            position: vec![position],
        }
    }

    #[test]
    fn replayed_marks_never_move_a_source_back() {
        let mut marks = Marks::default();
        marks.apply(&mark(1), 100, true);
        marks.apply(&mark(2), 200, true);
        // A snapshot held lsn 200; the log replays 100 and 200 after it.
        marks.apply(&mark(1), 100, true);
        marks.apply(&mark(2), 200, true);
        assert_eq!(marks.get("log_tail/web"), Some(&[2][..]));
        // Unlogged marks always move on, stamped with the log end.
        marks.apply(&mark(3), 200, false);
        assert_eq!(marks.get("log_tail/web"), Some(&[3][..]));
        marks.apply(&mark(2), 200, true);
        assert_eq!(marks.get("log_tail/web"), Some(&[3][..]));
        assert_eq!(marks.get("other"), None);
    }
}

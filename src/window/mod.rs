//! Rolling windows of delivery digests: which windows exist and how they are sliced.
//!
//! Time here is always a parameter (unix milliseconds); nothing reads a clock.

mod digest;
mod rolling;

pub use digest::{Amazing, Digest, Observation, RELATIVE_ACCURACY};
pub use rolling::Rolling;

/// Unix time in milliseconds, as every window function takes it.
pub type Millis = i64;

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// The longest alert window: deliveries older than this and the compliance
/// window are refused.
pub const LONGEST_ALERT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3 * 86400);

/// The finest slot; every window's slot is a whole multiple of it, so a base
/// slot always lies inside exactly one slot of every other window.
pub const BASE_SLOT: Millis = 30 * SECOND;

/// Slots per compliance window: 1/120 of the window is the most its edge can lag.
const COMPLIANCE_SLOTS: i64 = 120;

/// One rolling window: its label, its span and how finely it is sliced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// Label value on every exported series, such as `5m` or `30d`.
    pub label: String,
    /// How far back it reaches.
    pub span: Millis,
    /// How finely it is sliced; its far edge moves in these steps.
    pub slot: Millis,
}

impl WindowSpec {
    fn new(span: Millis, slot: Millis) -> Self {
        WindowSpec {
            label: label(span),
            span,
            slot,
        }
    }

    /// Number of slots the window covers, the current partial one included.
    pub fn slots(&self) -> i64 {
        self.span / self.slot
    }
}

/// The alert windows of DESIGN.md §1, each cut into 10-12 slots so a window's
/// far edge moves in steps of at most a tenth of its span.
pub fn alert_windows() -> Vec<WindowSpec> {
    vec![
        WindowSpec::new(5 * MINUTE, BASE_SLOT),
        WindowSpec::new(30 * MINUTE, 3 * MINUTE),
        WindowSpec::new(HOUR, 5 * MINUTE),
        WindowSpec::new(6 * HOUR, 30 * MINUTE),
        WindowSpec::new(DAY, 2 * HOUR),
        WindowSpec::new(3 * DAY, 6 * HOUR),
    ]
}

/// The windows of one SLA: the alert windows plus its compliance window
/// (unless it equals one of them), finest first. Returns the windows and the
/// index of the compliance window among them.
pub fn windows_for(compliance_span: Millis) -> (Vec<WindowSpec>, usize) {
    let mut windows = alert_windows();
    if let Some(i) = windows.iter().position(|w| w.span == compliance_span) {
        return (windows, i);
    }
    // Round the slot up to whole base slots, then the span up to whole slots.
    let raw = (compliance_span + COMPLIANCE_SLOTS - 1) / COMPLIANCE_SLOTS;
    let slot = ((raw + BASE_SLOT - 1) / BASE_SLOT).max(1) * BASE_SLOT;
    let mut spec = WindowSpec::new(compliance_span, slot);
    spec.span = spec.slots().max(1) * slot;
    if spec.span < compliance_span {
        spec.span += slot;
    }
    spec.label = label(compliance_span);
    let at = windows.partition_point(|w| w.span < compliance_span);
    windows.insert(at, spec);
    (windows, at)
}

/// Compact label: the largest whole unit, `90s`, `5m`, `6h`, `30d`, `2w` never.
pub fn label(span: Millis) -> String {
    for (unit, suffix) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")] {
        if span % unit == 0 {
            return format!("{}{suffix}", span / unit);
        }
    }
    format!("{span}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_nests_the_base_slot() {
        let (windows, _) = windows_for(30 * DAY);
        for w in &windows {
            assert_eq!(w.slot % BASE_SLOT, 0, "{w:?}");
            assert_eq!(w.span % w.slot, 0, "{w:?}");
            assert!(w.slots() <= COMPLIANCE_SLOTS, "{w:?}");
        }
    }

    #[test]
    fn compliance_window_is_placed_in_span_order() {
        let (windows, at) = windows_for(30 * DAY);
        assert_eq!(at, 6);
        assert_eq!(windows[at].label, "30d");
        assert_eq!(windows[at].slot, 6 * HOUR);
        let (windows, at) = windows_for(12 * HOUR);
        assert_eq!(windows[at].label, "12h");
        assert_eq!(windows[at - 1].label, "6h");
    }

    #[test]
    fn compliance_window_equal_to_an_alert_window_is_shared() {
        let (windows, at) = windows_for(DAY);
        assert_eq!(windows.len(), 6);
        assert_eq!(windows[at].label, "1d");
    }

    #[test]
    fn odd_compliance_span_keeps_its_label() {
        let (windows, at) = windows_for(7 * DAY + 1_000);
        assert_eq!(windows[at].label, "604801s");
        assert!(windows[at].span >= 7 * DAY + 1_000);
    }

    #[test]
    fn labels() {
        assert_eq!(label(5 * MINUTE), "5m");
        assert_eq!(label(90 * SECOND), "90s");
        assert_eq!(label(30 * DAY), "30d");
        assert_eq!(label(1_500), "1500ms");
    }
}

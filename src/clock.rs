//! Time as a dependency: handlers read `now` from a [`Clock`], never the system directly.

use crate::window::Millis;

/// A source of the current time; the exporter reads time only through one.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        jiff::Timestamp::now().as_millisecond()
    }
}

//! SLA data as older snapshot formats stored it, and how it becomes today's:
//! each version converts into the next, so a new format adds one step.
//!
//! Format 8 keeps each open delivery's clock stretches, so a reload that
//! changes its promise finds its due instant again; format 7 adds each
//! SLA's history; format 6 keeps the SLA-wide windows apart from the label sets', which
//! keep only the windows they export; format 5 adds each series'
//! native-histogram buckets; format 4 holds promises as exact durations,
//! the instant an open delivery fell due, and a calendar month's early
//! deliveries; format 3 adds open deliveries. What older formats lack is
//! rebuilt at restore (promises come from the config, SLA-wide windows from
//! the series), starts empty (native buckets count from the upgrade on) or
//! is left unknown.

use std::time::Duration;

use serde::Deserialize;

use super::id_set::IdSet;
use super::month::{MonthTally, MonthTallyV3};
use super::open::{OpenItemsUpTo7, OpenItemsV3};
use super::{BUCKET_FRACTIONS, History, Lsn, NativeBuckets, Series, SlaData};
use crate::margin::Judge;
use crate::window::Rolling;

/// [`SlaData`] as snapshot versions 1 and 2 stored it: no open deliveries.
#[derive(Deserialize)]
pub struct SlaDataV2 {
    labels: Vec<String>,
    series: Vec<SeriesV3>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
}

/// [`SlaData`] as snapshot version 3 stored it.
#[derive(Deserialize)]
pub struct SlaDataV3 {
    labels: Vec<String>,
    series: Vec<SeriesV3>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
    open: OpenItemsV3,
    month: Option<MonthTallyV3>,
}

/// [`SlaData`] as snapshot version 4 stored it: series without native buckets.
#[derive(Deserialize)]
pub struct SlaDataV4 {
    labels: Vec<String>,
    series: Vec<SeriesV4>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
    open: OpenItemsUpTo7,
    month: Option<MonthTally>,
}

/// [`SlaData`] as snapshot version 5 stored it: every series with every
/// window, no SLA-wide windows of its own (rebuilt from the series).
#[derive(Deserialize)]
pub struct SlaDataV5 {
    labels: Vec<String>,
    series: Vec<SeriesV5>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
    open: OpenItemsUpTo7,
    month: Option<MonthTally>,
}

/// [`SlaData`] as snapshot version 6 stored it: no history.
#[derive(Deserialize)]
pub struct SlaDataV6 {
    labels: Vec<String>,
    series: Vec<Series>,
    aggregate: Option<Rolling>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
    open: OpenItemsUpTo7,
    month: Option<MonthTally>,
}

/// [`SlaData`] as snapshot version 7 stored it: open deliveries without
/// their clock stretches.
#[derive(Deserialize)]
pub struct SlaDataV7 {
    labels: Vec<String>,
    series: Vec<Series>,
    aggregate: Option<Rolling>,
    ids: IdSet,
    overflowed: u64,
    lsn: Lsn,
    open: OpenItemsUpTo7,
    month: Option<MonthTally>,
    history: History,
}

/// A series up to version 3: its promise in float seconds.
#[derive(Deserialize)]
struct SeriesV3 {
    key: Box<str>,
    promise_seconds: f64,
    mixed_promise: bool,
    rolling: Rolling,
    within: u64,
    late: u64,
    failed: u64,
    buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    sum_seconds: f64,
}

/// A series in version 4: an exact promise.
#[derive(Deserialize)]
struct SeriesV4 {
    key: Box<str>,
    promise: Duration,
    mixed_promise: bool,
    rolling: Rolling,
    within: u64,
    late: u64,
    failed: u64,
    buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    sum_seconds: f64,
}

/// A series in version 5: native buckets, every window.
#[derive(Deserialize)]
struct SeriesV5 {
    key: Box<str>,
    promise: Duration,
    mixed_promise: bool,
    rolling: Rolling,
    within: u64,
    late: u64,
    failed: u64,
    buckets: [u64; BUCKET_FRACTIONS.len() + 1],
    sum_seconds: f64,
    native: NativeBuckets,
}

impl From<SeriesV3> for SeriesV4 {
    fn from(v: SeriesV3) -> SeriesV4 {
        SeriesV4 {
            key: v.key,
            // Restoring sets every promise from the config again.
            promise: Duration::try_from_secs_f64(v.promise_seconds).unwrap_or_default(),
            mixed_promise: v.mixed_promise,
            rolling: v.rolling,
            within: v.within,
            late: v.late,
            failed: v.failed,
            buckets: v.buckets,
            sum_seconds: v.sum_seconds,
        }
    }
}

impl From<SeriesV4> for SeriesV5 {
    fn from(v: SeriesV4) -> SeriesV5 {
        SeriesV5 {
            key: v.key,
            promise: v.promise,
            mixed_promise: v.mixed_promise,
            rolling: v.rolling,
            within: v.within,
            late: v.late,
            failed: v.failed,
            buckets: v.buckets,
            sum_seconds: v.sum_seconds,
            native: NativeBuckets::default(),
        }
    }
}

impl From<SeriesV5> for Series {
    fn from(v: SeriesV5) -> Series {
        Series {
            key: v.key,
            promise: v.promise,
            judge: Judge::default(),
            mixed_promise: v.mixed_promise,
            // Every window: restore keeps those the label set exports.
            rolling: Some(v.rolling),
            within: v.within,
            late: v.late,
            failed: v.failed,
            buckets: v.buckets,
            sum_seconds: v.sum_seconds,
            native: v.native,
        }
    }
}

impl From<SlaDataV2> for SlaDataV4 {
    fn from(v: SlaDataV2) -> SlaDataV4 {
        SlaDataV4 {
            labels: v.labels,
            series: v.series.into_iter().map(Into::into).collect(),
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: OpenItemsUpTo7::default(),
            month: None,
        }
    }
}

impl From<SlaDataV3> for SlaDataV4 {
    fn from(v: SlaDataV3) -> SlaDataV4 {
        SlaDataV4 {
            labels: v.labels,
            series: v.series.into_iter().map(Into::into).collect(),
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: OpenItemsUpTo7(v.open.into()),
            month: v.month.map(Into::into),
        }
    }
}

impl From<SlaDataV4> for SlaDataV5 {
    fn from(v: SlaDataV4) -> SlaDataV5 {
        SlaDataV5 {
            labels: v.labels,
            series: v.series.into_iter().map(Into::into).collect(),
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: v.open,
            month: v.month,
        }
    }
}

impl From<SlaDataV5> for SlaDataV6 {
    fn from(v: SlaDataV5) -> SlaDataV6 {
        SlaDataV6 {
            labels: v.labels,
            series: v.series.into_iter().map(Into::into).collect(),
            aggregate: None,
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: v.open,
            month: v.month,
        }
    }
}

impl From<SlaDataV7> for SlaData {
    fn from(v: SlaDataV7) -> SlaData {
        SlaData {
            labels: v.labels,
            series: v.series,
            aggregate: v.aggregate,
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: v.open.0,
            month: v.month,
            history: v.history,
        }
    }
}

impl From<SlaDataV6> for SlaDataV7 {
    fn from(v: SlaDataV6) -> SlaDataV7 {
        SlaDataV7 {
            labels: v.labels,
            series: v.series,
            aggregate: v.aggregate,
            ids: v.ids,
            overflowed: v.overflowed,
            lsn: v.lsn,
            open: v.open,
            month: v.month,
            // History counts from the upgrade on.
            history: History::default(),
        }
    }
}

impl From<SlaDataV6> for SlaData {
    fn from(v: SlaDataV6) -> SlaData {
        SlaDataV7::from(v).into()
    }
}

impl From<SlaDataV5> for SlaData {
    fn from(v: SlaDataV5) -> SlaData {
        SlaDataV6::from(v).into()
    }
}

impl From<SlaDataV2> for SlaData {
    fn from(v: SlaDataV2) -> SlaData {
        SlaDataV5::from(SlaDataV4::from(v)).into()
    }
}

impl From<SlaDataV3> for SlaData {
    fn from(v: SlaDataV3) -> SlaData {
        SlaDataV5::from(SlaDataV4::from(v)).into()
    }
}

impl From<SlaDataV4> for SlaData {
    fn from(v: SlaDataV4) -> SlaData {
        SlaDataV5::from(v).into()
    }
}

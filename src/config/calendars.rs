//! The `calendars` section: time zone, weekly working hours and holidays,
//! validated into [`Calendar`]s that SLAs name.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::raw::RawCalendar;
use crate::calendar::{Calendar, DayHours};
use crate::fields::{Problems, required, unique_name};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Every calendar by name, `None` for one with problems (recorded in `p`),
/// so an SLA naming it is not blamed twice.
pub(super) type Calendars = HashMap<String, Option<Arc<Calendar>>>;

pub(super) fn validate(p: &mut Problems, raw: &[RawCalendar]) -> Calendars {
    let mut out = HashMap::new();
    let mut names = HashSet::new();
    for (i, c) in raw.iter().enumerate() {
        let path = format!("calendars[{i}]");
        let before = p.len();
        let name = unique_name(p, &path, c.name.as_ref(), &mut names, "calendar");
        let tz = required(p, &path, "timezone", c.timezone.as_ref(), |s| {
            TimeZone::get(s).map_err(|_| {
                format!("`{s}` is not a time zone; use an IANA name such as Europe/Berlin")
            })
        });
        let mut week: [DayHours; 7] = Default::default();
        let mut seen = [false; 7];
        if c.hours.is_empty() {
            p.at(
                format!("{path}.hours"),
                None,
                "required: working hours by day, such as `mon-fri: \"09:00-17:00\"`",
            );
        }
        for (days, text) in &c.hours {
            let at = format!("{path}.hours.{days}");
            let Some(range) = p.parse(&at, Some(text), |_| day_range(days)) else {
                continue;
            };
            let Some(hours) = p.parse(&at, Some(text), intervals) else {
                continue;
            };
            for d in range {
                if std::mem::replace(&mut seen[d], true) {
                    p.at(
                        &at,
                        Some(text),
                        format!("{} is given more than once", DAYS[d]),
                    );
                }
                week[d].clone_from(&hours);
            }
        }
        if !c.hours.is_empty() && week.iter().all(Vec::is_empty) {
            p.at(format!("{path}.hours"), None, "no working time on any day");
        }
        let mut holidays = BTreeSet::new();
        for (j, h) in c.holidays.iter().enumerate() {
            let at = format!("{path}.holidays[{j}]");
            holidays.extend(p.parse(&at, Some(h), |s| {
                s.parse::<Date>()
                    .map_err(|_| format!("`{s}` is not a date; use YYYY-MM-DD"))
            }));
        }
        let Some(name) = name else { continue };
        let calendar = match tz {
            Some(tz) if p.len() == before => Some(Arc::new(Calendar {
                name: name.clone(),
                tz,
                week,
                holidays,
            })),
            _ => None,
        };
        out.insert(name, calendar);
    }
    out
}

/// `mon`, or `mon-fri` (wrapping is not allowed: write two keys).
fn day_range(s: &str) -> Result<std::ops::RangeInclusive<usize>, String> {
    let day = |d: &str| {
        DAYS.iter()
            .position(|x| x.eq_ignore_ascii_case(d.trim()))
            .ok_or_else(|| format!("`{d}` is not a day; use mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri"))
    };
    match s.split_once('-') {
        None => day(s).map(|d| d..=d),
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            if a > b {
                return Err(format!("`{s}` runs backwards; split it at the week's end"));
            }
            Ok(a..=b)
        }
    }
}

/// `09:00-12:00, 13:00-17:30`; `closed` or empty for no working time.
fn intervals(s: &str) -> Result<DayHours, String> {
    if s.is_empty() || s.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut out: DayHours = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("`{part}` is not a time range such as 09:00-17:00"))?;
        let (a, b) = (clock(a)?, clock(b)?);
        if a >= b {
            return Err(format!("`{part}` ends before it starts"));
        }
        if out.last().is_some_and(|&(_, end)| a < end) {
            return Err(format!("`{part}` overlaps or precedes the range before it"));
        }
        out.push((a, b));
    }
    Ok(out)
}

/// `HH:MM` in minutes after midnight; `24:00` is the day's end.
fn clock(s: &str) -> Result<u32, String> {
    let bad = || format!("`{}` is not a time of day such as 09:00", s.trim());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_read_ranges_lists_and_the_day_end() {
        assert_eq!(
            intervals("09:00-12:00, 13:00-17:30"),
            Ok(vec![(540, 720), (780, 1050)])
        );
        assert_eq!(intervals("00:00-24:00"), Ok(vec![(0, 1440)]));
        assert_eq!(intervals("closed"), Ok(vec![]));
        assert!(
            intervals("17:00-09:00")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            intervals("09:00-12:00, 11:00-13:00")
                .unwrap_err()
                .contains("overlaps")
        );
        assert!(intervals("9-17").is_err());
        assert!(clock("24:30").is_err());
        assert_eq!(day_range("mon-fri"), Ok(0..=4));
        assert!(day_range("fri-mon").unwrap_err().contains("backwards"));
        assert!(day_range("someday").is_err());
    }
}

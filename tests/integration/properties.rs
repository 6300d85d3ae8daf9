//! Properties of the window maths: sketch accuracy, merge exactness, expiry.

use std::sync::Arc;
use std::time::Duration;

use amaze_exporter::config::Config;
use amaze_exporter::decimal::Decimal;
use amaze_exporter::delivery::{Input, Timing};
use amaze_exporter::recorder::Recorder;
use amaze_exporter::window::{
    Digest, Millis, Observation, RELATIVE_ACCURACY, Rolling, windows_for,
};
use proptest::prelude::*;

const DAY: Millis = 86_400_000;
const T0: Millis = 1_800_000_000_000;

/// The nearest-rank quantile: the value at rank ceil(q x n), from 1.
fn exact_nearest_rank(values: &[f64], q: Decimal) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[q.rank(v.len() as u64) as usize - 1]
}

fn delivered(r: f64) -> Observation {
    Observation::Delivered {
        relative: r,
        late: r > 1.0,
        amazing: r <= 0.5,
    }
}

/// Quantile levels with up to four decimals, 0 and 1 included.
fn level() -> impl Strategy<Value = Decimal> {
    (0u64..=10_000).prop_map(|k| Decimal::new(k, 4))
}

/// Log-uniform relative times from a thousandth to a hundred times the promise.
fn relative() -> impl Strategy<Value = f64> {
    (-3.0f64..2.0).prop_map(|e| 10f64.powf(e))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sketch_quantiles_are_within_one_percent(values in prop::collection::vec(relative(), 1..3000), q in level()) {
        let mut d = Digest::new();
        for &v in &values {
            d.record(delivered(v));
        }
        let got = d.quantile(q, None).unwrap();
        let exact = exact_nearest_rank(&values, q);
        prop_assert!((got - exact).abs() <= RELATIVE_ACCURACY * exact * (1.0 + 1e-9), "q={} got={} exact={}", q, got, exact);
    }

    #[test]
    fn reading_a_window_equals_recording_its_deliveries_in_one_digest(
        events in prop::collection::vec((0..(4 * DAY), relative(), prop::bool::weighted(0.05)), 1..400),
        extra in 0..(2 * 3_600_000i64),
    ) {
        let (windows, _) = windows_for(30 * DAY);
        let mut rolling = Rolling::new(&windows);
        for &(t, r, failed) in &events {
            rolling.record(T0 + t, if failed { Observation::Failed } else { delivered(r) });
        }
        let now = T0 + events.iter().map(|e| e.0).max().unwrap_or(0) + extra;
        rolling.advance(now);
        for (i, w) in windows.iter().enumerate() {
            let oldest_slot = now.div_euclid(w.slot) - w.slots() + 1;
            let mut expected = Digest::new();
            for &(t, r, failed) in &events {
                if (T0 + t).div_euclid(w.slot) >= oldest_slot {
                    expected.record(if failed { Observation::Failed } else { delivered(r) });
                }
            }
            let got = rolling.window(i, now);
            prop_assert_eq!(got.count(), expected.count(), "window {}", w.label);
            prop_assert_eq!(got.bad(), expected.bad());
            prop_assert_eq!(got.amazing_at(0.5), expected.amazing_at(0.5));
            for q in ["0", "0.25", "0.5", "0.9", "0.99", "1"].map(|q| Decimal::parse(q).unwrap()) {
                prop_assert_eq!(got.quantile(q, None), expected.quantile(q, None), "window {} q {}", w.label, q);
            }
        }
    }
}

#[test]
fn windows_expire_with_injected_time() {
    let yaml = "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n    min_deliveries: 1\n";
    let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
    let recorder = Recorder::new(catalog.clone());
    let input = Input {
        sla: "a",
        labels: &[],
        timing: Timing::Took {
            took: Duration::from_millis(200),
            at: None,
        },
        id: None,
    };
    let d = catalog.admit(&input, T0).unwrap();
    recorder.record(&[d], T0, None);
    let counts = |now: Millis| -> Vec<u64> {
        recorder.report(now)[0]
            .aggregate
            .iter()
            .map(|f| f.deliveries)
            .collect()
    };
    // Windows: 5m, 30m, 1h, 6h, 1d, 3d, 30d.
    assert_eq!(counts(T0), vec![1; 7]);
    assert_eq!(counts(T0 + 6 * 60_000), vec![0, 1, 1, 1, 1, 1, 1]);
    assert_eq!(counts(T0 + 2 * 3_600_000), vec![0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(counts(T0 + 4 * DAY), vec![0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(counts(T0 + 31 * DAY), vec![0; 7]);
}

#[test]
fn a_delivery_older_than_every_window_is_refused() {
    let yaml =
        "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n    window: 7d\n";
    let catalog = Config::parse(yaml).unwrap().catalog();
    let at = |t| Input {
        sla: "a",
        labels: &[],
        timing: Timing::Took {
            took: Duration::from_secs(1),
            at: Some(t),
        },
        id: None,
    };
    assert!(catalog.admit(&at(T0 - 6 * DAY), T0).is_ok());
    assert!(catalog.admit(&at(T0 - 8 * DAY), T0).is_err());
    assert!(
        catalog.admit(&at(T0 + 60_000), T0).is_ok(),
        "within the 5m skew"
    );
    assert!(catalog.admit(&at(T0 + 600_000), T0).is_err());
}

proptest! {
    /// No byte string makes the StatsD parser panic, and every line is
    /// either parsed or refused with a reason.
    #[test]
    fn statsd_parser_takes_any_bytes(packet in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for line in amaze_exporter::ingest::statsd::parser::lines(&packet) {
            if let Err(e) = line {
                let listed = amaze_exporter::source::Source::Statsd.reasons();
                prop_assert!(listed.contains(&e.reason()), "{:?}", e);
            }
        }
    }

    /// The fast reader of plain decimals reads what the general one reads,
    /// and refuses what it refuses.
    #[test]
    fn plain_decimals_read_as_the_general_reader_reads_them(text in "[0-9.]{0,24}") {
        use amaze_exporter::decimal::Decimal;
        prop_assert_eq!(Decimal::parse_plain(text.as_bytes()), Decimal::parse(&text).ok(), "{}", text);
    }

    /// A decimal of a unit is the exact quotient rounded half up to the
    /// nanosecond, whichever arithmetic computes it.
    #[test]
    fn decimals_of_a_unit_round_exactly(units in any::<u64>(), scale in 0u8..=18, unit_ns in prop_oneof![Just(1_000u64), Just(1_000_000), Just(1_000_000_000), 1u64..u64::MAX]) {
        use amaze_exporter::decimal::Decimal;
        use std::time::Duration;
        let one = 10u128.pow(u32::from(scale));
        let exact = (u128::from(unit_ns) * u128::from(units) + one / 2) / one;
        let expected = u64::try_from(exact / 1_000_000_000)
            .ok()
            .filter(|s| *s < u64::MAX)
            .map_or(Duration::MAX, |s| Duration::new(s, (exact % 1_000_000_000) as u32));
        prop_assert_eq!(Decimal::new(units, scale).of(Duration::from_nanos(unit_ns)), expected);
    }

    /// No text makes the amount readers panic, and an amount read is the
    /// number a float reader sees in it, to the nanosecond.
    #[test]
    fn amounts_read_any_text(text in "[0-9.eE+ -]{0,24}|.{0,24}", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        use amaze_exporter::decimal::Decimal;
        use amaze_exporter::delivery::Amount;
        use std::time::Duration;
        let _ = Decimal::parse_plain(&bytes);
        if let Some(amount) = Amount::parse(&text) {
            let float: f64 = text.trim().parse().expect("an amount is a number");
            prop_assert!(float.is_finite() && float >= 0.0, "{}", text);
            let ms = amount.of(Duration::from_millis(1));
            if float < 1e9 {
                let expected = float * 1e6;
                let got = ms.as_nanos() as f64;
                prop_assert!((got - expected).abs() <= 1.0 + expected * 1e-12, "{}: {} ns, not {}", text, got, expected);
            }
        }
    }

    /// Lines built from StatsD's own alphabet, the likeliest to find edge cases.
    #[test]
    fn statsd_parser_takes_statsd_shaped_noise(line in "[a-z.:|@#,0-9\\-eE+]{0,64}") {
        let _ = amaze_exporter::ingest::statsd::parser::line(&line);
    }
}

proptest! {
    /// No line makes the log line reader panic, JSON or regex, and a reader
    /// reads the same line the same way after any other.
    #[test]
    fn log_line_reader_takes_any_bytes(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        use amaze_exporter::ingest::log_tail::line::{FailedWhen, Format, LineSpec, Pattern, SlaFrom, Unit};
        for format in [Format::Json, Format::Regex(Pattern::new(r"^(?P<d>\S+) (?P<t>\S+)").unwrap())] {
            let spec = LineSpec {
                format,
                sla: SlaFrom::Field("d".into()),
                duration_field: "d".into(),
                unit: Unit::Humantime,
                timestamp_field: Some("t".into()),
                labels: vec![("l".into(), "t".into())],
                include: Some(Pattern::new(r"\S").unwrap()),
                exclude: Some(Pattern::new("^#").unwrap()),
                failed: Some(FailedWhen { field: "t".into(), pattern: Pattern::new("^5").unwrap() }),
            };
            let mut reader = spec.reader();
            let first = reader.read(&line);
            prop_assert_eq!(&spec.reader().read(&line), &first);
            let _ = reader.read(b"1s 2026-11-23T10:00:00Z");
            prop_assert_eq!(&reader.read(&line), &first);
        }
    }
}

proptest! {
    /// No body makes the open-delivery event decoder panic; JSON-shaped noise
    /// reaches admission more often than random bytes would.
    #[test]
    fn event_decoder_takes_any_body(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        shaped in r#"\{"(event|sla|id|at|labels|failed)":("start"|"api"|"x"|1|true|\{\}|"2026-11-23T10:00:00Z"),"(sla|id|at|event)":"[a-z0-9:T-]{0,12}"\}"#,
    ) {
        use amaze_exporter::ingest::json::Framing;
        use amaze_exporter::ingest::events::decode;
        let catalog =
            Config::parse("version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n").unwrap()
        .catalog();
        for body in [&bytes[..], shaped.as_bytes()] {
            for framing in [Framing::Json, Framing::Ndjson, Framing::Detect] {
                match decode(&catalog, body, framing, None, 1_795_428_000_000, |_| Ok(())) {
                    Err(amaze_exporter::ingest::Refused::Input(errors)) => {
                        prop_assert!(!errors.is_empty());
                        let listed = amaze_exporter::source::Source::Events.reasons();
                        prop_assert!(errors.iter().all(|e| listed.contains(&e.kind)), "{:?}", errors);
                    }
                    Err(other) => prop_assert!(false, "{}", other),
                    Ok(_) => {}
                }
            }
        }
    }
}

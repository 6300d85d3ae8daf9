//! Fuzz targets as property tests, so they run in CI on stable Rust: no input
//! makes a decoder or the config loader panic, and every refusal says why.
//! Run longer locally with `PROPTEST_CASES=100000 cargo test --release
//! --test integration fuzz` (the closing notes record such runs).

use amaze_exporter::auth::Denied;
use amaze_exporter::config::Config;
use amaze_exporter::delivery::Reach;
use amaze_exporter::ingest::json::Framing;
use amaze_exporter::ingest::push::decode;
use amaze_exporter::ingest::{Refused, Source};
use amaze_exporter::sla::Catalog;
use proptest::prelude::*;

const NOW: i64 = 1_795_428_000_000;

fn catalog() -> Catalog {
    Config::parse(
            "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n    labels: [route]\n",
        )
        .unwrap()
    .catalog()
}

const VALID: &str = "version: 1
limits:
  max_body_bytes: 1048576
calendars:
  - name: office
    timezone: Europe/Berlin
    hours:
      mon-fri: \"09:00-17:00\"
slas:
  - name: api
    promise: 300ms
    objective: 99%
    target_margin: 50%
    window: 30d
    calendar: office
    labels: [route]
    goals:
      - match: {route: /a}
        promise: 1s
sources:
  statsd:
    listen: 127.0.0.1:0
    mappings:
      - metric: api.*.latency
        sla: api
        labels: {route: $1}
";

proptest! {
    /// Push bodies: random bytes, and JSON-shaped lines built from the
    /// fields a delivery has.
    #[test]
    fn push_decoder_takes_any_body(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        lines in prop::collection::vec(
            r#"\{("sla":"(api|x)",)?("duration":"[0-9a-z .]{0,12}",)?("duration_seconds":-?[0-9e.]{1,8},)?("started_at":"[0-9T:Z-]{0,22}",)?("labels":\{"(route|x)":"[a-z/]{0,4}"\},)?("id":"[a-z]{0,3}",)?"failed":(true|false)\}"#,
            0..6,
        ),
    ) {
        let catalog = catalog();
        let shaped = lines.join("\n");
        for body in [&bytes[..], shaped.as_bytes()] {
            for framing in [Framing::Json, Framing::Ndjson, Framing::Detect] {
                match decode(&catalog, body, framing, NOW, Reach::Windows, anyone) {
                    Ok(batch) => prop_assert!(!batch.is_empty()),
                    Err(Refused::Input(errors)) => {
                        prop_assert!(!errors.is_empty());
                        prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
                        let listed = Source::Http.reasons();
                        prop_assert!(errors.iter().all(|e| listed.contains(&e.kind)), "{:?}", errors);
                    }
                    Err(other) => prop_assert!(false, "{}", other),
                }
            }
        }
    }

    /// Durations as people write them, and garbage: accepted ones are
    /// finite, not negative and at most 400 days.
    #[test]
    fn durations_are_read_or_refused(text in r"[0-9 .]{0,8}(ns|us|ms|s|m|h|d|w|y|min|sec|hours|days|[a-z]{0,3})?[0-9 a-z]{0,8}") {
        let body = format!(r#"{{"sla":"api","duration":"{text}"}}"#);
        if let Ok(batch) = decode(&catalog(), body.as_bytes(), Framing::Json, NOW, Reach::Windows, anyone) {
            for d in batch {
                if let amaze_exporter::delivery::Outcome::Delivered { took } = d.outcome {
                    prop_assert!(took <= amaze_exporter::delivery::MAX_DURATION, "{text}: {took:?}");
                }
            }
        }
        let yaml = format!("version: 1\nslas:\n  - name: a\n    promise: \"{text}\"\n    objective: 99%\n");
        if let Ok(c) = Config::parse(&yaml) {
            prop_assert!(c.slas[0].promise.as_secs_f64() > 0.0);
        }
    }

    /// Config text: random text, and a valid config with one line replaced
    /// by noise or cut short. Never a panic; a refusal lists its problems.
    #[test]
    fn config_loading_takes_any_text(
        noise in "\\PC{0,300}",
        line in 0usize..40,
        replacement in "[ a-z0-9:_\\-\\[\\]{}\"'%.$*/|#&!]{0,30}",
        cut in 0usize..700,
    ) {
        let mut mutated: Vec<&str> = VALID.lines().collect();
        if line < mutated.len() {
            mutated[line] = &replacement;
        }
        let mutated = mutated.join("\n");
        let truncated: String = VALID.chars().take(cut).collect();
        for text in [noise.as_str(), mutated.as_str(), truncated.as_str()] {
            if let Err(e) = Config::parse(text) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn the_valid_config_of_the_config_target_is_valid() {
    // Otherwise the mutations above would only ever test error paths.
    Config::parse(VALID).unwrap();
}

/// Crashers the targets found, kept as regression tests.
#[test]
fn found_by_fuzzing_a_duration_too_large_for_a_duration_type_is_refused() {
    // `Duration::from_secs_f64(1e20)` panicked while wording the refusal.
    for (seconds, says) in [
        ("1e20", "`1e20` s is longer than the 400-day limit"),
        ("1.8e308", "`1.8e308` is not a duration"),
    ] {
        let body = format!(r#"{{"sla":"api","duration_seconds":{seconds}}}"#);
        let Err(Refused::Input(errors)) = decode(
            &catalog(),
            body.as_bytes(),
            Framing::Json,
            NOW,
            Reach::Windows,
            anyone,
        ) else {
            panic!("{seconds} accepted");
        };
        assert!(
            errors[0].reason.contains(says),
            "{seconds}: {}",
            errors[0].reason
        );
    }
}

/// Every caller may write every SLA.
fn anyone(_: &str) -> Result<(), Denied> {
    Ok(())
}

fn otlp_catalog() -> Catalog {
    Config::parse(
        "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n    labels: [route]\nsources:\n  otlp:\n    spans:\n      - sla: api\n        labels: {route: http.route}\n        failed_status_code: http.response.status_code\n",
    )
    .unwrap()
    .catalog()
}

proptest! {
    /// No bytes make the OTLP decoders panic, in either encoding; whatever
    /// decodes is admitted or refused span by span, never with a panic.
    #[test]
    fn otlp_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        use amaze_exporter::ingest::otlp::{Encoding, admit, decode};
        let catalog = otlp_catalog();
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            match decode(&body, encoding) {
                Ok(request) => {
                    let _ = admit(&catalog, &request, NOW, |_| Ok::<(), Denied>(()));
                }
                Err(Refused::Input(errors)) => prop_assert!(!errors[0].reason.is_empty()),
                Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
            }
        }
    }
}

//! Every config the project ships loads and validates.

use std::path::{Path, PathBuf};

use amaze_exporter::config::Config;
use amaze_exporter::decimal::Decimal;

fn shipped() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files = vec![root.join("amaze.yaml")];
    if let Ok(dir) = std::fs::read_dir(root.join("examples")) {
        files.extend(
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml")),
        );
    }
    files
}

/// The environment `config/examples/tokens.yaml` reads its tokens from.
pub const TOKENS: [(&str, &str); 2] = [
    ("AMAZE_CHECKOUT_TOKEN", "checkout-0123456789abcdef"),
    ("AMAZE_OPS_TOKEN", "ops-0123456789abcdef01"),
];

#[test]
fn every_shipped_config_is_valid() {
    let files = shipped();
    assert!(files.len() >= 2, "default config plus examples");
    for f in files {
        // As a user checks it, with the tokens it reads in the environment.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
            .arg("check")
            .arg(&f)
            .envs(TOKENS)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(": valid, "), "{said}");
    }
}

#[test]
fn default_config_holds_the_three_example_slas() {
    let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/amaze.yaml")).unwrap();
    let names: Vec<&str> = c.slas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["api_latency", "support_first_response", "order_shipping"]
    );
    let support = c.sla("support_first_response").unwrap();
    assert_eq!(support.promise_for(&["P1", "email"]).as_secs(), 3600);
    assert_eq!(support.promise_for(&["P3", "email"]).as_secs(), 8 * 3600);
}

#[test]
fn semantic_errors_are_all_reported() {
    let err = Config::parse("version: 2\nslas: []\nlimits:\n  max_future_skew: forever\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains("version (line 1): version 2 is not supported"),
        "{err}"
    );
    assert!(err.contains("slas: at least one SLA is required"), "{err}");
    assert!(err.contains("limits.max_future_skew (line 4)"), "{err}");
}

#[test]
fn missing_fields_are_named() {
    let err = Config::parse("version: 1\nslas:\n  - description: nameless\n")
        .unwrap_err()
        .to_string();
    // No line of their own: the entry's, which starts on line 3.
    for needle in [
        "slas[0].name (line 3): required",
        "slas[0].promise (line 3): required",
        "slas[0].objective (line 3): required",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn fractions_and_durations_read_as_people_write_them() {
    let c = Config::parse("version: 1\nslas:\n  - name: a\n    promise: 2h 30m\n    objective: 0.999\n    target_margin: 40%\n    window: 7d\n").unwrap();
    let a = &c.slas[0];
    assert_eq!(a.promise.as_secs(), 9000);
    let exact = |s| Decimal::parse(s).unwrap();
    assert_eq!(a.objective, exact("0.999"));
    assert_eq!(a.target_margin, Some(exact("0.4")));
    assert_eq!(a.alert_margin, exact("0.2"), "half the target");
    assert_eq!(a.window.as_secs(), 7 * 86400);
    for bad in [
        "99",
        "100%",
        "0%",
        "-5%",
        "abc",
        "1e-2",
        "0.999999999999999999",
    ] {
        let yaml =
            format!("version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: {bad}\n");
        assert!(Config::parse(&yaml).is_err(), "{bad} accepted");
    }
    // Twelve digits after the point at most, so a float never reads 1 and
    // a target can always be halved exactly.
    let digits = |objective: &str, target: &str| {
        let yaml = format!(
            "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: {objective}\n    target_margin: {target}\n"
        );
        Config::parse(&yaml).map_err(|e| e.to_string())
    };
    let ok = digits("0.999999999999", "0.000000000001").unwrap();
    assert_eq!(ok.slas[0].alert_margin, exact("0.0000000000005"));
    let err = digits("0.9999999999999", "10%").unwrap_err();
    assert!(err.contains("more than 12 digits after the point"), "{err}");
    let err = digits("99%", "10.0000000000001%").unwrap_err();
    assert!(err.contains("target_margin"), "{err}");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let err = Config::parse("version: 1\nslas: [\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}

/// A value of a shape no field takes stops the reading there; the error
/// names its YAML path beside the line.
#[test]
fn shape_errors_name_the_path_and_line() {
    let err = Config::parse(
        "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\nsources:\n  statsd:\n    listen: [1]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sources.statsd.listen: "), "{err}");
    assert!(err.contains("line 8 column 13"), "{err}");
    let err = Config::parse(
        "version: 1\nslas:\n  - name: a\n    promise: 1s\n    objective: 99%\n    labels: {a: 1}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("slas[0].labels: "), "{err}");
}

#[test]
fn statsd_source_problems_are_all_reported_with_paths() {
    let yaml = r#"
version: 1
slas:
  - name: api
    promise: 300ms
    objective: 99%
    labels: [route]
sources:
  statsd:
    listen: nowhere
    mappings:
      - metric: api.*.latency
        sla: api
        labels:
          route: $2
          colour: blue
      - metric: api.lat*
        sla: missing
      - sla: api
"#;
    let err = Config::parse(yaml).unwrap_err().to_string();
    for expected in [
        "sources.statsd.listen (line 10): `nowhere` is not a listen address",
        "sources.statsd.mappings[0].labels.route (line 15): `$2`: the metric pattern has 1 `*` to capture",
        "sources.statsd.mappings[0].labels.colour (line 16): `colour` is not a label of SLA `api` (route)",
        "sources.statsd.mappings[1].metric (line 17): `api.lat*`: `*` must stand for a whole segment",
        "sources.statsd.mappings[1].sla (line 18): unknown SLA `missing`; configured: api",
        "sources.statsd.mappings[2].metric: required",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn log_tail_source_problems_are_all_reported_with_paths() {
    let yaml = r#"
version: 1
slas:
  - name: web
    promise: 300ms
    objective: 99%
    labels: [route]
sources:
  log_tail:
    - paths: ["/var/log/[.log"]
      regex: '^(?P<ms>\d+)$'
      sla: web
      duration_field: took
      duration_unit: minutes
      labels: {route: path, colour: c}
      start_at: middle
    - regex: '('
      sla: nope
      failed_match: '('
"#;
    let err = Config::parse(yaml).unwrap_err().to_string();
    for expected in [
        "sources.log_tail[1].failed_field (line 19): required with failed_match",
        "sources.log_tail[1].failed_match (line 19): not a regular expression",
        "sources.log_tail[0].paths[0] (line 10): `/var/log/[.log` is not a path glob",
        "sources.log_tail[0].start_at (line 16): `middle` is not a start",
        "sources.log_tail[0].duration_unit (line 14): `minutes` is not a unit",
        "sources.log_tail[0].labels.colour (line 15): `colour` is not a label of SLA `web`",
        "sources.log_tail[0].labels.route: the regex has no named capture `path`",
        "sources.log_tail[0].duration_field: the regex has no named capture `took`",
        "sources.log_tail[1].paths: required",
        "sources.log_tail[1].regex (line 17): not a regular expression",
        "sources.log_tail[1].sla (line 18): unknown SLA `nope`",
        "sources.log_tail[1].duration_field: required",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn probe_problems_are_all_reported_with_paths() {
    let yaml = r#"
version: 1
slas:
  - name: site
    promise: 1s
    objective: 99%
sources:
  probes:
    - url: ftp://example.com
      sla: site
      method: FETCH
      interval: 1s
      timeout: 2s
      expect_status: [200, 999]
      labels: {region: eu}
    - sla: gone
      expect_body_regex: "(unclosed"
      headers: {"Bad Name": x, X-Ok: "line\nbreak"}
      follow_redirects: sometimes
      body_limit: 10MB
      phases: yes
      tls_config:
        ca_file: /nonexistent/ca.pem
        cert_file: /nonexistent/cert.pem
        server_name: "not a name"
        insecure_skip_verify: maybe
    - name: probe0
      url: http://127.0.0.1:1/
      sla: site
"#;
    let err = Config::parse(yaml).unwrap_err().to_string();
    for expected in [
        "sources.probes[0].url (line 9): `ftp://example.com` is not an http:// or https:// URL",
        "sources.probes[0].method (line 11): `FETCH` is not a method: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
        "sources.probes[0].timeout (line 13): longer than the interval",
        "sources.probes[0].expect_status[1] (line 14): `999` is not an HTTP status",
        "sources.probes[0].labels.region (line 15): `region` is not a label of SLA `site`",
        "sources.probes[1].url: required",
        "sources.probes[1].sla (line 16): unknown SLA `gone`",
        "sources.probes[1].expect_body_regex (line 17): not a regular expression",
        "sources.probes[1].headers.Bad Name (line 18): `Bad Name` is not an HTTP header name",
        "sources.probes[1].headers.X-Ok (line 18): the value of `X-Ok` cannot be sent in a header",
        "sources.probes[1].follow_redirects (line 19): `sometimes` is not true or false",
        "sources.probes[1].body_limit (line 20): `MB` is not a unit of size",
        "sources.probes[1].phases (line 21): `yes` is not true or false",
        "sources.probes[1].tls_config.ca_file (line 23): cannot read `/nonexistent/ca.pem`: No such file",
        "sources.probes[1].tls_config.cert_file (line 24): cannot read `/nonexistent/cert.pem`: No such file",
        "sources.probes[1].tls_config.key_file: required with cert_file",
        "sources.probes[1].tls_config.server_name (line 25): `not a name` is not a DNS name or IP address",
        "sources.probes[1].tls_config.insecure_skip_verify (line 26): `maybe` is not true or false",
        "sources.probes[2].name (line 27): duplicate probe name `probe0`",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn calendar_problems_are_all_reported_with_paths() {
    let yaml = r#"
version: 1
calendars:
  - name: office
    timezone: Mars/Olympus
    hours:
      mon-fri: "09:00-17:00"
      fri: "10:00-12:00"
      sat-tue: "10:00-12:00"
      sun: "17:00-09:00"
    holidays: ["2026-02-30"]
  - name: empty
    timezone: UTC
slas:
  - name: tickets
    promise: 8h
    objective: 95%
    calendar: shop
  - name: contract
    promise: 8h
    objective: 95%
    window: monthly
"#;
    let err = Config::parse(yaml).unwrap_err().to_string();
    for expected in [
        "calendars[0].timezone (line 5): `Mars/Olympus` is not a time zone; use an IANA name such as Europe/Berlin",
        "calendars[0].hours.mon-fri (line 7): fri is given more than once",
        "calendars[0].hours.sat-tue (line 9): `sat-tue` runs backwards; split it at the week's end",
        "calendars[0].hours.sun (line 10): `17:00-09:00` ends before it starts",
        "calendars[0].holidays[0] (line 11): `2026-02-30` is not a date; use YYYY-MM-DD",
        "calendars[1].hours: required: working hours by day",
        "slas[0].calendar (line 18): no calendar named `shop`; defined: empty, office",
        "slas[1].window (line 22): `monthly`",
        "or `calendar_month` for calendar months",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

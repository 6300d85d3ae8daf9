//! Locked writes through the real binary: bearer tokens, SLA allow-lists,
//! admin-only reloads, and secrets that never show.

use crate::server::{Exporter, Home};

const PUSHER: &str = "pusher-0123456789abcdef";
const OPS: &str = "ops-fedcba9876543210";
const FROM_ENV: &str = "env-5555555555555555";

fn home() -> (Home, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let pusher = secrets.path().join("pusher.token");
    std::fs::write(&pusher, format!("{PUSHER}\n")).unwrap();
    let ops = secrets.path().join("ops.token");
    std::fs::write(&ops, OPS).unwrap();
    let config = format!(
        r#"
version: 1
auth:
  tokens:
    - name: pusher
      token_file: {}
      slas: [checkout]
    - name: ops
      token_file: {}
      admin: true
    - name: ci
      token_env: AMAZE_TEST_CI_TOKEN
      slas: [search]
slas:
  - name: checkout
    promise: 300ms
    objective: 99%
  - name: search
    promise: 300ms
    objective: 99%
"#,
        pusher.display(),
        ops.display()
    );
    (Home::new(&config), secrets)
}

fn start(home: &Home) -> Exporter {
    home.try_start_with_env(&[], &[("AMAZE_TEST_CI_TOKEN", FROM_ENV)])
        .unwrap_or_else(|log| panic!("exporter did not start:\n{log}"))
}

fn push(ex: &Exporter, sla: &str, token: Option<&str>) -> (u16, String, Option<String>) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    let body = format!(r#"{{"sla":"{sla}","duration":"100ms"}}"#);
    let r = ex.post_with(
        "/api/v1/deliveries",
        "application/json",
        body.as_bytes(),
        &headers,
    );
    let challenge = r.header("www-authenticate").map(str::to_owned);
    (r.status, r.body, challenge)
}

fn counted(ex: &Exporter, sla: &str) -> f64 {
    ex.metrics()
        .value(
            "amaze_window_deliveries",
            &[("sla", sla), ("scope", "sla"), ("window", "5m")],
        )
        .unwrap_or(0.0)
}

#[test]
fn writes_need_a_token_that_may_write_the_sla() {
    let (home, _secrets) = home();
    let ex = start(&home);
    let (status, body, challenge) = push(&ex, "checkout", None);
    assert_eq!(status, 401, "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    assert_eq!(
        push(&ex, "checkout", Some("not-a-valid-token-at-all")).0,
        401
    );
    let (status, body, _) = push(&ex, "search", Some(PUSHER));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not write SLA `search`"), "{body}");
    assert_eq!(
        counted(&ex, "checkout") + counted(&ex, "search"),
        0.0,
        "refused writes changed nothing"
    );

    assert_eq!(push(&ex, "checkout", Some(PUSHER)).0, 200);
    assert_eq!(push(&ex, "search", Some(FROM_ENV)).0, 200);
    assert_eq!(
        push(&ex, "search", Some(OPS)).0,
        200,
        "no allow-list: every SLA"
    );
    assert_eq!(
        (counted(&ex, "checkout"), counted(&ex, "search")),
        (1.0, 2.0)
    );

    // Open-delivery events obey the same rules.
    let start = r#"{"sla":"search","id":"T-1"}"#.as_bytes();
    let bearer = format!("Bearer {PUSHER}");
    let r = ex.post_with(
        "/api/v1/deliveries/start",
        "application/json",
        start,
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = ex.post("/api/v1/deliveries/start", "application/json", start);
    assert_eq!(r.status, 401, "{}", r.body);
    // Its body was never read: the client must not reuse the connection.
    assert_eq!(r.header("connection"), Some("close"));
    let m = ex.metrics();
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "unauthorized")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "amaze_ingest_rejected_total",
            &[("source", "http"), ("reason", "forbidden")]
        ),
        Some(1.0)
    );

    // Reads stay open; secrets never show in metrics, pages or the log.
    for page in ["/metrics", "/", "/api/v1/slas", "/api/v1/open"] {
        let r = ex.get(page);
        assert_eq!(r.status, 200, "{page}");
        for secret in [PUSHER, OPS, FROM_ENV] {
            assert!(!r.body.contains(secret), "{page} shows a token");
        }
    }
    for secret in [PUSHER, OPS, FROM_ENV] {
        assert!(!ex.log().contains(secret), "the log shows a token");
    }
}

#[test]
fn only_an_admin_token_may_reload() {
    let (home, _secrets) = home();
    let ex = start(&home);
    let reload = |token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("authorization", b)])
            .unwrap_or_default();
        ex.post_with("/-/reload", "text/plain", b"", &headers)
            .status
    };
    assert_eq!(reload(None), 401);
    assert_eq!(reload(Some(PUSHER)), 403);
    assert_eq!(reload(Some(OPS)), 200);
}

#[test]
fn token_problems_are_reported_without_the_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let short = secrets.path().join("short.token");
    std::fs::write(&short, "hunter2").unwrap();
    let config = format!(
        r#"
version: 1
auth:
  tokens:
    - name: short
      token_file: {}
      slas: [nope]
    - name: missing
      token_file: {}/absent.token
    - name: both
      token_file: {}
      token_env: HOME
    - token_env: AMAZE_SURELY_UNSET_VARIABLE
slas:
  - name: checkout
    promise: 300ms
    objective: 99%
"#,
        short.display(),
        secrets.path().display(),
        short.display()
    );
    let err = amaze_exporter::config::Config::parse(&config)
        .unwrap_err()
        .to_string();
    for expected in [
        "auth.tokens[0].token_file (line 6): the token is 7 bytes; use at least 16",
        "auth.tokens[0].slas[0] (line 7): unknown SLA `nope`; configured: checkout",
        "auth.tokens[1].token_file (line 9): cannot read token file",
        "auth.tokens[2].token_env (line 12): give token_file or token_env, not both",
        "auth.tokens[3].name: required",
        "auth.tokens[3].token_env (line 13): environment variable `AMAZE_SURELY_UNSET_VARIABLE` is not set",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(!err.contains("hunter2"), "{err}");
}

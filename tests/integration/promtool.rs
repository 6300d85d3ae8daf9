//! `/metrics` passes `promtool check metrics` (Debian package `prometheus`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::server::{Exporter, tool_available};

#[test]
fn metrics_pass_promtool_lint() {
    if !tool_available("promtool") {
        return;
    }
    let ex = Exporter::start(crate::push::CONFIG);
    let body = "{\"sla\":\"checkout\",\"duration\":\"120ms\",\"labels\":{\"route\":\"/a\"}}\n\
                {\"sla\":\"checkout\",\"failed\":true,\"labels\":{\"route\":\"/b\"}}\n\
                {\"sla\":\"tickets\",\"duration\":\"2h\",\"labels\":{\"priority\":\"P1\"}}\n\
                {\"sla\":\"tickets\",\"duration\":\"2h\"}\n";
    assert_eq!(ex.push(&body.repeat(10)).status, 200);
    let text = ex.metrics().0;
    assert!(text.contains("+Inf"), "failures make some quantile +Inf");
    check_metrics(&text);
}

/// Fails unless `promtool check metrics` accepts `text`.
pub fn check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

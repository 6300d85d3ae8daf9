//! README's examples are tests. Every console example runs against the real
//! binary and must print what README shows, matched by snapbox (`[..]`
//! stands for volatile text within a line, `...` for lines); every YAML
//! snippet is a shipped file, byte for byte, or a marked fragment of one,
//! and the shipped file passes its check.
//!
//! A directive in an HTML comment on the line before a block says how:
//! - `<!-- example: session=NAME config=FILE clock=INSTANT needs=WHAT -->`
//!   before a console block. Blocks of one session share one exporter
//!   serving `config` (started with the session's first block) and a state
//!   directory; `clock` freezes the exporter's and the CLI's wall clock at
//!   that UTC instant (libfaketime); `needs` names a Python module the
//!   example runs. Commands run in bash from the repository root, with the
//!   exporter's address for `localhost:9797` (and as the `--target` of
//!   `import`, `report` and `demo`).
//! - `<!-- file: PATH -->` before a YAML block: the block is that file.
//! - `<!-- fragment: PATH -->` before a YAML block: every value the block
//!   sets, the file sets too (lists of maps match by `name`, else by place).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::server::{Exporter, Home, python_has, tool_available};
use crate::web_config::Pki;

/// The address README's examples use.
const DOCUMENTED: [&str; 2] = ["localhost:9797", "127.0.0.1:9797"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fenced block of README and the directive before it.
struct Block {
    line: usize,
    lang: String,
    directive: HashMap<String, String>,
    kind: Option<String>,
    text: String,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        // Fences may be indented (in a list) and of either kind.
        let line = lines[i].trim_start();
        let indent = lines[i].len() - line.len();
        let Some((fence, lang)) = ["```", "~~~"]
            .into_iter()
            .find_map(|f| line.strip_prefix(f).map(|rest| (f, rest)))
        else {
            i += 1;
            continue;
        };
        // `console title=x` is a console block; `yml` is YAML.
        let lang = match lang.split_whitespace().next().unwrap_or("") {
            "yml" => "yaml",
            other => other,
        };
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with(fence))
            .expect("every block is closed");
        let (kind, directive) = start
            .checked_sub(1)
            .and_then(|j| parse_directive(lines[j]))
            .unzip();
        out.push(Block {
            line: start + 1,
            lang: lang.to_owned(),
            directive: directive.unwrap_or_default(),
            kind,
            // Without the fence's own indentation (a block in a list).
            text: lines[start + 1..end]
                .iter()
                .map(|l| {
                    let pad = l.len() - l.trim_start_matches(' ').len();
                    &l[pad.min(indent)..]
                })
                .collect::<Vec<_>>()
                .join("\n"),
        });
        i = end + 1;
    }
    out
}

/// `<!-- example: a=b c=d -->` as ("example", {a: b, c: d}); a value of
/// `file:` and `fragment:` is its path, under the key `path`.
fn parse_directive(line: &str) -> Option<(String, HashMap<String, String>)> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let (kind, rest) = inner.split_once(':')?;
    let mut map = HashMap::new();
    match kind {
        "file" | "fragment" => {
            map.insert("path".to_owned(), rest.trim().to_owned());
        }
        _ => {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=')?;
                map.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    Some((kind.to_owned(), map))
}

/// One command of a console block (continuation lines joined) and the
/// output README shows for it.
struct Step {
    command: String,
    shown: String,
}

fn steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for line in text.lines() {
        if continuing {
            let step = steps.last_mut().expect("a command continues");
            step.command.push('\n');
            step.command.push_str(line);
            continuing = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            continuing = command.ends_with('\\');
            steps.push(Step {
                command: command.to_owned(),
                shown: String::new(),
            });
        } else {
            let step = steps.last_mut().expect("output follows a command");
            step.shown.push_str(line);
            step.shown.push('\n');
        }
    }
    steps
}

/// libfaketime's preload library.
fn libfaketime() -> Option<PathBuf> {
    glob::glob("/usr/lib/*/faketime/libfaketime.so.1")
        .ok()?
        .flatten()
        .next()
}

/// The environment that freezes a process's wall clock at `instant`
/// (`2026-11-23T09:15:00Z`); monotonic time runs, so timers work.
fn frozen(instant: &str) -> Vec<(String, String)> {
    let library = libfaketime().expect("libfaketime");
    let at = instant.trim_end_matches('Z').replace('T', " ");
    vec![
        ("LD_PRELOAD".into(), library.display().to_string()),
        ("FAKETIME".into(), at),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("TZ".into(), "UTC".into()),
    ]
}

/// An exporter serving a session's config, and a directory of shims that
/// put `amaze-exporter` (under the session's clock) first on PATH.
struct Session {
    exporter: Exporter,
    _home: Home,
    shims: tempfile::TempDir,
}

impl Session {
    fn start(directive: &HashMap<String, String>) -> Session {
        let config = directive.get("config").expect("a session names its config");
        let text = std::fs::read_to_string(root().join(config)).expect("the config is shipped");
        let home = Home::new(&text);
        let clock = directive
            .get("clock")
            .map(|c| frozen(c))
            .unwrap_or_default();
        let wrapper: Vec<String> = std::iter::once("env".to_owned())
            .chain(clock.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let exporter = home.start_wrapped(&wrapper, &[]);
        let shims = tempfile::tempdir().unwrap();
        // The commands that talk to an exporter default to 127.0.0.1:9797;
        // the shim points them at this one unless README names a target.
        let mut script = format!(
            "#!/bin/bash\ncase \"$1\" in import|report|demo)\n  [[ \" $* \" == *\" --target\"* ]] || set -- \"$@\" --target 'http://{}';;\nesac\nexec env",
            exporter.addr()
        );
        for (k, v) in &clock {
            script.push_str(&format!(" {k}='{v}'"));
        }
        script.push_str(&format!(
            " '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_amaze-exporter")
        ));
        let shim = shims.path().join("amaze-exporter");
        std::fs::write(&shim, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        Session {
            exporter,
            _home: home,
            shims,
        }
    }

    /// Runs `steps` in one bash, each command's output (stdout and stderr
    /// together) apart.
    fn run(&self, steps: &[Step]) -> Vec<String> {
        let separator = "\u{1e}step\u{1e}";
        let mut script = String::from("exec 2>&1\n");
        for step in steps {
            let mut command = step.command.clone();
            for documented in DOCUMENTED {
                command = command.replace(documented, self.exporter.addr());
            }
            // The separator keeps the exit status, for `echo $?`.
            script.push_str(&format!(
                "{{ status=$?; printf '\\n{separator}\\n'; (exit $status); }}\n{command}\n"
            ));
        }
        let path = format!(
            "{}:{}",
            self.shims.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(root())
            .env("PATH", path)
            .output()
            .expect("bash runs");
        let text =
            String::from_utf8_lossy(&out.stdout).replace(self.exporter.addr(), DOCUMENTED[1]);
        text.split(&format!("\n{separator}\n"))
            .skip(1)
            .map(str::to_owned)
            .collect()
    }
}

/// Why a session cannot run here, if it cannot.
fn missing(directive: &HashMap<String, String>) -> Option<String> {
    if directive.contains_key("clock") && (!tool_available("faketime") || libfaketime().is_none()) {
        return Some("libfaketime is not installed".into());
    }
    match directive.get("needs").map(String::as_str) {
        Some("opentelemetry") if !python_has("opentelemetry.sdk", "opentelemetry-sdk") => {
            Some("the Python OpenTelemetry SDK is not installed".into())
        }
        _ => None,
    }
}

#[test]
fn every_console_example_prints_what_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut wrong = Vec::new();
    let mut blessed: Vec<(usize, Vec<Step>)> = Vec::new();
    let mut ran = 0;
    let all = blocks(&readme);
    for block in &all {
        // A prompt anywhere makes a console example, which must run; an
        // example directive anywhere must be on one.
        let prompts = block.text.lines().any(|l| l.starts_with("$ "));
        let example = block.kind.as_deref() == Some("example");
        assert!(
            block.lang == "console" || (!prompts && !example),
            "README line {}: a block with `$ ` commands or an example directive must be ```console",
            block.line
        );
        let file = matches!(block.kind.as_deref(), Some("file" | "fragment"));
        assert!(
            block.lang == "yaml" || !file,
            "README line {}: a file or fragment directive on a block that is not YAML",
            block.line
        );
    }
    let mut configs: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    for block in all.into_iter().filter(|b| b.lang == "console") {
        assert_eq!(
            block.kind.as_deref(),
            Some("example"),
            "README line {}: a console block without `<!-- example: ... -->`",
            block.line
        );
        let name = block.directive.get("session").cloned().expect("a session");
        // A later block of a session may not ask for another config or clock.
        let asked = (
            block.directive.get("config").cloned(),
            block.directive.get("clock").cloned(),
        );
        match configs.get(&name) {
            None => {
                configs.insert(name.clone(), asked);
            }
            Some(first) => assert!(
                (asked.0.is_none() || asked.0 == first.0)
                    && (asked.1.is_none() || asked.1 == first.1),
                "README line {}: session `{name}` runs {first:?} already",
                block.line
            ),
        }
        if skipped.contains(&name) {
            continue;
        }
        if !sessions.contains_key(&name) {
            if let Some(why) = missing(&block.directive) {
                assert!(
                    std::env::var_os("AMAZE_REQUIRE_TOOLS").is_none(),
                    "README line {}: {why}",
                    block.line
                );
                eprintln!("skipping README session {name}: {why}");
                skipped.push(name);
                continue;
            }
            sessions.insert(name.clone(), Session::start(&block.directive));
        }
        let mut steps = steps(&block.text);
        let printed = sessions[&name].run(&steps);
        assert_eq!(printed.len(), steps.len(), "README line {}", block.line);
        let mut changed = false;
        for (step, actual) in steps.iter_mut().zip(printed) {
            ran += 1;
            let assert = snapbox::Assert::new();
            let actual = actual.trim_end().to_owned();
            let expected = snapbox::Data::text(step.shown.trim_end().to_owned());
            let got = snapbox::Data::text(actual.clone());
            if let Err(e) = assert.try_eq(Some(&"the binary"), got, expected) {
                wrong.push(format!(
                    "README line {}, `$ {}`:\n{e}",
                    block.line, step.command
                ));
                step.shown = if actual.is_empty() {
                    actual
                } else {
                    actual + "\n"
                };
                changed = true;
            }
        }
        if changed {
            blessed.push((block.line, steps));
        }
    }
    if std::env::var_os("AMAZE_BLESS_README").is_some() {
        bless(&readme, &blessed);
        return;
    }
    assert!(
        wrong.is_empty(),
        "{}\n\n(AMAZE_BLESS_README=1 writes what the binary printed into README.md; review the diff)",
        wrong.join("\n\n")
    );
    assert!(ran >= 20 || !skipped.is_empty(), "{ran} commands ran");
}

/// Rewrites README's console blocks that start at the given lines with
/// their steps' output as printed (matching steps keep their wildcards).
fn bless(readme: &str, blessed: &[(usize, Vec<Step>)]) {
    let mut lines: Vec<String> = readme.lines().map(str::to_owned).collect();
    // From the bottom, so earlier line numbers stay put.
    for (fence, steps) in blessed.iter().rev() {
        let start = *fence; // the first line inside the block, 0-based
        let end = (start..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .expect("closed");
        let mut text = String::new();
        for step in steps {
            text.push_str(&format!("$ {}\n{}", step.command, step.shown));
        }
        let new: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.splice(start..end, new);
    }
    std::fs::write(root().join("README.md"), lines.join("\n") + "\n").unwrap();
}

/// Whether every value `fragment` sets, `file` sets too.
fn within(fragment: &Value, file: &Value, at: &str) -> Result<(), String> {
    match (fragment, file) {
        (Value::Object(f), Value::Object(g)) => {
            for (key, value) in f {
                let there = g
                    .get(key)
                    .ok_or_else(|| format!("{at}.{key} is not in the file"))?;
                within(value, there, &format!("{at}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(f), Value::Array(g)) => {
            for (i, item) in f.iter().enumerate() {
                let name = item.get("name");
                let there = match name {
                    Some(name) => g.iter().find(|x| x.get("name") == Some(name)),
                    None if item.is_object() => g.get(i),
                    // Scalars: the list as written.
                    None => return (f == g).then_some(()).ok_or(format!("{at} differs")),
                };
                let there = there.ok_or_else(|| format!("{at}[{i}] is not in the file"))?;
                within(item, there, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ if fragment == file => Ok(()),
        _ => Err(format!("{at}: README has {fragment}, the file {file}")),
    }
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// The shipped file at `path` passes the check its kind has: the exporter's
/// `check` for a config, loading for a web config (beside a throwaway
/// certificate), `promtool check config` for Prometheus's.
fn checked(path: &str) -> Result<(), String> {
    let file = root().join(path);
    if path.starts_with("config/prometheus/") {
        if !tool_available("promtool") {
            return Ok(());
        }
        let out = Command::new("promtool")
            .args(["check", "config", "--syntax-only"])
            .arg(&file)
            .output()
            .unwrap();
        return out
            .status
            .success()
            .then_some(())
            .ok_or_else(|| String::from_utf8_lossy(&out.stdout).into_owned());
    }
    if path.contains("web") {
        let pki = Pki::new();
        let copy = pki.dir().join("web.yml");
        std::fs::copy(&file, &copy).unwrap();
        return amaze_exporter::config::web::WebConfig::load(&copy)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
        .arg("check")
        .arg(&file)
        .envs(crate::config_files::TOKENS)
        .output()
        .unwrap();
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_yaml_snippet_is_a_shipped_file_or_a_fragment_of_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut wrong = Vec::new();
    let mut seen = 0;
    for block in blocks(&readme).into_iter().filter(|b| b.lang == "yaml") {
        seen += 1;
        let path = block.directive.get("path").cloned();
        let result = match (block.kind.as_deref(), path) {
            (Some("file"), Some(path)) => match std::fs::read_to_string(root().join(&path)) {
                Ok(text) if text.trim_end() == block.text.trim_end() => checked(&path),
                Ok(_) => Err(format!("README's block is not {path} as shipped")),
                Err(e) => Err(format!("{path}: {e}")),
            },
            (Some("fragment"), Some(path)) => match std::fs::read_to_string(root().join(&path)) {
                Ok(text) => within(&yaml(&block.text), &yaml(&text), "")
                    .map_err(|e| format!("not a fragment of {path}: {e}"))
                    .and_then(|()| checked(&path)),
                Err(e) => Err(format!("{path}: {e}")),
            },
            _ => Err("neither `<!-- file: PATH -->` nor `<!-- fragment: PATH -->`".into()),
        };
        if let Err(e) = result {
            wrong.push(format!("README line {}: {e}", block.line));
        }
    }
    assert!(seen >= 9, "{seen} YAML blocks");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The directives are read as documented.
#[test]
fn directives_and_steps_parse() {
    let (kind, d) = parse_directive(
        "<!-- example: session=desk config=config/x.yaml clock=2026-11-23T09:15:00Z -->",
    )
    .unwrap();
    assert_eq!(kind, "example");
    assert_eq!(d["session"], "desk");
    assert_eq!(d["clock"], "2026-11-23T09:15:00Z");
    let (kind, d) = parse_directive("<!-- fragment: config/examples/statsd.yaml -->").unwrap();
    assert_eq!(
        (kind.as_str(), d["path"].as_str()),
        ("fragment", "config/examples/statsd.yaml")
    );
    let s = steps("$ a \\\n  b\nout 1\nout 2\n$ c\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].command, "a \\\n  b");
    assert_eq!(s[0].shown, "out 1\nout 2\n");
    assert_eq!(s[1].shown, "");
    assert!(within(&yaml("a: {b: 1}"), &yaml("a: {b: 1, c: 2}"), "").is_ok());
    assert!(within(&yaml("a: {b: 2}"), &yaml("a: {b: 1}"), "").is_err());
    assert!(
        within(
            &yaml("l: [{name: x, v: 1}]"),
            &yaml("l: [{name: y}, {name: x, v: 1}]"),
            ""
        )
        .is_ok()
    );
}

//! The layers of `lib.rs`'s code map hold: a module imports only modules
//! listed before it (or itself). Test code is exempt: it may build configs
//! to test a lower layer.

use std::collections::HashMap;
use std::path::Path;

/// Top-level modules in code-map order, read from `lib.rs`'s doc comment.
fn layers(lib: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for line in lib.lines().take_while(|l| l.starts_with("//!")) {
        if let Some(rest) = line.strip_prefix("//! - [`")
            && let Some(name) = rest.split('`').next()
            && !name.contains("::")
            && !order.iter().any(|o| o == name)
        {
            order.push(name.to_owned());
        }
    }
    order
}

/// `text` without comments and without `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if let Some(depth) = skip_depth.as_mut() {
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        if pending_test {
            pending_test = false;
            let depth = line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if depth > 0 {
                skip_depth = Some(depth);
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level modules `code` names through `crate::`.
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let order = layers(&lib);
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(top.as_str(), "lib" | "main") {
            continue;
        }
        let Some(&mine) = rank.get(top.as_str()) else {
            wrong.push(format!(
                "{}: module `{top}` is not in lib.rs's code map",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for name in imports(&code(&text)) {
            match rank.get(name.as_str()) {
                Some(&theirs) if theirs > mine => wrong.push(format!(
                    "{} imports `{name}`, which the code map puts above `{top}`",
                    relative.display()
                )),
                Some(_) => {}
                None => wrong.push(format!(
                    "{}: `crate::{name}` is not a module",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "layers broken:\n{}", wrong.join("\n"));
    assert!(order.len() >= 15, "code map read: {order:?}");
}

#[test]
fn the_checker_sees_an_upward_import() {
    let code = code(
        "use crate::http::AppState;\n#[cfg(test)]\nmod tests {\n    use crate::app::run;\n}\n",
    );
    assert_eq!(imports(&code), ["http"]);
    assert_eq!(
        imports("use crate::{sla::Sla, window::Millis};"),
        ["sla", "window"]
    );
}

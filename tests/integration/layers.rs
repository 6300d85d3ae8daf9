//! The layers of `lib.rs`'s code map hold: a module uses only modules listed
//! before it (or itself). Every path is checked as the compiler reads it
//! (parsed with `syn`): `use` trees, paths in code, `super::` chains that
//! reach the crate root, and `crate::`/`$crate::` inside macros. Test code
//! (`#[cfg(test)]`) is exempt: it may build configs to test a lower layer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

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

/// Collects the top-level modules one file uses, and anything the check
/// cannot judge.
struct Uses {
    /// The module path of the code being visited (`["ingest", "statsd"]`).
    module: Vec<String>,
    /// Top-level modules named, with what named them.
    found: Vec<(String, String)>,
    /// Forms the check refuses (`use crate as x`).
    refused: Vec<String>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

impl Uses {
    /// Records the top-level module a path starting with `segments` reaches.
    fn path(&mut self, segments: &[String], what: &str) {
        let mut at = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => self.module.clone(),
            _ => return,
        };
        let mut rest = segments;
        if rest[0] == "crate" {
            rest = &rest[1..];
        } else {
            while rest.first().is_some_and(|s| s == "super") {
                if at.pop().is_none() {
                    self.refused
                        .push(format!("`{what}` climbs above the crate root"));
                    return;
                }
                rest = &rest[1..];
            }
        }
        let top = at.first().cloned().or_else(|| rest.first().cloned());
        if let Some(top) = top {
            self.found.push((top, what.to_owned()));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                let what = prefix.join("::");
                self.path(&prefix.clone(), &what);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                if r.ident == "crate" || r.ident == "super" {
                    self.refused.push(format!(
                        "`use {} as {}` hides where paths go",
                        r.ident, r.rename
                    ));
                }
                prefix.push(r.ident.to_string());
                let what = prefix.join("::");
                self.path(&prefix.clone(), &what);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => {
                let what = format!("{}::*", prefix.join("::"));
                self.path(&prefix.clone(), &what);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// `crate::x` and `$crate::x` inside macro tokens.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, t) in trees.iter().enumerate() {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" => {
                    let next: Vec<String> = trees[i + 1..]
                        .iter()
                        .take(3)
                        .map(ToString::to_string)
                        .collect();
                    if next.len() == 3 && next[0] == ":" && next[1] == ":" {
                        let what = format!("crate::{}", next[2]);
                        self.path(&["crate".to_owned(), next[2].clone()], &what);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let what = segments.join("::");
        self.path(&segments, &what);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `ingest/statsd/mod.rs` is
/// `["ingest", "statsd"]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// What `text` (at `module`) uses, and what the check refuses in it.
fn uses(module: Vec<String>, text: &str) -> Uses {
    let file = syn::parse_file(text).expect("parses");
    let mut uses = Uses {
        module,
        found: Vec::new(),
        refused: Vec::new(),
    };
    uses.visit_file(&file);
    uses
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let order = layers(&lib);
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    // The order the architecture promises, whatever else sits between.
    let promised = [
        ["window", "margin", "calendar", "delivery", "sla"].as_slice(),
        &["recorder"],
        &["persist"],
        &["ingest"],
        &["http"],
        &["app"],
    ];
    for pair in promised.windows(2) {
        for low in pair[0] {
            for high in pair[1] {
                assert!(
                    rank[low] < rank[high],
                    "the code map puts `{high}` below `{low}`"
                );
            }
        }
    }
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let relative = path.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        let top = module[0].clone();
        if matches!(top.as_str(), "lib" | "main") {
            continue;
        }
        let Some(&mine) = rank.get(top.as_str()) else {
            wrong.push(format!(
                "{}: `{top}` is not in lib.rs's code map",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let found = uses(module, &text);
        wrong.extend(
            found
                .refused
                .iter()
                .map(|r| format!("{}: {r}", relative.display())),
        );
        for (name, what) in found.found {
            match rank.get(name.as_str()) {
                Some(&theirs) if theirs > mine => wrong.push(format!(
                    "{}: `{what}` reaches `{name}`, which the code map puts above `{top}`",
                    relative.display()
                )),
                Some(_) => {}
                // Items of lib.rs itself, none today.
                None => wrong.push(format!("{}: `{what}` is not a module", relative.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "layers broken:\n{}", wrong.join("\n"));
}

/// Each way of reaching a module above, as a reviewer found them.
#[test]
fn the_checker_sees_every_way_up() {
    let up = |module: &[&str], text: &str| -> Vec<String> {
        let found = uses(module.iter().map(|s| (*s).to_owned()).collect(), text);
        let mut out: Vec<String> = found.found.into_iter().map(|(m, _)| m).collect();
        out.extend(found.refused);
        out
    };
    assert_eq!(up(&["window"], "use crate::http::AppState;"), ["http"]);
    assert_eq!(
        up(
            &["persist", "wal"],
            "use crate::{sla::{Catalog}, http::AppState};"
        ),
        ["sla", "http"]
    );
    assert_eq!(
        up(&["ingest", "ticker"], "use super::super::http::AppState;"),
        ["http"]
    );
    assert_eq!(
        up(&["margin"], "fn f() -> super::app::AppError { todo!() }"),
        ["app"]
    );
    assert_eq!(
        up(&["window"], "fn f() -> crate ::app::AppError { todo!() }"),
        ["app"]
    );
    assert_eq!(
        up(
            &["ingest"],
            "macro_rules! m { () => { $crate::http::x() } }"
        ),
        ["http"]
    );
    let aliased = up(&["clock"], "use crate as root;");
    assert!(
        aliased.iter().any(|r| r.contains("hides where paths go")),
        "aliasing the crate is refused: {aliased:?}"
    );
    assert!(
        up(
            &["window"],
            "#[cfg(test)]\nmod tests { use crate::app::run; fn s() { \"}}}\"; } }"
        )
        .is_empty()
    );
    assert_eq!(
        up(
            &["ingest", "statsd"],
            "use super::Reading; use self::parser::Line;"
        ),
        ["ingest"]
    );
}

//! Config values as written and the problems found in them: each scalar
//! kept as text with its line ([`Text`]), every problem with its YAML path
//! ([`Problem`]), and the readers that check one field in one line
//! ([`Section`]). Below every part of the config, so a source's settings are
//! read beside the source.

pub mod file;
mod section;

pub use section::{Section, bytes, count, flag, identifier, one_of, span, text};

use std::collections::HashSet;
use std::fmt;

use crate::sla::Sla;

/// A scalar as written, with where it was written.
pub type Text = serde_saphyr::Spanned<String>;

/// One thing wrong with the config, where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// YAML path such as `slas[1].promise`.
    pub path: String,
    /// The line in the file, when known.
    pub line: Option<u64>,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found so far, in the order found.
#[derive(Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// How many so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    /// Records `message` at `path`, on the line of `text` when given.
    pub fn at(&mut self, path: impl Into<String>, text: Option<&Text>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            line: text.map(|t| t.referenced.line()),
            message: message.into(),
        });
    }

    /// Records `message` at `path`, on `line` when known (a key that is
    /// missing has no line of its own: its entry's is given).
    pub fn at_line(
        &mut self,
        path: impl Into<String>,
        line: Option<u64>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            path: path.into(),
            line,
            message: message.into(),
        });
    }

    /// Parses an optional scalar, recording a problem when it does not parse.
    pub fn parse<T>(
        &mut self,
        path: &str,
        text: Option<&Text>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = text?;
        match parse(text.value.trim()) {
            Ok(v) => Some(v),
            Err(message) => {
                self.at(path, Some(text), message);
                None
            }
        }
    }
}

/// A required, non-empty `name` at `path`, unique among `seen`; `what`
/// names the kind of thing in the duplicate message.
pub fn unique_name(
    p: &mut Problems,
    path: &str,
    text: Option<&Text>,
    seen: &mut HashSet<String>,
    what: &str,
) -> Option<String> {
    let name = required(p, path, "name", text, |s| {
        if s.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    })?;
    if !seen.insert(name.clone()) {
        p.at(
            format!("{path}.name"),
            text,
            format!("duplicate {what} name `{name}`"),
        );
    }
    Some(name)
}

/// `field` of the part at `path` read by `parse`; a problem when absent or
/// when it does not read.
pub fn required<T>(
    p: &mut Problems,
    path: &str,
    field: &str,
    text: Option<&Text>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    Section::new(p, path).required(field, text, parse)
}

/// Whether `key` is a label of `sla` (when the SLA is known); records the
/// problem at `at` when it is not.
pub fn is_label(
    p: &mut Problems,
    at: impl Into<String>,
    value: &Text,
    sla: Option<&Sla>,
    key: &str,
) -> bool {
    let Some(sla) = sla else { return true };
    if sla.labels.iter().any(|l| l == key) {
        return true;
    }
    let allowed = if sla.labels.is_empty() {
        "it has none".to_owned()
    } else {
        sla.labels.join(", ")
    };
    p.at(
        at,
        Some(value),
        format!("`{key}` is not a label of SLA `{}` ({allowed})", sla.name),
    );
    false
}

/// The SLA named `name`, or a message naming the configured ones.
pub fn known_sla<'a>(slas: &'a [Sla], name: &str) -> Result<&'a Sla, String> {
    slas.iter().find(|x| x.name == name).ok_or_else(|| {
        let names: Vec<&str> = slas.iter().map(|x| x.name.as_str()).collect();
        if names.is_empty() {
            // Every SLA has problems of its own, listed with it.
            format!("unknown SLA `{name}`: no SLA in this file is valid yet")
        } else {
            format!("unknown SLA `{name}`; configured: {}", names.join(", "))
        }
    })
}

/// The YAML keys of the serde shapes in a file's `source` text: each field
/// declared `pub` or `pub(crate)`, by its `rename` when it has one. A test
/// checks a list of keys names them all.
#[cfg(test)]
pub fn shape_keys(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut keys = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let Some(field) = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
        else {
            continue;
        };
        let Some((name, _)) = field.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.contains('(') {
            continue;
        }
        let renamed = i
            .checked_sub(1)
            .and_then(|j| lines[j].split("rename = \"").nth(1))
            .and_then(|r| r.split('"').next());
        keys.push(renamed.unwrap_or(name.trim_start_matches("r#")).to_owned());
    }
    keys
}

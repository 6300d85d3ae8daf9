//! Fields by declaration: a [`Section`] reads each field of one part of the
//! file with a reader ([`count`], [`span`], [`one_of`], ...) in one line, and
//! records any problem with the field's YAML path and line. What is left in
//! the validators is the checks specific to them.

use std::time::Duration;

use std::collections::BTreeMap;

use super::{Problems, Text, is_label};
use crate::sla::Sla;

/// One part of the config (`slas[2]`, `sources.probes[0]`), its problems
/// recorded under its path.
pub struct Section<'p> {
    p: &'p mut Problems,
    path: String,
    before: usize,
    /// The first line of the entry, for keys missing from it.
    line: Option<u64>,
}

impl<'p> Section<'p> {
    /// The part of the file at `path`.
    pub fn new(p: &'p mut Problems, path: impl Into<String>) -> Section<'p> {
        let before = p.len();
        Section {
            p,
            path: path.into(),
            before,
            line: None,
        }
    }

    /// This section, knowing its entry starts on the first line any of
    /// `texts` (its keys' values) is on: a required key that is missing is
    /// reported on that line.
    pub fn starting_at(mut self, texts: &[Option<&Text>]) -> Section<'p> {
        self.line = texts.iter().flatten().map(|t| t.referenced.line()).min();
        self
    }

    /// The path of `key` in this section.
    pub fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// Records a problem of `key`.
    pub fn problem(&mut self, key: &str, text: Option<&Text>, message: impl Into<String>) {
        let path = self.path(key);
        self.p.at(path, text, message);
    }

    /// `key` read by `read` if given; `None` (and a problem) if it does not read.
    pub fn optional<T>(
        &mut self,
        key: &str,
        text: Option<&Text>,
        read: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let path = self.path(key);
        self.p.parse(&path, text, read)
    }

    /// `key` read by `read`, or `default` when absent or invalid.
    pub fn or<T>(
        &mut self,
        key: &str,
        text: Option<&Text>,
        read: impl FnOnce(&str) -> Result<T, String>,
        default: T,
    ) -> T {
        self.optional(key, text, read).unwrap_or(default)
    }

    /// `key` read by `read`; a problem when absent.
    pub fn required<T>(
        &mut self,
        key: &str,
        text: Option<&Text>,
        read: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if text.is_none() {
            let message = if self.line.is_some() {
                "required: missing from the entry that starts here"
            } else {
                "required"
            };
            let path = self.path(key);
            self.p.at_line(path, self.line, message);
            return None;
        }
        self.optional(key, text, read)
    }

    /// Every item of list `key` read by `read` (problems at `key[i]`).
    pub fn each<T>(
        &mut self,
        key: &str,
        texts: &[Text],
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        texts
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.optional(&format!("{key}[{i}]"), Some(t), &read))
            .collect()
    }

    /// `labels`, label name to where its value comes from: each a label of
    /// `sla` (when one is known) and its value read by `read`, problems at
    /// `labels.<name>`. Only labels with neither problem are kept.
    pub fn labels<T>(
        &mut self,
        raw: &BTreeMap<String, Text>,
        sla: Option<&Sla>,
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<(String, T)> {
        let mut labels = Vec::new();
        for (name, value) in raw {
            let key = format!("labels.{name}");
            let allowed = is_label(self.p, self.path(&key), value, sla, name);
            let read = self.optional(&key, Some(value), &read);
            if let (true, Some(read)) = (allowed, read) {
                labels.push((name.clone(), read));
            }
        }
        labels
    }

    /// Whether this section recorded no problem.
    pub fn clean(&self) -> bool {
        self.p.len() == self.before
    }

    /// The problems, for checks that need them directly.
    pub fn problems(&mut self) -> &mut Problems {
        self.p
    }
}

/// A whole number in `min..=max` (`_` separators allowed).
pub fn count(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> {
    move |s| {
        let v: usize = s
            .replace('_', "")
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?;
        if v < min || v > max {
            return Err(format!("{v} is out of range {min}..={max}"));
        }
        Ok(v)
    }
}

/// A size in bytes, plain (`1048576`) or with a binary unit (`512KiB`,
/// `10MiB`, `1GiB`), in `min..=max`.
pub fn bytes(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |s| {
        let t = s.trim();
        let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
            Some(at) => t.split_at(at),
            None => (t, ""),
        };
        let not_a_size = || format!("`{s}` is not a size: write e.g. `1048576` or `10MiB`");
        if number.trim().is_empty() {
            return Err(not_a_size());
        }
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "`{other}` is not a unit of size: use KiB, MiB or GiB, or a number of bytes"
                ));
            }
        };
        let v = number
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(not_a_size)?;
        if v < min || v > max {
            return Err(format!("{v} bytes is out of range {min}..={max}"));
        }
        Ok(v)
    }
}

/// `true` or `false`.
pub fn flag(s: &str) -> Result<bool, String> {
    s.trim()
        .parse::<bool>()
        .map_err(|_| format!("`{s}` is not true or false"))
}

/// A humantime duration (`300ms`, `4h 30m`) in `min..=max`.
pub fn span(min: Duration, max: Duration) -> impl Fn(&str) -> Result<Duration, String> {
    move |s| {
        let d = humantime::parse_duration(s).map_err(|e| {
            format!("`{s}` is not a duration ({e}); write e.g. `300ms`, `4h` or `2h 30m`")
        })?;
        if d < min {
            return Err(format!(
                "`{s}` is too short: the minimum is {}",
                humantime::format_duration(min)
            ));
        }
        if d > max {
            return Err(format!(
                "`{s}` is too long: the maximum is {}",
                humantime::format_duration(max)
            ));
        }
        Ok(d)
    }
}

/// One of `choices` by its name; `what` names the kind in the problem
/// (`` `x` is not a unit: use s, ms, us or humantime ``).
pub fn one_of<T: Copy>(
    what: &'static str,
    choices: &'static [(&'static str, T)],
) -> impl Fn(&str) -> Result<T, String> {
    move |s| {
        choices
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                let list = match names.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                format!("`{s}` is not a {what}: use {list}")
            })
    }
}

/// A name of letters, digits, `_` and `-`.
pub fn identifier(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a name: use letters, digits, `_` and `-`"
        ))
    }
}

/// The text as written, trimmed.
pub fn text(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_say_what_to_write() {
        assert_eq!(count(1, 10)("1_0"), Ok(10));
        assert_eq!(count(1, 10)("11"), Err("11 is out of range 1..=10".into()));
        let unit = one_of("unit", &[("s", 1), ("ms", 2), ("us", 3)]);
        assert_eq!(unit("ms"), Ok(2));
        assert_eq!(unit("h"), Err("`h` is not a unit: use s, ms or us".into()));
        let d = span(Duration::from_secs(1), Duration::from_secs(60));
        assert!(d("500ms").unwrap_err().contains("too short"));
        assert!(identifier("web-1").is_ok() && identifier("a b").is_err());
        let size = bytes(1, 1 << 30);
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("10MiB"), Ok(10 << 20));
        assert_eq!(size("512 KiB"), Ok(512 << 10));
        assert!(size("2GiB").unwrap_err().contains("out of range"));
        assert!(size("10MB").unwrap_err().contains("not a unit of size"));
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert_eq!(flag("true"), Ok(true));
        assert!(flag("yes").is_err());
    }
}

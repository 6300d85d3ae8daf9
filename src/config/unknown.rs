//! Keys no field takes: each reported with its path and line, and the known
//! key it most likely meant.

use super::raw::KEYS;
use crate::fields::Problem;
use crate::ingest::SOURCE_KEYS;

/// A problem for each unknown key of `paths` (serde_ignored's dotted paths,
/// in file order) in the YAML `text`.
pub fn problems(text: &str, paths: &[String]) -> Vec<Problem> {
    let mut seen: Vec<&str> = Vec::new();
    paths
        .iter()
        .map(|dotted| {
            let key = dotted.rsplit(['.', ']']).next().unwrap_or(dotted);
            // The n-th unknown `key` is on the n-th line that sets `key`.
            let nth = seen.iter().filter(|k| **k == key).count();
            seen.push(key);
            let message = match suggestion(key) {
                Some(known) => format!("unknown key `{key}`; did you mean `{known}`?"),
                None => format!("unknown key `{key}`"),
            };
            Problem {
                path: bracketed(dotted),
                line: line_of(text, key, nth),
                message,
            }
        })
        .collect()
}

/// `slas.0.promis` or `slas.?[0].promis` as the rest of the problems
/// write paths: `slas[0].promis`.
pub(super) fn bracketed(dotted: &str) -> String {
    let mut out = String::new();
    for part in dotted.split('.') {
        let part = part.trim_start_matches('?');
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
            continue;
        }
        if !out.is_empty() && !part.starts_with('[') {
            out.push('.');
        }
        out.push_str(part);
    }
    out
}

/// The 1-based line of the `nth` (from 0) line of `text` that sets `key`.
fn line_of(text: &str, key: &str, nth: usize) -> Option<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            let line = line.trim_start_matches(['"', '\'']);
            line.strip_prefix(key).is_some_and(|rest| {
                rest.trim_start_matches(['"', '\''])
                    .trim_start()
                    .starts_with(':')
            })
        })
        .nth(nth)
        .map(|(i, _)| i as u64 + 1)
}

/// The known key closest to `key`, if close enough to be a slip.
fn suggestion(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase().replace('-', "_");
    KEYS.iter()
        .chain(SOURCE_KEYS.iter().copied().flatten())
        .map(|k| (strsim::levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unknown_key_gets_its_path_line_and_a_guess() {
        let text = "version: 1\nslas:\n  - name: a\n    promis: 1s\n  - name: b\n    promis: 2s\n    colour: red\n";
        let got: Vec<String> = problems(
            text,
            &[
                "slas.0.promis".into(),
                "slas.?[1].promis".into(),
                "slas.?[1].colour".into(),
            ],
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            got,
            [
                "slas[0].promis (line 4): unknown key `promis`; did you mean `promise`?",
                "slas[1].promis (line 6): unknown key `promis`; did you mean `promise`?",
                "slas[1].colour (line 7): unknown key `colour`",
            ]
        );
    }
}

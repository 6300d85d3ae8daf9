//! A regex as configured: compiled once, matched on bytes (log lines, probe
//! bodies in any encoding), compared by the text it was written as.

use regex_automata::meta;

/// A compiled regex and the text it came from, by which configs compare.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    re: meta::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Pattern {
    /// Compiles `text`; the error says why it is not a regex. Unicode
    /// by default (`é` is its UTF-8 bytes), with raw bytes allowed where
    /// Unicode is off (`(?-u:\xE9)` is the byte 0xE9, as Latin-1 writes `é`).
    pub fn new(text: &str) -> Result<Pattern, String> {
        let re = meta::Regex::builder()
            .syntax(regex_automata::util::syntax::Config::new().utf8(false))
            .configure(meta::Config::new().utf8_empty(false))
            .build(text)
            .map_err(|e| match e.syntax_error() {
                Some(syntax) => syntax.to_string(),
                None => e.to_string(),
            })?;
        Ok(Pattern {
            text: text.to_owned(),
            re,
        })
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it matches anywhere in `haystack`, which need not be UTF-8.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.re.is_match(haystack)
    }

    /// Whether the regex has a capture group named `name`.
    pub fn has_group(&self, name: &str) -> bool {
        self.group(name).is_some()
    }

    /// The index of capture group `name`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.re
            .group_info()
            .to_index(regex_automata::PatternID::ZERO, name)
    }

    /// The compiled regex, for readers that keep their own cache and slots.
    pub fn regex(&self) -> &meta::Regex {
        &self.re
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_bytes_and_compare_by_text() {
        let p = Pattern::new("caf\u{e9}|\\xFF").unwrap();
        assert!(p.is_match("un caf\u{e9}".as_bytes()));
        assert!(
            !p.is_match(b"caf\xe9"),
            "Latin-1 bytes are not the UTF-8 text"
        );
        assert_eq!(p, Pattern::new("caf\u{e9}|\\xFF").unwrap());
        assert_ne!(p, Pattern::new("cafe").unwrap());
        assert!(Pattern::new("(").is_err());
        let latin1 = Pattern::new("(?-u:caf\\xE9)").unwrap();
        assert!(latin1.is_match(b"un caf\xe9"));
        let e = Pattern::new("(unclosed").unwrap_err();
        assert!(e.contains("unclosed group"), "{e}");
    }
}

//! Write bodies as JSON: one object, an array, or NDJSON, split into items
//! with their lines, and each item decoded with the field at fault named.
//! Push bodies ([`super::push`]) and open-delivery events
//! ([`super::events`]) are read the same way. Pure: no HTTP, no clock.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::source::Reason;

/// How the body is framed, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one object or one array.
    Json,
    /// `application/x-ndjson` (or jsonl): one object per line.
    Ndjson,
    /// Anything else (curl's default included): an array if it starts with
    /// `[`, one object if the whole body is one, NDJSON otherwise.
    Detect,
}

impl Framing {
    /// The framing a `Content-Type` header asks for.
    pub fn from_content_type(content_type: Option<&str>) -> Framing {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/json") => Framing::Json,
            Some(
                "application/x-ndjson"
                | "application/jsonl"
                | "application/jsonlines"
                | "application/x-jsonlines",
            ) => Framing::Ndjson,
            _ => Framing::Detect,
        }
    }
}

/// One problem with one item of a body: where it is, what is wrong, and
/// the reason it is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// 1-based line of the body where the item starts.
    pub line: usize,
    /// 1-based position of the item in the body (the element of an array,
    /// the non-empty line of NDJSON), which tells apart items on one line;
    /// absent when the body as a whole is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// Offending field, when one is to blame (`labels.route`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in words.
    pub reason: String,
    /// Refusal reason for the rejected counter.
    #[serde(skip)]
    pub kind: Reason,
}

impl ItemError {
    /// A [`Reason::Malformed`] error of item `item` (1-based), or of the
    /// whole body when `None`.
    pub fn malformed(
        line: usize,
        item: Option<usize>,
        field: Option<String>,
        reason: impl Into<String>,
    ) -> Self {
        ItemError {
            line,
            item,
            field,
            reason: reason.into(),
            kind: Reason::Malformed,
        }
    }
}

/// A JSON number's text (`null` reads as absent): `0.27` stays exactly
/// 0.27 rather than the nearest float.
pub(super) fn number_text<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a str>, D::Error> {
    let raw = <&'a RawValue>::deserialize(d)?;
    match raw.get() {
        "null" => Ok(None),
        text if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(Some(text)),
        text => Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Other(text),
            &"a number of seconds",
        )),
    }
}

/// A JSON object of string label values, kept in order without a map.
#[derive(Debug, Default)]
pub struct Labels<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string label values")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Labels::default())
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<Cow<'a, str>, Cow<'a, str>>()? {
                    out.push(entry);
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Splits a body into at most `max_items` (line, item text) pairs, the
/// line being the 1-based line of the body where the item starts.
pub fn split(
    body: &str,
    framing: Framing,
    max_items: usize,
) -> Result<Vec<(usize, &str)>, ItemError> {
    let trimmed = body.trim_start();
    let framing = match framing {
        Framing::Detect if trimmed.starts_with('[') => Framing::Json,
        Framing::Detect if serde_json::from_str::<&RawValue>(body).is_ok() => Framing::Json,
        // NDJSON when its first line is a whole item; otherwise one object
        // spread over lines, whose one error is clearer than one per line.
        Framing::Detect
            if trimmed
                .lines()
                .next()
                .is_some_and(|l| serde_json::from_str::<&RawValue>(l).is_ok()) =>
        {
            Framing::Ndjson
        }
        Framing::Detect => Framing::Json,
        f => f,
    };
    let items = match framing {
        Framing::Json if trimmed.starts_with('[') => {
            let list: Vec<&RawValue> = serde_json::from_str(body).map_err(|e| {
                ItemError::malformed(
                    e.line(),
                    None,
                    None,
                    format!("body is not a JSON array: {e}"),
                )
            })?;
            let mut line = 1;
            let mut scanned = 0;
            list.into_iter()
                .map(|raw| {
                    let text = raw.get();
                    let offset = text.as_ptr() as usize - body.as_ptr() as usize;
                    line += memchr::memchr_iter(b'\n', &body.as_bytes()[scanned..offset]).count();
                    scanned = offset;
                    (line, text)
                })
                .collect()
        }
        Framing::Json => {
            let raw: &RawValue = serde_json::from_str(body).map_err(|e| {
                ItemError::malformed(
                    e.line(),
                    None,
                    None,
                    format!("body is not one JSON object: {e}"),
                )
            })?;
            let text = raw.get();
            let offset = text.as_ptr() as usize - body.as_ptr() as usize;
            vec![(
                1 + memchr::memchr_iter(b'\n', &body.as_bytes()[..offset]).count(),
                text,
            )]
        }
        _ => body
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect(),
    };
    if items.is_empty() {
        return Err(ItemError::malformed(
            1,
            None,
            None,
            "no deliveries or events in the body",
        ));
    }
    if items.len() > max_items {
        return Err(ItemError {
            line: items[max_items].0,
            item: Some(max_items + 1),
            field: None,
            reason: format!(
                "the body holds {} items; limits.max_lines_per_request is {max_items}: split it",
                items.len()
            ),
            kind: Reason::TooManyLines,
        });
    }
    Ok(items)
}

/// The HTTP status for a refused body: 413 when it holds too many items,
/// 404 when only unknown SLAs are at fault, else 400.
pub fn refusal_status(errors: &[ItemError]) -> u16 {
    if errors
        .iter()
        .any(|e| matches!(e.kind, Reason::TooManyLines | Reason::BodyTooLarge))
    {
        413
    } else if errors.iter().all(|e| e.kind == Reason::UnknownSla) {
        404
    } else {
        400
    }
}

/// Decodes item number `item`, starting at body line `line`, as a `T`,
/// which the client knows as `what` ("a delivery object"); on failure
/// names the field at fault where serde can tell (`labels.route`) and the
/// body line, for items spread over several.
pub fn parse<'a, T: Deserialize<'a>>(
    line: usize,
    item: usize,
    text: &'a str,
    what: &str,
) -> Result<T, ItemError> {
    // Serde would read a struct from an array of its fields in order too:
    // `["api","1s"]` is not a delivery anyone meant.
    let found = match text.trim_start().as_bytes().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        _ => Some("a number"),
    };
    if let Some(found) = found {
        let reason = format!("expected {what} ({{\"field\": value, ...}}), found {found}");
        return Err(ItemError::malformed(line, Some(item), None, reason));
    }
    serde_json::from_str(text).map_err(|first| {
        // Rare path: parse again to learn which field failed.
        let mut de = serde_json::Deserializer::from_str(text);
        let field = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => Some(e.path().to_string()).filter(|p| !matches!(p.as_str(), "" | "." | "?")),
            Ok(_) => None,
        };
        // serde names a repeated key only in its message.
        let field = field.or_else(|| {
            let message = first.to_string();
            let rest = message.split("duplicate field `").nth(1)?;
            rest.split('`').next().map(str::to_owned)
        });
        let mut reason = first.to_string();
        // serde_json says "at line L column C" of the item: drop it for
        // one-line items, whose line is reported, else give the body line.
        if let Some(at) = reason.rfind(" at line ") {
            let place = if text.contains('\n') {
                format!(
                    " at line {} column {}",
                    line + first.line() - 1,
                    first.column()
                )
            } else {
                String::new()
            };
            reason.replace_range(at.., &place);
        }
        // Our type names mean nothing to a client.
        if let Some(start) = reason.find("struct Raw") {
            let end = reason[start + 7..]
                .find(|c: char| !c.is_alphanumeric())
                .map_or(reason.len(), |e| start + 7 + e);
            reason.replace_range(start..end, what);
        }
        ItemError::malformed(line, Some(item), field, reason)
    })
}

/// Decodes a whole body: its items split by `framing` (at most
/// `max_items`), each read by `read` with its line and position. Every
/// item's result, or the one error that stops the body.
pub fn items<T>(
    body: &[u8],
    framing: Framing,
    max_items: usize,
    mut read: impl FnMut(usize, usize, &str) -> Result<T, ItemError>,
) -> Result<Vec<Result<T, ItemError>>, ItemError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count();
        ItemError::malformed(line, None, None, format!("body is not UTF-8: {e}"))
    })?;
    let items = split(text, framing, max_items)?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, (line, item))| read(line, i + 1, item))
        .collect())
}

/// Either every item, or every error: write bodies are all or nothing.
pub fn all_or_nothing<T>(results: Vec<Result<T, ItemError>>) -> Result<Vec<T>, Vec<ItemError>> {
    let errors: Vec<ItemError> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if errors.is_empty() {
        Ok(results.into_iter().flatten().collect())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            Framing::from_content_type(Some("application/json; charset=utf-8")),
            Framing::Json
        );
        assert_eq!(
            Framing::from_content_type(Some("application/x-ndjson")),
            Framing::Ndjson
        );
        assert_eq!(
            Framing::from_content_type(Some("application/x-www-form-urlencoded")),
            Framing::Detect
        );
        assert_eq!(Framing::from_content_type(None), Framing::Detect);
    }

    #[test]
    fn detects_array_object_and_ndjson() {
        let array = "[\n{\"sla\":\"a\"},\n\n{\"sla\":\"b\"}\n]";
        let items = split(array, Framing::Detect, 10).unwrap();
        assert_eq!(
            items.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![2, 4]
        );

        let pretty = "{\n  \"sla\": \"a\",\n  \"duration\": \"1s\"\n}\n";
        assert_eq!(split(pretty, Framing::Detect, 10).unwrap().len(), 1);

        let ndjson = "{\"sla\":\"a\"}\n\n{\"sla\":\"b\"}\r\n";
        let items = split(ndjson, Framing::Detect, 10).unwrap();
        assert_eq!(items, vec![(1, "{\"sla\":\"a\"}"), (3, "{\"sla\":\"b\"}")]);
    }

    #[test]
    fn empty_body_is_an_error() {
        assert!(split("  \n ", Framing::Detect, 10).is_err());
        assert!(split("[]", Framing::Json, 10).is_err());
    }

    #[test]
    fn bodies_past_the_line_limit_are_too_large() {
        let body = "{}\n{}\n{}\n";
        assert_eq!(split(body, Framing::Ndjson, 3).map(|i| i.len()), Ok(3));
        let e = split(body, Framing::Ndjson, 2).unwrap_err();
        assert_eq!((e.line, e.item, e.kind), (3, Some(3), Reason::TooManyLines));
        assert_eq!(refusal_status(&[e]), 413);
    }
}

//! Which spans become deliveries of which SLA: the `sources.otlp.spans`
//! rules, matched against a span's name, kind and attributes. No OTLP types
//! here: the receiver hands each span over as [`SpanFacts`].

use std::borrow::Cow;

/// One `sources.otlp.spans` entry; the first that matches a span wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRule {
    /// The SLA the span's delivery belongs to.
    pub sla: String,
    /// Every (key, value) must hold: `span.name` and `span.kind`
    /// (`server`, `client`, `internal`, `producer`, `consumer`) are the
    /// span's own; any other key is an attribute, the span's first, then its
    /// resource's (`service.name`).
    pub matches: Vec<(String, String)>,
    /// (SLA label, attribute it is read from); an attribute the span lacks
    /// leaves its label out.
    pub labels: Vec<(String, String)>,
    /// An attribute holding an HTTP status code (OTel's
    /// `http.response.status_code`): 500 or more makes the delivery failed,
    /// as span status ERROR always does.
    pub failed_status_code: Option<String>,
}

/// What a rule can see of one span.
pub struct SpanFacts<'a, A: Fn(&str) -> Option<Cow<'a, str>>> {
    /// The span's name.
    pub name: &'a str,
    /// Its kind, as [`SpanRule::matches`] spells it.
    pub kind: &'a str,
    /// An attribute's value as text, span attributes before resource ones.
    pub attribute: A,
}

impl SpanRule {
    /// Whether `span` is this rule's.
    pub fn matches<'a, A: Fn(&str) -> Option<Cow<'a, str>>>(
        &self,
        span: &SpanFacts<'a, A>,
    ) -> bool {
        self.matches.iter().all(|(key, want)| match key.as_str() {
            "span.name" => span.name == want,
            "span.kind" => span.kind == want,
            _ => (span.attribute)(key).is_some_and(|v| v == want.as_str()),
        })
    }

    /// Whether the span's status code attribute says it failed.
    pub fn status_failed<'a, A: Fn(&str) -> Option<Cow<'a, str>>>(
        &self,
        span: &SpanFacts<'a, A>,
    ) -> bool {
        self.failed_status_code
            .as_deref()
            .and_then(|key| (span.attribute)(key))
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|code| code >= 500)
    }
}

/// The first of `rules` that `span` matches.
pub fn route<'r, 'a, A: Fn(&str) -> Option<Cow<'a, str>>>(
    rules: &'r [SpanRule],
    span: &SpanFacts<'a, A>,
) -> Option<&'r SpanRule> {
    rules.iter().find(|r| r.matches(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(matches: &[(&str, &str)]) -> SpanRule {
        SpanRule {
            sla: "checkout".into(),
            matches: matches
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: Vec::new(),
            failed_status_code: Some("http.response.status_code".into()),
        }
    }

    #[test]
    fn name_kind_and_attributes_must_all_hold() {
        let attrs = |k: &str| match k {
            "service.name" => Some(Cow::Borrowed("shop")),
            "http.response.status_code" => Some(Cow::Borrowed("503")),
            _ => None,
        };
        let span = SpanFacts {
            name: "checkout",
            kind: "server",
            attribute: attrs,
        };
        let r = rule(&[("service.name", "shop"), ("span.kind", "server")]);
        assert!(r.matches(&span));
        assert!(r.status_failed(&span));
        assert!(!rule(&[("span.name", "search")]).matches(&span));
        assert!(!rule(&[("http.route", "/x")]).matches(&span));
        let rules = [rule(&[("span.kind", "client")]), rule(&[])];
        assert!(std::ptr::eq(route(&rules, &span).unwrap(), &rules[1]));
    }
}

//! Where deliveries come from and why they are refused: the typed `source`
//! and `reason` labels of the ingest counters, each defined once.
//!
//! Every refusal anywhere is a [`Reason`]; every source lists the reasons it
//! can give ([`Source::reasons`]), so `/metrics` shows each of them at 0
//! before the first one happens, and a test checks the lists against what
//! the decoders can return.

/// Defines a label enum with its label text and `ALL` in declaration order.
macro_rules! labels {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

labels! {
    /// A way deliveries (or open-delivery events) come in: the `source`
    /// label of `amaze_ingest_*_total`.
    pub enum Source {
        /// `POST /api/v1/deliveries`.
        Http = "http",
        /// Open-delivery events: `POST /api/v1/deliveries/{start,pause,resume,finish,events}`.
        Events = "open",
        /// StatsD and DogStatsD timers over UDP.
        Statsd = "statsd",
        /// Log files followed across rotation.
        LogTail = "log",
        /// Active HTTP checks.
        Probe = "probe",
        /// OpenTelemetry spans over OTLP/HTTP (`POST /v1/traces`).
        Otlp = "otlp",
        /// `POST /-/reload`: not a source of deliveries, but its refused
        /// callers are counted beside theirs.
        Reload = "reload",
    }
}

labels! {
    /// Why a delivery, event, line or request was refused: the `reason`
    /// label of `amaze_ingest_rejected_total`.
    pub enum Reason {
        /// No SLA of that name is configured.
        UnknownSla = "unknown_sla",
        /// A field has a value the SLA cannot take (bad label, negative or
        /// absurd duration, times in the wrong order).
        Invalid = "invalid",
        /// Completed before the SLA's longest window began.
        TooOld = "too_old",
        /// Completed further in the future than `limits.max_future_skew`.
        InFuture = "in_future",
        /// Not a delivery: bad JSON, wrong types, an unreadable body.
        Malformed = "malformed",
        /// A request body larger than `limits.max_body_bytes`.
        BodyTooLarge = "body_too_large",
        /// A request body not received within `--web.read-timeout`.
        BodyTimeout = "body_timeout",
        /// More items in one request than `limits.max_lines_per_request`.
        TooManyLines = "too_many_lines",
        /// The state directory cannot take writes.
        StorageUnavailable = "storage_unavailable",
        /// The log writer's queue or the write budget is full.
        Overloaded = "overloaded",
        /// No valid credentials.
        Unauthorized = "unauthorized",
        /// Credentials that may not write this SLA, or reload.
        Forbidden = "forbidden",
        /// An event for an open delivery that was never started.
        UnknownId = "unknown_id",
        /// An event that does not follow the delivery's last one.
        Conflict = "conflict",
        /// A start past `limits.max_open_deliveries`.
        TooManyOpen = "too_many_open",
        /// Bytes that are not UTF-8.
        NotUtf8 = "not_utf8",
        /// A StatsD line without `:value`.
        NoValue = "no_value",
        /// A StatsD line without `|type`.
        NoType = "no_type",
        /// A StatsD line without a metric name.
        EmptyName = "empty_name",
        /// A StatsD value that is not a non-negative number.
        BadValue = "bad_value",
        /// A StatsD sample rate outside (0, 1].
        BadSampleRate = "bad_sample_rate",
        /// A StatsD line of a type that carries no delivery time.
        NotATimer = "not_a_timer",
        /// A DogStatsD service check: not a metric.
        ServiceCheck = "service_check",
        /// A DogStatsD event: not a metric.
        Event = "event",
        /// A StatsD timer that no mapping matches.
        Unmapped = "unmapped",
        /// A log line the source's regex does not match.
        NoMatch = "no_match",
        /// A log line that is not a JSON object.
        NotJson = "not_json",
        /// A log line without a field the source reads.
        MissingField = "missing_field",
        /// A log line whose duration field is not a duration.
        BadDuration = "bad_duration",
        /// A log line whose timestamp field is not a timestamp.
        BadTimestamp = "bad_timestamp",
        /// A log line longer than the source's `max_line_bytes`.
        LineTooLong = "line_too_long",
        /// A StatsD datagram cut at 64 KiB: its last, partial line.
        Truncated = "truncated",
    }
}

/// Refusals of admission, which every source's deliveries go through.
const ADMISSION: [Reason; 4] = [
    Reason::UnknownSla,
    Reason::Invalid,
    Reason::TooOld,
    Reason::InFuture,
];

/// Refusals of a commit by the journal.
const STORAGE: [Reason; 2] = [Reason::StorageUnavailable, Reason::Overloaded];

/// Refusals of a request before its content is read.
const REQUEST: [Reason; 6] = [
    Reason::Malformed,
    Reason::BodyTooLarge,
    Reason::BodyTimeout,
    Reason::TooManyLines,
    Reason::Unauthorized,
    Reason::Forbidden,
];

impl Source {
    /// Whether deliveries or events come in this way (all but the reload
    /// endpoint, whose refused callers alone are counted).
    pub fn delivers(self) -> bool {
        self != Source::Reload
    }

    /// Every reason this source can refuse with, for the counters `/metrics`
    /// shows at 0 from the start.
    pub fn reasons(self) -> Vec<Reason> {
        let mut out = Vec::new();
        match self {
            Source::Http => out.extend(ADMISSION.iter().chain(&REQUEST).chain(&STORAGE)),
            Source::Events => {
                out.extend(ADMISSION.iter().chain(&REQUEST).chain(&STORAGE));
                out.extend([Reason::UnknownId, Reason::Conflict, Reason::TooManyOpen]);
            }
            Source::Statsd => {
                out.extend(ADMISSION.iter().chain(&STORAGE));
                out.extend([
                    Reason::NotUtf8,
                    Reason::NoValue,
                    Reason::NoType,
                    Reason::EmptyName,
                    Reason::BadValue,
                    Reason::BadSampleRate,
                    Reason::ServiceCheck,
                    Reason::Event,
                    Reason::NotATimer,
                    Reason::Unmapped,
                    Reason::LineTooLong,
                    Reason::Truncated,
                ]);
            }
            Source::LogTail => {
                out.extend(ADMISSION.iter().chain(&STORAGE));
                out.extend([
                    Reason::NotUtf8,
                    Reason::NoMatch,
                    Reason::NotJson,
                    Reason::MissingField,
                    Reason::BadDuration,
                    Reason::BadTimestamp,
                    Reason::LineTooLong,
                ]);
            }
            Source::Probe => out.extend(ADMISSION.iter().chain(&STORAGE)),
            Source::Otlp => {
                out.extend(ADMISSION.iter().chain(&REQUEST).chain(&STORAGE));
                out.push(Reason::Unmapped);
            }
            Source::Reload => out.extend([Reason::Unauthorized, Reason::Forbidden]),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn labels_are_unique_and_snake_case() {
        let sources: HashSet<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(sources.len(), Source::ALL.len());
        let reasons: HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(reasons.len(), Reason::ALL.len());
        for text in sources.iter().chain(&reasons) {
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{text}"
            );
        }
    }

    #[test]
    fn every_reason_is_given_by_some_source() {
        let given: HashSet<Reason> = Source::ALL.iter().flat_map(|s| s.reasons()).collect();
        for r in Reason::ALL {
            assert!(given.contains(r), "{r} is in no source's list");
        }
    }
}

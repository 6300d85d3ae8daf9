//! amaze-exporter: how far delivery beats its SLA promise, for Prometheus.
//!
//! Code map, in dependency order: each module imports only modules listed
//! before it (the `layers` integration test checks this).
//!
//! Domain, pure (no I/O, no clock):
//! - [`decimal`]: exact decimals for objectives, margins and bucket edges.
//! - [`window`]: slot rings of relative-time sketches.
//! - [`calendar`]: business hours in a time zone: working time between instants.
//! - [`clock`]: time, injected rather than read.
//! - [`margin`]: the maths of margin, status, compliance and burn; the
//!   exact thresholds a duration is judged by.
//! - [`source`]: the typed `source` and `reason` labels of every refusal.
//! - [`auth`]: bearer tokens for writes, with per-token SLA allow-lists.
//! - [`span_rule`]: which OTLP spans become deliveries of which SLA.
//! - [`sla`]: validated SLAs, limits, the catalog and the catalog in force.
//! - [`delivery`]: the values every source emits (deliveries, open-delivery
//!   events) and the checks that admit them.
//! - [`fields`]: config values as written (text with its line), the
//!   problems found in them with their path, and one-line field readers;
//!   below every part of the config, so each source reads its own settings.
//!
//! State:
//! - [`recorder`]: series, rolling windows, counters, ids, open items and
//!   history (per hour and per day) per SLA.
//! - [`exposition`]: `/metrics` in the format the scraper asks for, every
//!   metric name defined once, the fleet rules generated from a config, the pages, the
//!   monthly report and the promise advisor.
//! - [`persist`]: write-ahead log with group commit, snapshots, recovery;
//!   its journal is the one writer of the recorder.
//!
//! Input and output:
//! - [`ingest`]: the one way in every source commits through, the pure
//!   decoders, and the sources (StatsD, log tail, probes, OTLP), each with
//!   its settings beside it and registered in one list.
//! - [`config`]: YAML to a validated [`config::Config`], all problems at once.
//! - [`import`]: `amaze-exporter import`, backfill from NDJSON and CSV
//!   exports, to a running exporter or a state directory.
//! - [`reporting`]: `amaze-exporter report`, a month's report as text.
//! - [`supervisor`]: the running sources, started, stopped and reconfigured
//!   to match the config.
//! - [`reload`]: SIGHUP and `POST /-/reload`.
//! - [`http`]: routes and handlers, load shedding, basic auth, TLS.
//! - [`shutdown`]: the signals that stop and reload the exporter.
//! - [`cli`]: command-line flags (exporter conventions) and `check`.
//! - [`logging`]: log lines as logfmt or JSON (`ts`, `level`, `msg`, fields).
//! - [`app`]: wires everything together and runs until a signal.
//! - [`demo`]: `amaze-exporter demo`, live traffic for the shipped SLAs.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decimal;
pub mod delivery;
pub mod demo;
pub mod exposition;
pub mod fields;
pub mod http;
pub mod import;
pub mod ingest;
pub mod logging;
pub mod margin;
pub mod persist;
pub mod recorder;
pub mod reload;
pub mod reporting;
pub mod shutdown;
pub mod sla;
pub mod source;
pub mod span_rule;
pub mod supervisor;
pub mod window;

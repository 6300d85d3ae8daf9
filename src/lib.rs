//! amaze-exporter: how far delivery beats its SLA promise, for Prometheus.
//!
//! Code map, in the order data flows:
//!
//! - [`cli`]: command-line flags (exporter conventions) and `check`.
//! - [`app`]: wires everything together and runs until a signal.
//! - [`config`]: YAML to a validated [`config::Config`], all problems at once.
//! - [`auth`]: bearer tokens for writes, with per-token SLA allow-lists.
//! - [`sla`]: validated SLAs and the catalog deliveries are admitted against.
//! - [`delivery`]: the one value every source emits, and its admission checks.
//! - [`calendar`]: business hours in a time zone: working time between instants.
//! - [`ingest`]: sources: HTTP push, open deliveries, StatsD, log tail, probes.
//! - [`persist`]: write-ahead log with group commit, snapshots, recovery;
//!   its journal is the one writer of the recorder.
//! - [`recorder`]: series, rolling windows, counters and ids per SLA.
//! - [`window`]: slot rings of relative-time sketches; no clock, no I/O.
//! - [`margin`]: the pure maths of margin, status, compliance and burn.
//! - [`exposition`]: `/metrics`, every metric name defined once.
//! - [`http`]: routes and shared handler state; [`tls`] serves them over
//!   rustls and [`basic_auth`] guards them, per `--web.config.file`;
//!   [`load_shed`] bounds the bytes of writes in flight.
//! - [`clock`], [`shutdown`]: time and signals, injected rather than read.
//! - [`demo`]: `amaze-exporter demo`, live traffic for the shipped SLAs.

pub mod app;
pub mod auth;
pub mod basic_auth;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decimal;
pub mod delivery;
pub mod demo;
pub mod exposition;
pub mod http;
pub mod ingest;
pub mod load_shed;
pub mod margin;
pub mod persist;
pub mod recorder;
pub mod shutdown;
pub mod sla;
pub mod tls;
pub mod window;

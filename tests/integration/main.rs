//! One integration binary: the real exporter on 127.0.0.1, plus property tests
//! of the window maths through the public library API.

mod config_files;
mod conformance;
mod connections;
mod crash;
mod dashboards;
mod disk_faults;
mod durability;
mod e2e;
mod exporter;
mod figures;
mod fixtures;
mod formats;
mod fuzz;
mod golden;
mod layers;
mod limits;
mod log_tail;
mod nginx;
mod open_clock;
mod operator;
mod probe;
mod promtool;
mod properties;
mod push;
mod reload_sources;
mod rules;
mod security;
mod server;
mod service_desk;
mod statsd;
mod statsd_clients;
mod storage_faults;
mod targets;
mod thresholds;
mod web_config;

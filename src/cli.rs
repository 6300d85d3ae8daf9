//! Command line: Prometheus exporter flag conventions, plus `check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `--version`: the release, and the git revision and date it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("AMAZE_REVISION"),
    ", built ",
    env!("AMAZE_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "amaze-exporter",
    version = VERSION,
    // As Go's flag package: a flag given again overrides the earlier one.
    args_override_self = true,
    about = "Exports how far delivery beats its SLA promise: the amaze margin"
)]
/// The command line: exporter flags, or a subcommand.
pub struct Cli {
    /// A subcommand; none serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags for serving.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and exit: 0 when valid, 2 with every problem listed.
    Check {
        /// The config file to check (or give it as `--config.file`).
        #[arg(
            value_name = "FILE",
            required_unless_present = "config_flag",
            conflicts_with = "config_flag"
        )]
        config: Option<PathBuf>,
        /// The config file to check, as serving takes it.
        #[arg(long = "config.file", visible_alias = "config", value_name = "FILE")]
        config_flag: Option<PathBuf>,
    },
    /// Print the fleet rules for a config's SLAs: recording rules and alerts
    /// that merge each SLA's figures across the instances serving it.
    Rules {
        /// The config whose SLAs the rules cover (or give it as
        /// `--config.file`; default `config/amaze.yaml`).
        #[arg(value_name = "FILE", conflicts_with = "config_flag")]
        config: Option<PathBuf>,
        /// The config whose SLAs the rules cover, as serving takes it.
        #[arg(long = "config.file", visible_alias = "config", value_name = "FILE")]
        config_flag: Option<PathBuf>,
    },
    /// Push realistic deliveries for every SLA of a config to a running
    /// exporter, one SLA's margin eroding, to see dashboards and alerts live.
    Demo {
        #[arg(
            long = "config.file",
            value_name = "FILE",
            default_value = "config/amaze.yaml"
        )]
        /// The config whose SLAs get traffic.
        config: PathBuf,
        /// Base URL of the exporter.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9797")]
        target: String,
        /// SLA whose margin erodes (default: the first with a promise under a minute).
        #[arg(long, value_name = "SLA")]
        erode: Option<String>,
        /// How long until the eroding SLA breaks its promise.
        #[arg(long = "breach-after", value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
        breach_after: std::time::Duration,
        /// How long to run, then stop (0: until interrupted).
        #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// Backfill deliveries from NDJSON or CSV exports, up to 400 days old:
    /// every row is checked first, nothing is recorded if any is refused,
    /// and ids make a re-import count nothing twice.
    Import(ImportFlags),
    /// Print a man page (roff) to stdout: `amaze-exporter man > amaze-exporter.1`,
    /// or a subcommand's: `amaze-exporter man demo > amaze-exporter-demo.1`.
    Man {
        /// The subcommand whose page to print (default: the exporter's own).
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
    /// Print shell completions to stdout, for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a month's SLA report: per SLA the deliveries, compliance,
    /// margin, budget used, worst days and whether the promise was kept.
    Report {
        /// The month, `YYYY-MM` (default: last month, in UTC).
        #[arg(long, value_name = "YYYY-MM", value_parser = crate::exposition::monthly::Month::parse)]
        month: Option<crate::exposition::monthly::Month>,
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: crate::reporting::ReportFormat,
        /// Base URL of a running exporter to ask.
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:9797",
            conflicts_with = "storage_path"
        )]
        target: String,
        /// Read a state directory instead (no exporter may be using it).
        #[arg(long = "storage.path", value_name = "DIR")]
        storage_path: Option<PathBuf>,
        /// The config the state directory was written under.
        #[arg(
            long = "config.file",
            value_name = "FILE",
            default_value = "config/amaze.yaml"
        )]
        config: PathBuf,
    },
}

/// Flags of `amaze-exporter import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportFlags {
    /// NDJSON (push format, one delivery per line) or CSV files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// File format (default: by extension, `.csv` is CSV).
    #[arg(long, value_enum)]
    pub format: Option<crate::import::rows::FileFormat>,
    /// Read a delivery field from a column: `--column started_at=created`.
    /// Fields: sla, duration, duration_seconds, started_at, delivered_at,
    /// failed, id. Columns named like a field are read without it.
    #[arg(long, value_name = "FIELD=COLUMN")]
    pub column: Vec<String>,
    /// Read a label from a column: `--label priority=prio`. Columns named
    /// `labels.NAME` are read without it.
    #[arg(long, value_name = "NAME=COLUMN")]
    pub label: Vec<String>,
    /// The SLA of rows without an `sla` column.
    #[arg(long, value_name = "SLA")]
    pub sla: Option<String>,
    /// Time zone of timestamps written without an offset (default UTC).
    #[arg(long = "time-zone", value_name = "IANA")]
    pub time_zone: Option<String>,
    /// Check every row and report what would be refused; record nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Base URL of the running exporter to send to.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:9797",
        conflicts_with = "storage_path"
    )]
    pub target: String,
    /// Bearer token for the exporter (or AMAZE_TOKEN).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AMAZE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Write into this state directory instead (no exporter may be using it).
    #[arg(long = "storage.path", value_name = "DIR")]
    pub storage_path: Option<PathBuf>,
    /// The config of the state directory (with `--storage.path`).
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "config/amaze.yaml"
    )]
    pub config: PathBuf,
}

/// Flags for serving, named as Prometheus exporters name them.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// SLA configuration file.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "config/amaze.yaml"
    )]
    pub config: PathBuf,
    /// Address to serve /metrics and the API on: `host:port`, with a host
    /// name or an address; `:9797` listens on every interface.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = "127.0.0.1:9797", value_parser = listen_address)]
    pub listen: String,
    /// Address to take OTLP/gRPC trace exports on (conventionally `:4317`);
    /// off unless given. OTLP/HTTP is always on at `/v1/traces`.
    #[arg(long = "otlp.grpc-listen-address", value_name = "ADDR", value_parser = listen_address)]
    pub otlp_grpc: Option<String>,
    /// Address to take OTLP/HTTP trace exports on besides the main one
    /// (conventionally `:4318`); only `POST /v1/traces`, with the same web
    /// config (TLS, basic auth) and tokens.
    #[arg(long = "otlp.http-listen-address", value_name = "ADDR", value_parser = listen_address)]
    pub otlp_http: Option<String>,
    /// Open HTTP connections at most. At the cap, the connection idle the
    /// longest is closed for a new one; a new one is refused only while
    /// every connection is handling a request.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Time for a client to send a whole request head, from connecting (TLS
    /// handshake included) or from its first byte after an idle spell.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s", value_parser = web_timeout)]
    pub read_header_timeout: std::time::Duration,
    /// Time for a client to send a write's whole body once its head is in.
    #[arg(long = "web.read-timeout", value_name = "DURATION", default_value = "30s", value_parser = web_timeout)]
    pub read_timeout: std::time::Duration,
    /// A kept-alive connection with no request for this long is closed.
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "60s", value_parser = web_timeout)]
    pub idle_timeout: std::time::Duration,
    /// At shutdown, requests in flight get this long to finish; the
    /// connections left are then closed, the log synced and a snapshot written.
    #[arg(long = "web.shutdown-timeout", value_name = "DURATION", default_value = "10s", value_parser = web_timeout)]
    pub shutdown_timeout: std::time::Duration,
    /// Web config in the Prometheus exporter-toolkit format: TLS and basic
    /// auth for every endpoint.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Path under which metrics are exposed.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics", value_parser = telemetry_path)]
    pub telemetry_path: String,
    /// State directory: write-ahead log and snapshots of every window.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "data")]
    pub storage_path: PathBuf,
    /// Write a snapshot at least this often while state changes (also after
    /// every 256 MiB of log). Shorter means faster restarts, more disk writes.
    #[arg(long = "storage.snapshot-interval", value_name = "DURATION", default_value = "5m", value_parser = snapshot_interval)]
    pub snapshot_interval: std::time::Duration,
    /// Only log messages at or above this level.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,
}

/// How much the exporter logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including each push.
    Debug,
    /// Starts, stops, reloads and recoveries.
    Info,
    /// Problems that need a look.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The level as `tracing`'s filter names it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// key=value pairs, one event a line.
    Logfmt,
    /// One JSON object a line.
    Json,
}

/// Accepts `host:port` with a host name or an address (`[::1]:9797` for
/// IPv6), and `:port` as every interface (the exporter habit). Names are
/// resolved when the listener binds.
fn listen_address(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "`{s}` is not a listen address such as 127.0.0.1:9797, localhost:9797 or :9797 ({why})"
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    if host.is_empty() {
        return Ok(format!("0.0.0.0:{port}"));
    }
    if host.starts_with('[') {
        let inner = host.trim_start_matches('[').trim_end_matches(']');
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address in brackets"))?;
    } else if host.contains(':') {
        return Err(bad("an IPv6 address goes in brackets"));
    } else if host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad("not a host name"));
    }
    Ok(s.to_owned())
}

impl RunArgs {
    /// The connection limits of these flags.
    pub fn conn_limits(&self) -> crate::http::serve::ConnLimits {
        crate::http::serve::ConnLimits {
            max_connections: self.max_connections as usize,
            read_header_timeout: self.read_header_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// A duration from 100ms to 1h.
fn web_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration: {e}"))?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("`{s}` is outside 100ms..1h"));
    }
    Ok(d)
}

fn snapshot_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration: {e}"))?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(86400) {
        return Err(format!("`{s}` must be between 100ms and 24h"));
    }
    Ok(d)
}

fn telemetry_path(s: &str) -> Result<String, String> {
    let reserved = [
        "/",
        "/-/healthy",
        "/-/ready",
        "/-/reload",
        "/api/v1/deliveries",
    ];
    if !s.starts_with('/') || s.len() < 2 || reserved.contains(&s) {
        return Err(format!(
            "`{s}` must be a path starting with / that no other endpoint uses"
        ));
    }
    Ok(s.to_owned())
}

/// The man page of the whole command line, subcommands listed, as roff
/// (`dist/man/amaze-exporter.1` is this output; a test keeps it current).
pub fn man_page(subcommand: Option<&str>) -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    // The release alone: the revision and build date would date the
    // committed page at every commit.
    let command = Cli::command().version(env!("CARGO_PKG_VERSION"));
    let page = match subcommand {
        None => command,
        Some(name) => {
            let sub = command
                .find_subcommand(name)
                .filter(|_| name != "help")
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "no subcommand `{name}`; these have pages: {}",
                        man_subcommands().join(", ")
                    ))
                })?;
            // Named as man pages of subcommands are: amaze-exporter-demo(1).
            sub.clone()
                .name(format!("amaze-exporter-{name}"))
                .bin_name(format!("amaze-exporter {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(&mut out)?;
    Ok(out)
}

/// The subcommands with man pages of their own, by name.
pub fn man_subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect()
}

/// Completions for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "amaze-exporter", &mut out);
    if shell == clap_complete::Shell::Bash {
        // clap_complete names a hyphenated binary's subcommand states one
        // way where it sets them and another where it matches them
        // (clap-rs/clap#6421), so no subcommand's flags would complete.
        let text = String::from_utf8_lossy(&out).replace(
            "amaze__subcmd__exporter__subcmd__",
            "amaze__exporter__subcmd__",
        );
        return text.into_bytes();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_style_flags() {
        let cli = Cli::try_parse_from([
            "amaze-exporter",
            "--config.file=x.yaml",
            "--web.listen-address=:9100",
            "--web.telemetry-path=/m",
            "--log.level=debug",
            "--log.format=json",
        ])
        .unwrap();
        assert_eq!(cli.run.listen, "0.0.0.0:9100");
        assert_eq!(cli.run.telemetry_path, "/m");
        assert_eq!(cli.run.log_format, LogFormat::Json);
    }

    #[test]
    fn check_takes_the_file_as_an_argument_or_as_serving_does() {
        for args in [
            &["check", "c.yaml"][..],
            &["check", "--config.file=c.yaml"],
            &["check", "--config", "c.yaml"],
        ] {
            let cli =
                Cli::try_parse_from(std::iter::once("amaze-exporter").chain(args.iter().copied()))
                    .unwrap();
            let Some(Command::Check {
                config,
                config_flag,
            }) = cli.command
            else {
                panic!("{args:?} is not check");
            };
            assert_eq!(
                config.or(config_flag),
                Some(PathBuf::from("c.yaml")),
                "{args:?}"
            );
        }
        assert!(Cli::try_parse_from(["amaze-exporter", "check"]).is_err());
    }

    #[test]
    fn listen_addresses_take_host_names_and_bracketed_ipv6() {
        for (given, kept) in [
            ("localhost:9797", "localhost:9797"),
            ("[::1]:9797", "[::1]:9797"),
            (":9797", "0.0.0.0:9797"),
            ("10.0.0.1:80", "10.0.0.1:80"),
        ] {
            let arg = format!("--web.listen-address={given}");
            let cli = Cli::try_parse_from(["amaze-exporter", arg.as_str()]).unwrap();
            assert_eq!(cli.run.listen, kept);
        }
        for bad in ["localhost", "::1:9797", "host:99999", "a b:80"] {
            let arg = format!("--web.listen-address={bad}");
            assert!(
                Cli::try_parse_from(["amaze-exporter", arg.as_str()]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Cli::try_parse_from(["amaze-exporter", "--web.listen-address=nowhere"]).is_err());
        assert!(Cli::try_parse_from(["amaze-exporter", "--web.telemetry-path=metrics"]).is_err());
        assert!(
            Cli::try_parse_from(["amaze-exporter", "--storage.snapshot-interval=1ms"]).is_err()
        );
    }
}

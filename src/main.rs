use std::process::ExitCode;

use amaze_exporter::app::{self, AppError};
use amaze_exporter::cli::ImportFlags;
use amaze_exporter::cli::{Cli, Command, LogFormat};
use amaze_exporter::config::Config;
use amaze_exporter::demo::{self, DemoArgs, DemoError};
use amaze_exporter::exposition::monthly::Month;
use amaze_exporter::import::rows::Mapping;
use amaze_exporter::import::{self, Destination, ImportArgs, ImportError, SinkError};
use amaze_exporter::reporting::{self, ReportError, ReportSource};
use clap::Parser;

// Scrapes build tens of thousands of small label strings; mimalloc halves their cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for decoding large bodies, computing scrapes and file reads.
const BLOCKING_THREADS: usize = 16;

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration.
fn main() -> ExitCode {
    no_huge_pages();
    raise_open_files();
    let cli = Cli::parse();
    if let Some(Command::Check {
        config,
        config_flag,
    }) = cli.command
    {
        let Some(config) = config.or(config_flag) else {
            // clap requires one of them.
            return ExitCode::from(2);
        };
        return match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid, {} SLA{}",
                    config.display(),
                    c.slas.len(),
                    if c.slas.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Rules {
        config,
        config_flag,
    }) = &cli.command
    {
        let config = config
            .as_ref()
            .or(config_flag.as_ref())
            .cloned()
            .unwrap_or_else(|| "config/amaze.yaml".into());
        let config = &config;
        return match Config::load(config) {
            Ok(c) => {
                print!(
                    "{}",
                    amaze_exporter::exposition::fleet::rules(
                        &c.catalog(),
                        &config.display().to_string()
                    )
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Demo {
        config,
        target,
        erode,
        breach_after,
        duration,
    }) = cli.command
    {
        let args = DemoArgs {
            config,
            target,
            erode,
            breach_after,
            duration,
        };
        return match demo::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("amaze-exporter demo: {e}");
                ExitCode::from(
                    if matches!(
                        e,
                        DemoError::Config(_) | DemoError::UnknownSla(_) | DemoError::TooSoon
                    ) {
                        2
                    } else {
                        1
                    },
                )
            }
        };
    }
    let printed = match &cli.command {
        Some(Command::Completions { shell }) => Some(Ok(amaze_exporter::cli::completions(*shell))),
        Some(Command::Man { subcommand }) => {
            Some(amaze_exporter::cli::man_page(subcommand.as_deref()))
        }
        _ => None,
    };
    if let Some(out) = printed {
        use std::io::Write;
        return match out.and_then(|bytes| std::io::stdout().write_all(&bytes)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("amaze-exporter: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Import(flags)) = cli.command {
        return import(flags);
    }
    if let Some(Command::Report {
        month,
        format,
        target,
        storage_path,
        config,
    }) = cli.command
    {
        let source = match storage_path {
            Some(path) => ReportSource::State { path, config },
            None => ReportSource::Exporter(target),
        };
        let month =
            month.unwrap_or_else(|| Month::utc(jiff::Timestamp::now().as_millisecond()).previous());
        return match reporting::run(month, format, &source) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("amaze-exporter report: {e}");
                ExitCode::from(if matches!(e, ReportError::Config(_)) {
                    2
                } else {
                    1
                })
            }
        };
    }
    amaze_exporter::logging::init(&cli.run);
    let json = cli.run.log_format == LogFormat::Json;
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Printed once: a config's problems as plain lines for the
            // operator (one JSON log line when logs are JSON, for the log
            // pipeline), anything else as a log line like the rest.
            match e.downcast_ref::<AppError>() {
                Some(AppError::Config(_) | AppError::WebConfig(_)) => {
                    if json {
                        tracing::error!("{e}");
                    } else {
                        eprintln!("amaze-exporter: {e}");
                    }
                    ExitCode::from(2)
                }
                _ => {
                    // Each error's message already holds its cause.
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `amaze-exporter import`: exit 0 when imported (or, dry, when every row
/// would be), 1 when rows are refused or the destination fails, 2 for bad
/// flags or config.
fn import(flags: ImportFlags) -> ExitCode {
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("amaze-exporter import: {e}");
        ExitCode::from(code)
    };
    let mut mapping = Mapping {
        sla: flags.sla,
        ..Mapping::default()
    };
    for c in &flags.column {
        if let Err(e) = mapping.column(c) {
            return fail(2, &format!("--column: {e}"));
        }
    }
    for l in &flags.label {
        if let Err(e) = mapping.label(l) {
            return fail(2, &format!("--label: {e}"));
        }
    }
    if let Some(zone) = &flags.time_zone {
        match jiff::tz::TimeZone::get(zone) {
            Ok(tz) => mapping.time_zone = Some(tz),
            Err(e) => return fail(2, &format!("--time-zone: {e}")),
        }
    }
    let destination = match flags.storage_path {
        Some(path) => Destination::State {
            path,
            config: flags.config,
        },
        None => Destination::Exporter {
            url: flags.target,
            token: flags.token,
        },
    };
    let args = ImportArgs {
        files: flags.files,
        format: flags.format,
        mapping,
        dry_run: flags.dry_run,
        destination,
    };
    match import::run(&args) {
        Ok(s) => {
            if args.dry_run {
                let repeats = if s.duplicates > 0 {
                    format!(", {} of them duplicates", s.duplicates)
                } else {
                    String::new()
                };
                println!(
                    "would import {} of {} rows{repeats}; none would be refused",
                    s.accepted, s.rows
                );
            } else {
                println!(
                    "imported {} of {} rows: {} older than every window (history only), {} duplicates",
                    s.accepted, s.rows, s.backfilled, s.duplicates
                );
            }
            ExitCode::SUCCESS
        }
        Err(ImportError::Sink(e @ SinkError::Config { .. })) => fail(2, &e),
        Err(e) => fail(1, &e),
    }
}

/// Raises the soft limit on open files to the hard one, as Go programs
/// (Prometheus exporters) do at start: log sources hold a file each and
/// connections a socket each, and the usual soft limit of 1,024 is far
/// below what a service may have.
fn raise_open_files() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("amaze-exporter: cannot raise the open-file limit: {e}");
    }
}

/// Window state is hundreds of MB of small sketches, allocated at once when a
/// snapshot is restored. With transparent huge pages each first touch zeroes
/// 2 MiB; restarts measured 1.5 to 2.5x slower on a cold VM (BENCHMARKS.md).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and
    // touches no memory of ours; failure (an old kernel) changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    // Few blocking threads: each keeps its allocator's freed pages for a
    // while, so hundreds of them (tokio's default cap is 512) would inflate
    // memory under load for no gain on a few cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?;
    // The stop signals are listened for from inside the runtime, before the
    // exporter announces it is listening.
    let ran = runtime.block_on(async {
        let stop = amaze_exporter::shutdown::signal();
        app::run(cli.run, stop).await
    });
    // State is synced and snapshotted by now; a file read stuck in the
    // kernel (a hung mount) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ran?;
    Ok(())
}

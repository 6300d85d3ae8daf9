use std::process::ExitCode;

use amaze_exporter::app::{self, AppError};
use amaze_exporter::cli::{Cli, Command};
use amaze_exporter::config::Config;
use clap::Parser;

// Scrapes build tens of thousands of small label strings; mimalloc halves their cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration.
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { config }) = cli.command {
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
    app::init_logging(&cli.run);
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e.downcast_ref::<AppError>() {
                Some(AppError::Config(_)) => 2,
                _ => 1,
            };
            tracing::error!("{e:#}");
            eprintln!("amaze-exporter: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(app::run(cli.run, amaze_exporter::shutdown::signal()))?;
    Ok(())
}

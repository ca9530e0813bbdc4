//! lb-agent: registers this realserver with lb-director and keeps its REDIRECT rules.
//!
//! Thin on purpose: arguments, logging, the config (exit 64 with every problem listed), signals,
//! the iptables backend, then `lb_realserver::run`, the same code the tests drive.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lb_realserver::rules::IptablesRules;
use lb_realserver::AgentConfig;
use lb_shared::{shutdown, telemetry, EXIT_CONFIG};

#[derive(Parser)]
#[command(
    name = "lb-agent",
    version,
    about = "Registers this realserver with lb-director and keeps its iptables REDIRECT rules"
)]
struct Args {
    /// The agent's configuration file.
    #[arg(long, value_name = "PATH", default_value = "/etc/lb/agent.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init();
    let config = match AgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: AgentConfig) -> anyhow::Result<()> {
    // One thread is plenty: the agent waits on the director and on iptables child processes,
    // and the latter run on the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = shutdown::on_signals().context("cannot install signal handlers")?;
        let rules = tokio::task::spawn_blocking(IptablesRules::new)
            .await
            .context("iptables probe did not finish")?
            .context("cannot use iptables (is the iptables package installed?)")?;
        lb_realserver::run(config, rules, stop).await?;
        Ok(())
    })
}

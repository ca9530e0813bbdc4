//! lb-agent: registers this realserver with lb-director and keeps its REDIRECT rules.
//!
//! Thin on purpose: arguments, logging, signals (SIGHUP first), the config (exit 64 with every
//! problem listed), the iptables backend, then `lb_realserver::run`, the same code the tests
//! drive.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lb_realserver::cli::AgentArgs;
use lb_realserver::rules::IptablesRules;
use lb_realserver::{AgentConfig, ReloadSource};
use lb_shared::{reload, shutdown, EXIT_CONFIG};

fn main() -> ExitCode {
    let args = AgentArgs::parse();
    args.log.init();
    // One thread is plenty: the agent waits on the director and on iptables child processes,
    // and the latter run on the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.config)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<ExitCode> {
    // First of all: until a handler is installed, SIGHUP (systemctl reload) ends the process.
    let reloads = reload::on_sighup().context("cannot install the SIGHUP handler")?;
    let stop = shutdown::on_signals().context("cannot install signal handlers")?;
    let config = match AgentConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return Ok(ExitCode::from(EXIT_CONFIG as u8));
        }
    };
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on metrics_listen {addr}"))?,
        ),
        None => None,
    };
    let rules = tokio::task::spawn_blocking(IptablesRules::new)
        .await
        .context("iptables probe did not finish")?
        .context("cannot use iptables (is the iptables package installed?)")?;
    let reloads = ReloadSource::file(path, reloads);
    lb_realserver::run(config, rules, stop, reloads, metrics).await?;
    Ok(ExitCode::SUCCESS)
}

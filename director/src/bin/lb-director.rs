//! lb-director: parses arguments and config, then runs `lb_director::daemon::run` over the
//! kernel's IPVS table. There is no other backend to choose: the daemon always drives the kernel.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use lb_director::cli::DirectorArgs;
use lb_director::config::DirectorConfig;
use lb_director::daemon::{RunError, Startup};
use lb_director::host::{HostSetup, RtnetlinkAddresses, SysctlTree};
use lb_ipvs::NetlinkIpvs;
use lb_shared::{reload, shutdown, telemetry, EXIT_CONFIG};

fn main() -> ExitCode {
    let args = DirectorArgs::parse();
    args.log.init();
    let config = match DirectorConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            telemetry::fatal("lb-director", &error);
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if args.check {
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lb-director: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            let config_problem = error
                .downcast_ref::<RunError>()
                .is_some_and(RunError::is_config);
            if config_problem {
                ExitCode::from(EXIT_CONFIG as u8)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(config: DirectorConfig, config_path: PathBuf) -> anyhow::Result<()> {
    // First, so that a SIGHUP (systemctl reload) never kills the director.
    let reloads = reload::on_sighup().context("installing the SIGHUP handler")?;
    let shutdown = shutdown::on_signals().context("installing signal handlers")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on metrics_listen {addr}"))?,
        ),
        None => None,
    };
    let ipvs = NetlinkIpvs::connect().await?;
    let addresses = RtnetlinkAddresses::connect().context("opening an rtnetlink socket")?;
    let host = HostSetup::new(addresses, SysctlTree::default());
    let startup = Startup {
        config: Arc::new(config),
        config_path,
        listener,
        metrics,
    };
    lb_director::daemon::run(startup, ipvs, host, shutdown, reloads).await?;
    Ok(())
}

//! `ipvs-contract`: the `IpvsBackend` contract suite against the kernel's IPVS table, for the
//! lab VM (`deploy/lab/scenarios/ipvs-contract.sh`). Prints `LAB-RESULT` lines; exits non-zero
//! when a case fails.
//!
//! `ipvs-contract capture setup|list|teardown` instead makes one of each request kind for the
//! byte-level tests; run it with `LB_IPVS_HEXDUMP=1 LB_LOG=lb_ipvs=debug` to log the bytes.

use std::process::ExitCode;

use lb_ipvs::contract::{capture, lab};
use lb_ipvs::{IpvsError, NetlinkIpvs};

const USAGE: &str = "usage: ipvs-contract [capture setup|list|teardown]";

enum Mode {
    Contract,
    Capture(&'static str),
}

fn mode(args: &[String]) -> Option<Mode> {
    match args {
        [] => Some(Mode::Contract),
        [capture, step] if capture == "capture" => match step.as_str() {
            "setup" => Some(Mode::Capture("setup")),
            "list" => Some(Mode::Capture("list")),
            "teardown" => Some(Mode::Capture("teardown")),
            _ => None,
        },
        _ => None,
    }
}

async fn run_capture(ipvs: &NetlinkIpvs, step: &str) -> Result<(), IpvsError> {
    match step {
        "setup" => capture::setup(ipvs).await,
        "list" => capture::list(ipvs).await,
        _ => capture::teardown(ipvs).await,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = mode(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if std::env::var("LB_LAB_VM").as_deref() != Ok("1") {
        eprintln!(
            "ipvs-contract: refusing to run: it flushes the kernel's IPVS table (every virtual \
             service of this network namespace) and restarts its sync daemons between cases. \
             Run it only inside the lab VM, where LB_LAB_VM=1 says so."
        );
        return ExitCode::from(2);
    }
    lb_shared::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ipvs-contract: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let ipvs = match NetlinkIpvs::connect().await {
            Ok(ipvs) => ipvs,
            Err(e) => {
                println!("LAB-RESULT FAIL contract::connect: {e}");
                return ExitCode::FAILURE;
            }
        };
        match mode {
            Mode::Capture(step) => match run_capture(&ipvs, step).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipvs-contract: capture {step}: {e}");
                    ExitCode::FAILURE
                }
            },
            Mode::Contract => match lab::run(&ipvs, &mut std::io::stdout().lock()).await {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("ipvs-contract: cannot write results: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    })
}

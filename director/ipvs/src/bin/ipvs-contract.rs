//! `ipvs-contract`: the `IpvsBackend` contract suite against the kernel's IPVS table, for the
//! lab VM (`deploy/lab/scenarios/ipvs-contract.sh`). Prints `LAB-RESULT` lines; exits non-zero
//! when a case fails.

use std::process::ExitCode;

use lb_ipvs::contract::lab;
use lb_ipvs::NetlinkIpvs;

fn main() -> ExitCode {
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
    let failures = runtime.block_on(async {
        let ipvs = match NetlinkIpvs::connect().await {
            Ok(ipvs) => ipvs,
            Err(e) => {
                println!("LAB-RESULT FAIL contract::connect: {e}");
                return Ok(1);
            }
        };
        lab::run(&ipvs, &mut std::io::stdout().lock()).await
    });
    match failures {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ipvs-contract: cannot write results: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Running the contract against the kernel's own table, in the lab VM: between cases the table
//! is flushed, the sync daemons stopped and the timeouts put back, so every case starts fresh.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::{cases, Failure};
use crate::backend::{IpvsBackend, IpvsOp};
use crate::error::IpvsError;
use crate::netlink::NetlinkIpvs;
use crate::types::{SyncRole, Timeouts};

/// Generous for a software-emulated VM: the 1000-destination case is the slowest.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Empties the table as a fresh kernel has it; the timeouts go back to `timeouts`.
async fn reset(ipvs: &NetlinkIpvs, timeouts: Timeouts) -> Result<(), IpvsError> {
    ipvs.flush().await?;
    for role in [SyncRole::Master, SyncRole::Backup] {
        match ipvs.stop_daemon(role).await {
            Err(e) if e.errno() != Some(libc::ESRCH) => return Err(e),
            _ => {}
        }
    }
    for result in ipvs.apply(&[IpvsOp::SetTimeouts(timeouts)]).await? {
        result?;
    }
    Ok(())
}

/// Runs every case and writes one `LAB-RESULT PASS|FAIL contract::<name>` line per case to
/// `out`. Returns how many failed.
pub async fn run(ipvs: &NetlinkIpvs, out: &mut impl Write) -> io::Result<usize> {
    let fresh = match ipvs.timeouts().await {
        Ok(timeouts) => timeouts,
        Err(e) => {
            writeln!(
                out,
                "LAB-RESULT FAIL contract::setup: read the fresh timeouts: {e}"
            )?;
            return Ok(1);
        }
    };
    let mut failures = 0;
    for case in cases::<NetlinkIpvs>() {
        let outcome = match reset(ipvs, fresh).await {
            Err(e) => Err(format!("reset the table before the case: {e}")),
            Ok(()) => {
                let started = Instant::now();
                let outcome = tokio::time::timeout(CASE_TIMEOUT, (case.run)(ipvs)).await;
                writeln!(
                    out,
                    "LAB-INFO contract::{} took {} ms",
                    case.name,
                    started.elapsed().as_millis()
                )?;
                match outcome {
                    Err(_) => Err(format!("no result within {CASE_TIMEOUT:?}")),
                    Ok(result) => result.map_err(|f: Failure| f.to_string()),
                }
            }
        };
        match outcome {
            Ok(()) => writeln!(out, "LAB-RESULT PASS contract::{}", case.name)?,
            Err(why) => {
                failures += 1;
                writeln!(out, "LAB-RESULT FAIL contract::{}: {why}", case.name)?;
            }
        }
        out.flush()?;
    }
    if let Err(e) = reset(ipvs, fresh).await {
        failures += 1;
        writeln!(out, "LAB-RESULT FAIL contract::cleanup: {e}")?;
    }
    Ok(failures)
}

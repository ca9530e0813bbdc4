//! Health checks of every destination (issue 9): probes from the director to each RIP:port, a
//! rise/fall state per destination, and the monitor task that runs them and publishes which
//! destinations are up. Down means weight 0 (quiesce), applied by whoever reads the health map.

pub mod config;
pub mod monitor;
mod schedule;

pub use config::{read_check, CheckConfig, CheckedService};
pub use lb_shared::health::{HealthState, HealthStatus, Transition};
pub use monitor::{HealthMap, HealthMonitor, Prober, Target, TargetKey, Targets};

//! Code shared by the director, the agent and lbctl: the domain words (protocol, forward method,
//! realserver names, weights), durations as operators write them, config loading that reports
//! every bad key at once, logging, graceful shutdown and systemd notification.

pub mod config;
pub mod domain;
pub mod duration;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod reload;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod url;

/// Exit code for bad configuration (`EX_USAGE` from sysexits.h), as linkerd2-proxy does.
pub const EXIT_CONFIG: i32 = 64;

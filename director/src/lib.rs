//! The director: owns the kernel's IPVS table, leases realservers, serves lbctl.

pub mod access;
pub mod certs;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod desired;
pub mod director;
pub mod grpc;
pub mod grpc_standard;
pub mod ha;
pub mod health;
pub mod host;
pub mod lbctl;
pub mod metrics;
pub mod peers;
pub mod plan;
pub mod reconciler;
pub mod registry;
pub mod state;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod view;

//! The director: owns the kernel's IPVS table, leases realservers, serves lbctl.

pub mod access;
pub mod certs;
pub mod config;
pub mod control;
pub mod daemon;
pub mod desired;
pub mod grpc;
pub mod host;
pub mod lbctl;
pub mod plan;
pub mod registry;
pub mod state;
pub mod status;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

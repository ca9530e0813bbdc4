//! The director: owns the kernel's IPVS table, leases realservers, serves lbctl.

pub mod config;
pub mod host;
pub mod plan;
pub mod registry;
pub mod state;
pub mod table;

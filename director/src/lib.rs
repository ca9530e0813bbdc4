//! The director: owns the kernel's IPVS table, leases realservers, serves lbctl.

pub mod config;

//! The director: owns the kernel IPVS table, leases realservers, serves lbctl.

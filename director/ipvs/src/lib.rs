//! The kernel's IPVS table: what it holds ([`types`]), the one trait through which the director
//! changes it ([`IpvsBackend`]), its errors, and the generic netlink client that implements the
//! trait for the daemons ([`NetlinkIpvs`]). Feature `testing` adds the in-memory fake
//! (`MemoryIpvs`) and the contract suite both must pass (`contract`).

mod backend;
#[cfg(feature = "testing")]
pub mod contract;
mod error;
#[cfg(feature = "testing")]
pub mod memory;
pub mod netlink;
pub mod types;

pub use backend::{IpvsBackend, IpvsOp};
pub use error::IpvsError;
#[cfg(feature = "testing")]
pub use memory::MemoryIpvs;
pub use netlink::NetlinkIpvs;
pub use types::*;

//! lb-agent, the realserver side of the load balancer: it registers this realserver with the
//! director, keeps the REDIRECT rule that LVS direct routing needs on it (the seed's
//! `/etc/init.d/lvs` did this once at boot), and takes both away on shutdown.
//!
//! The binary is a thin shell over [`run`]; tests call the same function with the in-memory rule
//! backend (feature `testing`).

pub mod agent;
mod backoff;
pub mod cli;
pub mod config;
pub mod keeper;
mod registry;
pub mod rules;
mod selfcheck;

pub use agent::{run, run_with, AgentError, AgentState, ReloadSource};
pub use config::AgentConfig;
pub use registry::RegistryError;

//! lb-agent, the realserver side of the load balancer: it registers this realserver with the
//! director, keeps the REDIRECT rule that LVS direct routing needs on it (the seed's
//! `/etc/init.d/lvs` did this once at boot), and takes both away on shutdown.

pub mod config;
pub mod keeper;
pub mod rules;

pub use config::AgentConfig;

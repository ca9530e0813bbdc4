//! lb-agent's command line. It lives in the library, not the binary, so the man page and the
//! shell completions (deploy/cli-docs) are written from the same definition the agent parses.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "lb-agent",
    version,
    about = "Registers this realserver with lb-director and keeps its iptables REDIRECT rules",
    long_about = "Registers this realserver with lb-director and keeps its iptables REDIRECT \
                  rules (`iptables -t nat -A PREROUTING -d VIP -j REDIRECT`, what LVS direct \
                  routing needs on a realserver): registers, heartbeats within the lease, \
                  reports its own service checks, and on stop deregisters and removes the \
                  rules. With several directors (`directors = [URL, URL]`, high \
                  availability) it does so with each of them on its own. Run it under \
                  systemd (lb-agent.service).",
    after_long_help = AFTER_HELP
)]
pub struct AgentArgs {
    /// The agent's configuration file.
    #[arg(long, value_name = "PATH", default_value = "/etc/lb/agent.toml")]
    pub config: PathBuf,
    #[command(flatten)]
    pub log: lb_shared::telemetry::LogArgs,
}

// Headings ("Files:") become man page sections; keep each entry on its own indented line.
const AFTER_HELP: &str = "\
Files:
  /etc/lb/agent.toml   the configuration (example: /usr/share/doc/lb-agent/examples/)
  /etc/lb/tls/         the CA, this realserver's certificate and key (lbctl certs)

Signals:
  SIGHUP           read the configuration again; a file with any problem is refused whole
  SIGTERM, SIGINT  deregister, remove the rules and stop; a second one stops at once

Exit status:
  0    stopped cleanly
  64   the configuration is invalid (every problem is listed); restarting cannot help
  130  stopped at once by a second signal
  1    anything else (iptables missing or refusing)

See also:
  lb-director(8), lbctl(1), iptables(8)";

//! lb-director's command line. It lives in the library, not the binary, so the man page and
//! the shell completions (deploy/cli-docs) are written from the same definition the daemon
//! parses. lbctl's is [`crate::lbctl::Cli`].

use std::path::PathBuf;

use clap::Parser;

use crate::config;

#[derive(Debug, Parser)]
#[command(
    name = "lb-director",
    version,
    about = "Owns the kernel IPVS table of an LVS director",
    long_about = "Owns the kernel IPVS table of an LVS director: puts the VIPs on their \
                  interface, sets the sysctls and IPVS timeouts, leases the realservers that \
                  lb-agent registers, and reconciles the table continuously. It never flushes \
                  the table and leaves it in place when it stops. Run it under systemd \
                  (lb-director.service); lbctl operates it.",
    after_long_help = AFTER_HELP
)]
pub struct DirectorArgs {
    /// Configuration file.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Check the configuration and exit (0 when valid, 64 when not).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub log: lb_shared::telemetry::LogArgs,
}

// Headings ("Files:") become man page sections; keep each entry on its own indented line.
const AFTER_HELP: &str = "\
Files:
  /etc/lb/director.toml        the configuration (example: /usr/share/doc/lb-director/examples/)
  /etc/lb/tls/                 the CA, the director's certificate and key (lbctl certs)
  /var/lib/lb-director/        drains and weight overrides, kept across restarts
  /run/lb-director/admin.sock  lbctl's socket on this host (root only)

Signals:
  SIGHUP           read the configuration again; a file with any problem is refused whole
  SIGTERM, SIGINT  stop gracefully (the IPVS table stays); a second one stops at once

Exit status:
  0    stopped cleanly, or --check found the configuration valid
  64   the configuration is invalid (every problem is listed); restarting cannot help
  130  stopped at once by a second signal
  1    anything else (IPVS missing from the kernel, the listen address taken)

See also:
  lbctl(1), lb-agent(8), ipvsadm(8)";

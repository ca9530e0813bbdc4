//! [`RuleBackend`] on the `iptables` and `ip6tables` commands, through the iptables crate.
//!
//! The crate runs the command, so whichever backend the host's `iptables` is (nft or legacy) is
//! the one used. Its traps shape this file: `exists` says false for any failure and deleting a
//! missing rule is an error, so every call goes through `execute` and reads the exit status
//! itself (`-C`: 0 present, 1 absent, anything else a failure); its error type is neither Send
//! nor Sync, so it becomes text at once; and every call blocks on a child process, so it runs on
//! the blocking pool.

use std::process::Output;
use std::sync::Arc;

use iptables::IPTables;

use super::listing::{parse_line, Listed};
use super::{Ensured, RedirectRule, Removed, RuleBackend, RuleError, CHAIN, TABLE};

/// The agent's rules in the host's nat table.
pub struct IptablesRules {
    v4: Arc<IPTables>,
    /// Absent on hosts without ip6tables; only an IPv6 VIP needs it.
    v6: Result<Arc<IPTables>, String>,
}

impl IptablesRules {
    /// Uses the host's `iptables` and `ip6tables`. Blocks briefly (runs `iptables --version`).
    pub fn new() -> Result<IptablesRules, RuleError> {
        Self::with_commands("iptables", "ip6tables")
    }

    /// Uses other commands of the same iptables release, e.g. `iptables-legacy` and
    /// `ip6tables-legacy`, so tests can check both backends on one host.
    pub fn with_commands(v4: &'static str, v6: &'static str) -> Result<IptablesRules, RuleError> {
        let v4 = open(v4, false).map_err(|message| RuleError::Unavailable {
            command: v4,
            message,
        })?;
        Ok(IptablesRules {
            v4: Arc::new(v4),
            v6: open(v6, true).map(Arc::new),
        })
    }

    fn tool(&self, rule: &RedirectRule) -> Result<&Arc<IPTables>, RuleError> {
        if !rule.is_ipv6() {
            return Ok(&self.v4);
        }
        self.v6.as_ref().map_err(|message| RuleError::Unavailable {
            command: "ip6tables",
            message: format!("{message} (needed for the IPv6 VIP {})", rule.vip),
        })
    }

    async fn check(&self, rule: &RedirectRule) -> Result<bool, RuleError> {
        let tool = self.tool(rule)?;
        let args = format!("-C {CHAIN} {}", rule.spec());
        let output = execute(tool, &args).await?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failed(tool, args, &output)),
        }
    }

    /// Runs `args` and turns a non-zero exit into an error.
    async fn change(&self, rule: &RedirectRule, verb: &str) -> Result<(), RuleError> {
        let tool = self.tool(rule)?;
        let args = format!("{verb} {CHAIN} {}", rule.spec());
        let output = execute(tool, &args).await?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failed(tool, args, &output))
        }
    }
}

/// Finds out whether `command` runs and supports `-C` (iptables 1.4.11 and later).
fn open(command: &'static str, ipv6: bool) -> Result<IPTables, String> {
    // The crate probes the default command's version; a named one must answer too.
    let mut tool = iptables::new(ipv6).map_err(|e| e.to_string())?;
    if tool.cmd != command {
        let probe = std::process::Command::new(command)
            .arg("--version")
            .output()
            .map_err(|e| e.to_string())?;
        if !probe.status.success() {
            return Err(String::from_utf8_lossy(&probe.stderr).trim().to_owned());
        }
        tool.cmd = command;
    }
    if !tool.has_check {
        return Err("this iptables is older than 1.4.11 and cannot check rules (-C)".into());
    }
    Ok(tool)
}

async fn execute(tool: &Arc<IPTables>, args: &str) -> Result<Output, RuleError> {
    let command = tool.cmd;
    let task_tool = Arc::clone(tool);
    let task_args = args.to_owned();
    tokio::task::spawn_blocking(move || {
        task_tool
            .execute(TABLE, &task_args)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|source| RuleError::Task { command, source })?
    .map_err(|message| RuleError::Unavailable { command, message })
}

fn failed(tool: &IPTables, args: String, output: &Output) -> RuleError {
    RuleError::Command {
        command: tool.cmd,
        args,
        status: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

impl RuleBackend for IptablesRules {
    async fn ensure(&self, rule: &RedirectRule) -> Result<Ensured, RuleError> {
        if self.check(rule).await? {
            return Ok(Ensured::AlreadyPresent);
        }
        self.change(rule, "-A").await?;
        Ok(Ensured::Added)
    }

    async fn remove(&self, rule: &RedirectRule) -> Result<Removed, RuleError> {
        if !self.check(rule).await? {
            return Ok(Removed::WasAbsent);
        }
        self.change(rule, "-D").await?;
        Ok(Removed::Removed)
    }

    async fn is_present(&self, rule: &RedirectRule) -> Result<bool, RuleError> {
        self.check(rule).await
    }

    async fn owned(&self) -> Result<Vec<RedirectRule>, RuleError> {
        let mut owned = Vec::new();
        for tool in std::iter::once(&self.v4).chain(self.v6.as_ref().ok()) {
            let args = format!("-S {CHAIN}");
            let output = execute(tool, &args).await?;
            if !output.status.success() {
                return Err(failed(tool, args, &output));
            }
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                match parse_line(line) {
                    Listed::Owned(rule) => owned.push(rule),
                    Listed::Foreign => {}
                    Listed::Unreadable(reason) => tracing::warn!(
                        command = tool.cmd,
                        line,
                        reason,
                        "a rule tagged lb-agent: is not in the agent's shape; leaving it alone"
                    ),
                }
            }
        }
        Ok(owned)
    }
}

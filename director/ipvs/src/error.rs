//! Errors of the IPVS backends. Kernel refusals keep the errno (the contract suite compares them
//! between the in-memory fake and the real kernel) and say which operation failed.

#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The generic netlink family "IPVS" does not exist.
    #[error("IPVS is not available in this kernel: load ip_vs (modprobe ip_vs)")]
    Unavailable,
    /// The kernel refused an operation.
    #[error("{op}: {}", describe(*errno))]
    Kernel {
        /// The operation, in words: "add destination 10.0.0.11:22 to TCP 10.0.0.100:22".
        op: String,
        errno: i32,
    },
    /// The kernel processed a batch but its answer to this op was dropped (receive buffer
    /// overrun): the op may or may not have been applied.
    #[error("{op}: the kernel's answer was lost (netlink receive buffer overrun); read the table to learn the outcome")]
    Unacknowledged { op: String },
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel's answer to `request` could not be read.
    #[error("cannot decode the kernel's answer to {request}: {reason}")]
    Decode {
        request: String,
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl IpvsError {
    /// The kernel's errno for a refused operation.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn describe(errno: i32) -> String {
    let words = match errno {
        libc::EEXIST => "already exists",
        libc::ENOENT => "not found (no such destination or scheduler)",
        libc::ESRCH => "no such service",
        libc::EINVAL => "invalid argument",
        libc::EPERM => "operation not permitted (needs CAP_NET_ADMIN)",
        libc::ENOMEM => "out of memory",
        libc::EAFNOSUPPORT => "address family not supported",
        libc::EBUSY => "busy",
        libc::ERANGE => "out of range (weight below zero, or lower threshold above upper)",
        libc::ENODEV => "no such network interface",
        _ => return format!("kernel error {}", std::io::Error::from_raw_os_error(errno)),
    };
    format!("{words} (errno {errno})")
}

//! What the benchmark examples read of their own process.

/// utime + stime of this process, from /proc/self/stat (in clock ticks of 1/100 s).
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// utime + stime of process `pid` ("self" for this one).
pub fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let fields: Vec<&str> = after.split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / 100.0
}

/// A `/proc/self/status` value in KiB: "VmHWM" (peak RSS) or "VmRSS".
pub fn status_kib(key: &str) -> u64 {
    status_kib_of("self", key)
}

/// A `/proc/PID/status` value of process `pid` in KiB.
pub fn status_kib_of(pid: &str, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

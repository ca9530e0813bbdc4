//! The lab runner refuses to touch a table outside the lab, and reports a kernel without IPVS
//! as a failed result rather than a crash.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ipvs-contract");

#[test]
fn refuses_to_run_outside_the_lab() {
    let output = Command::new(BIN).env_remove("LB_LAB_VM").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("flushes the kernel's IPVS table"),
        "{stderr}"
    );
    assert!(stderr.contains("LB_LAB_VM=1"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "ran cases: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn reports_a_kernel_without_ipvs_as_a_failure() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        println!("skipped: this kernel has IPVS; the test would flush its table");
        return;
    }
    let output = Command::new(BIN).env("LB_LAB_VM", "1").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        "LAB-RESULT FAIL contract::connect: IPVS is not available in this kernel: load ip_vs (modprobe ip_vs)"
    );
}

//! On a kernel without IPVS (this project's build machines), connecting must say so plainly.

use lb_ipvs::{IpvsError, NetlinkIpvs};

#[tokio::test]
async fn connect_reports_unavailable_without_ipvs() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        println!("skipped: this kernel has IPVS (the lab runs the contract suite instead)");
        return;
    }
    match NetlinkIpvs::connect().await {
        Err(IpvsError::Unavailable) => {}
        Err(other) => panic!("expected IpvsError::Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to IPVS although /proc/net/ip_vs does not exist"),
    }
    assert_eq!(
        IpvsError::Unavailable.to_string(),
        "IPVS is not available in this kernel: load ip_vs (modprobe ip_vs)"
    );
}

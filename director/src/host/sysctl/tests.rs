use std::fs;
use std::path::Path;

use lb_shared::domain::Forward;

use super::*;

pub(in crate::host) fn service(interface: &str, vip: &str, forward: Forward) -> ServiceVip {
    ServiceVip {
        interface: interface.into(),
        vip: vip.parse().unwrap(),
        forward,
    }
}

/// The plan of a director that is not in ECMP mode.
fn plan(services: &[ServiceVip]) -> Result<Vec<SysctlSetting>, SysctlError> {
    super::plan(services, false)
}

#[test]
fn ecmp_adds_sloppy_tcp_first() {
    let plan = super::plan(&[service("lo", "192.0.2.54", Forward::Dr)], true).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "net.ipv4.vs.sloppy_tcp=1",
            "net.ipv4.ip_forward=0",
            "net.ipv4.conf.all.send_redirects=1",
            "net.ipv4.conf.default.send_redirects=1",
            "net.ipv4.conf.lo.send_redirects=1",
        ]
    );
}

fn lines(plan: &[SysctlSetting]) -> Vec<String> {
    plan.iter().map(ToString::to_string).collect()
}

/// A sysctl tree as the kernel would show it, with these interfaces and values.
pub(in crate::host) fn fake_tree(
    interfaces: &[&str],
    ip_forward: &str,
    send_redirects: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ipv4 = dir.path().join("net/ipv4");
    fs::create_dir_all(&ipv4).unwrap();
    fs::write(ipv4.join("ip_forward"), format!("{ip_forward}\n")).unwrap();
    for scope in ["all", "default"].iter().chain(interfaces) {
        let conf = ipv4.join("conf").join(scope);
        fs::create_dir_all(&conf).unwrap();
        fs::write(conf.join("send_redirects"), format!("{send_redirects}\n")).unwrap();
    }
    dir
}

pub(in crate::host) fn read(root: &Path, relative: &str) -> String {
    fs::read_to_string(root.join(relative))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn all_dr_services_plan_the_seeds_settings() {
    let plan = plan(&[
        service("eth0", "129.129.190.54", Forward::Dr),
        service("eth1", "129.129.191.54", Forward::Dr),
        service("eth0", "129.129.190.55", Forward::Dr),
    ])
    .unwrap();
    assert_eq!(
        lines(&plan),
        [
            "net.ipv4.ip_forward=0",
            "net.ipv4.conf.all.send_redirects=1",
            "net.ipv4.conf.default.send_redirects=1",
            "net.ipv4.conf.eth0.send_redirects=1",
            "net.ipv4.conf.eth1.send_redirects=1",
        ]
    );
}

#[test]
fn nat_or_tunnel_anywhere_leaves_ip_forward_alone() {
    for other in [Forward::Nat, Forward::Tunnel] {
        let plan = plan(&[
            service("eth0", "129.129.190.54", Forward::Dr),
            service("eth0", "129.129.190.55", other),
        ])
        .unwrap();
        assert!(
            !lines(&plan).iter().any(|l| l.contains("ip_forward")),
            "{other}: {plan:?}"
        );
        assert_eq!(plan.len(), 3, "{other}: send_redirects still planned");
    }
}

#[test]
fn no_services_plan_nothing() {
    assert!(plan(&[]).unwrap().is_empty());
}

#[test]
fn vlan_interface_name_keeps_its_dot_in_the_path() {
    let plan = plan(&[service("eth0.100", "192.0.2.54", Forward::Dr)]).unwrap();
    let vlan = &plan[3];
    assert_eq!(vlan.name(), "net.ipv4.conf.eth0/100.send_redirects");
    assert_eq!(
        vlan.path(Path::new("/proc/sys")),
        Path::new("/proc/sys/net/ipv4/conf/eth0.100/send_redirects")
    );
}

#[test]
fn interface_names_that_escape_the_tree_are_refused() {
    for bad in ["..", "a/b", "", "eth0 1", "abcdefghijklmnop"] {
        let err = plan(&[service(bad, "192.0.2.54", Forward::Dr)]).unwrap_err();
        assert!(
            matches!(&err, SysctlError::InvalidInterface { interface, .. } if interface == bad),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn apply_writes_what_differs_and_a_second_run_changes_nothing() {
    let dir = fake_tree(&["eth0"], "1", "0");
    let tree = SysctlTree::new(dir.path());
    let plan = plan(&[service("eth0", "192.0.2.54", Forward::Dr)]).unwrap();

    let changes = tree.apply(&plan).unwrap();
    let summary: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {}->{}", c.name, c.old, c.new))
        .collect();
    assert_eq!(
        summary,
        [
            "net.ipv4.ip_forward 1->0",
            "net.ipv4.conf.all.send_redirects 0->1",
            "net.ipv4.conf.default.send_redirects 0->1",
            "net.ipv4.conf.eth0.send_redirects 0->1",
        ]
    );
    assert_eq!(read(dir.path(), "net/ipv4/ip_forward"), "0");
    assert_eq!(read(dir.path(), "net/ipv4/conf/eth0/send_redirects"), "1");

    assert_eq!(tree.apply(&plan).unwrap(), []);
}

#[test]
fn a_value_already_right_is_not_written() {
    let dir = fake_tree(&["eth0"], "0", "1");
    let file = dir.path().join("net/ipv4/ip_forward");
    // Any write moves the modification time; a read-only file would not do, root writes it.
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let setting = SysctlSetting::new(&["net", "ipv4", "ip_forward"], "0");
    assert_eq!(SysctlTree::new(dir.path()).ensure(&setting).unwrap(), None);
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), long_ago);
}

#[test]
fn a_missing_sysctl_is_an_error_naming_the_file() {
    let dir = fake_tree(&[], "0", "1");
    let plan = plan(&[service("eth9", "192.0.2.54", Forward::Dr)]).unwrap();
    let err = SysctlTree::new(dir.path()).apply(&plan).unwrap_err();
    let expected = dir.path().join("net/ipv4/conf/eth9/send_redirects");
    assert!(
        matches!(&err, SysctlError::Read { path, .. } if *path == expected),
        "{err}"
    );
    assert!(err.to_string().contains("eth9/send_redirects"), "{err}");
    assert!(
        !expected.exists(),
        "a missing sysctl must not be created: {}",
        expected.display()
    );
}

#[test]
fn the_default_tree_is_proc_sys() {
    assert_eq!(SysctlTree::default().root(), Path::new("/proc/sys"));
}

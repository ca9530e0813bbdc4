use std::net::IpAddr;

use lb_shared::domain::Forward;

use super::sysctl::tests::{fake_tree, read, service};
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn owned(interface: &str, vip: &str) -> OwnedVip {
    OwnedVip {
        interface: interface.into(),
        vip: ip(vip),
    }
}

/// A host with eth0 and eth1, forwarding on and redirects off, so the seed's settings show.
fn host() -> (HostSetup<MemoryAddresses>, tempfile::TempDir) {
    let dir = fake_tree(&["eth0", "eth1"], "1", "0");
    let setup = HostSetup::new(
        MemoryAddresses::with_interfaces(&["eth0", "eth1"]),
        SysctlTree::new(dir.path()),
    );
    (setup, dir)
}

#[tokio::test]
async fn first_run_adds_the_vips_and_sets_the_sysctls_second_run_changes_nothing() {
    let (setup, dir) = host();
    let services = [
        service("eth0", "129.129.190.54", Forward::Dr),
        // A second port on the same VIP: still one address.
        service("eth0", "129.129.190.54", Forward::Dr),
        service("eth1", "2001:db8::54", Forward::Dr),
    ];

    let changes = setup.apply(&services, &[]).await.unwrap();
    assert_eq!(
        changes.added,
        [
            owned("eth0", "129.129.190.54"),
            owned("eth1", "2001:db8::54")
        ]
    );
    assert_eq!(changes.sysctls.len(), 5, "{:?}", changes.sysctls);
    assert_eq!(
        setup.addresses().vips("eth0").unwrap(),
        [ip("129.129.190.54")]
    );
    assert_eq!(read(dir.path(), "net/ipv4/ip_forward"), "0");
    assert_eq!(read(dir.path(), "net/ipv4/conf/eth1/send_redirects"), "1");

    let writes = setup.addresses().writes();
    let again = setup
        .apply(&services, &owned_vips(&services))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(setup.addresses().writes(), writes);
}

#[tokio::test]
async fn a_vip_whose_services_left_the_configuration_is_removed() {
    let (setup, _dir) = host();
    let before = [
        service("eth0", "129.129.190.54", Forward::Dr),
        service("eth0", "129.129.190.55", Forward::Dr),
    ];
    setup.apply(&before, &[]).await.unwrap();

    let after = [service("eth0", "129.129.190.54", Forward::Dr)];
    let changes = setup.apply(&after, &owned_vips(&before)).await.unwrap();
    assert_eq!(changes.removed, [owned("eth0", "129.129.190.55")]);
    assert!(changes.added.is_empty());
    assert_eq!(
        setup.addresses().vips("eth0").unwrap(),
        [ip("129.129.190.54")]
    );
}

#[tokio::test]
async fn a_vip_the_configuration_never_owned_is_left_alone() {
    let (setup, _dir) = host();
    // Put there by an operator, or by another program: not in `previous`.
    setup
        .addresses()
        .ensure_vip("eth0", ip("192.0.2.7"))
        .await
        .unwrap();
    let services = [service("eth0", "129.129.190.54", Forward::Dr)];
    let changes = setup.apply(&services, &[]).await.unwrap();
    assert!(changes.removed.is_empty());
    assert_eq!(
        setup.addresses().vips("eth0").unwrap(),
        [ip("129.129.190.54"), ip("192.0.2.7")]
    );
}

#[tokio::test]
async fn a_vip_that_moved_interface_leaves_the_old_one() {
    let (setup, _dir) = host();
    let before = [service("eth0", "129.129.190.54", Forward::Dr)];
    setup.apply(&before, &[]).await.unwrap();
    let after = [service("eth1", "129.129.190.54", Forward::Dr)];
    let changes = setup.apply(&after, &owned_vips(&before)).await.unwrap();
    assert_eq!(changes.added, [owned("eth1", "129.129.190.54")]);
    assert_eq!(changes.removed, [owned("eth0", "129.129.190.54")]);
    assert_eq!(
        setup.addresses().vips("eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
}

#[tokio::test]
async fn a_stale_vip_on_a_vanished_interface_is_not_a_failure() {
    let (setup, _dir) = host();
    setup.addresses().remove_interface("eth1");
    let services = [service("eth0", "129.129.190.54", Forward::Dr)];
    let changes = setup
        .apply(&services, &[owned("eth1", "129.129.190.99")])
        .await
        .unwrap();
    assert!(changes.removed.is_empty());
}

#[tokio::test]
async fn a_missing_interface_fails_that_step_and_the_others_still_happen() {
    let (setup, dir) = host();
    let services = [
        service("eth7", "129.129.190.54", Forward::Dr),
        service("eth0", "129.129.190.55", Forward::Dr),
    ];
    let err = setup.apply(&services, &[]).await.unwrap_err();

    assert!(
        matches!(
            &err.failures[0],
            HostError::AddVip { source: AddressError::NoSuchInterface { interface }, .. }
                if interface == "eth7"
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("129.129.190.54/32 dev eth7") && text.contains("does not exist"),
        "{text}"
    );
    // The rest went ahead: the other VIP, and the sysctls that exist (eth7's does not).
    assert_eq!(err.changes.added, [owned("eth0", "129.129.190.55")]);
    assert_eq!(read(dir.path(), "net/ipv4/ip_forward"), "0");
    assert!(
        err.failures
            .iter()
            .any(|f| matches!(f, HostError::Sysctl(SysctlError::Read { .. }))),
        "{err}"
    );
}

#[tokio::test]
async fn no_service_at_all_touches_nothing() {
    let (setup, dir) = host();
    let changes = setup.apply(&[], &[]).await.unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(read(dir.path(), "net/ipv4/ip_forward"), "1");
}

#[test]
fn interface_names_follow_the_kernels_rules() {
    for good in ["eth0", "eth0.100", "enp0s31f6", "br-lan", "abcdefghijklmno"] {
        assert_eq!(validate_interface(good), Ok(()), "{good}");
    }
    for bad in ["", ".", "..", "a/b", "eth0:1", "eth 0", "abcdefghijklmnop"] {
        assert!(validate_interface(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn an_owned_vip_reads_like_ip_addr() {
    let vip = owned("eth0", "129.129.190.54");
    assert_eq!(vip.to_string(), "129.129.190.54/32 dev eth0");
    assert_eq!(
        owned("eth0", "2001:db8::54").to_string(),
        "2001:db8::54/128 dev eth0"
    );
}

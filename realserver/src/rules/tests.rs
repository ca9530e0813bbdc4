use super::listing::{parse_line, Listed};
use super::*;

fn ssh(vip: &str) -> RedirectRule {
    RedirectRule {
        service: "llc-ssh".into(),
        vip: vip.parse().unwrap(),
        port: Some(ServicePort {
            protocol: Protocol::Tcp,
            port: 22,
        }),
    }
}

#[test]
fn renders_the_seed_rule_narrowed_and_tagged() {
    let rule = ssh("129.129.190.54");
    assert_eq!(
        rule.spec(),
        r#"-d 129.129.190.54/32 -p tcp --dport 22 -m comment --comment "lb-agent:llc-ssh" -j REDIRECT"#
    );
    assert_eq!(
        rule.to_string(),
        r#"iptables -t nat -A PREROUTING -d 129.129.190.54/32 -p tcp --dport 22 -m comment --comment "lb-agent:llc-ssh" -j REDIRECT"#
    );
}

#[test]
fn renders_ipv6_for_ip6tables() {
    let rule = RedirectRule {
        service: "dns".into(),
        vip: "2001:db8::53".parse().unwrap(),
        port: Some(ServicePort {
            protocol: Protocol::Udp,
            port: 53,
        }),
    };
    assert!(rule.is_ipv6());
    assert_eq!(
        rule.to_string(),
        r#"ip6tables -t nat -A PREROUTING -d 2001:db8::53/128 -p udp --dport 53 -m comment --comment "lb-agent:dns" -j REDIRECT"#
    );
}

#[test]
fn reads_back_what_iptables_lists() {
    // Exactly as `iptables -t nat -S PREROUTING` printed it (nft backend, 1.8.9).
    let line = r#"-A PREROUTING -d 198.18.1.54/32 -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:llc-ssh" -j REDIRECT"#;
    assert_eq!(parse_line(line), Listed::Owned(ssh("198.18.1.54")));
    assert_eq!(ssh("198.18.1.54").listing(), line);
    let sctp = r#"-A PREROUTING -d 198.18.1.56/32 -p sctp -m sctp --dport 2905 -m comment --comment "lb-agent:x" -j REDIRECT"#;
    assert!(
        matches!(parse_line(sctp), Listed::Owned(r) if r.port == Some(ServicePort { protocol: Protocol::Sctp, port: 2905 }))
    );
}

#[test]
fn foreign_rules_are_not_ours() {
    for line in [
        "-P PREROUTING ACCEPT",
        "-A PREROUTING -d 129.129.190.54/32 -j REDIRECT",
        r#"-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 22 -m comment --comment "kube:svc" -j REDIRECT"#,
        r#"-A PREROUTING -m comment --comment "no lb-agent: here" -j ACCEPT"#,
    ] {
        assert_eq!(parse_line(line), Listed::Foreign, "{line}");
    }
}

#[test]
fn tagged_rules_in_another_shape_are_left_alone() {
    for line in [
        r#"-A PREROUTING -d 10.0.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:x" -j REDIRECT"#,
        r#"-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:x" -j REDIRECT --to-ports 2222"#,
        r#"-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:x" -j DNAT"#,
        r#"-A PREROUTING -i eth0 -d 10.0.0.1/32 -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:x" -j REDIRECT"#,
        r#"-A PREROUTING -p tcp -m tcp --dport 22 -m comment --comment "lb-agent:x" -j REDIRECT"#,
    ] {
        assert!(
            matches!(parse_line(line), Listed::Unreadable(_)),
            "{line} was read as {:?}",
            parse_line(line)
        );
    }
}

#[test]
fn a_fwmark_rule_takes_every_packet_for_its_vip() {
    let rule = RedirectRule {
        service: "llc-fwm".into(),
        vip: "2001:db8::57".parse().unwrap(),
        port: None,
    };
    assert_eq!(
        rule.to_string(),
        r#"ip6tables -t nat -A PREROUTING -d 2001:db8::57/128 -m comment --comment "lb-agent:llc-fwm" -j REDIRECT"#
    );
    // As `ip6tables -t nat -S PREROUTING` prints it.
    let line =
        r#"-A PREROUTING -d 2001:db8::57/128 -m comment --comment "lb-agent:llc-fwm" -j REDIRECT"#;
    assert_eq!(rule.listing(), line);
    assert_eq!(parse_line(line), Listed::Owned(rule));
    let half = r#"-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp -m comment --comment "lb-agent:x" -j REDIRECT"#;
    assert_eq!(
        parse_line(half),
        Listed::Unreadable("has -p but no --dport".into())
    );
}

use super::*;

const TTL: Duration = Duration::from_secs(6);

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn weights(w: u32) -> BTreeMap<String, u32> {
    BTreeMap::from([("llc-ssh".to_string(), w)])
}

#[tokio::test(start_paused = true)]
async fn a_lease_lives_by_heartbeats_and_expires_without_them() {
    let mut reg = Registry::new(TTL);
    let lease = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    assert_eq!(
        reg.get(&addr("10.0.0.11")).unwrap().state,
        LeaseState::Pending
    );
    reg.confirm(&lease.id, Instant::now()).unwrap();
    for _ in 0..5 {
        tokio::time::advance(TTL / 3).await;
        reg.heartbeat(&lease.id, Instant::now()).unwrap();
        assert!(reg.expire(Instant::now()).is_empty());
    }
    tokio::time::advance(TTL).await;
    assert_eq!(reg.expire(Instant::now()), vec!["llc5"]);
    assert_eq!(
        reg.get(&addr("10.0.0.11")).unwrap().state,
        LeaseState::Expired
    );
    assert_eq!(
        reg.heartbeat(&lease.id, Instant::now()),
        Err(RegistryError::UnknownLease(lease.id.clone())),
        "an expired lease is unknown: the agent registers again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_name_cannot_be_taken_from_another_address() {
    let mut reg = Registry::new(TTL);
    reg.register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    let err = reg
        .register("llc5", addr("10.0.0.99"), weights(1), Instant::now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "realserver llc5 is already registered from 10.0.0.11 with a live lease: stop the other agent or give this one another name"
    );
    let err = reg
        .register("llc6", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap_err();
    assert!(matches!(err, RegistryError::AddressTaken { .. }));
    assert_eq!(
        reg.refused_agents().collect::<Vec<_>>(),
        vec![&RefusedAgent {
            name: "llc5".into(),
            address: addr("10.0.0.99"),
            attempts: 1,
            last: Instant::now(),
        }],
        "the second agent under a live name is remembered for lbctl status"
    );
    // Once the lease is gone, the name may move.
    tokio::time::advance(TTL + CONFIRM_GRACE).await;
    reg.expire(Instant::now());
    reg.register("llc5", addr("10.0.0.99"), weights(1), Instant::now())
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn registering_again_from_the_same_address_replaces_the_lease() {
    let mut reg = Registry::new(TTL);
    let old = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    let new = reg
        .register("llc5", addr("10.0.0.11"), weights(2), Instant::now())
        .unwrap();
    assert_ne!(old.id, new.id);
    assert!(reg.heartbeat(&old.id, Instant::now()).is_err());
    assert_eq!(reg.get(&addr("10.0.0.11")).unwrap().weights["llc-ssh"], 2);
}

#[tokio::test(start_paused = true)]
async fn adopted_entries_wait_their_window_for_their_agent() {
    let mut reg = Registry::new(TTL);
    reg.adopt(
        addr("10.0.0.11"),
        "llc5".into(),
        "llc-ssh",
        3,
        Instant::now() + TTL,
    );
    assert_eq!(reg.next_expiry(), Some(Instant::now() + TTL));
    let lease = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    reg.confirm(&lease.id, Instant::now()).unwrap();
    assert_eq!(
        reg.get(&addr("10.0.0.11")).unwrap().state,
        LeaseState::Alive
    );

    reg.adopt(
        addr("10.0.0.12"),
        "10.0.0.12".into(),
        "llc-ssh",
        1,
        Instant::now() + TTL,
    );
    tokio::time::advance(TTL).await;
    reg.heartbeat(&lease.id, Instant::now()).unwrap();
    assert_eq!(reg.expire(Instant::now()), vec!["10.0.0.12"]);
}

#[tokio::test(start_paused = true)]
async fn deregistration_ends_the_lease() {
    let mut reg = Registry::new(TTL);
    let lease = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    reg.confirm(&lease.id, Instant::now()).unwrap();
    assert_eq!(
        reg.deregister(&lease.id).unwrap().state,
        LeaseState::Deregistered
    );
    assert!(reg.deregister(&lease.id).is_err());
    reg.forget(&addr("10.0.0.11"));
    assert_eq!(reg.iter().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn registrations_are_bounded() {
    let mut reg = Registry::new(TTL);
    for i in 0..MAX_REALSERVERS {
        let a = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
        reg.register(&format!("rs{i}"), a, weights(1), Instant::now())
            .unwrap();
    }
    assert_eq!(
        reg.register("one-more", addr("10.2.0.1"), weights(1), Instant::now()),
        Err(RegistryError::Full)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pending_registration_waits_longer_than_a_lease_for_its_confirm() {
    let mut reg = Registry::new(TTL);
    let lease = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    // The agent's rule install took longer than a lease (a busy xtables lock).
    tokio::time::advance(TTL + CONFIRM_GRACE / 2).await;
    assert!(reg.expire(Instant::now()).is_empty());
    reg.confirm(&lease.id, Instant::now()).unwrap();
    tokio::time::advance(TTL).await;
    assert_eq!(
        reg.expire(Instant::now()),
        vec!["llc5"],
        "confirmed: a plain lease again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_second_agent_is_forgotten_once_it_stops_trying() {
    let mut reg = Registry::new(TTL);
    let lease = reg
        .register("llc5", addr("10.0.0.11"), weights(1), Instant::now())
        .unwrap();
    reg.confirm(&lease.id, Instant::now()).unwrap();
    for _ in 0..3 {
        assert!(reg
            .register("llc5", addr("10.0.0.99"), weights(1), Instant::now())
            .is_err());
    }
    assert_eq!(reg.refused_agents().next().unwrap().attempts, 3);
    for _ in 0..4 {
        tokio::time::advance(TTL).await;
        reg.heartbeat(&lease.id, Instant::now()).unwrap();
        reg.expire(Instant::now());
    }
    assert_eq!(reg.refused_agents().count(), 0);
}

//! Fuzzing of the director's state file reader (issue 6, "Hostile input"): whatever bytes
//! `state.json` holds, `StateFile::load` returns a state or an error that names the file,
//! never a panic; any state saved loads back equal. A few hundred cases per property in
//! `cargo test`; `PROPTEST_CASES` raises it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "../../shared/tests/fuzz_config_support/mod.rs"]
mod fuzz_config_support;

use std::net::IpAddr;

use fuzz_config_support::{config, edited};
use lb_director::host::OwnedVip;
use lb_director::state::{OwnedService, RetiringService, Revision, Revisions, State, StateFile};
use proptest::prelude::*;

const REGRESSIONS: &str = "tests/proptest-regressions/fuzz_state.txt";

/// A fresh state directory, in memory where the machine has /dev/shm: every save syncs the
/// file and the directory, which on a disk costs more than the rest of a case together.
fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Writes `bytes` as the state file of a fresh directory and loads it. A state that loads
/// must be one the director wrote (version 1) and must survive a save and a load.
fn load_checked(bytes: &[u8]) {
    let dir = state_dir();
    let file = StateFile::new(dir.path());
    std::fs::write(file.path(), bytes).unwrap();
    match file.load() {
        Ok(state) => {
            assert_eq!(state.version, 1, "a state of another version was taken");
            file.save(&state).unwrap();
            assert_eq!(
                file.load().unwrap(),
                state,
                "saved state reads back differently"
            );
        }
        Err(error) => {
            let shown = error.to_string();
            let path = file.path().display().to_string();
            assert!(
                shown.contains(&path),
                "the error does not name {path}: {shown}"
            );
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9.-]{0,10}",
        1 => any::<String>(),
    ]
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn owned_service() -> impl Strategy<Value = OwnedService> {
    (name(), name(), address(), any::<u16>(), name()).prop_map(
        |(name, protocol, vip, port, interface)| OwnedService {
            name,
            protocol,
            vip,
            port,
            interface,
            fwmark: None,
            more_vips: Vec::new(),
        },
    )
}

fn revision() -> impl Strategy<Value = Option<Revision>> {
    proptest::option::of((any::<u64>(), name()).prop_map(|(at, by)| Revision { at, by }))
}

fn state() -> impl Strategy<Value = State> {
    use proptest::collection::{btree_map, btree_set};
    let revisions = btree_map(
        name(),
        (revision(), revision()).prop_map(|(drain, weight)| Revisions { drain, weight }),
        0..4,
    );
    (
        revisions,
        (
            btree_set(name(), 0..4),
            btree_map(name(), any::<u32>(), 0..4),
            btree_map(address(), name(), 0..4),
            btree_set(owned_service(), 0..3),
            btree_set(
                (owned_service(), any::<u64>())
                    .prop_map(|(service, since)| RetiringService { service, since }),
                0..2,
            ),
            btree_set(
                (name(), address()).prop_map(|(interface, vip)| OwnedVip { interface, vip }),
                0..2,
            ),
        ),
    )
        .prop_map(
            |(revisions, (drained, weights, realservers, owned, retiring, vips))| State {
                version: 1,
                drained,
                weights,
                revisions,
                realservers,
                owned,
                retiring,
                vips,
            },
        )
}

/// A state as the director writes it, to mutate.
fn saved(state: &State) -> String {
    let dir = state_dir();
    let file = StateFile::new(dir.path());
    file.save(state).unwrap();
    std::fs::read_to_string(file.path()).unwrap()
}

fn seed() -> String {
    let mut state = State {
        version: 1,
        ..State::default()
    };
    state.drained.insert("llc5".into());
    state.weights.insert("llc6".into(), 3);
    state.revisions.insert(
        "llc5".into(),
        Revisions {
            drain: Some(Revision {
                at: 1_764_640_000_000,
                by: "llclb1".into(),
            }),
            weight: None,
        },
    );
    state
        .realservers
        .insert("10.0.0.11".parse().unwrap(), "llc5".into());
    state.owned.insert(OwnedService {
        name: "llc-ssh".into(),
        protocol: "tcp".into(),
        vip: "10.0.0.100".parse().unwrap(),
        port: 22,
        interface: "eth0".into(),
        fwmark: None,
        more_vips: Vec::new(),
    });
    saved(&state)
}

proptest! {
    #![proptest_config(config(REGRESSIONS))]

    #[test]
    fn any_bytes_load_or_fail_naming_the_file(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            edited(seed()).prop_map(String::into_bytes),
        ]
    ) {
        load_checked(&bytes);
    }

    #[test]
    fn any_state_saved_loads_back_equal(state in state()) {
        let text = saved(&state);
        let dir = state_dir();
        let file = StateFile::new(dir.path());
        std::fs::write(file.path(), text).unwrap();
        prop_assert_eq!(file.load().unwrap(), state);
    }
}

/// A state file written before revisions existed loads, its overrides as legacy records.
#[test]
fn a_state_file_without_revisions_still_loads() {
    let dir = state_dir();
    let file = StateFile::new(dir.path());
    std::fs::write(
        file.path(),
        r#"{"version": 1, "drained": ["llc5"], "weights": {"llc6": 3}, "realservers": {}}"#,
    )
    .unwrap();
    let state = file.load().unwrap();
    assert!(state.revisions.is_empty());
    let records = state.admin_records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].drain.as_ref().unwrap().revision,
        Revision::legacy()
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [127, 128, 129, 100_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        load_checked(format!("{{\"version\": 1, \"drained\": {nested}}}").as_bytes());
        load_checked(nested.as_bytes());
    }
}

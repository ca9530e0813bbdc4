use proptest::prelude::*;

use super::*;

fn rev(at: u64, by: &str) -> Revision {
    Revision {
        at,
        by: by.to_owned(),
    }
}

fn empty() -> State {
    State {
        version: 1,
        ..State::default()
    }
}

#[test]
fn a_later_undrain_beats_a_drain_and_a_stale_undrain_does_not() {
    let mut a = empty();
    a.write_admin("llc5", AdminChange::Drain(true), rev(100, "llclb1"));
    let drain = a.admin_record("llc5").unwrap();
    let mut b = empty();
    b.write_admin("llc5", AdminChange::Drain(false), rev(50, "llclb2"));
    assert!(
        b.merge_admin(&drain),
        "the later drain wins over the older undrain"
    );
    assert!(b.drained.contains("llc5"));
    let stale = {
        let mut s = empty();
        s.write_admin("llc5", AdminChange::Drain(false), rev(99, "llclb2"));
        s.admin_record("llc5").unwrap()
    };
    assert!(!b.merge_admin(&stale), "an older undrain never undrains");
    assert!(b.drained.contains("llc5"));
    b.write_admin("llc5", AdminChange::Drain(false), rev(101, "llclb2"));
    assert!(a.merge_admin(&b.admin_record("llc5").unwrap()));
    assert!(!a.drained.contains("llc5"), "the newer undrain reaches a");
}

#[test]
fn the_same_millisecond_is_ordered_by_the_writer_and_equal_revisions_change_nothing() {
    let mut a = empty();
    a.write_admin("llc5", AdminChange::Weight(3), rev(7, "llclb1"));
    let mut b = empty();
    b.write_admin("llc5", AdminChange::Weight(5), rev(7, "llclb2"));
    let (ra, rb) = (
        a.admin_record("llc5").unwrap(),
        b.admin_record("llc5").unwrap(),
    );
    assert!(a.merge_admin(&rb));
    assert!(!b.merge_admin(&ra));
    assert_eq!(a.weights["llc5"], 5);
    assert_eq!(a, b);
    assert!(
        !a.merge_admin(&rb),
        "merging the same record again is a no-op"
    );
}

#[test]
fn drain_and_weight_are_separate_registers() {
    // During a partition one side drains, the other sets a weight: both survive.
    let mut a = empty();
    a.write_admin("llc5", AdminChange::Weight(4), rev(10, "llclb1"));
    let mut b = empty();
    b.write_admin("llc5", AdminChange::Drain(true), rev(20, "llclb2"));
    let (ra, rb) = (
        a.admin_record("llc5").unwrap(),
        b.admin_record("llc5").unwrap(),
    );
    a.merge_admin(&rb);
    b.merge_admin(&ra);
    assert_eq!(a, b);
    assert!(a.drained.contains("llc5"));
    assert_eq!(a.weights["llc5"], 4);
}

#[test]
fn overrides_of_an_old_state_file_are_legacy_records_that_any_write_beats() {
    let mut old = empty();
    old.drained.insert("llc5".into());
    old.weights.insert("llc6".into(), 2);
    let records = old.admin_records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].drain,
        Some(Stamped {
            value: true,
            revision: Revision::legacy()
        })
    );
    assert_eq!(records[1].weight.as_ref().unwrap().value, Some(2));
    // A peer that never heard of llc5 takes the legacy drain ...
    let mut peer = empty();
    assert!(peer.merge_admin(&records[0]));
    assert!(peer.drained.contains("llc5"));
    // ... and any real write beats it.
    let mut newer_state = empty();
    newer_state.write_admin("llc5", AdminChange::Drain(false), rev(1, "llclb2"));
    assert!(old.merge_admin(&newer_state.admin_record("llc5").unwrap()));
    assert!(!old.drained.contains("llc5"));
}

#[test]
fn legacy_overrides_that_differ_still_converge() {
    let (mut a, mut b) = (empty(), empty());
    a.weights.insert("llc5".into(), 3);
    b.weights.insert("llc5".into(), 5);
    b.drained.insert("llc5".into());
    let (ra, rb) = (
        a.admin_record("llc5").unwrap(),
        b.admin_record("llc5").unwrap(),
    );
    a.merge_admin(&rb);
    b.merge_admin(&ra);
    assert_eq!(a, b);
    assert!(a.drained.contains("llc5"), "a legacy drain wins over none");
    assert_eq!(a.weights["llc5"], 5);
}

#[test]
fn the_clock_never_goes_back_and_orders_after_what_it_saw() {
    let mut clock = Clock::default();
    assert_eq!(clock.tick(1000), 1000);
    assert_eq!(clock.tick(900), 1001, "a wall clock that went back");
    clock.observe(5000);
    assert_eq!(clock.tick(1200), 5001, "after a peer's later revision");
    assert_eq!(clock.tick(9000), 9000);
    let mut state = empty();
    state.write_admin("llc5", AdminChange::Drain(true), rev(42, "x"));
    state.write_admin("llc6", AdminChange::Weight(1), rev(77, "x"));
    assert_eq!(state.latest_revision(), 77);
    assert_eq!(Clock::starting_after(77).tick(0), 78);
}

fn writes() -> impl Strategy<Value = Vec<(u8, u8, Option<u32>, u64, u8)>> {
    // (realserver, director, Some(weight) or a drain flag in None's place, at, drain value)
    proptest::collection::vec(
        (
            0u8..3,
            0u8..3,
            proptest::option::of(0u32..4),
            0u64..6,
            0u8..2,
        ),
        0..12,
    )
}

/// Each director applies its own writes; records are then exchanged in an arbitrary order.
fn directors_after(writes: &[(u8, u8, Option<u32>, u64, u8)]) -> Vec<State> {
    let mut states = vec![empty(), empty(), empty()];
    for (rs, d, weight, at, drain) in writes {
        let change = match weight {
            Some(w) => AdminChange::Weight(*w),
            None => AdminChange::Drain(*drain == 1),
        };
        let name = format!("llc{rs}");
        let by = format!("lb{d}");
        states[usize::from(*d)].write_admin(&name, change, rev(*at, &by));
    }
    states
}

proptest! {
    /// Whatever the writes and whatever order records arrive in, every director ends with the
    /// same state, and merging again changes nothing (commutative, idempotent).
    #[test]
    fn exchanges_in_any_order_converge(writes in writes(), order in proptest::collection::vec((0usize..3, 0usize..3), 0..20)) {
        let mut states = directors_after(&writes);
        for (from, to) in order {
            for record in states[from].admin_records() {
                states[to].merge_admin(&record);
            }
        }
        // Then a full round between all, as anti-entropy does.
        for _ in 0..2 {
            for from in 0..3 {
                for to in 0..3 {
                    for record in states[from].admin_records() {
                        states[to].merge_admin(&record);
                    }
                }
            }
        }
        prop_assert_eq!(&states[0], &states[1]);
        prop_assert_eq!(&states[1], &states[2]);
        for record in states[0].admin_records() {
            prop_assert!(!states[1].merge_admin(&record));
        }
    }

    /// The winner of each field is the write with the greatest (at, writer).
    #[test]
    fn the_latest_revision_wins(writes in writes()) {
        let mut states = directors_after(&writes);
        let records: Vec<_> = states.iter().flat_map(State::admin_records).collect();
        for record in &records {
            states[0].merge_admin(record);
        }
        for rs in 0u8..3 {
            let name = format!("llc{rs}");
            // Only the last write per (director, field) survives on its director.
            let mut last = std::collections::BTreeMap::new();
            for (r, d, weight, at, drain) in &writes {
                if *r == rs {
                    last.insert((weight.is_some(), *d), (*at, *d, *weight, *drain));
                }
            }
            let best_drain = last.iter().filter(|((w, _), _)| !w).map(|(_, v)| v)
                .max_by_key(|(at, d, _, _)| (*at, format!("lb{d}")));
            if let Some((_, _, _, drain)) = best_drain {
                prop_assert_eq!(states[0].drained.contains(&name), *drain == 1);
            }
            let best_weight = last.iter().filter(|((w, _), _)| *w).map(|(_, v)| v)
                .max_by_key(|(at, d, _, _)| (*at, format!("lb{d}")));
            if let Some((_, _, weight, _)) = best_weight {
                prop_assert_eq!(states[0].weights.get(&name).copied(), *weight);
            }
        }
    }
}

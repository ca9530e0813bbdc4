//! Matching acks of a pipelined batch back to their ops by sequence number.

use crate::netlink::exchange::{record_ack, Outcome};

#[test]
fn acks_land_on_their_ops_in_any_order() {
    let mut outcomes = [Outcome::Pending; 3];
    assert!(record_ack(&mut outcomes, 100, 102, 0));
    assert!(record_ack(&mut outcomes, 100, 100, libc::EEXIST));
    assert!(record_ack(&mut outcomes, 100, 101, 0));
    assert_eq!(
        outcomes,
        [
            Outcome::Refused(libc::EEXIST),
            Outcome::Applied,
            Outcome::Applied
        ]
    );
}

#[test]
fn stale_and_repeated_acks_are_ignored() {
    let mut outcomes = [Outcome::Pending; 2];
    assert!(
        !record_ack(&mut outcomes, 100, 99, 0),
        "an earlier request's ack"
    );
    assert!(!record_ack(&mut outcomes, 100, 102, 0), "beyond the batch");
    assert!(record_ack(&mut outcomes, 100, 100, 0));
    assert!(
        !record_ack(&mut outcomes, 100, 100, libc::EINVAL),
        "the same ack twice"
    );
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Pending]);
}

#[test]
fn sequence_numbers_wrap() {
    let mut outcomes = [Outcome::Pending; 2];
    assert!(record_ack(&mut outcomes, u32::MAX, 0, 0));
    assert!(record_ack(&mut outcomes, u32::MAX, u32::MAX, libc::ESRCH));
    assert_eq!(outcomes, [Outcome::Refused(libc::ESRCH), Outcome::Applied]);
}

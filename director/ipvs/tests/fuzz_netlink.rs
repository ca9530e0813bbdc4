//! Fuzzing of the IPVS netlink decoder (issue 6, "Hostile input"): whatever a socket delivers,
//! decoding it must not panic or hang, and whatever decodes must re-encode consistently.
//! Runs a few hundred cases per property in `cargo test`; `PROPTEST_CASES=20000` (as
//! `deploy/fuzz.sh` sets it) runs more. Inputs that once failed live in
//! `tests/fuzz-regressions/netlink/` and are checked on every run.

mod fuzz_support;

use fuzz_support::*;
use lb_ipvs::netlink::fuzzing;
use proptest::prelude::*;

proptest! {
    #![proptest_config(config("tests/proptest-regressions/fuzz_netlink.txt"))]

    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(datagram in arbitrary_datagram()) {
        check_datagram(&datagram);
    }

    #[test]
    fn mutated_kernel_replies_decode_consistently_or_fail_cleanly(
        datagram in mutated(ipvs_seeds())
    ) {
        check_datagram(&datagram);
    }

    #[test]
    fn mutated_family_replies_never_panic(datagram in mutated(family_seeds())) {
        let decoded = within_deadline(&datagram, |d| fuzzing::decode_family_datagram(&d));
        if let Err(error) = decoded {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

#[test]
fn captured_kernel_bytes_decode_and_re_encode_consistently() {
    for seed in ipvs_seeds() {
        let answers = fuzzing::decode_datagram(&seed)
            .unwrap_or_else(|e| panic!("captured bytes do not decode ({e}): {}", hex(&seed)));
        assert!(!answers.is_empty());
        check_datagram(&seed);
    }
}

#[test]
fn inputs_that_once_failed_now_decode_or_fail_cleanly() {
    let found = regressions("netlink");
    assert!(!found.is_empty(), "the regression inputs went missing");
    for (file, datagram) in found {
        println!("{file}");
        check_datagram(&datagram);
    }
}

#[test]
fn an_error_code_that_is_no_errno_is_a_decode_error_naming_it() {
    // NLMSG_ERROR with code i32::MIN, which once overflowed when negated.
    let mut ack = vec![0x24, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, 0, 0xb9, 0, 0, 0];
    ack.extend_from_slice(&i32::MIN.to_ne_bytes());
    ack.extend_from_slice(&[0x20, 0, 0, 0, 0x10, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let error = fuzzing::decode_datagram(&ack).unwrap_err();
    assert!(
        error.to_string().contains("-2147483648"),
        "the error does not name the code: {error}"
    );
}

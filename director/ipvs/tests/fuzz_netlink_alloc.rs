//! The IPVS netlink decoder allocates in proportion to what it is given: a hostile datagram
//! cannot make it reserve memory its bytes do not pay for (a length field read as a capacity,
//! say). Counted with a global allocator that sums every byte allocated, so this binary holds
//! one test and nothing else allocates while a datagram is decoded.

mod fuzz_support;

use cap::Cap;
use fuzz_support::*;
use lb_ipvs::netlink::fuzzing::{self, Answer};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// Bytes allocated per byte of input, at most, and a fixed allowance for the error messages
/// and the first allocation of each vector. 5000 cases of each strategy stayed within 24 and
/// 4 KiB; the margin keeps harmless changes from failing, while a length field taken for a
/// capacity (up to 64 KiB per attribute, 4 GiB per message) still does.
const PER_INPUT_BYTE: usize = 64;
const FIXED: usize = 16 * 1024;

/// Bytes allocated while decoding `datagram` and reading every message in it.
fn allocated_by_decoding(datagram: &[u8]) -> usize {
    let before = ALLOCATOR.total_allocated();
    if let Ok(answers) = fuzzing::decode_datagram(datagram) {
        for answer in &answers {
            if let Answer::Data { message, .. } = answer {
                drop(fuzzing::read(&message.payload));
            }
        }
    }
    drop(fuzzing::decode_family_datagram(datagram));
    ALLOCATOR.total_allocated() - before
}

fn within_budget(datagram: &[u8]) -> Result<(), TestCaseError> {
    let used = allocated_by_decoding(datagram);
    let budget = PER_INPUT_BYTE * datagram.len() + FIXED;
    prop_assert!(
        used <= budget,
        "decoding {} bytes allocated {used} bytes (budget {budget}): {}",
        datagram.len(),
        hex(datagram)
    );
    Ok(())
}

#[test]
fn decoding_allocates_in_proportion_to_the_input() {
    let mut worst = 0.0f64;
    for seed in ipvs_seeds().iter().chain(&family_seeds()) {
        let used = allocated_by_decoding(seed);
        worst = worst.max(used as f64 / seed.len() as f64);
        within_budget(seed).unwrap();
    }
    println!("captured replies: at most {worst:.1} bytes allocated per input byte");

    let config = || config("tests/proptest-regressions/fuzz_netlink_alloc.txt");
    proptest!(config(), |(datagram in arbitrary_datagram())| within_budget(&datagram)?);
    proptest!(config(), |(datagram in mutated(ipvs_seeds()))| within_budget(&datagram)?);
    proptest!(config(), |(datagram in mutated(family_seeds()))| within_budget(&datagram)?);
}

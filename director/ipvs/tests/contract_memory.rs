//! The contract suite against the in-memory fake; the lab runs the same cases against the
//! kernel (`ipvs-contract`).

lb_ipvs::ipvs_contract!(lb_ipvs::MemoryIpvs::new());

/// Every case of the list the lab runs has a test here: the macro and [`cases`] share it.
#[test]
fn every_case_runs_here_too() {
    let names: Vec<&str> = lb_ipvs::contract::cases::<lb_ipvs::MemoryIpvs>()
        .iter()
        .map(|case| case.name)
        .collect();
    assert_eq!(names.len(), 26, "cases: {names:?}");
}

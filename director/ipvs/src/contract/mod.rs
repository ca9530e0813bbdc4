//! The contract every [`IpvsBackend`] keeps: what the director relies on and what the kernel
//! does, errnos included. The same async case functions run against the in-memory fake in
//! `cargo test` ([`crate::ipvs_contract!`]) and against the real kernel in the lab VM (the
//! `ipvs-contract` binary, through [`cases`]). Each case takes a fresh, empty table.

pub mod capture;
mod destinations;
mod helpers;
pub mod lab;
mod services;
mod table;

use std::future::Future;
use std::pin::Pin;

use crate::backend::IpvsBackend;
use crate::error::IpvsError;

pub use destinations::*;
pub use services::*;
pub use table::*;

/// Why a case failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The backend refused or failed a step that should have worked, or answered with
    /// another error than the kernel's.
    #[error("{step}: {source}")]
    Backend {
        step: String,
        #[source]
        source: IpvsError,
    },
    /// The backend answered, but not what the kernel answers.
    #[error("{step}: expected {expected}, got {actual}")]
    Mismatch {
        step: String,
        expected: String,
        actual: String,
    },
}

/// The future of one case, boxed so that cases fit in one list.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// One contract case, by name.
pub struct Case<B> {
    pub name: &'static str,
    pub run: for<'a> fn(&'a B) -> CaseFuture<'a>,
}

/// Every case, in the order the lab runs them.
pub fn cases<B: IpvsBackend>() -> Vec<Case<B>> {
    crate::ipvs_contract!(@each list [B])
}

/// The contract suite. `ipvs_contract!(make_backend())` expands to one `#[tokio::test]` per
/// case, each with a fresh backend from the expression; [`cases`] gives the same list at run
/// time. The names are written once, here.
#[macro_export]
macro_rules! ipvs_contract {
    (@each $mode:ident [$($extra:tt)*]) => {
        $crate::ipvs_contract! { @$mode [$($extra)*]
            info_reports_version
            service_tcp
            service_udp
            service_sctp
            service_fwmark
            service_ipv6
            service_flags_and_persistence
            service_unknown_scheduler
            service_scheduler_names
            service_duplicate_add
            service_missing
            destination_forwards
            destination_duplicate
            destination_missing
            destination_on_missing_service
            destination_quiesced_lists_every_field
            destination_thresholds
            destination_weight_range
            destination_gue_needs_port
            destination_address_must_be_unicast
            destinations_of_many_services
            destinations_listed_newest_first
            timeouts_get_set
            batch_with_a_failure_in_the_middle
            batch_of_1000_destinations
            daemons_start_list_stop
        }
    };
    (@list [$backend:ty] $($name:ident)*) => {
        vec![$(
            $crate::contract::Case::<$backend> {
                name: stringify!($name),
                run: |ipvs| Box::pin($crate::contract::$name(ipvs)),
            }
        ),*]
    };
    (@tests [$make:expr] $($name:ident)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let backend = $make;
                if let Err(failure) = $crate::contract::$name(&backend).await {
                    panic!("contract::{}: {failure}", stringify!($name));
                }
            }
        )*
    };
    ($make:expr) => {
        $crate::ipvs_contract! { @each tests [$make] }
    };
}

//! Generated gRPC code for `proto/lb/v1/lb.proto`. No logic lives here.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("lb.v1");
}

pub use v1::*;

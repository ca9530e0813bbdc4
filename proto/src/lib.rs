//! Generated gRPC code for `proto/lb/v1/lb.proto`. No logic lives here.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("lb.v1");
}

pub use v1::*;

/// The encoded `FileDescriptorSet` of `lb.proto` (with its comments), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lb_descriptor.bin"));

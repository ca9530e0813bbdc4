//! The shared test support lives in the library (feature `testing`) so the agent's tests use
//! the same director.

pub use lb_director::testing::*;

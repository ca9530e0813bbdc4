//! The realserver agent.

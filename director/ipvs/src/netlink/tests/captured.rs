//! Bytes captured from a real kernel in the lab (see tests/captured/README.md).

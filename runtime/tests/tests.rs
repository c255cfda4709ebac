//! Integration tests of the `sluice` binary: the broker as a separate process, the CLI tools
//! compared with kcat, and crash safety. One test binary, one module per area.

#![allow(unreachable_pub)]

mod support;

mod cli;
mod crash;

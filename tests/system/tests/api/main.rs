//! The integration tests of this crate, one binary (each file of this directory a
//! module of it), so cargo links one test executable for the crate, not one a file.
#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

mod asyncapi;
mod console;
mod contracts;
mod failover;
mod layout;
mod openapi;
mod ops_api;
mod run_script;
mod system;

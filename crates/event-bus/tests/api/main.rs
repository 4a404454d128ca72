//! The integration tests of this crate, one binary (each file of this directory a
//! module of it), so cargo links one test executable for the crate, not one a file.
#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

mod common;
mod consume;
mod dead_letters;
mod ops;
mod outbox;
mod partitions;
mod redis_outage;
mod upgrade;

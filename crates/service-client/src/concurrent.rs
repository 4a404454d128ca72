//! Named calls in flight together (Laravel's `Http::pool`), each with its own timeout:
//! the whole takes about as long as the slowest, and one failing leaves the others'
//! results intact.

use std::collections::HashMap;

use futures::future::{BoxFuture, join_all};

use crate::client::{Call, Response};
use crate::error::Error;

/// Calls to run together, by name.
#[derive(Default)]
pub struct Concurrent {
    calls: Vec<(&'static str, BoxFuture<'static, Result<Response, Error>>)>,
}

impl Concurrent {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a call; give it its own `.timeout()` / `.deadline()` as needed.
    pub fn add(mut self, name: &'static str, call: Call) -> Self {
        self.calls.push((name, Box::pin(call.send())));
        self
    }

    /// Runs every call at once and returns each result under its name.
    pub async fn run(self) -> HashMap<&'static str, Result<Response, Error>> {
        let (names, calls): (Vec<_>, Vec<_>) = self.calls.into_iter().unzip();
        names.into_iter().zip(join_all(calls).await).collect()
    }
}

/// Runs `calls` at once; results by name.
pub async fn concurrent(
    calls: impl IntoIterator<Item = (&'static str, Call)>,
) -> HashMap<&'static str, Result<Response, Error>> {
    calls
        .into_iter()
        .fold(Concurrent::new(), |set, (name, call)| set.add(name, call))
        .run()
        .await
}

//! A service's connections: those idle, ready to be taken, and the count of those in
//! use.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::Connection;
use super::failure::Failure;

/// How long a connection may sit unused before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most connections kept per service and worker.
pub const MAX_IDLE: usize = 256;

/// A service's connections: the idle ones, the longest idle first, and a permit for
/// each one in use.
pub(super) struct List {
    idle: Mutex<Vec<Connection>>,
    in_use: Arc<Semaphore>,
}

impl List {
    /// An empty list, for at most `max_open` connections in use.
    pub(super) fn new(max_open: usize) -> Self {
        Self {
            idle: Mutex::default(),
            in_use: Arc::new(Semaphore::new(max_open)),
        }
    }

    /// A place for one more connection in use, once there is one.
    pub(super) async fn place(&self) -> Result<OwnedSemaphorePermit, Failure> {
        match self.in_use.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                self.in_use.clone().acquire_owned().await.map_err(|_| {
                    Failure::Io(io::Error::other("the service's connections are closed"))
                })
            }
        }
    }
}

fn lock(list: &List) -> MutexGuard<'_, Vec<Connection>> {
    list.idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection of the list's that is open and ready for a request, if any; closes
/// those that were idle too long or that the service closed, on the way.
pub(super) fn take(list: &List) -> Option<Connection> {
    let mut list = lock(list);
    let now = Instant::now();
    let stale = list
        .iter()
        .take_while(|idle| now - idle.since > IDLE_TIMEOUT)
        .count();
    list.drain(..stale);
    // The most recently used first: the likeliest to be open, and the others age out.
    while let Some(connection) = list.pop() {
        if connection.is_quiet() {
            return Some(connection);
        }
    }
    None
}

/// Puts `connection` back, idle, unless the list is full (then it closes).
pub(super) fn give_back(list: &List, mut connection: Connection) {
    connection.in_use = None;
    let mut list = lock(list);
    if list.len() < MAX_IDLE {
        connection.since = Instant::now();
        list.push(connection);
    }
}

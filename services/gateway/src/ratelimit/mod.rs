//! Exact sliding-window rate limits shared by every gateway replica.
//!
//! One file: the limiter, its batches and its fallback are one algorithm; its
//! decision and headers are `decision`, its script `window.lua`.
//!
//! Each key (a user, or a client IP) is a list in Redis holding the time of every
//! request admitted in the last window, oldest first. One Lua script, run atomically,
//! drops what left the window, counts, and admits the request only if the count is
//! under the limit; it reads Redis's own clock, so replicas whose clocks disagree still
//! agree on the window. A list rather than a sorted set: admissions arrive in time
//! order, so admitting is pushing at the back, O(1) (a sorted set pays O(log n) and a
//! unique member per request), and the times pack into a few bytes each. What left the
//! window is found by doubling then halving lookups from the front and cut with one
//! `LTRIM`: a busy key idle for a minute holds a window's worth of old times, and
//! popping them one by one in one script call held Redis, for every client, for
//! hundreds of milliseconds. (The search relies on the times being in order, which
//! Redis's clock gives unless it is set back.) No window-long span ever admits more than the
//! limit, however many requests race on however many replicas.
//!
//! # Batches
//!
//! Each HTTP worker sends its admissions to Redis from one task: while one script call
//! is on its way, the requests arriving meanwhile queue up, and the next call decides
//! all of them at once in the same atomic script. Nothing waits to fill a batch (an
//! idle gateway sends batches of one), so a busy gateway makes one round trip per
//! handful of requests instead of one each. The admissions of one key in a batch (one
//! user's burst) are decided together: the script reads the key's window once and
//! admits as many as fit, and each admission, in arrival order, gets exactly the
//! decision and count it would have got on its own, since they share the script's
//! clock. Admissions whose request stopped waiting are dropped from the batch before it
//! is sent, so they are not counted.
//!
//! # Refusals
//!
//! A refused key stays refused until its oldest counted request leaves the window: no
//! slot of its frees before then, whatever the other replicas do. So each worker
//! remembers, for a key Redis refused, until when (measured from before the check was
//! sent, so never later than Redis's own answer), and refuses that key's requests
//! itself until then, with the same headers. A client hammering past its limit then
//! costs a lookup, not a Redis call each, and the exact window is unchanged: those
//! requests would have been refused, and refused requests are not counted.
//!
//! When Redis cannot be reached the replica falls back to the same algorithm in its own
//! memory (logged, and counted in `gateway_rate_limit_fallback_total`): limits then
//! hold per replica instead of across them, rather than admitting everything or
//! failing every request.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use redis::Script;
use redis::cluster_routing::Slot;
use service_kit::redis::{Client, Connection};
use tokio::sync::{mpsc, oneshot};

pub use decision::{Decision, FixedHeaders};

mod decision;

/// The window every limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How long one batch's script call (connecting included) may take before its
/// admissions are decided by the local limiter instead. A check waits at most two of
/// these: the call in flight when it queued, then its own.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// After Redis failed, how long requests go straight to the local limiter before Redis
/// is tried again, so an outage costs one slow request a second, not every request.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Most admissions decided by one script call.
pub const MAX_BATCH: usize = 128;

/// Decides each key of `KEYS` in turn, `ARGV[2 + i]` admissions wanted for the i-th:
/// drops what left the window, admits as many as fit, and returns two numbers per key
/// (the count before admitting, the oldest time still counted or -1), then the time it
/// used. Each admission's own decision follows from those (see [`Shared::decide`]).
const SCRIPT: &str = include_str!("window.lua");

/// The limiter of one HTTP worker: the shared limit and fallback memory, and this
/// worker's queue to Redis.
pub struct RateLimiter {
    shared: Arc<Shared>,
    /// The headers that say the same on every response, made for this worker.
    fixed: FixedHeaders,
    /// The queue to this worker's batch task, started on first use by the runtime that
    /// uses it, so the task and its Redis connection run on the worker's thread and a
    /// check wakes no other thread.
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
    /// Keys Redis refused, and until when they stay refused (see "Refusals" above).
    refused: Mutex<HashMap<String, Instant>>,
}

/// How many refused keys a worker remembers at most; past it, new refusals go
/// unremembered (and to Redis each time) until old ones lapse.
const MAX_REFUSED: usize = 10_000;

/// What every worker's limiter shares.
struct Shared {
    client: Client,
    script: Script,
    prefix: String,
    limit: u32,
    local: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// While set and in the future, Redis is skipped.
    redis_down_until: Mutex<Option<Instant>>,
    /// Whether `redis_down_until` is set: read on every check without the lock, so
    /// the workers do not pass the lock's cache line between them while Redis is up.
    redis_down: AtomicBool,
    round_trips: AtomicU64,
}

/// What the script said of one key: requests counted in its window before this batch,
/// the oldest one's time (-1 if none) and Redis's clock, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    counted: i64,
    oldest: i64,
    now: i64,
}

/// An admission waiting for its batch.
struct Pending {
    key: String,
    reply: oneshot::Sender<Result<Decision, Unanswered>>,
}

/// Why Redis did not decide a batch: its admissions are then decided in memory. Clone,
/// as one failure answers every admission of the batch.
#[derive(Debug, Clone, thiserror::Error)]
enum Unanswered {
    #[error("the rate-limit task stopped")]
    Stopped,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the rate-limit call failed")]
    Redis(#[source] Arc<redis::RedisError>),
    #[error("the rate-limit script answered {answered} numbers for {keys} keys")]
    Malformed { answered: usize, keys: usize },
}

impl From<redis::RedisError> for Unanswered {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(Arc::new(error))
    }
}

impl RateLimiter {
    pub fn new(client: Client, prefix: &str, limit: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                script: Script::new(SCRIPT),
                prefix: prefix.to_owned(),
                limit,
                local: Mutex::default(),
                redis_down_until: Mutex::default(),
                redis_down: AtomicBool::new(false),
                round_trips: AtomicU64::new(0),
            }),
            fixed: FixedHeaders::new(limit, WINDOW),
            queue: OnceLock::new(),
            refused: Mutex::default(),
        }
    }

    /// A limiter for one HTTP worker: the same limit and fallback memory, its own
    /// batch task and Redis connection.
    pub fn for_worker(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            fixed: FixedHeaders::new(self.shared.limit, WINDOW),
            queue: OnceLock::new(),
            refused: Mutex::default(),
        }
    }

    /// The rate-limit headers of `decision` (see [`Decision::headers`]).
    pub fn headers(&self, decision: &Decision) -> [(HeaderName, HeaderValue); 5] {
        decision.headers(&self.fixed)
    }

    /// Whether limits apply at all (a limit of 0 turns them off).
    pub fn enabled(&self) -> bool {
        self.shared.limit > 0
    }

    /// Script calls made to Redis so far by every worker (each decides a batch).
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::Relaxed)
    }

    /// Counts one request against `key` (e.g. `user:<id>`, `ip:<addr>`).
    pub async fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        if let Some(refusal) = self.still_refused(key, now) {
            return refusal;
        }
        if self.shared.redis_is_down(now) {
            return self.shared.check_locally(key, now);
        }
        let (reply, answer) = oneshot::channel();
        let mut prefixed = String::with_capacity(self.shared.prefix.len() + key.len());
        prefixed.push_str(&self.shared.prefix);
        prefixed.push_str(key);
        let pending = Pending {
            key: prefixed,
            reply,
        };
        // No timer of its own: the batch task bounds every call by REDIS_TIMEOUT and
        // answers each admission, and a timer per request cost more than the rest of
        // the check.
        let answered = match self.queue().send(pending) {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        let result = answered.unwrap_or(Err(Unanswered::Stopped));
        match result {
            Ok(decision) => {
                self.shared.mark_redis_up();
                if !decision.allowed && !decision.resets_in.is_zero() {
                    self.remember_refusal(key, now + decision.resets_in, now);
                }
                decision
            }
            Err(error) => {
                tracing::warn!(
                    error = service_kit::telemetry::causes(&error),
                    "Redis unreachable: rate limiting in this replica's memory"
                );
                self.shared.mark_redis_down(now + REDIS_RETRY_AFTER);
                self.shared.check_locally(key, now)
            }
        }
    }

    /// The refusal of `key` this worker remembers, if it still stands at `now`.
    fn still_refused(&self, key: &str, now: Instant) -> Option<Decision> {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.is_empty() {
            return None;
        }
        let until = *refused.get(key)?;
        if until <= now {
            refused.remove(key);
            return None;
        }
        Some(Decision {
            allowed: false,
            limit: self.shared.limit,
            remaining: 0,
            resets_in: until - now,
        })
    }

    fn remember_refusal(&self, key: &str, until: Instant, now: Instant) {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REFUSED {
            refused.retain(|_, until| *until > now);
        }
        if refused.len() < MAX_REFUSED {
            refused.insert(key.to_owned(), until);
        }
    }

    fn queue(&self) -> &mpsc::UnboundedSender<Pending> {
        self.queue.get_or_init(|| {
            let (queue, admissions) = mpsc::unbounded_channel();
            tokio::spawn(send_batches(self.shared.clone(), admissions));
            queue
        })
    }
}

/// A worker's batch task: takes whatever admissions are queued (at least one, at most
/// [`MAX_BATCH`]), decides them in one script call, answers each, and goes again.
/// Ends when the worker's limiter is dropped.
async fn send_batches(shared: Arc<Shared>, mut admissions: mpsc::UnboundedReceiver<Pending>) {
    let mut redis: Option<Connection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while admissions.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The worker's other ready requests run first (the task goes to the back of
        // the run queue, behind the connections whose data has arrived), and those
        // that reach their check meanwhile join this batch: fewer, larger calls.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match admissions.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        // A request that stopped waiting (timed out, client gone) is not counted.
        batch.retain(|pending: &Pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let decided = tokio::time::timeout(REDIS_TIMEOUT, shared.decide(&mut redis, &batch))
            .await
            .unwrap_or(Err(Unanswered::TimedOut(REDIS_TIMEOUT)));
        match decided {
            Ok(decisions) => {
                for (pending, decision) in batch.drain(..).zip(decisions) {
                    let _ = pending.reply.send(Ok(decision));
                }
            }
            Err(error) => {
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

impl Shared {
    /// One script call deciding `batch`, in order; connects first if need be.
    async fn decide(
        &self,
        redis: &mut Option<Connection>,
        batch: &[Pending],
    ) -> Result<Vec<Decision>, Unanswered> {
        let connection = match redis {
            Some(connection) => connection,
            None => redis.insert(self.client.connect().await?),
        };
        // The batch's distinct keys in order of first arrival, how many admissions
        // each wants, and for each admission its key and its place among that key's.
        let mut keys: Vec<&str> = Vec::new();
        let mut wanted: Vec<u32> = Vec::new();
        let mut places = Vec::with_capacity(batch.len());
        for pending in batch {
            let key = match keys.iter().position(|key| *key == pending.key) {
                Some(key) => key,
                None => {
                    keys.push(&pending.key);
                    wanted.push(0);
                    keys.len() - 1
                }
            };
            places.push((key, wanted[key]));
            wanted[key] += 1;
        }
        let windows = self.windows(connection, &keys, &wanted).await?;
        let window = WINDOW.as_millis() as i64;
        let limit = i64::from(self.limit);
        Ok(places
            .into_iter()
            .map(|(key, place)| {
                let Window {
                    counted,
                    oldest,
                    now,
                } = windows[key];
                let admitted = i64::from(wanted[key]).min((limit - counted).max(0));
                let place = i64::from(place);
                // As if decided one by one: this admission saw those before it in the
                // batch counted, if they fitted.
                let allowed = place < admitted;
                let count = counted + if allowed { place + 1 } else { admitted };
                let resets_in = if oldest >= 0 {
                    oldest + window - now
                } else if admitted > 0 {
                    window
                } else {
                    0
                };
                Decision {
                    allowed,
                    limit: self.limit,
                    remaining: u32::try_from((limit - count).max(0)).unwrap_or(0),
                    resets_in: Duration::from_millis(u64::try_from(resets_in.max(0)).unwrap_or(0)),
                }
            })
            .collect())
    }

    /// Admits `wanted[i]` for `keys[i]` as far as each fits, and says what each
    /// window held before. One script call on a single server; on a cluster, where a
    /// call may only name keys of one slot, one call per slot, all at once.
    async fn windows(
        &self,
        connection: &Connection,
        keys: &[&str],
        wanted: &[u32],
    ) -> Result<Vec<Window>, Unanswered> {
        if !connection.is_cluster() {
            return self.call(connection.clone(), keys, wanted).await;
        }
        let mut slots: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let slot = Slot::for_key(key);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, indices)) => indices.push(index),
                None => slots.push((slot, vec![index])),
            }
        }
        let calls = slots.iter().map(|(_, indices)| {
            let keys: Vec<&str> = indices.iter().map(|&i| keys[i]).collect();
            let wanted: Vec<u32> = indices.iter().map(|&i| wanted[i]).collect();
            let connection = connection.clone();
            async move { self.call(connection, &keys, &wanted).await }
        });
        let answers = futures::future::try_join_all(calls).await?;
        let mut windows = vec![Window::default(); keys.len()];
        for ((_, indices), answers) in slots.iter().zip(answers) {
            for (&index, window) in indices.iter().zip(answers) {
                windows[index] = window;
            }
        }
        Ok(windows)
    }

    /// One script call for `keys`, which share a slot.
    async fn call(
        &self,
        mut connection: Connection,
        keys: &[&str],
        wanted: &[u32],
    ) -> Result<Vec<Window>, Unanswered> {
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        invocation.arg(self.limit).arg(WINDOW.as_millis() as u64);
        for count in wanted {
            invocation.arg(*count);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let answers: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        let (Some(&now), true) = (answers.last(), answers.len() == keys.len() * 2 + 1) else {
            return Err(Unanswered::Malformed {
                answered: answers.len(),
                keys: keys.len(),
            });
        };
        Ok(answers
            .chunks_exact(2)
            .map(|pair| Window {
                counted: pair[0],
                oldest: pair[1],
                now,
            })
            .collect())
    }

    fn down_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.redis_down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn redis_is_down(&self, now: Instant) -> bool {
        self.redis_down.load(Ordering::Acquire)
            && self.down_until().is_some_and(|until| now < until)
    }

    fn mark_redis_down(&self, until: Instant) {
        *self.down_until() = Some(until);
        self.redis_down.store(true, Ordering::Release);
    }

    fn mark_redis_up(&self) {
        if self.redis_down.load(Ordering::Acquire) {
            *self.down_until() = None;
            self.redis_down.store(false, Ordering::Release);
        }
    }

    /// The same window kept in this replica's memory.
    fn check_locally(&self, key: &str, now: Instant) -> Decision {
        metrics::counter!("gateway_rate_limit_fallback_total").increment(1);
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if local.len() > 100_000 {
            local.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        let times = local.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        let allowed = times.len() < self.limit as usize;
        if allowed {
            times.push_back(now);
        }
        let resets_in = times.front().map_or(Duration::ZERO, |t| {
            WINDOW.saturating_sub(now.duration_since(*t))
        });
        Decision {
            allowed,
            limit: self.limit,
            remaining: self
                .limit
                .saturating_sub(u32::try_from(times.len()).unwrap_or(u32::MAX)),
            resets_in,
        }
    }
}

#[cfg(test)]
mod tests;

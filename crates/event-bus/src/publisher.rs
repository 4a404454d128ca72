//! Appending envelopes to a stream partition.
//!
//! Entries go out pipelined, one round trip for a batch. On a Redis Cluster a pipeline
//! may only name keys of one slot, so a batch goes as one pipeline per partition, all
//! at once; on a single server, as one pipeline.
//!
//! With replica acknowledgements asked for, each pipeline ends with `ROLE` and `WAIT`:
//! the batch counts as published only once the master's replicas hold it. Redis
//! replicates asynchronously, so a master that dies right after acknowledging an
//! `XADD` may take the entry with it; the failover promotes a replica without it. The
//! outbox makes that harmless: a batch not known to be on a replica is not marked
//! published, and goes out again (consumers' inboxes drop what arrives twice). A master
//! with fewer replicas connected than asked for (its replica is the master that died)
//! waits only for those it has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::{FromRedisValue, Value};
use service_kit::redis::Connection;

use crate::envelope::ENVELOPE_FIELD;
use crate::envelope::Envelope;
use crate::error::PublishError;
use crate::stream::Stream;

/// How long a batch waits for its replicas before it is published again: well inside
/// a command's response timeout (half a second on a single server's connection).
const REPLICA_WAIT: Duration = Duration::from_millis(200);

/// `XADD`s envelopes with an approximate `MAXLEN` cap.
///
/// The cap bounds memory; it is sized so entries are acknowledged long before they are
/// trimmed (a consumer that is days behind needs a larger one).
#[derive(Clone)]
pub struct Publisher {
    redis: Connection,
    max_len: usize,
    replica_acks: usize,
    /// Replicas last seen connected to each partition's master.
    replicas: Arc<Mutex<HashMap<String, usize>>>,
}

impl Publisher {
    pub fn new(redis: Connection, max_len: usize) -> Self {
        Self {
            redis,
            max_len,
            replica_acks: 0,
            replicas: Arc::default(),
        }
    }

    /// Counts a batch published only once `replicas` replicas hold it (as many as are
    /// connected, if fewer); see the [module](self).
    pub fn with_replica_acks(mut self, replicas: u16) -> Self {
        self.replica_acks = usize::from(replicas);
        self
    }

    /// Appends one envelope to `stream` (a partition's key); returns its entry id.
    pub async fn publish(&self, stream: &str, envelope: &Envelope) -> Result<String, PublishError> {
        let mut ids = self
            .publish_batch(stream, std::slice::from_ref(envelope))
            .await?;
        ids.pop().ok_or(PublishError::NoId)
    }

    /// Appends envelopes in one round trip, in order; returns their entry ids.
    pub async fn publish_batch(
        &self,
        stream: &str,
        envelopes: &[Envelope],
    ) -> Result<Vec<String>, PublishError> {
        let entries = envelopes
            .iter()
            .map(|envelope| Ok((stream.to_owned(), serde_json::to_string(envelope)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        Ok(self.xadd(&entries).await?)
    }

    /// Appends envelopes to `stream`, each to the partition of its key, in one round
    /// trip (one per partition, at once, on a cluster); returns their entry ids.
    pub async fn publish_to(
        &self,
        stream: &Stream,
        envelopes: &[Envelope],
    ) -> Result<Vec<String>, PublishError> {
        let entries = envelopes
            .iter()
            .map(|envelope| {
                Ok((
                    stream.partition_for(envelope),
                    serde_json::to_string(envelope)?,
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        Ok(self.xadd(&entries).await?)
    }

    /// `XADD`s `(stream, envelope JSON)` pairs, each stream's in order; returns the
    /// entry ids in the order given.
    pub(crate) async fn xadd(
        &self,
        entries: &[(String, String)],
    ) -> redis::RedisResult<Vec<String>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let groups: Vec<Vec<usize>> = if self.redis.is_cluster() {
            let mut by_stream: Vec<(&str, Vec<usize>)> = Vec::new();
            for (index, (stream, _)) in entries.iter().enumerate() {
                match by_stream.iter_mut().find(|(s, _)| *s == stream) {
                    Some((_, indices)) => indices.push(index),
                    None => by_stream.push((stream, vec![index])),
                }
            }
            by_stream.into_iter().map(|(_, indices)| indices).collect()
        } else {
            vec![(0..entries.len()).collect()]
        };
        let answers =
            futures::future::try_join_all(groups.iter().map(|group| self.pipeline(entries, group)))
                .await?;
        let mut ids = vec![String::new(); entries.len()];
        for (group, answer) in groups.iter().zip(answers) {
            for (&index, id) in group.iter().zip(answer) {
                ids[index] = id;
            }
        }
        metrics::counter!("events_published_total").increment(ids.len() as u64);
        Ok(ids)
    }

    /// One pipeline: the entries at `indices`, and the replicas' acknowledgement.
    async fn pipeline(
        &self,
        entries: &[(String, String)],
        indices: &[usize],
    ) -> redis::RedisResult<Vec<String>> {
        let mut pipe = redis::pipe();
        for &index in indices {
            let (stream, envelope) = &entries[index];
            pipe.cmd("XADD")
                .arg(stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg(ENVELOPE_FIELD)
                .arg(envelope);
        }
        let stream = &entries[indices[0]].0;
        let waited_for = self.expected_replicas(stream);
        if self.replica_acks > 0 {
            pipe.cmd("ROLE")
                .cmd("WAIT")
                .arg(waited_for)
                .arg(REPLICA_WAIT.as_millis() as u64);
        }
        let mut redis = self.redis.clone();
        let mut answers: Vec<Value> = pipe.query_async(&mut redis).await?;
        if self.replica_acks > 0 {
            let acked = answers.pop().map_or(Ok(0), usize::from_redis_value)?;
            let role = answers.pop().unwrap_or(Value::Nil);
            self.check_replicated(&mut redis, stream, &role, waited_for, acked)
                .await?;
        }
        answers
            .into_iter()
            .map(|id| String::from_redis_value(id).map_err(redis::RedisError::from))
            .collect()
    }

    /// Replicas to `WAIT` for on `stream`'s master: as asked, or as many as were
    /// connected last time, if fewer.
    fn expected_replicas(&self, stream: &str) -> usize {
        let known = self
            .replicas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(stream)
            .copied();
        known.map_or(self.replica_acks, |connected| {
            connected.min(self.replica_acks)
        })
    }

    /// Fails unless as many replicas as asked for (or as are connected) hold the batch.
    async fn check_replicated(
        &self,
        redis: &mut Connection,
        stream: &str,
        role: &Value,
        waited_for: usize,
        acked: usize,
    ) -> redis::RedisResult<()> {
        let connected = connected_replicas(role);
        self.replicas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(stream.to_owned(), connected);
        let needed = connected.min(self.replica_acks);
        let acked = if acked < needed && waited_for < needed {
            // A replica came back since we last looked: wait for it too.
            let mut wait = redis::cmd("WAIT");
            wait.arg(needed).arg(REPLICA_WAIT.as_millis() as u64);
            usize::from_redis_value(redis.query_on_node_of(stream, wait).await?)?
        } else {
            acked
        };
        if acked < needed {
            metrics::counter!("events_unreplicated_total").increment(1);
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the stream's replicas did not acknowledge the batch",
                format!("{acked} of {needed} within {REPLICA_WAIT:?} on {stream}"),
            )));
        }
        if connected < self.replica_acks {
            tracing::debug!(%stream, connected, wanted = self.replica_acks, "fewer replicas connected than asked for");
        }
        Ok(())
    }
}

/// Replicas connected to a master, from its `ROLE` answer
/// (`["master", offset, [[ip, port, offset], ...]]`); 0 for anything else.
fn connected_replicas(role: &Value) -> usize {
    match role {
        Value::Array(parts) => match parts.as_slice() {
            [_, _, Value::Array(replicas)] => replicas.len(),
            _ => 0,
        },
        _ => 0,
    }
}

//! Appending envelopes to a stream.

use redis::aio::ConnectionManager;

use crate::envelope::ENVELOPE_FIELD;
use crate::envelope::Envelope;

/// `XADD`s envelopes with an approximate `MAXLEN` cap.
///
/// The cap bounds memory; it is sized so entries are acknowledged long before they are
/// trimmed (a consumer that is days behind needs a larger one).
#[derive(Clone)]
pub struct Publisher {
    redis: ConnectionManager,
    max_len: usize,
}

impl Publisher {
    pub fn new(redis: ConnectionManager, max_len: usize) -> Self {
        Self { redis, max_len }
    }

    /// Appends one envelope; returns its stream entry id.
    pub async fn publish(&self, stream: &str, envelope: &Envelope) -> anyhow::Result<String> {
        let mut ids = self
            .publish_batch(stream, std::slice::from_ref(envelope))
            .await?;
        ids.pop()
            .ok_or_else(|| anyhow::anyhow!("XADD returned no id"))
    }

    /// Appends envelopes in one round trip, in order; returns their entry ids.
    pub async fn publish_batch(
        &self,
        stream: &str,
        envelopes: &[Envelope],
    ) -> anyhow::Result<Vec<String>> {
        let entries = envelopes
            .iter()
            .map(|envelope| Ok((stream.to_owned(), serde_json::to_string(envelope)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        Ok(self.xadd(&entries).await?)
    }

    /// `XADD`s `(stream, envelope JSON)` pairs in one pipeline; returns the entry ids.
    pub(crate) async fn xadd(
        &self,
        entries: &[(String, String)],
    ) -> redis::RedisResult<Vec<String>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (stream, envelope) in entries {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg(ENVELOPE_FIELD)
                .arg(envelope);
        }
        let mut redis = self.redis.clone();
        let ids: Vec<String> = pipe.query_async(&mut redis).await?;
        metrics::counter!("events_published_total").increment(ids.len() as u64);
        Ok(ids)
    }
}

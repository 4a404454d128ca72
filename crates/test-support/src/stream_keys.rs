//! Redis keys of a test's own: a unique prefix for its event streams, and every key
//! under it deleted when the test ends.

/// A unique key prefix (`test:<uuid>:`) whose keys are deleted on drop.
#[derive(Debug)]
pub struct StreamKeys {
    prefix: String,
}

impl StreamKeys {
    pub fn new() -> Self {
        Self {
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The prefix to configure (`EVENT_STREAM_PREFIX`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for StreamKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StreamKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(crate::redis_server::redis_url()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

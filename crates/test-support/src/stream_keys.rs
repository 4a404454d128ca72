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
        crate::redis_server::delete_keys_matching(&format!("*{}*", self.prefix));
    }
}

//! A domain's event stream and its partitions.
//!
//! A stream may be split into partitions (`EVENT_PARTITIONS`) so that, on a Redis
//! Cluster, it spreads over several masters. With one partition (the default) the
//! partition is the stream itself, `events:order`; with P of them, partition `i` is
//! `{events:order:i}`, each its own hash tag, so each lands on a slot of its own, and
//! keys that belong to it (its dead letters) share that slot.
//!
//! An event goes to the partition of its ordering key ([`Envelope::key`], the order id
//! in the saga), so one entity's events stay in one partition, in order. Consumers read
//! every partition: groups, pending entries, reclaiming, dead letters and lag are per
//! partition, and no command names two partitions at once.

use crate::envelope::Envelope;

/// A stream's name (prefix included) and how many partitions it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    name: String,
    partitions: u16,
}

impl Stream {
    /// Stream `name` in `partitions` partitions (at least one).
    pub fn new(name: impl Into<String>, partitions: u16) -> Self {
        Self {
            name: name.into(),
            partitions: partitions.max(1),
        }
    }

    /// Stream `name` as one partition, the stream itself.
    pub fn single(name: impl Into<String>) -> Self {
        Self::new(name, 1)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every partition's key, in order.
    pub fn partitions(&self) -> Vec<String> {
        (0..self.partitions).map(|i| self.partition(i)).collect()
    }

    /// Partition `index`'s key.
    fn partition(&self, index: u16) -> String {
        if self.partitions == 1 {
            self.name.clone()
        } else {
            format!("{{{}:{index}}}", self.name)
        }
    }

    /// The partition `envelope` goes to: its key's, or, with no key, its id's.
    pub fn partition_for(&self, envelope: &Envelope) -> String {
        if self.partitions == 1 {
            return self.name.clone();
        }
        let hash = match &envelope.key {
            Some(key) => fnv1a(key.as_bytes()),
            None => fnv1a(envelope.id.as_bytes()),
        };
        // The remainder is below `partitions`, a u16.
        self.partition((hash % u64::from(self.partitions)) as u16)
    }
}

/// FNV-1a, 64 bits: a hash every producer computes alike, in any language or version,
/// so one key's events go to one partition whoever publishes them.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: Option<&str>) -> Envelope {
        let event = Envelope::new("x", "tests", &serde_json::json!({})).unwrap();
        match key {
            Some(key) => event.keyed(key),
            None => event,
        }
    }

    #[test]
    fn one_partition_is_the_stream_itself() {
        let stream = Stream::single("events:order");
        assert_eq!(stream.partitions(), ["events:order"]);
        assert_eq!(stream.partition_for(&event(Some("a"))), "events:order");
    }

    #[test]
    fn partitions_carry_hash_tags_of_their_own_and_one_key_keeps_to_one() {
        let stream = Stream::new("events:order", 3);
        assert_eq!(
            stream.partitions(),
            ["{events:order:0}", "{events:order:1}", "{events:order:2}"]
        );
        for key in ["a", "b", "order-17"] {
            let first = stream.partition_for(&event(Some(key)));
            for _ in 0..5 {
                assert_eq!(stream.partition_for(&event(Some(key))), first);
            }
        }
        // Many keys use every partition.
        let used: std::collections::HashSet<String> = (0..100)
            .map(|n| stream.partition_for(&event(Some(&n.to_string()))))
            .collect();
        assert_eq!(used.len(), 3);
        let unkeyed: std::collections::HashSet<String> = (0..100)
            .map(|_| stream.partition_for(&event(None)))
            .collect();
        assert_eq!(unkeyed.len(), 3, "events without a key spread by their ids");
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // The published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}

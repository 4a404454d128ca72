//! A service's settings in a test, parsed the way its binary parses them.

use crate::redis_server::redis_url;
use crate::stream_keys::StreamKeys;

/// The settings of `binary` as a test runs it: port 0, the database at `database_url`,
/// the test Redis and event streams under `keys`, then `more` (its own key, and
/// whatever else only it takes). `C` parses them exactly as the binary parses its
/// command line, so defaults and validation are the binary's; a test then changes the
/// typed fields it is about.
pub fn service_settings<C: clap::Parser>(
    binary: &str,
    database_url: &str,
    keys: &StreamKeys,
    more: &[&str],
) -> C {
    let redis_url = redis_url();
    let shared = [
        binary,
        "--listen-addr",
        "127.0.0.1:0",
        "--database-url",
        database_url,
        "--redis-url",
        &redis_url,
        "--event-stream-prefix",
        keys.prefix(),
    ];
    C::try_parse_from(shared.into_iter().chain(more.iter().copied()))
        .unwrap_or_else(|error| panic!("invalid test settings for {binary}: {error}"))
}

#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

use super::*;
use test_support::StreamKeys;

fn limiter(keys: &StreamKeys, limit: u32) -> RateLimiter {
    RateLimiter::new(test_support::redis_client(), keys.prefix(), limit)
}

/// Runs `checks` concurrently on `limiter` against `key`.
async fn race(limiter: &Arc<RateLimiter>, key: &str, checks: usize) -> Vec<Decision> {
    let tasks: Vec<_> = (0..checks)
        .map(|_| {
            let (limiter, key) = (limiter.clone(), key.to_owned());
            tokio::spawn(async move { limiter.check(&key).await })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.push(task.await.unwrap());
    }
    decisions
}

#[tokio::test]
async fn racing_checks_on_one_worker_share_round_trips_and_each_gets_its_own_count() {
    let keys = StreamKeys::new();
    let limiter = Arc::new(limiter(&keys, 50));

    let decisions = race(&limiter, "user:a", 200).await;

    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..50).collect::<Vec<u32>>(),
        "exactly the limit passes"
    );
    assert!(
        decisions
            .iter()
            .filter(|d| !d.allowed)
            .all(|d| d.remaining == 0 && d.resets_in > Duration::from_secs(59)),
        "the refused see no room and a slot freeing in about a minute"
    );
    let trips = limiter.round_trips();
    assert!(
        trips < 20,
        "200 racing checks were decided in {trips} script calls, not one each"
    );
    assert_eq!(
        limiter.shared.local.lock().unwrap().len(),
        0,
        "Redis decided every one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_on_two_keys_admit_exactly_the_limit_of_each() {
    let keys = StreamKeys::new();
    let first = limiter(&keys, 100);
    let workers = [Arc::new(first.for_worker()), Arc::new(first.for_worker())];

    let races = workers.iter().flat_map(|worker| {
        ["user:a", "user:b"].map(|key| {
            let worker = worker.clone();
            tokio::spawn(async move { (key, race(&worker, key, 90).await) })
        })
    });
    let mut admitted: HashMap<&str, usize> = HashMap::new();
    for raced in races.collect::<Vec<_>>() {
        let (key, decisions) = raced.await.unwrap();
        *admitted.entry(key).or_default() += decisions.iter().filter(|d| d.allowed).count();
    }
    assert_eq!(admitted["user:a"], 100);
    assert_eq!(admitted["user:b"], 100);
}

#[tokio::test]
async fn one_batch_decides_each_keys_admissions_in_arrival_order() {
    let keys = StreamKeys::new();
    let limiter = limiter(&keys, 2);
    let batch = |names: &[&str]| -> Vec<Pending> {
        names
            .iter()
            .map(|name| Pending {
                key: format!("{}{name}", keys.prefix()),
                reply: oneshot::channel().0,
            })
            .collect()
    };
    let summary = |decisions: Vec<Decision>| -> Vec<(bool, u32)> {
        decisions.iter().map(|d| (d.allowed, d.remaining)).collect()
    };
    let mut redis = None;

    let first = limiter
        .shared
        .decide(&mut redis, &batch(&["a", "b", "a", "a", "b"]))
        .await
        .unwrap();
    assert!(first.iter().all(|d| d.resets_in > Duration::from_secs(59)));
    assert_eq!(
        summary(first),
        [(true, 1), (true, 1), (true, 0), (false, 0), (true, 0)]
    );

    let second = limiter
        .shared
        .decide(&mut redis, &batch(&["c", "a", "c", "c"]))
        .await
        .unwrap();
    assert_eq!(
        summary(second),
        [(true, 1), (false, 0), (true, 0), (false, 0)],
        "a's window is still full; c starts its own"
    );
}

/// How many times Redis has run `command` (scripts' calls included).
async fn calls(redis: &mut service_kit::redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn times_that_left_the_window_go_in_a_few_lookups_not_one_by_one() {
    let keys = StreamKeys::new();
    let limiter = limiter(&keys, 10);
    let key = format!("{}user:many", keys.prefix());
    let mut redis = test_support::redis().await;
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let now = seconds * 1000 + micros / 1000;
    // 100,000 admissions from over a minute ago (a busy user's last burst), then
    // three from a second ago.
    let expired = now - WINDOW.as_millis() as i64 - 1_000;
    for (time, count) in std::iter::repeat_n((expired, 10_000), 10).chain([(now - 1_000, 3)]) {
        redis::cmd("RPUSH")
            .arg(&key)
            .arg(vec![time.to_string(); count])
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
    }
    let before = calls(&mut redis, "lindex").await + calls(&mut redis, "lpop").await;

    let decision = limiter.check("user:many").await;

    assert!(decision.allowed);
    assert_eq!(
        decision.remaining, 6,
        "the recent three count, the old ones not"
    );
    let length: usize = redis::cmd("LLEN")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(length, 4, "the old ones are gone");
    // One script call pruning them one at a time held Redis (every client of it)
    // for as long as 200,000 commands took; other tests' calls add a few.
    let lookups = calls(&mut redis, "lindex").await + calls(&mut redis, "lpop").await - before;
    assert!(lookups < 1_000, "{lookups} lookups and pops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_refused_here_until_a_slot_of_its_frees() {
    let keys = StreamKeys::new();
    let limiter = Arc::new(limiter(&keys, 3));
    let mut redis = test_support::redis().await;
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let now = seconds * 1000 + micros / 1000;
    // The key's limit used up, its oldest admission leaving the window in 400 ms.
    let oldest = now - WINDOW.as_millis() as i64 + 400;
    redis::cmd("RPUSH")
        .arg(format!("{}user:full", keys.prefix()))
        .arg(&[oldest, now - 1_000, now - 1_000].map(|t| t.to_string()))
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    let first = limiter.check("user:full").await;
    assert!(!first.allowed);
    assert!(first.resets_in <= Duration::from_millis(400), "{first:?}");
    let trips = limiter.round_trips();
    let racing = race(&limiter, "user:full", 20).await;
    assert!(racing.iter().all(|d| !d.allowed && d.remaining == 0));
    assert!(racing.iter().all(|d| d.resets_in <= first.resets_in));
    assert_eq!(
        limiter.round_trips(),
        trips,
        "refused from the worker's memory"
    );
    assert!(
        limiter.check("user:other").await.allowed,
        "other keys as ever"
    );
    assert_eq!(limiter.round_trips(), trips + 1);

    tokio::time::sleep(first.resets_in + Duration::from_millis(100)).await;
    let later = limiter.check("user:full").await;
    assert!(later.allowed, "the oldest left the window: {later:?}");
    assert_eq!(limiter.round_trips(), trips + 2, "asked Redis again");
}

#[test]
fn the_headers_say_the_policy_what_is_left_and_when_a_slot_frees() {
    let decision = Decision {
        allowed: true,
        limit: 100,
        remaining: 7,
        resets_in: Duration::from_millis(41_200),
    };
    let headers: Vec<(String, String)> = decision
        .headers(&FixedHeaders::new(100, WINDOW))
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("ratelimit-policy", "\"default\";q=100;w=60"),
        ("ratelimit", "\"default\";r=7;t=42"),
        ("x-ratelimit-limit", "100"),
        ("x-ratelimit-remaining", "7"),
        ("x-ratelimit-reset", "42"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    assert_eq!(headers, expected);
}

#[tokio::test]
async fn a_check_that_stopped_waiting_is_not_counted() {
    let keys = StreamKeys::new();
    let limiter = limiter(&keys, 5);
    // Queued, then dropped before the batch task ran: the request went away.
    let (reply, answer) = oneshot::channel();
    drop(answer);
    limiter
        .queue()
        .send(Pending {
            key: format!("{}user:gone", keys.prefix()),
            reply,
        })
        .unwrap();

    let decision = limiter.check("user:gone").await;
    assert!(decision.allowed);
    assert_eq!(
        decision.remaining, 4,
        "only the request still waiting counts"
    );
}

#[tokio::test]
async fn without_redis_the_local_window_limits() {
    // Nothing listens on port 1: every check falls back to this replica's memory.
    let limiter = RateLimiter::new(
        service_kit::redis::Client::open("redis://127.0.0.1:1").unwrap(),
        "unused:",
        3,
    );
    let mut allowed = 0;
    for _ in 0..5 {
        allowed += usize::from(limiter.check("ip:10.0.0.1").await.allowed);
    }
    assert_eq!(allowed, 3);
}

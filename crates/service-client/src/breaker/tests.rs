use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

fn config() -> BreakerConfig {
    BreakerConfig {
        window: 10,
        minimum_calls: 4,
        failure_rate: 0.5,
        slow_call_rate: 1.0,
        slow_call: Duration::from_secs(1),
        consecutive_failures: 3,
        open_wait: Duration::from_secs(5),
        open_wait_max: Duration::from_secs(30),
        probes: 2,
    }
}

fn call(breaker: &CircuitBreaker, outcome: Outcome) -> Result<(), Rejected> {
    let permit = breaker.try_acquire()?;
    breaker.record(permit, outcome, Duration::from_millis(1));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_it_and_it_then_refuses_at_once() {
    let breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        call(&breaker, Outcome::Failure).unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(call(&breaker, Outcome::Success), Err(Rejected));
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_opens_it_only_once_the_minimum_calls_are_seen() {
    let mut config = config();
    config.consecutive_failures = 100;
    let breaker = CircuitBreaker::new(config);
    call(&breaker, Outcome::Failure).unwrap();
    call(&breaker, Outcome::Success).unwrap();
    call(&breaker, Outcome::Failure).unwrap();
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "3 calls are under the minimum"
    );
    call(&breaker, Outcome::Success).unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "2 of 4 failed: 50 %");
}

#[tokio::test(start_paused = true)]
async fn slow_successes_open_it_by_the_slow_call_rate() {
    let mut config = config();
    config.slow_call_rate = 0.75;
    let breaker = CircuitBreaker::new(config);
    for _ in 0..4 {
        let permit = breaker.try_acquire().unwrap();
        breaker.record(permit, Outcome::Success, Duration::from_secs(2));
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn after_the_wait_probes_that_succeed_close_it() {
    let breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        call(&breaker, Outcome::Failure).unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected,
        "only two probes"
    );
    breaker.record(first, Outcome::Success, Duration::ZERO);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.record(second, Outcome::Success, Duration::ZERO);
    assert_eq!(breaker.state(), BreakerState::Closed);
    call(&breaker, Outcome::Success).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_it_with_a_doubled_capped_wait() {
    let breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        call(&breaker, Outcome::Failure).unwrap();
    }
    for expected_wait in [10, 20, 30, 30] {
        tokio::time::advance(Duration::from_secs(30)).await;
        call(&breaker, Outcome::Failure).unwrap();
        tokio::time::advance(Duration::from_secs(expected_wait) - Duration::from_millis(1)).await;
        assert_eq!(breaker.state(), BreakerState::Open, "wait {expected_wait}s");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            breaker.state(),
            BreakerState::HalfOpen,
            "wait {expected_wait}s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_slot_back() {
    let breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        call(&breaker, Outcome::Failure).unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    drop(second);
    let third = breaker
        .try_acquire()
        .expect("the dropped probe's slot is free again");
    breaker.record(first, Outcome::Success, Duration::ZERO);
    breaker.record(third, Outcome::Success, Duration::ZERO);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_started_before_the_breaker_opened_does_not_count_after() {
    let breaker = CircuitBreaker::new(config());
    let early = breaker.try_acquire().unwrap();
    for _ in 0..3 {
        call(&breaker, Outcome::Failure).unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let probe = breaker.try_acquire().unwrap();
    breaker.record(early, Outcome::Failure, Duration::ZERO);
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "a stale failure reopened it"
    );
    breaker.record(probe, Outcome::Success, Duration::ZERO);
}

#[test]
fn exactly_the_configured_probes_pass_when_hundreds_of_threads_race() {
    let mut config = config();
    config.open_wait = Duration::ZERO;
    config.probes = 3;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let breaker = CircuitBreaker::new(config);
        for _ in 0..3 {
            call(&breaker, Outcome::Failure).unwrap();
        }
        let granted = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (breaker, granted, barrier) =
                    (breaker.clone(), granted.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    if let Ok(permit) = breaker.try_acquire() {
                        granted.fetch_add(1, Ordering::SeqCst);
                        std::mem::forget(permit); // held for the rest of the test
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(granted.load(Ordering::SeqCst), 3);
    });
}

//! The throwaway Redis Cluster the cluster tests run on: it forms, and a master's
//! replica takes over when the master dies.

use std::time::{Duration, Instant};

use test_support::TestRedisCluster;

/// The nodes `CLUSTER NODES` lists with `flag` (`master`, `slave`) and not failed.
fn alive(nodes: &str, flag: &str) -> usize {
    nodes
        .lines()
        .filter(|line| {
            let flags = line.split(' ').nth(2).unwrap_or_default();
            flags.split(',').any(|f| f == flag) && !flags.contains("fail")
        })
        .count()
}

#[tokio::test]
async fn three_masters_with_a_replica_each_form_a_cluster_and_a_dead_master_is_replaced() {
    let mut cluster = TestRedisCluster::start(3, 1).await;
    assert_eq!(cluster.urls().len(), 6);
    let (info, nodes) = cluster.info(0).await;
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    assert_eq!(alive(&nodes, "master"), 3, "{nodes}");
    assert_eq!(alive(&nodes, "slave"), 3, "{nodes}");

    // Kill the master that node 0 is, or node 0's master if it is a replica.
    let myself = nodes.lines().find(|l| l.contains("myself")).unwrap();
    let victim_line = if myself.contains("master") {
        myself
    } else {
        let master_id = myself.split(' ').nth(3).unwrap();
        nodes.lines().find(|l| l.starts_with(master_id)).unwrap()
    };
    let victim_id = victim_line.split(' ').next().unwrap().to_owned();
    let victim_port = victim_line.split(' ').nth(1).unwrap().to_owned();
    let victim = cluster
        .urls()
        .iter()
        .position(|url| victim_port.starts_with(url.trim_start_matches("redis://")))
        .unwrap();
    let survivor = (victim + 1) % 6;
    cluster.kill(victim).await;
    let killed = Instant::now();

    let mut promoted = false;
    while killed.elapsed() < Duration::from_secs(30) {
        let (info, nodes) = cluster.info(survivor).await;
        let victim_failed = nodes
            .lines()
            .find(|l| l.starts_with(&victim_id))
            .is_some_and(|l| l.split(' ').nth(2).unwrap_or_default().contains("fail"));
        // The dead master is marked failed, and three masters serve every slot again:
        // its replica took its place.
        if victim_failed && info.contains("cluster_state:ok") && alive(&nodes, "master") == 3 {
            promoted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (info, nodes) = cluster.info(survivor).await;
    assert!(
        promoted,
        "no replica took over within 30 s: {info}\n{nodes}"
    );
    eprintln!("failover took {:?}", killed.elapsed());
}

//! Closing epochs: payouts per address, proofs that verify, per-node
//! credits, early closes, and epochs closed once; on both backends.

use super::*;
use crate::test_db::{on_both_backends, TestDb};
use crate::{JobOutcome, UsageRecord};
use spareband_protocol::{JobId, NodeId};

on_both_backends!(
    an_epoch_pays_delivered_bytes_per_address_and_proofs_verify,
    due_epochs_close_on_boundaries_and_never_twice,
    an_early_close_keeps_the_epoch_number_and_the_rest_goes_to_the_next,
    three_relays_racing_to_close_an_epoch_close_it_once,
);

/// Checked once with the lock removed (a plain `begin`): on PostgreSQL two
/// of the three failed on the epoch's primary key, on SQLite on the busy
/// write lock; either way not every relay came back `Ok`.
async fn three_relays_racing_to_close_an_epoch_close_it_once(t: &TestDb) {
    let db = t.db.clone();
    set_payout(
        &db,
        &NodeId([1; 16]).to_string(),
        &Address::parse(A).unwrap(),
        "sig",
    )
    .await
    .unwrap();
    record(&db, 1, 1, 1 << 30, JobOutcome::Ok, 7_000).await;
    // Three relays: three pools on one database.
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(Db::connect(&t.url).await.unwrap());
    }
    let len = Duration::from_secs(5);
    let close = |d: Db| async move { close_epoch(&d, 10_000, len, 1000).await };
    let (a, b, c) = tokio::join!(
        close(relays[0].clone()),
        close(relays[1].clone()),
        close(relays[2].clone())
    );
    let results = [a.unwrap(), b.unwrap(), c.unwrap()];
    let closed: Vec<&ClosedEpoch> = results.iter().flatten().collect();
    assert_eq!(closed.len(), 1, "closed once, not {}", closed.len());
    assert_eq!(closed[0].epoch, 1);
    assert_eq!(closed[0].total_bytes, 1 << 30);
    assert_eq!(last_end(&db).await.unwrap(), Some(10_000));
}

const A: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const B: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

async fn record(db: &Db, job: u8, node: u8, bytes: u64, outcome: JobOutcome, at: i64) {
    crate::usage::write_for_tests(
        db,
        &[UsageRecord {
            job: JobId([job; 16]),
            node: NodeId([node; 16]),
            customer: 1,
            bytes_up: bytes / 4,
            bytes_down: bytes - bytes / 4,
            outcome,
            started_at: at - 10,
            finished_at: at,
            earning: true,
        }],
    )
    .await;
}

async fn an_epoch_pays_delivered_bytes_per_address_and_proofs_verify(t: &TestDb) {
    let db = t.db.clone();
    // Nodes 1 and 2 pay to A, node 3 to B, node 4 has no address.
    for (node, addr) in [(1u8, A), (2, A), (3, B)] {
        set_payout(
            &db,
            &NodeId([node; 16]).to_string(),
            &Address::parse(addr).unwrap(),
            "sig",
        )
        .await
        .unwrap();
    }
    let gib = 1u64 << 30;
    // Epochs of 5 s: epoch 1 is [5 s, 10 s).
    let len = Duration::from_millis(5_000);
    record(&db, 1, 1, gib / 2, JobOutcome::Ok, 6_000).await;
    record(&db, 2, 2, gib / 2, JobOutcome::Ok, 7_000).await;
    record(&db, 3, 3, gib / 4, JobOutcome::Ok, 8_000).await;
    record(&db, 4, 3, gib, JobOutcome::NodeFailed, 8_500).await; // earns nothing
                                                                 // No address; and older than epoch 1, which as the first one closed
                                                                 // takes it and starts there.
    record(&db, 5, 4, 777, JobOutcome::Ok, 1_000).await;
    record(&db, 6, 1, gib, JobOutcome::Ok, 12_000).await; // next epoch
    let token = 10u128.pow(18);
    let e = close_epoch(&db, 10_000, len, token).await.unwrap().unwrap();
    assert_eq!((e.epoch, e.start_ms, e.end_ms), (1, 1_000, 10_000));
    assert_eq!(e.unassigned_bytes, 777);
    let a = Address::parse(A).unwrap();
    let b = Address::parse(B).unwrap();
    let mut expect = vec![(a, gib, token), (b, gib / 4, token / 4)];
    expect.sort_by_key(|p| p.0.to_checksum());
    assert_eq!(e.payouts, expect);
    assert_eq!(e.total_amount, token + token / 4);
    // The stored proofs verify against the stored root.
    let rows: Vec<(String, String, String)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT address, amount, proof FROM epoch_payouts WHERE epoch = 1"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let root: [u8; 32] = hex::decode(e.root.as_ref().unwrap().trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    for (addr, amount, proof) in rows {
        let addr = Address::parse(&addr).unwrap();
        let amount: u128 = amount.parse().unwrap();
        let proof: Vec<String> = serde_json::from_str(&proof).unwrap();
        let proof: Vec<[u8; 32]> = proof
            .iter()
            .map(|p| {
                hex::decode(p.trim_start_matches("0x"))
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect();
        assert!(merkle::verify(&root, &leaf_hash(&addr, amount), &proof));
    }
    // Closing the same end again does nothing; the next epoch sees only its records.
    assert!(close_epoch(&db, 10_000, len, token)
        .await
        .unwrap()
        .is_none());
    let e2 = close_epoch(&db, 15_000, len, token).await.unwrap().unwrap();
    assert_eq!((e2.epoch, e2.start_ms, e2.end_ms), (2, 10_000, 15_000));
    assert_eq!(e2.payouts, vec![(a, gib, token)]);
    // Per node: what each epoch paid it, and its running total.
    let node = |n: u8| NodeId([n; 16]).to_string();
    let paid: Vec<(i64, String, i64, String)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT epoch, node_id, bytes, amount FROM epoch_nodes ORDER BY epoch, node_id",
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let half = (token / 2).to_string();
    assert_eq!(
        paid,
        vec![
            (1, node(1), (gib / 2) as i64, half.clone()),
            (1, node(2), (gib / 2) as i64, half),
            (1, node(3), (gib / 4) as i64, (token / 4).to_string()),
            (2, node(1), gib as i64, token.to_string()),
        ]
    );
    let earned = |n: u8| {
        let db = db.clone();
        async move {
            let s: String = on_pool!(db, |p| sqlx::query_scalar(
                "SELECT earned FROM node_totals WHERE node_id = $1"
            )
            .bind(node(n))
            .fetch_one(p)
            .await)
            .unwrap();
            assert_eq!(s.len(), crate::aggregates::EARNED_DIGITS);
            s.parse::<u128>().unwrap()
        }
    };
    assert_eq!(earned(1).await, token + token / 2);
    assert_eq!(earned(3).await, token / 4);
    assert_eq!(earned(4).await, 0, "no payout address, nothing earned");
    // What a node is told it can claim: its address's amount in the last epoch.
    let day = Duration::from_secs(86_400);
    let t = terms_for(&db, &node(2), day, token).await.unwrap();
    assert_eq!((t.last_closed_epoch, t.claimable), (2, token));
    assert_eq!((t.epoch_ms, t.reward_per_gib), (86_400_000, token));
    let t = terms_for(&db, &node(3), day, token).await.unwrap();
    assert_eq!((t.last_closed_epoch, t.claimable), (2, 0));
    let t = terms_for(&db, &node(4), day, token).await.unwrap();
    assert_eq!((t.last_closed_epoch, t.claimable), (2, 0));
}

async fn due_epochs_close_on_boundaries_and_never_twice(t: &TestDb) {
    let db = t.db.clone();
    let len = Duration::from_secs(3600);
    let first = close_due(&db, len, 1).await.unwrap();
    assert_eq!(
        first.len(),
        1,
        "the first epoch takes all history before the last boundary"
    );
    let end = first[0].end_ms;
    assert_eq!(end % 3_600_000, 0);
    // Its number is its aligned index, and with no record its period is
    // exactly one epoch long.
    assert_eq!(first[0].epoch, end / 3_600_000 - 1);
    assert_eq!(first[0].start_ms, end - 3_600_000);
    assert!(close_due(&db, len, 1).await.unwrap().is_empty());
    assert_eq!(last_end(&db).await.unwrap(), Some(end));
}

async fn an_early_close_keeps_the_epoch_number_and_the_rest_goes_to_the_next(t: &TestDb) {
    let db = t.db.clone();
    let len = Duration::from_millis(5_000);
    record(&db, 1, 1, 1000, JobOutcome::Ok, 11_000).await;
    record(&db, 2, 1, 1000, JobOutcome::Ok, 13_000).await;
    // Epoch 2 is [10 s, 15 s); an operator closes it at 12 s.
    let e = close_epoch(&db, 12_000, len, 1).await.unwrap().unwrap();
    assert_eq!((e.epoch, e.start_ms, e.end_ms), (2, 10_000, 12_000));
    assert_eq!(e.unassigned_bytes, 1000);
    // Closing again within epoch 2 closes nothing: the number is taken.
    assert!(close_epoch(&db, 14_000, len, 1).await.unwrap().is_none());
    // The next due close takes the rest of epoch 2's time into epoch 3.
    assert_eq!(number_of(20_000, len), 3);
    let e = close_epoch(&db, 20_000, len, 1).await.unwrap().unwrap();
    assert_eq!((e.epoch, e.start_ms, e.end_ms), (3, 12_000, 20_000));
    assert_eq!(e.unassigned_bytes, 1000);
}

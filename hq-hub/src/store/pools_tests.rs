//! The pool against a real SQLite store, through the hub's own intake (`apply_up_batch`)
//! and the sites' down logs: first leases, a request answered once, returns applied once,
//! recovery, forced reclaim and a number dialed after it was forced back.

use sync_link::HubStore;
use sync_protocol::{AttemptKind, CallAttempt, DownEvent, LeaseGrant, LeaseReturn, Outcome, UpEntry, UpEvent};

use super::*;
use crate::store::{
    Account, DispatchError, DispatchKind, DispatchRequest, FieldSpec, FieldValues, GoodRow, ImportReport, NewProject, PhoneMode, ProjectSettings, Scope,
};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    sites: [i64; 2],
    batches: [i64; 2],
    pool: i64,
}

/// Forty numbers dispatched as one shared batch to two sites.
fn world() -> World {
    world_with(PoolSettings::default()).unwrap()
}

/// [`world`] with the dispatch form's lease settings.
fn world_with(lease: PoolSettings) -> Result<World, DispatchError> {
    world_of(|_| DispatchKind::Shared, lease)
}

/// The forty numbers dispatched as `kind` of the two sites (the pool id is 0 for a batch
/// with no pool).
fn world_of(kind: impl FnOnce([i64; 2]) -> DispatchKind, lease: PoolSettings) -> Result<World, DispatchError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.init_admin("admin").unwrap();
    let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
    let sites = [store.create_site("甲职场").unwrap(), store.create_site("乙职场").unwrap()];
    let category = store.create_category("信用卡").unwrap();
    let project = store
        .create_project(&NewProject {
            category_id: category,
            name: "分期推荐".into(),
            template_id: None,
            script: "您好".into(),
            hide_middle_digits: false,
            customer_fields: vec![FieldSpec::text("name", "姓名")],
            record_fields: vec![],
            settings: ProjectSettings::default(),
            phone_mode: PhoneMode::Number,
        })
        .unwrap();
    let rows: Vec<GoodRow> = (0..40)
        .map(|n| GoodRow { row_number: n + 2, phone: format!("1390000{n:04}"), fields: FieldValues::from(vec![format!("客户{n}")]) })
        .collect();
    let file = store.save_import(project, "名单.xlsx", b"xlsx", "admin", &rows, &ImportReport::default()).unwrap();
    let request = DispatchRequest {
        file_id: file,
        name: "共享".into(),
        priority: 5,
        site_ids: sites.to_vec(),
        creator: "admin".into(),
        kind: kind(sites),
        update_existing: false,
        description: String::new(),
    };
    let outcome = store.dispatch_with_lease(&request, &admin, lease)?;
    let batches = [outcome.batch_ids[0], outcome.batch_ids.get(1).copied().unwrap_or(0)];
    let pool = store.batch_pool(batches[0]).unwrap().unwrap_or(0);
    Ok(World { _dir: dir, store, sites, batches, pool })
}

fn grants(store: &Store, site: i64) -> Vec<LeaseGrant> {
    store
        .down_log(site, 0, 1000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            DownEvent::LeaseGrant(grant) => Some(grant),
            _ => None,
        })
        .collect()
}

fn up(store: &Store, site: i64, seq: u64, event: UpEvent) {
    store.apply_up_batch(site as u64, &[UpEntry { epoch: 1, seq, event }]).unwrap();
}

fn attempt(attempt_id: u64, batch_id: i64, row_id: u64) -> UpEvent {
    UpEvent::CallAttempt(CallAttempt {
        attempt_id,
        batch_id: batch_id as u64,
        row_id,
        started_at: 1,
        answered_at: None,
        ended_at: 2,
        outcome: Outcome::Busy,
        hangup_side: None,
        agent: None,
        talk_seconds: 0,
        recording_sha256: None,
        kind: AttemptKind::Predictive,
    })
}

#[test]
fn first_leases_cover_half_the_pool_and_a_request_is_answered_once() {
    let w = world();
    let (a, b) = (grants(&w.store, w.sites[0]), grants(&w.store, w.sites[1]));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!((a[0].rows.len(), b[0].rows.len()), (10, 10));
    let phones = |g: &LeaseGrant| g.rows.iter().map(|r| r.phone.clone()).collect::<Vec<_>>();
    assert!(phones(&a[0]).iter().all(|p| !phones(&b[0]).contains(p)), "no number in two leases");
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!((view.total, view.pooled, view.leased, view.dialed), (40, 20, 20, 0));

    // Site A asks, twice under two entries with the same request id: one grant.
    let ask = |seq, request_id| {
        up(&w.store, w.sites[0], seq, UpEvent::LeaseRequest(LeaseRequest { batch_id: w.batches[0] as u64, request_id, held: 3, dials_last_hour: 6, asked_at: 1 }))
    };
    ask(1, 1);
    ask(1, 1);
    ask(2, 1);
    let a = grants(&w.store, w.sites[0]);
    assert_eq!(a.len(), 2, "one answer for request 1");
    assert_eq!((a[1].request_id, a[1].rows.len()), (1, 20), "the smallest block, as much as is left");
    // The pool is dry: the next request is answered empty.
    ask(3, 2);
    let a = grants(&w.store, w.sites[0]);
    assert_eq!((a.len(), a[2].lease_id, a[2].rows.len()), (3, 0, 0));
    // Site B may not ask on A's batch.
    up(&w.store, w.sites[1], 1, UpEvent::LeaseRequest(LeaseRequest { batch_id: w.batches[0] as u64, request_id: 9, held: 0, dials_last_hour: 0, asked_at: 1 }));
    assert_eq!(grants(&w.store, w.sites[0]).len(), 3);
    assert_eq!(grants(&w.store, w.sites[1]).len(), 1);
}

#[test]
fn a_return_is_applied_once_and_recovery_puts_numbers_back_only_with_the_sites_word() {
    let w = world();
    let lease = grants(&w.store, w.sites[0]).remove(0);
    let rows: Vec<u64> = lease.rows.iter().map(|r| r.row_id).collect();
    up(&w.store, w.sites[0], 1, attempt(1, w.batches[0], rows[0]));
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!((view.dialed, view.sites[0].dialed, view.sites[0].leased), (1, 1, 9), "an attempt marks its number dialed at once");

    w.store.recover_batch(w.batches[0], None).unwrap();
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!((view.pooled, view.sites[0].leased, view.sites[0].leases[0].state.as_str()), (20, 9, "recalling"), "nothing back before the site says so");
    let recall = w.store.down_log(w.sites[0], 0, 1000).unwrap().into_iter().rev().find_map(|e| match e.event {
        DownEvent::LeaseRecall(recall) => Some(recall),
        _ => None,
    });
    assert_eq!(recall.map(|r| r.lease_id), Some(None), "the whole batch is recalled at the site");

    let ret = LeaseReturn {
        batch_id: w.batches[0] as u64,
        lease_id: lease.lease_id,
        recall_id: Some(1),
        dialed: rows[..2].to_vec(),
        returned: rows[2..].to_vec(),
        returned_at: 5,
    };
    up(&w.store, w.sites[0], 2, UpEvent::LeaseReturn(ret.clone()));
    up(&w.store, w.sites[0], 3, UpEvent::LeaseReturn(ret));
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!((view.pooled, view.dialed, view.sites[0].returned, view.sites[0].dialed, view.sites[0].leased), (28, 2, 8, 2, 0));
    assert!(view.sites[0].recalled && view.sites[0].leases.is_empty());
    // A recovered batch is leased no more: its request is answered empty.
    up(&w.store, w.sites[0], 4, UpEvent::LeaseRequest(LeaseRequest { batch_id: w.batches[0] as u64, request_id: 1, held: 0, dials_last_hour: 9, asked_at: 1 }));
    assert!(grants(&w.store, w.sites[0]).last().unwrap().rows.is_empty());
}

#[test]
fn a_forced_reclaim_counts_a_number_dialed_twice_when_the_site_dialed_it_offline() {
    let w = world();
    let lease = grants(&w.store, w.sites[1]).remove(0);
    assert_eq!(w.store.force_reclaim(w.batches[1]).unwrap(), 10);
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!((view.pooled, view.sites[1].leased), (30, 0));
    // Site A asks and is leased everything, B's numbers included.
    up(&w.store, w.sites[0], 1, UpEvent::LeaseRequest(LeaseRequest { batch_id: w.batches[0] as u64, request_id: 1, held: 0, dials_last_hour: 0, asked_at: 1 }));
    let a = grants(&w.store, w.sites[0]);
    assert_eq!(a.last().unwrap().rows.len(), 30);
    let taken: Vec<String> = a.last().unwrap().rows.iter().map(|r| r.phone.clone()).collect();
    assert!(lease.rows.iter().all(|r| taken.contains(&r.phone)));
    // B comes back: it had dialed two of them offline.
    let rows: Vec<u64> = lease.rows.iter().map(|r| r.row_id).collect();
    let ret = LeaseReturn { batch_id: w.batches[1] as u64, lease_id: lease.lease_id, recall_id: Some(1), dialed: rows[..2].to_vec(), returned: rows[2..].to_vec(), returned_at: 5 };
    up(&w.store, w.sites[1], 1, UpEvent::LeaseReturn(ret));
    let view = w.store.pool_view(w.pool).unwrap().unwrap();
    assert_eq!(view.sites[1].dialed_twice, 2);
    assert_eq!(view.sites[0].leased, 40, "A keeps both its leases");
}

#[test]
fn the_sites_batches_and_the_pool_count_each_number_once() {
    let w = world();
    let numbers = |w: &World| -> i64 { w.batches.iter().map(|b| w.store.batch(*b).unwrap().unwrap().numbers).sum() };
    assert_eq!(numbers(&w), 20, "the first leases");
    let lease = grants(&w.store, w.sites[0]).remove(0);
    let rows: Vec<u64> = lease.rows.iter().map(|r| r.row_id).collect();
    let ret = LeaseReturn { batch_id: w.batches[0] as u64, lease_id: lease.lease_id, recall_id: None, dialed: rows[..4].to_vec(), returned: rows[4..].to_vec(), returned_at: 5 };
    up(&w.store, w.sites[0], 1, UpEvent::LeaseReturn(ret));
    assert_eq!(numbers(&w), 14, "six went back to the pool");
    w.store.force_reclaim(w.batches[1]).unwrap();
    assert_eq!(numbers(&w), 4);
    let pooled = w.store.pool_view(w.pool).unwrap().unwrap().pooled;
    assert_eq!(pooled + numbers(&w), 40);
}

#[test]
fn the_dispatch_sets_the_pools_lease_settings_and_a_setting_out_of_range_is_named() {
    let lease = PoolSettings { lease_hours: 0.5, lease_lifetime_s: 90, min_block: 3 };
    let w = world_with(lease).unwrap();
    assert_eq!(w.store.pool_view(w.pool).unwrap().unwrap().settings, lease);
    let first = grants(&w.store, w.sites[0]).remove(0);
    assert_eq!((first.rows.len(), first.expires_at - first.granted_at), (3, 90), "the first lease is the dispatch's smallest block, for its lifetime");

    let refused = |lease: PoolSettings| world_with(lease).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused(PoolSettings { lease_hours: 100.0, ..lease }).starts_with("lease_hours: 100 hours"));
    assert!(refused(PoolSettings { lease_lifetime_s: 59, ..lease }).starts_with("lease_lifetime_s: 59 seconds"));
    assert!(refused(PoolSettings { min_block: 0, ..lease }).starts_with("min_block: 0 numbers"));
}

#[test]
fn an_exclusive_batch_is_recovered_as_one_lease_and_its_remainder_dispatched_again() {
    let exclusive = |sites: [i64; 2]| DispatchKind::Exclusive(vec![crate::store::ExclusivePart { name: "独享".into(), count: 40, site_id: sites[0] }]);
    let w = world_of(exclusive, PoolSettings::default()).unwrap();
    let (site, batch) = (w.sites[0], w.batches[0]);
    assert_eq!(w.pool, 0, "an exclusive batch has no pool");
    let rows: Vec<i64> = w.store.conn().prepare("SELECT id FROM batch_rows WHERE batch_id = ?1 ORDER BY id").unwrap()
        .query_map([batch], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 40);
    assert!(matches!(w.store.redispatch_remainder(batch, w.sites[1], "admin"), Err(PoolError::NotPooled(_))), "nothing recovered yet");

    w.store.recover_batch(batch, None).unwrap();
    let recall = w.store.down_log(site, 0, 1000).unwrap().into_iter().find_map(|e| match e.event {
        DownEvent::LeaseRecall(recall) => Some(recall),
        _ => None,
    });
    let recall = recall.expect("the site is asked");
    let lease_id = recall.lease_id.expect("the whole batch as one lease");
    let pool = w.store.batch_pool(batch).unwrap().unwrap();
    let view = w.store.pool_view(pool).unwrap().unwrap();
    assert_eq!((view.total, view.pooled, view.leased), (40, 0, 40), "nothing back before the site's word");
    assert!(matches!(w.store.redispatch_remainder(batch, w.sites[1], "admin"), Err(PoolError::NothingPooled(_))));

    // The site dialed 3 and gives back 37; a second copy of the return changes nothing.
    let (dialed, returned) = (rows[..3].iter().map(|&r| r as u64).collect(), rows[3..].iter().map(|&r| r as u64).collect());
    let ret = LeaseReturn { batch_id: batch as u64, lease_id, recall_id: Some(recall.recall_id), dialed, returned, returned_at: 5 };
    up(&w.store, site, 1, UpEvent::LeaseReturn(ret.clone()));
    up(&w.store, site, 2, UpEvent::LeaseReturn(ret));
    let view = w.store.pool_view(pool).unwrap().unwrap();
    assert_eq!((view.pooled, view.leased, view.dialed), (37, 0, 3));
    assert_eq!((view.sites[0].returned, view.sites[0].recalled), (37, true));

    // Dispatched again to the other site: a new batch leasing the 37, none of the 3.
    let again = w.store.redispatch_remainder(batch, w.sites[1], "admin").unwrap();
    let leased: Vec<String> = grants(&w.store, w.sites[1]).into_iter().filter(|g| g.batch_id == again as u64).flat_map(|g| g.rows).map(|r| r.phone).collect();
    let given_back: Vec<String> = w.store.conn().prepare("SELECT phone FROM batch_rows WHERE id > ?1 AND batch_id = ?2 ORDER BY id").unwrap()
        .query_map([rows[2], batch], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(leased, given_back);
    let view = w.store.pool_view(pool).unwrap().unwrap();
    assert_eq!((view.pooled, view.leased, view.dialed), (0, 37, 3));
}

//! The shared pool's leases as a property (issue 17): HQ's real store and three sites' real
//! stores (SQLite files), each site joined to HQ by a real [`SiteSession`] / [`HubSession`]
//! pair through the real framing, as `sync-protocol`'s `session_pair` harness drives them,
//! with simulated links instead of QUIC. A random run of steps: frames moved a few at a time,
//! sites dialing and asking for leases, links cut (frames in flight lost) and healed, a site
//! or HQ killed (its store dropped mid-exchange and opened again from its file, as after
//! `kill -9`: only committed transactions survive), leases expiring at a site, and HQ
//! recovering a site's batch.
//!
//! After every step: a number a site may still dial is leased to that site at HQ (so never to
//! two sites at once), no number was dialed twice across the sites, and a site dialed only
//! numbers HQ leased it. At the end, everything healed and the sites dial what they hold:
//! every number was dialed exactly once, HQ holds one attempt for each and counts none twice.
//!
//! Forced reclaim is left out on purpose: it is HQ's admitted exception (the console warns
//! that those numbers may be dialed twice).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use appliance::store::AttemptEnd;
use hq_hub::store::{
    Account, DispatchKind, DispatchRequest, FieldSpec, FieldValues, GoodRow, ImportReport, NewProject, PhoneMode, PoolSettings, ProjectSettings,
    Scope,
};
use proptest::prelude::*;
use rusqlite::{Connection, OpenFlags};
use sync_link::{HubStore as _, SiteStore as _};
use sync_protocol::framing::{FrameDecoder, encode_frame};
use sync_protocol::session::{HubEvent, HubSession, SessionConfig, SiteEvent, SiteSession, SiteStart};
use sync_protocol::{Frame, Outcome};

const SITES: usize = 3;
const NUMBERS: u32 = 60;
/// Noon in China: any calling window is open.
const NOON: i64 = 1_765_080_000;

/// One step of a run.
#[derive(Debug, Clone)]
enum Step {
    /// Move up to this many frames each way between a site and HQ (if linked).
    Pump(usize, usize),
    /// The site dials up to this many numbers it holds; `crash` kills it with the calls
    /// still ringing (the attempts are written, not finished).
    Dial(usize, usize, bool),
    /// The site's lease keeper takes its turn (returns what expired, asks when low).
    Keep(usize),
    /// The site's clock passes every lease's expiry, then the keeper takes its turn.
    Expire(usize),
    /// The link to the site is cut: frames in flight are lost.
    Cut(usize),
    Heal(usize),
    /// The site is killed and starts again from its file.
    CrashSite(usize),
    /// HQ is killed and starts again from its file.
    CrashHub,
    /// HQ recovers the site's batch (批次数据回收); only sites 0 and 1, so one site always
    /// keeps asking and the pool is dialed to the end.
    Recover(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let site = 0..SITES;
    prop_oneof![
        6 => (site.clone(), 1usize..40).prop_map(|(s, n)| Step::Pump(s, n)),
        5 => (site.clone(), 1usize..8, prop::bool::weighted(0.15)).prop_map(|(s, n, c)| Step::Dial(s, n, c)),
        3 => site.clone().prop_map(Step::Keep),
        2 => site.clone().prop_map(Step::Expire),
        2 => site.clone().prop_map(Step::Cut),
        2 => site.clone().prop_map(Step::Heal),
        1 => site.clone().prop_map(Step::CrashSite),
        1 => Just(Step::CrashHub),
        1 => (0usize..2).prop_map(Step::Recover),
    ]
}

/// Frames one way, encoded and decoded by the real framing.
#[derive(Default)]
struct Wire {
    queue: VecDeque<Vec<u8>>,
}

impl Wire {
    fn send(&mut self, frame: &Frame) {
        self.queue.push_back(encode_frame(frame).expect("frames fit"));
    }

    fn deliver(&mut self) -> Option<Frame> {
        let bytes = self.queue.pop_front()?;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        Some(decoder.next_frame().expect("a whole frame").expect("one frame"))
    }
}

struct Link {
    site: SiteSession,
    hub: HubSession,
    up: Wire,
    down: Wire,
}

struct Site {
    id: i64,
    batch: i64,
    dir: PathBuf,
    store: Option<appliance::store::Store>,
    link: Option<Link>,
    cut: bool,
}

struct World {
    _dir: tempfile::TempDir,
    hub_dir: PathBuf,
    hub: Option<hq_hub::store::Store>,
    sites: Vec<Site>,
    phones: BTreeSet<String>,
    time: Instant,
}

fn open_site(dir: &Path) -> appliance::store::Store {
    let store = appliance::store::Store::open(dir).expect("site store opens");
    // As the appliance does on start: calls a crash left ringing are finished as failed.
    store.recover_interrupted().expect("interrupted attempts finished");
    store
}

fn read_only(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).expect("opens read-only");
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn
}

impl World {
    /// `NUMBERS` numbers dispatched as one shared batch to three sites, leases of 60 s in
    /// blocks of at least 4.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let hub_dir = dir.path().join("hub");
        let hub = hq_hub::store::Store::open(&hub_dir).unwrap();
        hub.init_admin("admin").unwrap();
        let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
        let ids: Vec<i64> = (0..SITES).map(|n| hub.create_site(&format!("职场{n}")).unwrap()).collect();
        let category = hub.create_category("信用卡").unwrap();
        let project = hub
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
        let rows: Vec<GoodRow> = (0..NUMBERS)
            .map(|n| GoodRow { row_number: n + 2, phone: format!("1390000{n:04}"), fields: FieldValues::from(vec![format!("客户{n}")]) })
            .collect();
        let phones = rows.iter().map(|r| r.phone.clone()).collect();
        let file = hub.save_import(project, "名单.xlsx", b"xlsx", "admin", &rows, &ImportReport::default()).unwrap();
        let request = DispatchRequest {
            file_id: file,
            name: "共享".into(),
            priority: 50,
            site_ids: ids.clone(),
            creator: "admin".into(),
            kind: DispatchKind::Shared,
            update_existing: false,
            description: String::new(),
        };
        let outcome = hub.dispatch(&request, &admin).unwrap();
        let pool = hub.batch_pool(outcome.batch_ids[0]).unwrap().unwrap();
        hub.set_pool_settings(pool, PoolSettings { lease_hours: 0.1, lease_lifetime_s: 60, min_block: 4 }).unwrap();
        let sites = ids
            .iter()
            .zip(&outcome.batch_ids)
            .enumerate()
            .map(|(n, (&id, &batch))| {
                let site_dir = dir.path().join(format!("site{n}"));
                Site { id, batch, store: Some(open_site(&site_dir)), dir: site_dir, link: None, cut: false }
            })
            .collect();
        World { _dir: dir, hub_dir, hub: Some(hub), sites, phones, time: Instant::now() }
    }

    fn hub(&mut self) -> &hq_hub::store::Store {
        if self.hub.is_none() {
            self.hub = Some(hq_hub::store::Store::open(&self.hub_dir).expect("HQ reopens"));
        }
        self.hub.as_ref().unwrap()
    }

    fn site_store(&mut self, s: usize) -> &appliance::store::Store {
        let site = &mut self.sites[s];
        site.store.get_or_insert_with(|| open_site(&site.dir))
    }

    /// A new connection from where both stores stand, unless the site is cut off.
    fn connect(&mut self, s: usize) {
        if self.sites[s].cut || self.sites[s].link.is_some() {
            return;
        }
        self.hub();
        let (epoch, down_applied) = self.site_store(s).sync_position().unwrap();
        let config = SessionConfig { window: 8, ..SessionConfig::default() };
        let site_id = self.sites[s].id as u64;
        let start = SiteStart { site_id, epoch, down_applied, software: "appliance-test".into() };
        let link = Link {
            site: SiteSession::new(self.time, start, config.clone()),
            hub: HubSession::new(self.time, site_id, "hub-test".into(), config),
            up: Wire::default(),
            down: Wire::default(),
        };
        self.sites[s].link = Some(link);
    }

    /// Runs both sessions' events against the stores and queues what they transmit.
    fn settle(&mut self, s: usize) {
        let time = self.time;
        let hub = self.hub.as_ref().expect("HQ is up while linked");
        let site = &mut self.sites[s];
        let store = site.store.as_ref().expect("the site is up while linked");
        let link = site.link.as_mut().unwrap();
        loop {
            let mut progressed = false;
            while let Some(event) = link.site.poll_event() {
                progressed = true;
                match event {
                    SiteEvent::FetchOutbox { after_seq, limit } => {
                        let entries = store.outbox_after(after_seq, limit).unwrap();
                        link.site.outbox_fetched(time, entries);
                    }
                    SiteEvent::ApplyDown(entry) => {
                        store.apply_down(&entry).unwrap();
                        link.site.down_committed(entry.seq);
                    }
                    SiteEvent::UpAcked { epoch, seq } => store.outbox_acked(epoch, seq).unwrap(),
                    SiteEvent::Closed(error) => panic!("site {s} closed: {error}"),
                    _ => {}
                }
            }
            while let Some(event) = link.hub.poll_event() {
                progressed = true;
                match event {
                    HubEvent::Hello { epoch, .. } => link.hub.accept(time, hub.up_committed(site.id as u64, epoch).unwrap()),
                    HubEvent::FetchDown { after_seq, limit } => {
                        let entries = hub.down_after(site.id as u64, after_seq, limit).unwrap();
                        link.hub.down_fetched(time, entries);
                    }
                    HubEvent::ApplyUp(entry) => {
                        hub.apply_up(site.id as u64, &entry).unwrap();
                        link.hub.up_committed(entry.seq);
                        // A request is answered in its own transaction: the down log grew.
                        link.hub.down_changed();
                    }
                    HubEvent::DownAcked { seq } => hub.down_acked(site.id as u64, seq).unwrap(),
                    HubEvent::Closed(error) => panic!("HQ's session of site {s} closed: {error}"),
                    _ => {}
                }
            }
            while let Some(frame) = link.site.poll_transmit() {
                progressed = true;
                link.up.send(&frame);
            }
            while let Some(frame) = link.hub.poll_transmit() {
                progressed = true;
                link.down.send(&frame);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Moves up to `budget` frames each way; answers whether the link went quiet.
    fn pump(&mut self, s: usize, budget: usize) -> bool {
        self.connect(s);
        let Some(link) = self.sites[s].link.as_mut() else { return true };
        link.site.outbox_changed();
        link.hub.down_changed();
        for _ in 0..budget {
            self.settle(s);
            let link = self.sites[s].link.as_mut().unwrap();
            let (up, down) = (link.up.deliver(), link.down.deliver());
            if up.is_none() && down.is_none() {
                return true;
            }
            if let Some(frame) = up {
                link.hub.handle_frame(self.time, frame);
            }
            if let Some(frame) = down {
                link.site.handle_frame(self.time, frame);
            }
        }
        false
    }

    fn dial(&mut self, s: usize, n: usize, crash: bool) {
        let batch = self.sites[s].batch as u64;
        let store = self.site_store(s);
        let claimed = store.claim_next_numbers_at(batch, n, NOON).unwrap();
        if crash {
            self.crash_site(s);
            return;
        }
        for number in claimed {
            let end = AttemptEnd { outcome: Outcome::Busy, hangup_side: None, ended_at: NOON, recording_path: None, recording_sha256: None };
            store.finish_attempt(number.attempt_id, &end).unwrap();
        }
    }

    fn crash_site(&mut self, s: usize) {
        self.sites[s].link = None;
        self.sites[s].store = None;
    }

    fn crash_hub(&mut self) {
        for site in &mut self.sites {
            site.link = None;
        }
        self.hub = None;
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Pump(s, n) => {
                self.pump(s, n);
            }
            Step::Dial(s, n, crash) => self.dial(s, n, crash),
            Step::Keep(s) => {
                self.site_store(s).keep_leases(hq_hub::store::now_unix()).unwrap();
            }
            Step::Expire(s) => {
                let batch = self.sites[s].batch as u64;
                let store = self.site_store(s);
                let last = store.open_leases(batch).unwrap().iter().map(|l| l.2).max();
                if let Some(expiry) = last {
                    store.keep_leases(expiry).unwrap();
                }
            }
            Step::Cut(s) => {
                self.sites[s].cut = true;
                self.sites[s].link = None;
            }
            Step::Heal(s) => self.sites[s].cut = false,
            Step::CrashSite(s) => self.crash_site(s),
            Step::CrashHub => self.crash_hub(),
            Step::Recover(s) => {
                let batch = self.sites[s].batch;
                self.hub().recover_batch(batch, None).unwrap();
            }
        }
    }

    /// Per site: the numbers it may still dial, and the numbers it dialed (with repeats).
    fn at_sites(&self) -> Vec<(BTreeSet<String>, Vec<String>)> {
        self.sites
            .iter()
            .map(|site| {
                let db = read_only(&site.dir.join("site.db"));
                let list = |sql: &str| -> Vec<String> {
                    db.prepare(sql).unwrap().query_map([site.batch], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
                };
                let held = list("SELECT phone FROM batch_rows WHERE batch_id = ?1 AND status = 'new'").into_iter().collect();
                let dialed = list("SELECT phone FROM attempts WHERE batch_id = ?1");
                (held, dialed)
            })
            .collect()
    }

    /// HQ's word on each number: `(state, site)`, and the phones each site's batch was leased.
    fn at_hq(&self) -> (BTreeMap<String, (String, Option<i64>)>, Vec<BTreeSet<String>>, i64) {
        let db = read_only(&self.hub_dir.join("hub.sqlite3"));
        let states = db
            .prepare("SELECT phone, state, site_id FROM pool_numbers")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let leased = self
            .sites
            .iter()
            .map(|site| {
                db.prepare("SELECT phone FROM batch_rows WHERE batch_id = ?1")
                    .unwrap()
                    .query_map([site.batch], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            })
            .collect();
        let twice: i64 = db.query_row("SELECT COALESCE(SUM(dialed_twice), 0) FROM leases", [], |r| r.get(0)).unwrap();
        (states, leased, twice)
    }

    /// What holds after every step.
    fn check(&self, after: &Step) {
        let sites = self.at_sites();
        let (states, leased, twice) = self.at_hq();
        assert_eq!(states.len(), NUMBERS as usize, "the pool keeps every number once");
        assert_eq!(twice, 0, "no number dialed twice at HQ's count (after {after:?})");
        let mut dialed: BTreeMap<&String, usize> = BTreeMap::new();
        for (n, (held, site_dialed)) in sites.iter().enumerate() {
            let id = self.sites[n].id;
            for phone in held {
                let state = &states[phone];
                assert_eq!(
                    (state.0.as_str(), state.1),
                    ("leased", Some(id)),
                    "site {n} may dial {phone}, which HQ does not lease it (after {after:?})"
                );
            }
            for phone in site_dialed {
                *dialed.entry(phone).or_default() += 1;
                assert!(leased[n].contains(phone), "site {n} dialed {phone}, never leased to it (after {after:?})");
            }
        }
        let twice: Vec<_> = dialed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "dialed twice across the sites: {twice:?} (after {after:?})");
    }

    /// Everything healed and up; the sites dial all they hold and keep asking, their clocks
    /// moving 30 s a round (past every lease and every dry spell), until HQ's pool is dialed.
    fn finish(&mut self) {
        for site in &mut self.sites {
            site.cut = false;
        }
        let mut clock = hq_hub::store::now_unix();
        for _ in 0..200 {
            for s in 0..SITES {
                assert!(self.pump(s, 10_000), "the link of site {s} goes quiet");
                self.dial(s, 10_000, false);
                self.site_store(s).keep_leases(clock).unwrap();
                assert!(self.pump(s, 10_000), "the link of site {s} goes quiet");
            }
            clock += 30;
            let (states, _, _) = self.at_hq();
            let outboxes: u64 = (0..SITES).map(|s| self.site_store(s).outbox_len().unwrap()).sum();
            if outboxes == 0 && states.values().all(|(state, _)| state == "dialed") {
                return;
            }
        }
        let (states, _, _) = self.at_hq();
        let left: Vec<_> = states.iter().filter(|(_, (state, _))| state != "dialed").collect();
        panic!("the pool was not dialed to the end: {left:?}");
    }

    /// The end: every number dialed exactly once, by the site HQ counts it for, and HQ holds
    /// one attempt of it.
    fn check_end(&self) {
        let sites = self.at_sites();
        let (states, _, twice) = self.at_hq();
        assert_eq!(twice, 0);
        let mut by: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (n, (held, dialed)) in sites.iter().enumerate() {
            assert!(held.is_empty(), "site {n} still holds {held:?}");
            for phone in dialed {
                by.entry(phone.clone()).or_default().push(self.sites[n].id);
            }
        }
        assert_eq!(by.keys().cloned().collect::<BTreeSet<_>>(), self.phones, "every number dialed");
        for (phone, dialers) in &by {
            assert_eq!(dialers.len(), 1, "{phone} dialed by {dialers:?}");
            assert_eq!(states[phone], ("dialed".to_string(), Some(dialers[0])), "HQ counts {phone} for its dialer");
        }
        let db = read_only(&self.hub_dir.join("hub.sqlite3"));
        let batches = self.sites.iter().map(|s| s.batch.to_string()).collect::<Vec<_>>().join(",");
        let per_phone: Vec<(String, i64)> = db
            .prepare(&format!(
                "SELECT br.phone, COUNT(*) FROM call_attempts a JOIN batch_rows br ON br.id = a.row_id AND br.batch_id = a.batch_id
                 WHERE a.batch_id IN ({batches}) GROUP BY br.phone"
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(per_phone.len(), NUMBERS as usize, "HQ holds an attempt of every number");
        assert!(per_phone.iter().all(|(_, n)| *n == 1), "HQ holds one attempt per number: {per_phone:?}");
    }
}

fn run(steps: &[Step]) {
    let mut world = World::new();
    for step in steps {
        world.apply(step);
        world.check(step);
    }
    world.finish();
    world.check_end();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn partitions_crashes_and_expiries_never_give_a_number_to_two_sites(steps in prop::collection::vec(step(), 10..60)) {
        run(&steps);
    }
}

/// A fixed run through every kind of step, so each is exercised whatever the random cases draw.
#[test]
fn a_cut_site_dials_its_lease_expires_it_and_returns_the_rest_after_both_sides_crash() {
    let steps = [
        Step::Pump(0, 100),
        Step::Pump(1, 100),
        Step::Pump(2, 100),
        Step::Cut(2),
        Step::Dial(2, 3, false),
        Step::Dial(0, 7, false),
        Step::Keep(0),
        Step::Pump(0, 3),
        Step::CrashHub,
        Step::Dial(1, 2, true),
        Step::Expire(2),
        Step::Pump(0, 100),
        Step::Recover(1),
        Step::Pump(1, 100),
        Step::CrashSite(2),
        Step::Heal(2),
        Step::Pump(2, 100),
        Step::Keep(2),
        Step::Pump(2, 100),
    ];
    run(&steps);
}

/// The checker is not blind: a number dialed by a second site, or held by a site HQ did not
/// lease it to, fails it.
#[test]
fn the_checker_catches_a_number_dialed_twice_and_one_held_without_a_lease() {
    let mut world = World::new();
    for s in 0..SITES {
        world.pump(s, 1000);
    }
    world.dial(0, 1, false);
    world.check(&Step::Dial(0, 1, false));
    let phone: String = read_only(&world.sites[0].dir.join("site.db")).query_row("SELECT phone FROM attempts", [], |r| r.get(0)).unwrap();
    let tamper = |s: usize, sql: &str| {
        let db = Connection::open(world.sites[s].dir.join("site.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        db.execute(sql, rusqlite::params![world.sites[s].batch, phone]).unwrap();
    };
    tamper(1, "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at) VALUES (?1, 0, 0, 1, ?2, 'done', 1)");
    let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.check(&Step::Keep(1))));
    assert!(twice.is_err(), "a number dialed at two sites must fail the checker");
    tamper(1, "DELETE FROM attempts WHERE batch_id = ?1 AND phone = ?2");
    world.check(&Step::Keep(1));
    tamper(2, "UPDATE batch_rows SET status = 'new' WHERE batch_id = ?1 AND phone = ?2");
    tamper(2, "INSERT OR IGNORE INTO batch_rows (batch_id, chunk_idx, row_idx, row_id, phone, fields) VALUES (?1, 999, 0, 999, ?2, x'00')");
    let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.check(&Step::Keep(2))));
    assert!(held.is_err(), "a number held by a site HQ did not lease it to must fail the checker");
}

//! The call search against a real SQLite store: each filter and their combinations against
//! the same filter written plainly over the seeded calls, paged by keyset in small pages;
//! the scope of a sub-admin; masking and hidden fields; the migration filling the last four
//! digits of calls stored before it; and each index choice read in key order (no sort), a
//! whole number through its batch rows.

use sync_link::HubStore;
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, HangupSide, Outcome, UpEntry, UpEvent};

use super::*;
use crate::store::{Account, FieldSpec, NewAccount, NewProject, ProjectAdmin, ProjectSettings};

/// A seeded call, as the test knows it.
#[derive(Debug, Clone)]
struct Seeded {
    site: i64,
    attempt: i64,
    project: i64,
    batch: i64,
    phone: String,
    agent: String,
    /// Sent only with the detailed attempt (every other call here): older sites had none.
    extension: Option<String>,
    kind: AttemptKind,
    outcome: &'static str,
    hangup: &'static str,
    started_at: i64,
    talk: i64,
    result: Option<&'static str>,
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    sites: [i64; 2],
    projects: [i64; 2],
    calls: Vec<Seeded>,
}

fn project(store: &Store, category: i64, name: &str, hide: bool) -> i64 {
    let mut result = FieldSpec::new("result", "结果", crate::store::FieldSpecKind::SingleChoice, &["成功", "失败"]);
    result.default = "失败".into();
    let mut secret = FieldSpec::text("secret", "内部备注");
    secret.hidden = true;
    store
        .create_project(&NewProject {
            category_id: category,
            name: name.into(),
            template_id: None,
            script: String::new(),
            hide_middle_digits: hide,
            customer_fields: vec![],
            record_fields: vec![result, secret],
            settings: ProjectSettings::default(),
            phone_mode: Default::default(),
        })
        .unwrap()
}

/// A batch of `phones` of `project` at `site`, stored as dispatch stores one; answers the
/// batch id and the rows' ids.
fn batch(store: &Store, project: i64, site: i64, phones: &[String]) -> (i64, Vec<i64>) {
    let conn = store.conn();
    conn.execute(
        "INSERT INTO files (project_id, file_name, stored_path, source, status, created_at, creator, n_rows, n_good, report)
         VALUES (?1, 'f.xlsx', '', 'upload', 'done', 0, 'admin', 0, 0, '{}')",
        [project],
    )
    .unwrap();
    let file = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO batches (file_id, project_id, site_id, name, priority, n_rows, created_at, creator)
         VALUES (?1, ?2, ?3, ?4, 5, ?5, 0, 'admin')",
        rusqlite::params![file, project, site, format!("批次{project}-{site}"), phones.len() as i64],
    )
    .unwrap();
    let batch = conn.last_insert_rowid();
    let mut rows = Vec::new();
    for (n, phone) in phones.iter().enumerate() {
        conn.execute(
            "INSERT INTO import_rows (file_id, row_number, phone, fields) VALUES (?1, ?2, ?3, '[]')",
            rusqlite::params![file, n as i64 + 2, phone],
        )
        .unwrap();
        let import_row = conn.last_insert_rowid();
        conn.execute(
            "INSERT INTO batch_rows (batch_id, import_row_id, phone) VALUES (?1, ?2, ?3)",
            rusqlite::params![batch, import_row, phone],
        )
        .unwrap();
        rows.push(conn.last_insert_rowid());
    }
    (batch, rows)
}

/// Two sites, two projects (the first hides the middle digits), a batch of each project at
/// each site, and 96 calls with every filter's values spread over them, stored through the
/// link's own apply path.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let sites = [store.create_site("甲职场").unwrap(), store.create_site("乙职场").unwrap()];
    let category = store.create_category("套餐类").unwrap();
    let projects = [project(&store, category, "流量包", true), project(&store, category, "宽带", false)];
    for &p in &projects {
        store.set_project_sites(p, &sites).unwrap();
    }
    let phones: Vec<String> = (0..6).map(|n| format!("1380013{:04}", 1000 + n * 7 % 3 * 1111 + n)).collect();
    let kinds = [AttemptKind::Predictive, AttemptKind::Inbound, AttemptKind::Callback];
    let outcomes = [(Outcome::Connected, "connected"), (Outcome::Busy, "busy"), (Outcome::NoAnswer, "no_answer"), (Outcome::Abandoned, "abandoned")];
    let hangups = [(HangupSide::Customer, "customer"), (HangupSide::Agent, "agent"), (HangupSide::System, "system")];
    let mut calls = Vec::new();
    let mut seq = [0u64; 2];
    for (pi, &p) in projects.iter().enumerate() {
        for (si, &site) in sites.iter().enumerate() {
            let (batch_id, rows) = batch(&store, p, site, &phones);
            for n in 0..24usize {
                let attempt = (pi * 100 + n + 1) as i64;
                let row = n % rows.len();
                let (outcome, outcome_key) = outcomes[n % 4];
                let (hangup, hangup_key) = hangups[n % 3];
                let result = match n % 5 {
                    0 => Some("成功"),
                    1 | 2 => Some("失败"),
                    _ => None,
                };
                // Several calls share a second, so the key's tie-breakers matter.
                let started_at = 1_700_000_000 + (n as i64 / 3) * 60 + pi as i64;
                let call = Seeded {
                    site,
                    attempt,
                    project: p,
                    batch: batch_id,
                    phone: phones[row].clone(),
                    agent: format!("agent{}", n % 3),
                    extension: (n % 2 == 0).then(|| format!("80{}", n % 3)),
                    kind: kinds[n % 3],
                    outcome: outcome_key,
                    hangup: hangup_key,
                    started_at,
                    talk: (n as i64 * 17) % 120,
                    result,
                };
                let site_key = site as u64;
                seq[si] += 1;
                let attempt_event = CallAttempt {
                    attempt_id: attempt as u64,
                    batch_id: batch_id as u64,
                    row_id: rows[row] as u64,
                    started_at,
                    answered_at: (outcome == Outcome::Connected).then_some(started_at + 5),
                    ended_at: started_at + 5 + call.talk,
                    outcome,
                    hangup_side: Some(hangup),
                    agent: Some(call.agent.clone()),
                    talk_seconds: call.talk as u32,
                    recording_sha256: Some(format!("{:064x}", attempt)),
                    kind: call.kind,
                };
                let event = match &call.extension {
                    Some(extension) => UpEvent::CallAttemptDetail(sync_protocol::CallAttemptDetail {
                        attempt: attempt_event,
                        team: String::new(),
                        extension: extension.clone(),
                        ring_seconds: 5,
                        queue_seconds: 0,
                        ivr_seconds: 0,
                    }),
                    None => UpEvent::CallAttempt(attempt_event),
                };
                store.apply_up(site_key, &UpEntry { epoch: 1, seq: seq[si], event }).unwrap();
                if let Some(result) = result {
                    seq[si] += 1;
                    let record = UpEvent::BusinessRecord(BusinessRecord {
                        attempt_id: attempt as u64,
                        batch_id: batch_id as u64,
                        row_id: rows[row] as u64,
                        agent: call.agent.clone(),
                        saved_at: started_at + 200,
                        values: vec![("result".into(), result.into()), ("secret".into(), "不可见".into())],
                    });
                    store.apply_up(site_key, &UpEntry { epoch: 1, seq: seq[si], event: record }).unwrap();
                }
                calls.push(call);
            }
        }
    }
    World { _dir: dir, store, sites, projects, calls }
}

fn admin() -> Scope {
    Scope::all(Account { id: 1, username: "admin".into(), is_admin: true })
}

/// Every call `query` finds, read in pages of `page`; checks each page's size and that the
/// keys fall strictly.
fn all_pages(store: &Store, query: &CallQuery, scope: &Scope, page: u32) -> Vec<(i64, i64)> {
    let mut query = CallQuery { limit: page, ..query.clone() };
    let mut out = Vec::new();
    loop {
        let got = store.search_calls(&query, scope).unwrap();
        assert!(got.calls.len() <= page as usize);
        if got.next.is_some() {
            assert_eq!(got.calls.len(), page as usize, "a page before the last is full");
        }
        out.extend(got.calls.iter().map(|c| (c.site_id, c.attempt_id)));
        match got.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    out
}

/// The seeded calls `keep` selects, newest first by the page key.
fn expected(world: &World, keep: impl Fn(&Seeded) -> bool) -> Vec<(i64, i64)> {
    let mut calls: Vec<&Seeded> = world.calls.iter().filter(|c| keep(c)).collect();
    calls.sort_by_key(|c| std::cmp::Reverse((c.started_at, c.site, c.attempt)));
    calls.into_iter().map(|c| (c.site, c.attempt)).collect()
}

#[test]
fn each_filter_finds_what_it_says_page_by_page() {
    let w = world();
    let [s1, s2] = w.sites;
    let [p1, p2] = w.projects;
    let phone = w.calls[7].phone.clone();
    let last4 = phone[phone.len() - 4..].to_string();
    let b = w.calls.iter().find(|c| c.project == p2 && c.site == s1).unwrap().batch;
    let base = CallQuery::default();
    type Keep = Box<dyn Fn(&Seeded) -> bool>;
    let cases: Vec<(&str, CallQuery, Keep)> = vec![
        ("everything", base.clone(), Box::new(|_| true)),
        ("time range", CallQuery { from: Some(1_700_000_120), to: Some(1_700_000_300), ..base.clone() }, Box::new(|c| (1_700_000_120..1_700_000_300).contains(&c.started_at))),
        ("site", CallQuery { site_id: Some(s2), ..base.clone() }, Box::new(move |c| c.site == s2)),
        ("project", CallQuery { project_id: Some(p1), ..base.clone() }, Box::new(move |c| c.project == p1)),
        ("batch", CallQuery { batch_id: Some(b), ..base.clone() }, Box::new(move |c| c.batch == b)),
        ("agent", CallQuery { agent: Some("agent1".into()), ..base.clone() }, Box::new(|c| c.agent == "agent1")),
        ("extension", CallQuery { extension: Some("802".into()), ..base.clone() }, Box::new(|c| c.extension.as_deref() == Some("802"))),
        (
            "agent and extension",
            CallQuery { agent: Some("agent1".into()), extension: Some("801".into()), ..base.clone() },
            Box::new(|c| c.agent == "agent1" && c.extension.as_deref() == Some("801")),
        ),
        ("inbound", CallQuery { direction: Some(Direction::Inbound), ..base.clone() }, Box::new(|c| c.kind == AttemptKind::Inbound)),
        ("outbound", CallQuery { direction: Some(Direction::Outbound), ..base.clone() }, Box::new(|c| c.kind != AttemptKind::Inbound)),
        ("outcome", CallQuery { outcome: Some("busy".into()), ..base.clone() }, Box::new(|c| c.outcome == "busy")),
        ("hang-up side", CallQuery { hangup: Some("agent".into()), ..base.clone() }, Box::new(|c| c.hangup == "agent")),
        ("talk time", CallQuery { talk_min: Some(30), talk_max: Some(90), ..base.clone() }, Box::new(|c| (30..=90).contains(&c.talk))),
        ("business result", CallQuery { result: Some(("result".into(), "成功".into())), ..base.clone() }, Box::new(|c| c.result == Some("成功"))),
        ("last four", CallQuery { phone: Some(PhoneMatch::LastFour(last4.clone())), ..base.clone() }, Box::new(move |c| c.phone.ends_with(&last4))),
        ("exact number", CallQuery { phone: Some(PhoneMatch::Exact(phone.clone())), ..base.clone() }, { let phone = phone.clone(); Box::new(move |c| c.phone == phone) }),
        ("not a number", CallQuery { phone: Some(PhoneMatch::Exact("13900000000".into())), ..base.clone() }, Box::new(|_| false)),
        (
            "combined",
            CallQuery { site_id: Some(s1), agent: Some("agent0".into()), direction: Some(Direction::Outbound), talk_max: Some(100), ..base.clone() },
            Box::new(move |c| c.site == s1 && c.agent == "agent0" && c.kind != AttemptKind::Inbound && c.talk <= 100),
        ),
    ];
    for (name, query, keep) in cases {
        let want = expected(&w, keep);
        for page in [1, 7, 50] {
            assert_eq!(all_pages(&w.store, &query, &admin(), page), want, "{name}, pages of {page}");
        }
        if name != "not a number" {
            assert!(!want.is_empty(), "{name} selects something, so the case can fail");
        }
    }
}

#[test]
fn a_sub_admin_sees_only_its_project_at_its_site_masked_and_without_hidden_fields() {
    let w = world();
    let [s1, s2] = w.sites;
    let [p1, p2] = w.projects;
    let role = w.store.create_role("通话", &["site.calls".to_string()]).unwrap();
    let id = w
        .store
        .create_account(&NewAccount { username: "s1".into(), password: "secret-s1-pw".into(), role_id: role, group_id: None, site_ids: vec![s1] })
        .unwrap();
    w.store.set_project_admins(p1, &[ProjectAdmin { account_id: id, site_ids: vec![s1] }]).unwrap();
    let scope = w.store.scope(&Account { id, username: "s1".into(), is_admin: false }).unwrap();
    let seen = all_pages(&w.store, &CallQuery::default(), &scope, 10);
    assert_eq!(seen, expected(&w, |c| c.project == p1 && c.site == s1), "project 1 at site 1 only");
    // Asking for the other site or project finds nothing rather than an error.
    assert!(all_pages(&w.store, &CallQuery { site_id: Some(s2), ..CallQuery::default() }, &scope, 10).is_empty());
    assert!(all_pages(&w.store, &CallQuery { project_id: Some(p2), ..CallQuery::default() }, &scope, 10).is_empty());
    let foreign = w.calls.iter().find(|c| c.site == s2).unwrap();
    assert_eq!(w.store.call(foreign.site, foreign.attempt, &scope).unwrap(), None, "another site's call is not there");
    let other_project = w.calls.iter().find(|c| c.site == s1 && c.project == p2).unwrap();
    assert_eq!(w.store.call(other_project.site, other_project.attempt, &scope).unwrap(), None);

    // Project 1 hides the middle digits: masked for everyone; project 2 does not.
    let own = w.calls.iter().find(|c| c.site == s1 && c.project == p1 && c.result.is_some()).unwrap();
    let view = w.store.call(own.site, own.attempt, &scope).unwrap().unwrap();
    assert_eq!(view.phone, crate::phone::mask_middle(&own.phone));
    assert_ne!(view.phone, own.phone);
    let record = view.record.unwrap();
    assert_eq!(record.values.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), vec!["result"], "the hidden field never leaves the store");
    assert_eq!(record.values[0].value, own.result.unwrap());
    assert_eq!(view.recording, Some(CallRecording { sha256: format!("{:064x}", own.attempt), held: false }), "the site's hash; HQ does not hold it");
    let plain = w.store.call(other_project.site, other_project.attempt, &admin()).unwrap().unwrap();
    assert_eq!(plain.phone, other_project.phone);

    // A sub-admin of no project sees nothing at all.
    let bare = w
        .store
        .create_account(&NewAccount { username: "s2".into(), password: "secret-s2-pw".into(), role_id: role, group_id: None, site_ids: vec![s2] })
        .unwrap();
    let scope = w.store.scope(&Account { id: bare, username: "s2".into(), is_admin: false }).unwrap();
    assert!(w.store.search_calls(&CallQuery { limit: 50, ..CallQuery::default() }, &scope).unwrap().calls.is_empty());
}

#[test]
fn cursors_round_trip_and_refuse_garbage() {
    let cursor = CallCursor { started_at: 1_700_000_000, site_id: 3, attempt_id: 42 };
    assert_eq!(CallCursor::parse(&cursor.token()), Some(cursor));
    for bad in ["", "1.2", "1.2.3.4", "a.b.c", "1..3"] {
        assert_eq!(CallCursor::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn the_migration_fills_the_last_four_digits_of_calls_stored_before_it() {
    let w = world();
    let dir = w._dir.path().to_path_buf();
    let one = w.calls[5].clone();
    {
        // The store as migration 14 left it: no column, no call indexes.
        let conn = w.store.conn();
        conn.execute_batch(&format!("{UNDO_MIGRATION} PRAGMA user_version = 14;")).unwrap();
    }
    drop(w.store);
    let store = Store::open(&dir).unwrap();
    let last4 = one.phone[one.phone.len() - 4..].to_string();
    let found = store.search_calls(&CallQuery { phone: Some(PhoneMatch::LastFour(last4.clone())), limit: 200, ..CallQuery::default() }, &admin()).unwrap();
    let want = w.calls.iter().filter(|c| c.phone.ends_with(&last4)).count();
    assert_eq!(found.calls.len(), want);
    assert!(found.calls.iter().any(|c| c.attempt_id == one.attempt && c.site_id == one.site));
}

#[test]
fn every_index_choice_reads_in_key_order_and_a_number_only_its_calls() {
    let w = world();
    let queries = [
        CallQuery::default(),
        CallQuery { site_id: Some(w.sites[0]), ..CallQuery::default() },
        CallQuery { batch_id: Some(w.calls[0].batch), ..CallQuery::default() },
        CallQuery { agent: Some("agent1".into()), ..CallQuery::default() },
        CallQuery { phone: Some(PhoneMatch::LastFour("1234".into())), ..CallQuery::default() },
        CallQuery { phone: Some(PhoneMatch::Exact("13800131234".into())), project_id: Some(w.projects[0]), ..CallQuery::default() },
    ];
    for query in queries {
        let query = CallQuery { after: Some(CallCursor { started_at: 1_800_000_000, site_id: 1, attempt_id: 1 }), limit: 50, ..query };
        let (clause, args, index) = conditions(&query, &admin()).unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {CALL_COLUMNS} FROM call_attempts a INDEXED BY {index} {CALL_JOINS}
             WHERE {clause} ORDER BY a.started_at DESC, a.site_id DESC, a.attempt_id DESC LIMIT 51"
        );
        let conn = w.store.conn();
        let mut stmt = conn.prepare(&sql).unwrap();
        let plan: Vec<String> = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3)).unwrap().collect::<Result<_, _>>().unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{index}: {plan}");
        if index == "call_attempts_batch_row" {
            // A whole number: its batch rows by the phone index, then only its calls.
            assert!(plan.contains("batch_rows_phone_batch"), "{plan}");
            assert!(!plan.contains("SCAN"), "{plan}");
        } else {
            assert!(!plan.contains("TEMP B-TREE"), "{index} sorts: {plan}");
        }
    }
}

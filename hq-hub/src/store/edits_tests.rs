//! Edit after create against a real SQLite store: a definition edit is a new version in
//! the site's down log with the parameters kept; a rename leaves earlier calls under the
//! old name; usage counts what a field deletion concerns; archiving; 查看号码 pages, masks
//! and searches; roles and accounts changed, disabled and given a new password.

use sync_link::HubStore;
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, DownEvent, Outcome, UpEntry, UpEvent};

use super::super::projects::FieldSpecKind;
use super::*;
use crate::store::{
    Account, AccountEdit, AccountEditError, CallQuery, DispatchKind, DispatchRequest, FieldValues, GoodRow, ImportReport, LoginError,
    NewAccount, NewProject, PhoneMode, ProjectSettings,
};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    admin: Scope,
    project: i64,
    site: i64,
    batch: i64,
    rows: Vec<u64>,
}

/// A project (hiding the middle digits) at one site with 120 numbers in one shared batch.
fn world(hide: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.init_admin("admin").unwrap();
    let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
    let site = store.create_site("杭州职场").unwrap();
    let category = store.create_category("信用卡").unwrap();
    let project = store
        .create_project(&NewProject {
            category_id: category,
            name: "分期推荐".into(),
            template_id: None,
            script: "您好".into(),
            hide_middle_digits: hide,
            customer_fields: vec![FieldSpec::text("name", "姓名"), FieldSpec::text("city", "城市")],
            record_fields: vec![
                FieldSpec::new("result", "营销结果", FieldSpecKind::SingleChoice, &["成功", "失败"]),
                FieldSpec::text("note", "备注"),
            ],
            settings: ProjectSettings { ratio: Some(3), ..ProjectSettings::default() },
            phone_mode: PhoneMode::Number,
        })
        .unwrap();
    store.set_project_sites(project, &[site]).unwrap();
    let rows: Vec<GoodRow> = (0..120)
        .map(|n| GoodRow {
            row_number: n + 2,
            phone: format!("1390000{n:04}"),
            fields: FieldValues::from(vec![format!("客户{n}"), "杭州".to_string()]),
        })
        .collect();
    let file = store.save_import(project, "名单.xlsx", b"xlsx", "admin", &rows, &ImportReport::default()).unwrap();
    let request = DispatchRequest {
        file_id: file,
        name: "第一批".into(),
        priority: 5,
        site_ids: vec![site],
        creator: "admin".into(),
        kind: DispatchKind::Shared,
        update_existing: false,
        description: String::new(),
    };
    let outcome = store.dispatch(&request, &admin).unwrap();
    let rows = store
        .down_log(site, 0, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            DownEvent::BatchChunk(chunk) => Some(chunk.rows.into_iter().map(|r| r.row_id)),
            _ => None,
        })
        .flatten()
        .collect();
    World { _dir: dir, store, admin, project, site, batch: outcome.batch_ids[0], rows }
}

impl World {
    fn call(&self, seq: u64, row: u64, started_at: i64, record: bool) {
        let attempt = CallAttempt {
            attempt_id: seq,
            batch_id: self.batch as u64,
            row_id: row,
            started_at,
            answered_at: Some(started_at + 5),
            ended_at: started_at + 60,
            outcome: Outcome::Connected,
            hangup_side: None,
            agent: Some("8001".into()),
            talk_seconds: 55,
            recording_sha256: None,
            kind: AttemptKind::Predictive,
        };
        let up = |seq, event| HubStore::apply_up(&self.store, self.site as u64, &UpEntry { epoch: 1, seq, event }).unwrap();
        up(seq * 2, UpEvent::CallAttempt(attempt));
        if record {
            let values = vec![("result".into(), "成功".into())];
            let record = BusinessRecord { attempt_id: seq, batch_id: self.batch as u64, row_id: row, agent: "8001".into(), saved_at: started_at + 70, values };
            up(seq * 2 + 1, UpEvent::BusinessRecord(record));
        }
    }

    /// The newest project definition in the site's down log.
    fn last_sent(&self) -> sync_protocol::ProjectDef {
        self.store
            .down_log(self.site, 0, 100_000)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                DownEvent::Project(def) => Some(def),
                _ => None,
            })
            .last()
            .expect("the site was sent the project")
    }
}

#[test]
fn a_definition_edit_is_a_new_version_sent_down_with_parameters_kept() {
    let w = world(true);
    let before = w.last_sent();
    let mut city = FieldSpec::text("city", "所在城市");
    city.read_only = true;
    let mut name = FieldSpec::text("name", "姓名");
    name.default = "先生/女士".into();
    let mut level = FieldSpec::new("", "意向等级", FieldSpecKind::SingleChoice, &["高", "中", "低"]);
    level.required = true;
    let edit = DefinitionEdit {
        name: "分期推荐二期".into(),
        script: "您好，这里是信用卡中心".into(),
        hide_middle_digits: false,
        // Reordered (城市 first), renamed title, one new field; 备注 deleted.
        customer_fields: vec![city, name],
        record_fields: vec![FieldSpec::new("result", "营销结果", FieldSpecKind::SingleChoice, &["成功", "失败", "再联系"]), level],
    };
    let sent_to = w.store.edit_definition(w.project, &edit).unwrap();
    assert_eq!(sent_to, vec![w.site]);

    let project = w.store.project(w.project).unwrap().unwrap();
    assert_eq!(project.name, "分期推荐二期");
    assert_eq!(project.settings.ratio, Some(3), "the parameters are kept");
    let keys: Vec<&str> = project.record_fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["result", "field_1"], "a new field gets a free key");

    let sent = w.last_sent();
    assert!(sent.version > before.version);
    assert_eq!(sent.name, "分期推荐二期");
    assert_eq!(sent.script, "您好，这里是信用卡中心");
    assert!(!sent.hide_middle_digits);
    let titles: Vec<&str> = sent.customer_fields.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(titles, ["所在城市", "姓名"]);
    assert!(sent.customer_fields[0].read_only);
    assert!(sent.record_fields[1].required);
    assert_eq!(sent.record_fields.len(), 2);

    // A bad edit changes nothing and sends nothing.
    let bad = DefinitionEdit { name: "  ".into(), ..edit.clone() };
    assert!(w.store.edit_definition(w.project, &bad).is_err());
    let mut twice = edit.clone();
    twice.customer_fields.push(FieldSpec::text("other", "姓名"));
    assert!(w.store.edit_definition(w.project, &twice).unwrap_err().to_string().contains("used twice"));
    assert_eq!(w.last_sent().version, sent.version);
    assert!(w.store.edit_definition(9999, &edit).is_err());
}

#[test]
fn a_rename_leaves_earlier_calls_under_the_old_name() {
    let w = world(true);
    let now = super::super::now_unix();
    w.call(1, w.rows[0], now - 3600, true);
    let project = w.store.project(w.project).unwrap().unwrap();
    let edit = DefinitionEdit {
        name: "新名称".into(),
        script: project.script.clone(),
        hide_middle_digits: project.hide_middle_digits,
        customer_fields: project.customer_fields.clone(),
        record_fields: project.record_fields.clone(),
    };
    w.store.edit_definition(w.project, &edit).unwrap();
    w.call(2, w.rows[1], now + 5, false);
    let page = w.store.search_calls(&CallQuery { limit: 10, ..CallQuery::default() }, &w.admin).unwrap();
    let names: Vec<(i64, Option<String>)> = page.calls.iter().map(|c| (c.attempt_id, c.project_name.clone())).collect();
    assert!(names.contains(&(1, Some("分期推荐".into()))), "{names:?}");
    assert!(names.contains(&(2, Some("新名称".into()))), "{names:?}");
    // Renaming back and forth keeps each call under its own time's name.
    assert_eq!(w.store.project(w.project).unwrap().unwrap().name, "新名称");
}

#[test]
fn usage_counts_rows_and_records_and_archive_is_reversible() {
    let w = world(false);
    assert_eq!((w.store.project_usage(w.project).unwrap().rows, w.store.project_usage(w.project).unwrap().records), (120, 0));
    w.call(1, w.rows[0], 1_700_000_000, true);
    w.call(2, w.rows[1], 1_700_000_100, true);
    w.call(3, w.rows[2], 1_700_000_200, false);
    assert_eq!(w.store.project_usage(w.project).unwrap().records, 2);

    assert_eq!(w.store.project_archived_at(w.project).unwrap(), None);
    assert!(w.store.set_project_archived(w.project, true).unwrap());
    assert!(w.store.project_archived_at(w.project).unwrap().is_some());
    assert_eq!(w.store.archived_projects().unwrap(), vec![w.project]);
    assert!(w.store.set_project_archived(w.project, false).unwrap());
    assert!(w.store.archived_projects().unwrap().is_empty());
    assert!(!w.store.set_project_archived(9999, true).unwrap());
}

#[test]
fn the_numbers_page_is_keyset_paged_masked_and_searchable() {
    let w = world(true);
    w.call(1, w.rows[0], 1_700_000_000, false);
    let first = w.store.batch_number_page(w.batch, &w.admin, "", None).unwrap();
    assert!(first.masked);
    assert_eq!(first.numbers.len(), NUMBERS_PAGE);
    assert_eq!(first.numbers[0].phone, "139****0000");
    assert_eq!(first.numbers[0].attempts, 1);
    let second = w.store.batch_number_page(w.batch, &w.admin, "", first.next_after).unwrap();
    let third = w.store.batch_number_page(w.batch, &w.admin, "", second.next_after).unwrap();
    assert_eq!((second.numbers.len(), third.numbers.len(), third.next_after), (50, 20, None));
    assert!(second.numbers[0].row_id > first.numbers[49].row_id);

    // Masked: the last four digits find a number, the hidden middle ones do not.
    let found = w.store.batch_number_page(w.batch, &w.admin, "0117", None).unwrap();
    assert_eq!(found.numbers.len(), 1);
    assert_eq!(found.numbers[0].phone, "139****0117");
    assert!(w.store.batch_number_page(w.batch, &w.admin, "3900", None).unwrap().numbers.is_empty());
    assert_eq!(w.store.batch_number_page(w.batch, &w.admin, "13900000117", None).unwrap().numbers.len(), 1);

    // Unmasked: any part matches.
    let open = world(false);
    let page = open.store.batch_number_page(open.batch, &open.admin, "90000", None).unwrap();
    assert!(!page.masked);
    assert_eq!(page.numbers[0].phone, "13900000000");
    assert_eq!(page.numbers.len(), 50);

    // Another caller's batch is unknown to it.
    let outsider = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
    assert!(w.store.batch_number_page(w.batch + 99, &outsider, "", None).is_err());
}

#[test]
fn roles_and_accounts_are_editable_and_disabling_ends_sessions() {
    let w = world(false);
    let role = w.store.create_role("质检", &["data.batches".to_string()]).unwrap();
    let other = w.store.create_role("主管", &["reports".to_string()]).unwrap();
    let new = NewAccount { username: "zhang".into(), password: "zhang-secret".into(), role_id: role, group_id: None, site_ids: vec![] };
    let id = w.store.create_account(&new).unwrap();

    w.store.update_role(role, "质检组", &["data.batches".to_string(), "data.files".to_string()]).unwrap();
    assert!(matches!(w.store.update_role(role, "主管", &[]), Err(AccountEditError::Duplicate(_))));
    assert!(matches!(w.store.update_role(role, "x", &["nope".to_string()]), Err(AccountEditError::UnknownModule(_))));
    let roles = w.store.list_roles().unwrap();
    let edited = roles.iter().find(|r| r.id == role).unwrap();
    assert_eq!((edited.name.as_str(), edited.modules.len()), ("质检组", 2));

    w.store.edit_account(id, &AccountEdit { role_id: other, group_id: None, site_ids: vec![w.site] }).unwrap();
    let view = w.store.list_accounts().unwrap().into_iter().find(|a| a.id == id).unwrap();
    assert_eq!((view.role_id, view.site_ids.clone()), (Some(other), Some(vec![w.site])));
    assert!(matches!(w.store.edit_account(id, &AccountEdit { role_id: 777, group_id: None, site_ids: vec![] }), Err(AccountEditError::UnknownRole(777))));
    assert!(matches!(w.store.edit_account(1, &AccountEdit { role_id: other, group_id: None, site_ids: vec![] }), Err(AccountEditError::Admin(1))));

    let (token, _) = w.store.login("zhang", "zhang-secret").unwrap();
    assert!(w.store.session_account(&token).unwrap().is_some());
    w.store.set_account_disabled(id, true).unwrap();
    assert!(w.store.session_account(&token).unwrap().is_none(), "disabling ends the open session");
    assert!(matches!(w.store.login("zhang", "zhang-secret"), Err(LoginError::Disabled)));
    assert!(matches!(w.store.login("zhang", "wrong-password"), Err(LoginError::BadCredentials)));
    assert!(w.store.list_accounts().unwrap().iter().any(|a| a.id == id && a.disabled));
    assert!(matches!(w.store.set_account_disabled(1, true), Err(AccountEditError::Admin(1))));
    w.store.set_account_disabled(id, false).unwrap();
    let (token, _) = w.store.login("zhang", "zhang-secret").unwrap();

    let password = w.store.reset_password(id).unwrap();
    assert!(w.store.session_account(&token).unwrap().is_none(), "a new password ends the old sessions");
    assert!(matches!(w.store.login("zhang", "zhang-secret"), Err(LoginError::BadCredentials)));
    assert!(w.store.login("zhang", &password).is_ok());
}

#[test]
fn a_dispatch_reports_its_leftover_rows_and_says_why_nothing_is_left() {
    let w = world(false);
    let file: i64 = w.store.conn().query_row("SELECT file_id FROM batches WHERE id = ?1", [w.batch], |r| r.get(0)).unwrap();
    // Everything is already live at the site: nothing is left, and the error says so.
    let again = DispatchRequest {
        file_id: file,
        name: "再次下发".into(),
        priority: 5,
        site_ids: vec![w.site],
        creator: "admin".into(),
        kind: DispatchKind::Shared,
        update_existing: true,
        description: String::new(),
    };
    match w.store.dispatch(&again, &w.admin) {
        Err(crate::store::DispatchError::NothingLeft { blacklisted: 0, live: 120 }) => {}
        other => panic!("expected nothing left (120 live): {:?}", other.map(|o| o.batch_ids)),
    }
    // Exclusive batches taking 70 of 120 rows leave 50 in the file.
    let parts = vec![crate::store::ExclusivePart { name: "独享一".into(), count: 70, site_id: w.site }];
    let exclusive = DispatchRequest { kind: DispatchKind::Exclusive(parts), update_existing: false, ..again };
    let outcome = w.store.dispatch(&exclusive, &w.admin).unwrap();
    assert_eq!((outcome.batch_ids.len(), outcome.leftover), (1, 50));
}

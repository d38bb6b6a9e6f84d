//! A project at two sites (and a third site outside it), customer rows dispatched to each,
//! calls, customer edits and business records applied as the link applies them; then the
//! searches, pages, scope, masking and exports checked against what was put in.

use sync_link::HubStore;
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, CustomerEdit, DownEvent, Outcome, UpEntry, UpEvent};

use super::*;
use crate::across_export::{china_time, customers_xlsx, records_xlsx, ExportWords};
use crate::store::{
    Account, DispatchKind, DispatchRequest, ExclusivePart, FieldValues, GoodRow, ImportReport, NewAccount, NewProject,
    PhoneMode, ProjectAdmin, ProjectSettings,
};

/// The fixture: ids, and the row ids each site was sent (in dispatch order).
struct World {
    _dir: tempfile::TempDir,
    store: Store,
    admin: Scope,
    project: i64,
    hz: i64,
    cd: i64,
    hz_rows: Vec<u64>,
    cd_rows: Vec<u64>,
    hz_batch: i64,
    cd_batch: i64,
}

fn field(key: &str, title: &str, kind: FieldSpecKind, options: &[&str], filterable: bool, hidden: bool) -> FieldSpec {
    FieldSpec { filterable, hidden, ..FieldSpec::new(key, title, kind, options) }
}

/// Six customers: three to 杭州 (13800000001-3), three to 成都 (13800000004-6). Plans
/// alternate 甲套餐 / 乙套餐; each row has a hidden 身份证 field.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.init_admin("admin").unwrap();
    let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
    let hz = store.create_site("杭州职场").unwrap();
    let cd = store.create_site("成都职场").unwrap();
    store.create_site("广州职场").unwrap();
    let category = store.create_category("信用卡").unwrap();
    let project = store
        .create_project(&NewProject {
            category_id: category,
            name: "分期推荐".into(),
            template_id: None,
            script: String::new(),
            hide_middle_digits: true,
            customer_fields: vec![
                field("name", "姓名", FieldSpecKind::Text, &[], true, false),
                field("plan", "推荐套餐", FieldSpecKind::SingleChoice, &["甲套餐", "乙套餐"], true, false),
                field("idno", "身份证", FieldSpecKind::Text, &[], true, true),
                field("city", "城市", FieldSpecKind::Text, &[], false, false),
            ],
            record_fields: vec![
                field("result", "营销结果", FieldSpecKind::SingleChoice, &["成功", "失败"], true, false),
                field("note", "备注", FieldSpecKind::Text, &[], false, false),
                field("score", "内部评分", FieldSpecKind::Number, &[], true, true),
            ],
            settings: ProjectSettings::default(),
            phone_mode: PhoneMode::Number,
        })
        .unwrap();
    store.set_project_sites(project, &[hz, cd]).unwrap();
    let rows: Vec<GoodRow> = (1..=6)
        .map(|n| GoodRow {
            row_number: n + 1,
            phone: format!("1380000000{n}"),
            fields: FieldValues::from(vec![format!("客户{n}"), if n % 2 == 1 { "甲套餐" } else { "乙套餐" }.to_string(), format!("ID{n}"), "杭州".to_string()]),
        })
        .collect();
    let file = store.save_import(project, "名单.xlsx", b"xlsx", "admin", &rows, &ImportReport::default()).unwrap();
    let parts = vec![
        ExclusivePart { name: "杭州批次".into(), count: 3, site_id: hz },
        ExclusivePart { name: "成都批次".into(), count: 3, site_id: cd },
    ];
    let request = DispatchRequest {
        file_id: file,
        name: String::new(),
        priority: 5,
        site_ids: vec![],
        creator: "admin".into(),
        kind: DispatchKind::Exclusive(parts),
        update_existing: false,
        description: String::new(),
    };
    let outcome = store.dispatch(&request, &admin).unwrap();
    let sent = |site: i64| -> Vec<u64> {
        store
            .down_log(site, 0, 10_000)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                DownEvent::BatchChunk(chunk) => Some(chunk.rows.into_iter().map(|r| r.row_id)),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let (hz_rows, cd_rows) = (sent(hz), sent(cd));
    assert_eq!((hz_rows.len(), cd_rows.len()), (3, 3));
    World { _dir: dir, store, admin, project, hz, cd, hz_rows, cd_rows, hz_batch: outcome.batch_ids[0], cd_batch: outcome.batch_ids[1] }
}

impl World {
    fn up(&self, site: i64, seq: u64, event: UpEvent) {
        HubStore::apply_up(&self.store, site as u64, &UpEntry { epoch: 1, seq, event }).unwrap();
    }

    /// A call by `agent` on `(site, batch, row)` and its record, saved at `saved_at`.
    fn call_and_record(&self, seq: u64, (site, batch, row): (i64, i64, u64), agent: &str, saved_at: i64, result: &str) {
        let attempt = CallAttempt {
            attempt_id: seq,
            batch_id: batch as u64,
            row_id: row,
            started_at: saved_at - 100,
            answered_at: Some(saved_at - 90),
            ended_at: saved_at - 10,
            outcome: Outcome::Connected,
            hangup_side: None,
            agent: Some(agent.into()),
            talk_seconds: 80,
            recording_sha256: None,
            kind: AttemptKind::Predictive,
        };
        self.up(site, seq * 2, UpEvent::CallAttempt(attempt));
        let values = vec![("result".into(), result.into()), ("note".into(), format!("第{seq}通")), ("score".into(), "9".into())];
        let record = BusinessRecord { attempt_id: seq, batch_id: batch as u64, row_id: row, agent: agent.into(), saved_at, values };
        self.up(site, seq * 2 + 1, UpEvent::BusinessRecord(record));
    }

    /// A sub-admin whose data scope is `sites` and who administers the project at `manages`.
    fn sub_admin(&self, name: &str, sites: &[i64], manages: &[i64]) -> Scope {
        let role = self.store.create_role(&format!("{name}角色"), &["data.customer".to_string(), "data.business".to_string()]).unwrap();
        let new = NewAccount { username: name.into(), password: "sub-secret-1".into(), role_id: role, group_id: None, site_ids: sites.to_vec() };
        let id = self.store.create_account(&new).unwrap();
        let mut admins = self.store.project_admins(self.project).unwrap();
        if !manages.is_empty() {
            admins.push(ProjectAdmin { account_id: id, site_ids: manages.to_vec() });
            self.store.set_project_admins(self.project, &admins).unwrap();
        }
        self.store.scope(&Account { id, username: name.into(), is_admin: false }).unwrap()
    }

    fn query(&self) -> AcrossQuery {
        AcrossQuery { project_id: self.project, limit: 50, ..AcrossQuery::default() }
    }
}

fn values(row: &[DataValue]) -> Vec<String> {
    row.iter().map(|v| format!("{}={}", v.key, v.value)).collect()
}

#[test]
fn customer_rows_show_current_values_and_filter_by_them() {
    let w = world();
    // 杭州's agent 8001 calls its first customer and moves them to 乙套餐; 成都's agent
    // edits a customer it never called.
    w.call_and_record(1, (w.hz, w.hz_batch, w.hz_rows[0]), "8001", 1_700_000_000, "成功");
    let edit = |batch: i64, row: u64, agent: &str, edited_at: i64, plan: &str| {
        UpEvent::CustomerEdit(CustomerEdit {
            edit_id: 1,
            batch_id: batch as u64,
            row_id: row,
            agent: agent.into(),
            edited_at,
            changes: vec![("plan".into(), plan.into())],
        })
    };
    w.up(w.hz, 10, edit(w.hz_batch, w.hz_rows[0], "8001", 1_700_000_050, "乙套餐"));
    w.up(w.cd, 11, edit(w.cd_batch, w.cd_rows[2], "9002", 1_700_000_060, "甲套餐"));

    let all = w.store.customer_data(&w.admin, &w.query()).unwrap();
    assert_eq!(all.rows.len(), 6);
    // Newest dispatch first: 成都's batch, then 杭州's; masked numbers.
    let phones: Vec<&str> = all.rows.iter().map(|r| r.phone.as_str()).collect();
    assert_eq!(phones, ["138****0006", "138****0005", "138****0004", "138****0003", "138****0002", "138****0001"]);
    let first = all.rows.iter().find(|r| r.row_id == w.hz_rows[0] as i64).unwrap();
    assert_eq!(values(&first.values), ["name=客户1", "plan=乙套餐", "idno=ID1", "city=杭州"], "the site's edit wins; the admin sees hidden fields");
    assert_eq!((first.agent.as_deref(), first.last_edited_by.as_deref(), first.site_name.as_str()), (Some("8001"), Some("8001"), "杭州职场"));
    let edited = all.rows.iter().find(|r| r.row_id == w.cd_rows[2] as i64).unwrap();
    assert_eq!((edited.agent.as_deref(), edited.last_edited_at), (Some("9002"), Some(1_700_000_060)));

    // Filter by the current value, across both sites.
    let mut query = w.query();
    query.fields = vec![("plan".into(), "乙套餐".into())];
    let found = w.store.customer_data(&w.admin, &query).unwrap();
    let names: Vec<String> = found.rows.iter().map(|r| r.values[0].value.clone()).collect();
    assert_eq!(names, ["客户4", "客户2", "客户1"], "客户6 was 乙套餐 until 成都 edited it; 客户1 became 乙套餐");
    query.fields = vec![("name".into(), "户3".into())];
    assert_eq!(w.store.customer_data(&w.admin, &query).unwrap().rows.len(), 1, "text matches a part");
    query.fields = vec![];
    query.agent = Some("9002".into());
    assert_eq!(w.store.customer_data(&w.admin, &query).unwrap().rows.len(), 1);
    query.agent = None;
    query.site_id = Some(w.hz);
    query.phone = Some("13800000002".into());
    let one = w.store.customer_data(&w.admin, &query).unwrap();
    assert_eq!(one.rows.iter().map(|r| r.phone.as_str()).collect::<Vec<_>>(), ["138****0002"]);

    // Fields that are not filters, values that cannot match.
    query = w.query();
    query.fields = vec![("city".into(), "杭州".into())];
    assert!(matches!(w.store.customer_data(&w.admin, &query), Err(AcrossError::NotFilterable(k)) if k == "city"));
    query.fields = vec![("plan".into(), "丙套餐".into())];
    let err = w.store.customer_data(&w.admin, &query).unwrap_err();
    assert!(err.to_string().starts_with("filter 推荐套餐: \"丙套餐\" is not one of the options"), "{err}");
    assert!(err.zh().starts_with("筛选条件“推荐套餐”：“丙套餐”不是可选项"), "{}", err.zh());
}

#[test]
fn pages_follow_a_keyset_cursor_without_gaps_or_repeats() {
    let w = world();
    // Seven records over both sites, some saved in the same second.
    let saves = [(w.hz, w.hz_batch, w.hz_rows[0], 100, "成功"), (w.cd, w.cd_batch, w.cd_rows[0], 100, "失败"), (w.hz, w.hz_batch, w.hz_rows[1], 200, "成功"),
        (w.cd, w.cd_batch, w.cd_rows[1], 300, "成功"), (w.cd, w.cd_batch, w.cd_rows[2], 300, "失败"), (w.hz, w.hz_batch, w.hz_rows[2], 400, "失败"),
        (w.hz, w.hz_batch, w.hz_rows[0], 500, "成功")];
    for (seq, (site, batch, row, at, result)) in saves.iter().enumerate() {
        w.call_and_record(seq as u64 + 1, (*site, *batch, *row), if *site == w.hz { "8001" } else { "9001" }, 1_700_000_000 + at, result);
    }
    // Batch by batch (a project of few batches) and through the time index (of many): the
    // same pages.
    let mut both = Vec::new();
    for per_batch_max in [PER_BATCH_MAX, 0] {
        let mut query = w.query();
        query.limit = 3;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = w.store.business_data_by(&w.admin, &query, per_batch_max).unwrap();
            pages += 1;
            seen.extend(page.rows.iter().map(|r| (r.saved_at, r.site_id, r.attempt_id)));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut expected = seen.clone();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        expected.dedup();
        assert_eq!(seen, expected, "newest first, each record once");
        assert_eq!(seen.len(), 7);
        query = w.query();
        query.fields = vec![("result".into(), "失败".into())];
        query.from = Some(1_700_000_100);
        both.push((seen, w.store.business_data_by(&w.admin, &query, per_batch_max).unwrap()));
    }
    assert_eq!(both[0], both[1]);

    // Customer pages too: six rows by two.
    let mut query = w.query();
    query.limit = 2;
    let mut rows = Vec::new();
    loop {
        let page = w.store.customer_data(&w.admin, &query).unwrap();
        rows.extend(page.rows.iter().map(|r| r.row_id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let mut all: Vec<i64> = w.hz_rows.iter().chain(&w.cd_rows).map(|&r| r as i64).collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(rows, all);

    // A filter across both sites, a time range, a cursor that is not one.
    let mut query = w.query();
    query.fields = vec![("result".into(), "成功".into())];
    let page = w.store.business_data(&w.admin, &query).unwrap();
    let sites: BTreeSet<&str> = page.rows.iter().map(|r| r.site_name.as_str()).collect();
    assert_eq!((page.rows.len(), sites.len()), (4, 2));
    assert_eq!(values(&page.rows[0].values), ["result=成功", "note=第7通", "score=9"]);
    query.from = Some(1_700_000_200);
    query.to = Some(1_700_000_400);
    assert_eq!(w.store.business_data(&w.admin, &query).unwrap().rows.len(), 2, "saved at 200 and 300, not 400");
    query.after = Some("s1.2".into());
    assert!(matches!(w.store.business_data(&w.admin, &query), Err(AcrossError::BadCursor(_))));
    query.after = None;
    query.to = Some(1_699_999_000);
    assert!(matches!(w.store.business_data(&w.admin, &query), Err(AcrossError::BadRange)));
}

/// The plan SQLite picks for the page queries: no sort of the whole project in memory and
/// no scan of every record; the cursor is a range of the index.
#[test]
fn page_queries_read_an_index_in_order() {
    let w = world();
    let conn = w.store.conn();
    let plan = |sql: &str, binds: usize| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![SqlValue::Null; binds];
        // `parent` 0: the statement itself, not a per-row subquery (those sort a row's few
        // edits, which is fine).
        let rows = stmt.query_map(params_from_iter(nulls), |r| Ok((r.get::<_, i64>(1)?, r.get::<_, String>(3)?))).unwrap();
        rows.map(|r| r.unwrap()).map(|(parent, detail)| if parent == 0 { detail } else { format!("  {detail}") }).collect::<Vec<_>>().join("\n")
    };
    let records = plan(&business_select(" AND (r.saved_at, r.site_id, r.attempt_id) < (?, ?, ?)", false), 5);
    assert!(records.contains("business_records_saved") && !records.contains("\nUSE TEMP B-TREE"), "{records}");
    let records = plan(&business_select(" AND (r.saved_at, r.site_id, r.attempt_id) < (?, ?, ?)", true), 5);
    assert!(records.contains("business_records_batch_saved (batch_id=? AND (saved_at,site_id,attempt_id)<(?,?,?))") && !records.contains("\nUSE TEMP B-TREE"), "{records}");
    let customers = plan(&customer_select(""), 3);
    assert!(customers.contains("batch_rows_batch (batch_id=? AND id<?)") && !customers.contains("\nUSE TEMP B-TREE"), "{customers}");
}

#[test]
fn a_sub_admin_sees_its_sites_without_hidden_fields() {
    let w = world();
    w.call_and_record(1, (w.hz, w.hz_batch, w.hz_rows[0]), "8001", 1_700_000_100, "成功");
    w.call_and_record(2, (w.cd, w.cd_batch, w.cd_rows[0]), "9001", 1_700_000_200, "成功");
    let hz_admin = w.sub_admin("hz_admin", &[w.hz], &[w.hz]);
    let outsider = w.sub_admin("gz_admin", &[w.hz, w.cd], &[]);

    let records = w.store.business_data(&hz_admin, &w.query()).unwrap();
    assert_eq!(records.rows.iter().map(|r| r.site_name.as_str()).collect::<Vec<_>>(), ["杭州职场"]);
    assert_eq!(records.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["result", "note"], "内部评分 is hidden");
    assert_eq!(values(&records.rows[0].values), ["result=成功", "note=第1通"]);
    let customers = w.store.customer_data(&hz_admin, &w.query()).unwrap();
    assert_eq!(customers.rows.len(), 3);
    assert!(customers.rows.iter().all(|r| r.site_id == w.hz && !r.values.iter().any(|v| v.key == "idno")));
    // Another site asked for by name: nothing, not an error that confirms it.
    let mut query = w.query();
    query.site_id = Some(w.cd);
    assert!(w.store.customer_data(&hz_admin, &query).unwrap().rows.is_empty());
    assert!(w.store.business_data(&hz_admin, &query).unwrap().rows.is_empty());
    // A hidden field is no filter for it (the answers would reveal it).
    let mut query = w.query();
    query.fields = vec![("idno".into(), "ID1".into())];
    assert!(matches!(w.store.customer_data(&hz_admin, &query), Err(AcrossError::NotFilterable(_))));
    assert_eq!(w.store.customer_data(&w.admin, &query).unwrap().rows.len(), 1);
    // Not a project admin of it: the project does not exist.
    assert!(matches!(w.store.business_data(&outsider, &w.query()), Err(AcrossError::UnknownProject(_))));
    assert!(matches!(w.store.across_sites(&outsider, w.project), Err(AcrossError::UnknownProject(_))));
    assert_eq!(w.store.across_sites(&hz_admin, w.project).unwrap(), [(w.hz, "杭州职场".to_string())]);
}

fn words() -> ExportWords {
    ExportWords {
        sheet_customers: "客户资料",
        sheet_records: "业务资料",
        site: "职场",
        batch: "批次",
        phone: "电话号码",
        agent: "坐席",
        dispatched_at: "下发时间",
        last_edited_at: "最后编辑",
        last_edited_by: "最后编辑人",
        saved_by: "提交人",
        saved_at: "提交时间",
        truncated: "已达上限",
    }
}

fn read_sheet(bytes: Vec<u8>) -> (String, Vec<Vec<String>>) {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).unwrap();
    (name, range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect())
}

#[test]
fn exports_hold_every_filtered_row_in_words() {
    let w = world();
    for n in 0..3 {
        w.call_and_record(n + 1, (w.hz, w.hz_batch, w.hz_rows[n as usize]), "8001", 1_700_000_000 + n as i64, if n == 1 { "失败" } else { "成功" });
        w.call_and_record(n + 11, (w.cd, w.cd_batch, w.cd_rows[n as usize]), "9001", 1_700_000_100 + n as i64, "成功");
    }
    let mut query = w.query();
    query.fields = vec![("result".into(), "成功".into())];
    let (name, rows) = read_sheet(records_xlsx(&w.store, &w.admin, &query, &words()).unwrap());
    assert_eq!(name, "业务资料");
    assert_eq!(rows[0], ["职场", "批次", "电话号码", "提交人", "提交时间", "营销结果", "备注", "内部评分"]);
    assert_eq!(rows.len(), 6, "five 成功 records and the header: {rows:?}");
    assert_eq!(rows[1], ["成都职场", "成都批次", "138****0006", "9001", &china_time(1_700_000_102), "成功", "第13通", "9"]);
    assert_eq!(china_time(1_700_000_102), "2023-11-15 06:15:02", "China time, UTC+8");
    assert!(rows.iter().skip(1).all(|r| r[5] == "成功"));

    // A sub-admin's export: its site only, no hidden column.
    let hz_admin = w.sub_admin("hz_admin", &[w.hz], &[w.hz]);
    let (_, rows) = read_sheet(records_xlsx(&w.store, &hz_admin, &w.query(), &words()).unwrap());
    assert_eq!(rows[0], ["职场", "批次", "电话号码", "提交人", "提交时间", "营销结果", "备注"]);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().skip(1).all(|r| r[0] == "杭州职场" && r[2].contains("****")));

    let (name, rows) = read_sheet(customers_xlsx(&w.store, &hz_admin, &w.query(), &words()).unwrap());
    assert_eq!(name, "客户资料");
    assert_eq!(rows[0], ["职场", "批次", "电话号码", "坐席", "下发时间", "最后编辑", "最后编辑人", "姓名", "推荐套餐", "城市"]);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3][..4], ["杭州职场".to_string(), "杭州批次".into(), "138****0001".into(), "8001".into()]);
    assert_eq!(rows[3][7..], ["客户1".to_string(), "甲套餐".into(), "杭州".into()]);
    // More rows than one export page (500) come out whole.
    let many: Vec<(u64, i64)> = (0..520).map(|n| (1000 + n, 1_700_001_000 + n as i64)).collect();
    for (attempt, at) in &many {
        w.call_and_record(*attempt, (w.cd, w.cd_batch, w.cd_rows[0]), "9001", *at, "失败");
    }
    query.fields = vec![("result".into(), "失败".into())];
    let (_, rows) = read_sheet(records_xlsx(&w.store, &w.admin, &query, &words()).unwrap());
    assert_eq!(rows.len(), 1 + 520 + 1);
}

#[test]
fn filterable_flags_are_set_kept_by_templates_and_stay_at_hq() {
    let w = world();
    let before = w.store.project(w.project).unwrap().unwrap();
    let sent = w.store.down_log(w.hz, 0, 10_000).unwrap().len();
    w.store.set_filterable_fields(w.project, &["city".into()], &["note".into()]).unwrap();
    let after = w.store.project(w.project).unwrap().unwrap();
    let flags = |fields: &[FieldSpec]| fields.iter().filter(|f| f.filterable).map(|f| f.key.clone()).collect::<Vec<_>>();
    assert_eq!((flags(&after.customer_fields), flags(&after.record_fields)), (vec!["city".to_string()], vec!["note".to_string()]));
    assert_eq!(after.version, before.version, "no new definition for the sites");
    assert_eq!(w.store.down_log(w.hz, 0, 10_000).unwrap().len(), sent, "nothing goes down");
    assert!(matches!(w.store.set_filterable_fields(w.project, &["nope".into()], &[]), Err(AcrossError::NotFilterable(_))));
    // A sub-project cloned from this one keeps the flags.
    let clone = w
        .store
        .create_project(&NewProject {
            category_id: before.category_id,
            name: "分期推荐二期".into(),
            template_id: Some(w.project),
            script: String::new(),
            hide_middle_digits: false,
            customer_fields: vec![],
            record_fields: vec![],
            settings: ProjectSettings::default(),
            phone_mode: PhoneMode::Number,
        })
        .unwrap();
    let clone = w.store.project(clone).unwrap().unwrap();
    assert_eq!(flags(&clone.customer_fields), ["city"]);
    // The wire form has no such flag: the site's definition is unchanged by it.
    assert_eq!(after.customer_fields[3].to_wire(), before.customer_fields[3].to_wire());
}

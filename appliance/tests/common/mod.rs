//! Fixtures shared by the appliance's tests: a project and a batch as HQ would send them.

#![allow(dead_code)]

use sync_protocol::{
    BatchChunk, BatchManifest, CustomerRow, DownEntry, DownEvent, FieldDef, FieldKind, ProjectDef,
    ProjectParams, rows_hash,
};

pub const PROJECT_ID: u64 = 7;

pub fn field(key: &str, title: &str, kind: FieldKind, required: bool) -> FieldDef {
    FieldDef { key: key.into(), title: title.into(), kind, required, read_only: false, hidden: false }
}

/// A project with a name field, a hidden field, a required single choice and a free note.
pub fn project(version: u64) -> ProjectDef {
    let mut secret = field("internal_code", "内部编码", FieldKind::Text, false);
    secret.hidden = true;
    ProjectDef {
        project_id: PROJECT_ID,
        category: "套餐类".into(),
        name: format!("家庭套餐 v{version}"),
        script: "您好，这里是客服中心。".into(),
        hide_middle_digits: true,
        customer_fields: vec![field("name", "姓名", FieldKind::Text, false), secret],
        record_fields: vec![
            field("result", "办理结果", FieldKind::SingleChoice(vec!["成功".into(), "失败".into()]), true),
            field("note", "备注", FieldKind::Text, false),
        ],
        params: ProjectParams::default(),
        version,
    }
}

pub fn rows(batch_id: u64, n: u64) -> Vec<CustomerRow> {
    (0..n)
        .map(|i| CustomerRow {
            row_id: batch_id * 1000 + i,
            phone: format!("1380013{:04}", batch_id * 100 + i),
            fields: vec![("name".into(), format!("客户{i}")), ("internal_code".into(), format!("X{i}"))],
        })
        .collect()
}

pub fn manifest(batch_id: u64, rows: &[CustomerRow], n_chunks: u32, priority: u8, imported_at: i64) -> BatchManifest {
    BatchManifest {
        batch_id,
        project_id: PROJECT_ID,
        name: format!("批次{batch_id}"),
        priority,
        imported_at,
        n_rows: rows.len() as u64,
        n_chunks,
        rows_hash: rows_hash(rows),
    }
}

/// The down-log events of a project plus one batch in chunks of `chunk_len` rows.
pub fn batch_events(batch_id: u64, rows: &[CustomerRow], chunk_len: usize, priority: u8, imported_at: i64) -> Vec<DownEvent> {
    let chunks: Vec<&[CustomerRow]> = rows.chunks(chunk_len).collect();
    let mut events = vec![DownEvent::Project(project(1))];
    for (idx, chunk) in chunks.iter().enumerate() {
        events.push(DownEvent::BatchChunk(BatchChunk { batch_id, chunk_idx: idx as u32, rows: chunk.to_vec() }));
    }
    events.push(DownEvent::BatchManifest(manifest(batch_id, rows, chunks.len() as u32, priority, imported_at)));
    events
}

/// Numbers `events` as down-log entries from `first_seq`.
pub fn entries(first_seq: u64, events: Vec<DownEvent>) -> Vec<DownEntry> {
    events.into_iter().enumerate().map(|(idx, event)| DownEntry { seq: first_seq + idx as u64, event }).collect()
}

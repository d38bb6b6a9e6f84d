//! The site report pages' tables that follow the manual's own layout rather than a plain
//! report: 项目任务统计's per-batch and daily tables (counts with their rates), 项目任务榜单
//! per agent, 项目任务批次's per-number detail, and the leaderboard's `.xlsx`.
//!
//! 分机挂断 counts the calls the agent's side hung up; rates are of the dials.

use reports::{Condition, KeyPart, ReportDef, ReportTable, Statistic, Subject, Tag, Zone, day_text};
use rust_xlsxwriter::{Chart, ChartType, Format, Workbook, XlsxError};
use sync_protocol::FieldKind;

use super::reports::{Ctx, Section, cell, column, count, ratio, with_rate};
use crate::store::Viewer;
use crate::web::{ApiError, AppState};

fn chart(kind: &'static str, categories: Vec<String>, series: Vec<(&str, Vec<i64>)>) -> String {
    let series: Vec<serde_json::Value> = series
        .into_iter()
        .map(|(name, data)| serde_json::json!({"name": name, "data": data}))
        .collect();
    serde_json::json!({"kind": kind, "categories": categories, "series": series}).to_string()
}

/// The base counts of the task tables and, apart, the calls the agent's side hung up.
fn task_tables(state: &AppState, ctx: &Ctx, tag: Tag) -> Result<(ReportTable, ReportTable), ApiError> {
    let columns = vec![
        column("d", Statistic::Dials),
        column("cc", Statistic::CustomerConnected),
        column("ec", Statistic::ExtensionConnected),
        column("ivr", Statistic::IvrAbandon),
        column("q", Statistic::QueueAbandon),
    ];
    let def = ReportDef { name: "t".into(), tags: vec![tag], conditions: ctx.batch_conditions(), columns };
    let mut hangup = ctx.batch_conditions();
    hangup.push(Condition { subject: Subject::HangupSide, values: vec!["agent".into()], negate: false });
    let agent_side =
        ReportDef { name: "h".into(), tags: vec![tag], conditions: hangup, columns: vec![column("d", Statistic::Dials)] };
    let filter = ctx.filter(false);
    Ok((state.store.run_report(&def, &filter)?, state.store.run_report(&agent_side, &filter)?))
}

fn counts_of(table: &ReportTable, keys: &[KeyPart]) -> Vec<i64> {
    table.rows.iter().find(|r| r.keys == keys).map(|r| r.values.iter().map(count).collect()).unwrap_or_default()
}

fn at(values: &[i64], i: usize) -> i64 {
    values.get(i).copied().unwrap_or(0)
}

/// S7 项目任务统计: per batch (外呼任务统计) and the manual's daily table (每日统计).
pub(super) fn task_sections(state: &AppState, ctx: &Ctx) -> Result<Vec<Section>, ApiError> {
    let r = ctx.r;
    let (main, agent_side) = task_tables(state, ctx, Tag::Batch)?;
    let mut rows = Vec::new();
    let (mut categories, mut dials, mut answered, mut connected) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sums = [0_i64; 7];
    for (batch, name, numbers) in ctx.batches.iter().filter(|(b, _, _)| ctx.batch_id.is_none_or(|c| c == *b)) {
        let key = [KeyPart::Int(*batch as i64)];
        let v = counts_of(&main, &key);
        let h = at(&counts_of(&agent_side, &key), 0);
        let d = at(&v, 0);
        let row = [*numbers as i64, d, at(&v, 1), d - at(&v, 1), h, at(&v, 3), at(&v, 4)];
        for (sum, value) in sums.iter_mut().zip(row) {
            *sum += value;
        }
        rows.push(batch_row(format!("{name}（{batch}）"), &row));
        categories.push(name.clone());
        dials.push(d);
        answered.push(at(&v, 1));
        connected.push(at(&v, 2));
    }
    let by_batch = Section {
        id: "by-batch".into(),
        title: r.by_batch.into(),
        headers: [r.batch, r.numbers, r.system_dials, r.called_connected, r.called_missed, r.ext_hangup, r.ivr_hangup, r.queue_hangup]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        total: batch_row(r.total.to_string(), &sums),
        chart: chart("bar", categories, vec![(r.dials_total, dials), (r.customer_connected, answered), (r.ext_connected_rate, connected)]),
    };
    Ok(vec![by_batch, daily_section(state, ctx)?])
}

fn batch_row(label: String, v: &[i64; 7]) -> Vec<String> {
    vec![
        label,
        v[0].to_string(),
        v[1].to_string(),
        with_rate(v[2], v[1]),
        with_rate(v[3], v[1]),
        with_rate(v[4], v[1]),
        with_rate(v[5], v[1]),
        with_rate(v[6], v[1]),
    ]
}

fn daily_row(label: String, v: &[i64], hangup: i64) -> Vec<String> {
    let d = at(v, 0);
    vec![
        label,
        d.to_string(),
        with_rate(at(v, 1), d),
        with_rate(at(v, 2), d),
        with_rate(at(v, 3), d),
        with_rate(at(v, 4), d),
        with_rate(hangup, d),
    ]
}

/// 每日统计: 总计 first, then each day with calls, newest first (as the manual shows it).
fn daily_section(state: &AppState, ctx: &Ctx) -> Result<Section, ApiError> {
    let r = ctx.r;
    let (main, agent_side) = task_tables(state, ctx, Tag::Day)?;
    let total: Vec<i64> = main.total.iter().map(count).collect();
    let mut rows = vec![daily_row(r.total.to_string(), &total, agent_side.total.first().map(count).unwrap_or(0))];
    let (mut categories, mut dials, mut answered, mut connected) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &main.rows {
        let v: Vec<i64> = row.values.iter().map(count).collect();
        let day = ctx.key_text(Tag::Day, &row.keys[0]);
        categories.push(day.clone());
        dials.push(at(&v, 0));
        answered.push(at(&v, 1));
        connected.push(at(&v, 2));
        rows.insert(1, daily_row(day, &v, at(&counts_of(&agent_side, &row.keys), 0)));
    }
    Ok(Section {
        id: "by-day".into(),
        title: r.by_day.into(),
        headers: [r.tasks, r.dials_total, r.customer_connected, r.ext_connected_rate, r.ivr_hangup, r.queue_hangup, r.ext_hangup]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        rows,
        total: Vec::new(),
        chart: chart("line", categories, vec![(r.dials_total, dials), (r.customer_connected, answered), (r.ext_connected_rate, connected)]),
    })
}

/// The project's business result (本次业务结果-成功): the first single choice field with an
/// option that is, or starts with, 成功 (成功办理); its key, title and that option.
fn result_field(state: &AppState, project_id: u64) -> Result<(String, String, String), ApiError> {
    let def = state.store.project(project_id)?;
    let found = def.into_iter().flat_map(|def| def.record_fields).find_map(|f| match &f.kind {
        FieldKind::SingleChoice(options) => {
            let option = options.iter().find(|o| o.as_str() == "成功").or_else(|| options.iter().find(|o| o.starts_with("成功")));
            option.map(|o| (f.key.clone(), f.title.clone(), o.clone()))
        }
        _ => None,
    });
    Ok(found.unwrap_or_else(|| ("result".into(), String::new(), "成功".into())))
}

/// S9 项目任务榜单: per agent, most successes first; the calls no agent took last.
/// 号码总数 counts the numbers the agent's attempts dialed, a redial again (in the manual's
/// example it equals 外呼数): the aggregates cannot count distinct numbers, and reports
/// must not scan the raw attempts.
pub(super) fn agent_section(state: &AppState, ctx: &Ctx) -> Result<Section, ApiError> {
    let r = ctx.r;
    let project_id = ctx.project_id.unwrap_or_default();
    let (key, title, option) = result_field(state, project_id)?;
    let success = Statistic::FieldValue { key, value: option.clone() };
    let success_header = format!("{}-{option}", if title.is_empty() { r.result_field } else { title.as_str() });
    let def = ReportDef {
        name: r.agents.into(),
        tags: vec![Tag::Agent],
        conditions: vec![],
        columns: vec![
            column(r.numbers, Statistic::Attempts),
            column(r.dials, Statistic::Dials),
            column(r.dial_connected, Statistic::DialConnected),
            ratio(r.connect_rate, Statistic::DialConnected, Statistic::Dials),
            column(&success_header, success.clone()),
            ratio(r.success_rate, success, Statistic::DialConnected),
            column(r.agents_reached, Statistic::AgentsReached),
            column(r.ext_talk_seconds, Statistic::TalkSeconds),
        ],
    };
    let table = state.store.run_report(&def, &ctx.filter(false))?;
    let mut ranked: Vec<&reports::Row> = table.rows.iter().collect();
    let agent_of = |row: &reports::Row| match row.keys.first() {
        Some(KeyPart::SiteText { text, .. }) => text.clone(),
        _ => String::new(),
    };
    ranked.sort_by_key(|row| (agent_of(row).is_empty(), -count(&row.values[4]), -count(&row.values[2]), agent_of(row)));
    let mut rows = Vec::new();
    let (mut categories, mut connected, mut successes) = (Vec::new(), Vec::new(), Vec::new());
    for (i, row) in ranked.iter().enumerate() {
        let name = ctx.key_text(Tag::Agent, &row.keys[0]);
        let mut cells = vec![(i + 1).to_string(), name.clone()];
        cells.extend(row.values.iter().map(cell));
        rows.push(cells);
        categories.push(name);
        connected.push(count(&row.values[2]));
        successes.push(count(&row.values[4]));
    }
    let mut headers = vec!["#".to_string(), r.agent_account.to_string()];
    headers.extend(table.headers.iter().cloned());
    let mut total = vec![r.total.to_string(), String::new()];
    total.extend(table.total.iter().map(cell));
    Ok(Section {
        id: "leaderboard".into(),
        title: def.name.clone(),
        headers,
        rows,
        total,
        chart: chart("bar", categories, vec![(r.dial_connected, connected), (&success_header, successes)]),
    })
}

/// A moment as local time in `zone`, `YYYY-MM-DD HH:MM:SS`.
fn local_time(zone: &Zone, unix: i64) -> String {
    let local = unix + zone.offset_at(unix);
    let (secs, day) = (local.rem_euclid(86_400), local.div_euclid(86_400));
    format!("{} {:02}:{:02}:{:02}", day_text(day), secs / 3600, secs % 3600 / 60, secs % 60)
}

/// S7 项目任务批次: one page of the chosen batch's attempts (the newest batch by default).
pub(super) fn batch_detail(
    state: &AppState,
    ctx: &Ctx,
    viewer: &Viewer,
    page: u32,
    per_page: u32,
) -> Result<(Option<Section>, u64), ApiError> {
    let r = ctx.r;
    let Some(batch) = ctx.batch_id.or_else(|| ctx.batches.first().map(|b| b.0)) else {
        return Ok((None, 0));
    };
    let (attempts, total) = state.store.batch_attempts(viewer, batch, page, per_page)?;
    let rows = attempts
        .into_iter()
        .map(|a| {
            vec![
                a.attempt_id.to_string(),
                a.phone,
                a.nth.to_string(),
                local_time(&ctx.zone, a.started_at),
                r.outcome(a.outcome.as_deref().unwrap_or("")).to_string(),
                a.agent.unwrap_or_default(),
                a.talk_seconds.to_string(),
            ]
        })
        .collect();
    let name = ctx.batches.iter().find(|b| b.0 == batch).map(|b| b.1.clone()).unwrap_or_default();
    Ok((
        Some(Section {
            id: "numbers".into(),
            title: format!("{name}（{batch}）"),
            headers: ["#", r.phone, r.nth, r.called_at, r.outcome, r.agent, r.talk_seconds].iter().map(|h| h.to_string()).collect(),
            rows,
            total: Vec::new(),
            chart: String::new(),
        }),
        total,
    ))
}

/// Writes a cell as a number when it is one (a count, or a rate as a percentage).
fn write_cell(sheet: &mut rust_xlsxwriter::Worksheet, row: u32, col: u16, text: &str, pct: &Format) -> Result<(), XlsxError> {
    if let Ok(n) = text.parse::<i64>() {
        sheet.write_number(row, col, n as f64)?;
    } else if let Some(rate) = text.strip_suffix('%').and_then(|t| t.parse::<f64>().ok()) {
        sheet.write_number_with_format(row, col, rate / 100.0, pct)?;
    } else {
        sheet.write_string(row, col, text)?;
    }
    Ok(())
}

/// The leaderboard as a workbook: its title, period (local dates), the table under the
/// page's words, and a native bar chart of connected calls and successes per agent.
pub(super) fn section_xlsx(ctx: &Ctx, section: &Section) -> Result<Vec<u8>, XlsxError> {
    let r = ctx.r;
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(r.agents)?;
    let bold = Format::new().set_bold();
    let pct = Format::new().set_num_format("0.00%");
    let project = ctx.projects.iter().find(|p| Some(p.0) == ctx.project_id).map(|p| p.1.clone()).unwrap_or_default();
    sheet.write_string_with_format(0, 0, format!("{} · {project}", section.title), &bold)?;
    let zone = if ctx.zone.name() == "Asia/Shanghai" { r.zone_note.to_string() } else { format!("({})", ctx.zone.name()) };
    let period = format!("{}：{} — {} {zone}", r.range, day_text(ctx.days.first), day_text(ctx.days.last));
    sheet.write_string(1, 0, period)?;
    for (col, header) in section.headers.iter().enumerate() {
        sheet.write_string_with_format(3, col as u16, header, &bold)?;
    }
    for (i, cells) in section.rows.iter().chain(std::iter::once(&section.total)).enumerate() {
        for (col, text) in cells.iter().enumerate() {
            write_cell(sheet, 4 + i as u32, col as u16, text, &pct)?;
        }
    }
    if !section.rows.is_empty() {
        let last = 3 + section.rows.len() as u32;
        let mut bars = Chart::new(ChartType::Column);
        for col in [4_u16, 6] {
            bars.add_series()
                .set_name((r.agents, 3, col))
                .set_categories((r.agents, 4, 1, last, 1))
                .set_values((r.agents, 4, col, last, col));
        }
        sheet.insert_chart(last + 3, 1, &bars)?;
    }
    workbook.save_to_buffer()
}

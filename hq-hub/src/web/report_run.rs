//! Running a report for one console caller: the preview's filters and the caller's data scope
//! turned into the engine's [`Filter`]s, the answers merged, and the keys turned into words
//! (site and project names, 呼出 / 呼入, 周一 …) for the page, the chart and the export.
//!
//! - A sub-admin sees each project only at the sites it manages there, and those differ per
//!   project, while one engine [`Filter`] is a product of projects × sites. So projects with
//!   the same visible sites run together and the answers are added up. Ratios do not add, so
//!   every run asks for the plain statistics the columns need ([`Needs`]) and the columns
//!   (ratios included) are worked out once from the sums.
//! - A project outside the caller's scope answers "does not exist", as everywhere else.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reports::{
    Column, DayRange, Filter, KeyPart, ReportDef, ReportTable, Statistic, Tag, TimeFilter, Value, Zone,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, Tr};
use crate::store::{Scope, Store};

/// What the preview asks for (统计预览): a definition and the manual's filters.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RunRequest {
    pub def: ReportDef,
    /// 外呼项目: the sub-projects counted (the page's own by default).
    pub projects: Vec<i64>,
    /// 数据来源: dispatching accounts; empty = every one.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// 外呼职场: sites; empty = every site in scope.
    #[serde(default)]
    pub sites: Vec<i64>,
    /// 外呼团队: team names; empty = every team.
    #[serde(default)]
    pub teams: Vec<String>,
    /// 时间筛选.
    pub time: TimeFilter,
    /// Rank the rows by the first column, highest first, with a 名次 column (项目榜单).
    #[serde(default)]
    pub rank: bool,
}

/// A report as the console shows it: words, not keys.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportView {
    pub title: String,
    /// The local days covered, `YYYY-MM-DD ~ YYYY-MM-DD` (China time unless configured).
    pub range: String,
    /// The tags' names, then the columns' headers.
    pub headers: Vec<String>,
    /// How many of `headers` are tags.
    pub tag_count: usize,
    /// Per column: a ratio (shown as a percentage) or a count.
    pub ratio: Vec<bool>,
    pub rows: Vec<ViewRow>,
    /// The total over every row (the label is 合计).
    pub total: ViewRow,
    pub chart: ChartView,
}

/// One row: the tags' words and the columns' values (`null`: a ratio whose divisor is 0).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViewRow {
    pub labels: Vec<String>,
    pub values: Vec<Option<f64>>,
    /// The row's sub-project when the first tag is the project (a link to its report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<i64>,
}

/// The chart beside the table: bars per team / agent / project, a line over hours or days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChartView {
    /// `bar` or `line`.
    pub kind: String,
    /// One per row, its labels joined.
    pub categories: Vec<String>,
    /// The count columns drawn (at most [`CHART_SERIES`]), by column index.
    pub series: Vec<usize>,
    /// The first label column the categories are read from (1 past a 名次 column).
    pub label_from: usize,
}

/// Series a chart draws at most: more make it unreadable.
pub const CHART_SERIES: usize = 4;

/// The distinct plain statistics a definition's columns need, in first-use order.
struct Needs(Vec<Statistic>);

impl Needs {
    fn of(def: &ReportDef) -> Needs {
        let mut out: Vec<Statistic> = Vec::new();
        for column in &def.columns {
            for statistic in std::iter::once(&column.statistic).chain(column.divide_by.iter()) {
                if !out.contains(statistic) {
                    out.push(statistic.clone());
                }
            }
        }
        Needs(out)
    }

    /// The same report asking only for the plain statistics, one column each.
    fn plain_def(&self, def: &ReportDef) -> ReportDef {
        let columns = self
            .0
            .iter()
            .enumerate()
            .map(|(i, s)| Column { header: format!("s{i}"), statistic: s.clone(), divide_by: None })
            .collect();
        ReportDef { name: def.name.clone(), tags: def.tags.clone(), conditions: def.conditions.clone(), columns }
    }

    fn index(&self, statistic: &Statistic) -> usize {
        self.0.iter().position(|s| s == statistic).unwrap_or(0)
    }

    /// The columns' values from a row's plain sums.
    fn values(&self, def: &ReportDef, sums: &[i64]) -> Vec<Option<f64>> {
        def.columns
            .iter()
            .map(|c| {
                let n = sums.get(self.index(&c.statistic)).copied().unwrap_or(0);
                match &c.divide_by {
                    None => Some(n as f64),
                    Some(d) => {
                        let d = sums.get(self.index(d)).copied().unwrap_or(0);
                        (d != 0).then(|| n as f64 / d as f64)
                    }
                }
            })
            .collect()
    }
}

/// The engine's answer: the one place the console asks it.
fn engine_table(store: &Store, def: &ReportDef, filter: &Filter) -> Result<ReportTable, ApiError> {
    Ok(store.run_report(def, filter)?)
}

/// The zone reports count in.
pub fn zone(store: &Store) -> Zone {
    store.report_zone().clone()
}

/// One engine run: these projects, at these sites (`None`: every site).
pub type Run = (Vec<i64>, Option<Vec<i64>>);

/// Which (projects, sites) to run for `scope`: one run for an admin, one per distinct set of
/// visible sites for a sub-admin; `chosen_sites` narrows the sites. A project the caller may
/// not see is refused as unknown.
pub fn scoped_runs(
    tr: Tr,
    scope: &Scope,
    all_sites: &[i64],
    projects: &[i64],
    chosen_sites: &[i64],
) -> Result<Vec<Run>, ApiError> {
    for &p in projects {
        if !scope.project(p) {
            return Err(ApiError::not_found(super::extract::text(
                tr,
                &format!("projects: project {p} does not exist"),
                &format!("projects：项目 {p} 不存在"),
            )));
        }
    }
    let narrow = |s: &i64| chosen_sites.is_empty() || chosen_sites.contains(s);
    if scope.is_admin() {
        let sites = (!chosen_sites.is_empty()).then(|| chosen_sites.to_vec());
        return Ok(vec![(projects.to_vec(), sites)]);
    }
    let mut groups: BTreeMap<Vec<i64>, Vec<i64>> = BTreeMap::new();
    for &p in projects {
        let sites: Vec<i64> = all_sites.iter().copied().filter(|s| scope.project_site(p, *s) && narrow(s)).collect();
        if !sites.is_empty() {
            groups.entry(sites).or_default().push(p);
        }
    }
    Ok(groups.into_iter().map(|(sites, projects)| (projects, Some(sites))).collect())
}

/// Everything one report run needs besides the store.
pub struct RunInput<'a> {
    pub tr: Tr,
    pub scope: &'a Scope,
    pub request: &'a RunRequest,
    pub now: i64,
}

/// The merged plain sums per row key and in total.
struct Sums {
    rows: BTreeMap<Vec<KeyPart>, Vec<i64>>,
    total: Vec<i64>,
}

fn add(into: &mut [i64], values: &[Value]) {
    for (slot, value) in into.iter_mut().zip(values) {
        if let Value::Count(n) = value {
            *slot += n;
        }
    }
}

/// The local days of a time filter, its error in the caller's language naming the field.
pub fn days(tr: Tr, time: &TimeFilter, now: i64, zone: &Zone) -> Result<DayRange, ApiError> {
    time.resolve(now, zone).map_err(|e| ApiError::bad_request(if tr.is_en() { e.to_string() } else { e.message_zh() }))
}

/// Checks a definition, the error in the caller's language naming the field.
pub fn validate(tr: Tr, def: &ReportDef) -> Result<(), ApiError> {
    let lang = if tr.is_en() { reports::Lang::En } else { reports::Lang::Zh };
    def.validate().map_err(|e| ApiError::bad_request(e.message(lang)))
}

/// Runs `input.request` for its caller: validated, scoped, merged, in words.
pub fn run(store: &Store, input: &RunInput<'_>) -> Result<ReportView, ApiError> {
    let request = input.request;
    validate(input.tr, &request.def)?;
    if request.projects.is_empty() {
        let msg = super::extract::text(input.tr, "projects: choose at least one project", "projects：请至少选择一个项目");
        return Err(ApiError::bad_request(msg));
    }
    let zone = zone(store);
    let range = days(input.tr, &request.time, input.now, &zone)?;
    let all_sites: Vec<i64> = store.list_sites()?.into_iter().map(|s| s.id).collect();
    let runs = scoped_runs(input.tr, input.scope, &all_sites, &request.projects, &request.sites)?;
    let needs = Needs::of(&request.def);
    let plain = needs.plain_def(&request.def);
    let mut sums = Sums { rows: BTreeMap::new(), total: vec![0; needs.0.len()] };
    for (projects, sites) in runs {
        let filter = Filter {
            projects: Some(projects),
            sites,
            accounts: (!request.accounts.is_empty()).then(|| request.accounts.clone()),
            teams: (!request.teams.is_empty()).then(|| request.teams.clone()),
            days: range,
        };
        let table = engine_table(store, &plain, &filter)?;
        for row in &table.rows {
            let slot = sums.rows.entry(row.keys.clone()).or_insert_with(|| vec![0; needs.0.len()]);
            add(slot, &row.values);
        }
        add(&mut sums.total, &table.total);
    }
    let names = Names::load(store, &request.def.tags)?;
    let mut view = view(input.tr, &request.def, &needs, &sums, &names, range);
    if request.rank {
        rank(input.tr, &mut view);
    }
    Ok(view)
}

/// Sorts the rows by the first column, highest first (no value last), numbers them 1, 2, …
/// in a 名次 column, and keeps the chart in the same order.
fn rank(tr: Tr, view: &mut ReportView) {
    let first = |row: &ViewRow| row.values.first().copied().flatten().unwrap_or(f64::NEG_INFINITY);
    view.rows.sort_by(|a, b| first(b).total_cmp(&first(a)));
    view.chart.categories = view.rows.iter().map(|r| r.labels.join(" / ")).collect();
    for (i, row) in view.rows.iter_mut().enumerate() {
        row.labels.insert(0, (i + 1).to_string());
    }
    view.headers.insert(0, tr.text().reports_rank.to_string());
    view.tag_count += 1;
    view.chart.label_from = 1;
    view.total.labels.push(String::new());
}

fn view(tr: Tr, def: &ReportDef, needs: &Needs, sums: &Sums, names: &Names, range: DayRange) -> ReportView {
    let rows: Vec<ViewRow> = sums
        .rows
        .iter()
        .map(|(keys, plain)| ViewRow {
            labels: def.tags.iter().zip(keys).map(|(tag, key)| names.label(tr, *tag, key)).collect(),
            values: needs.values(def, plain),
            project: match (def.tags.first(), keys.first()) {
                (Some(Tag::Project), Some(KeyPart::Int(id))) => Some(*id),
                _ => None,
            },
        })
        .collect();
    let total_labels = if def.tags.is_empty() { vec![] } else { vec![tr.text().reports_total.to_string()] };
    let total = ViewRow { labels: total_labels, values: needs.values(def, &sums.total), project: None };
    let mut headers: Vec<String> = def.tags.iter().map(|t| tag_name(tr, *t).to_string()).collect();
    headers.extend(def.columns.iter().map(|c| c.header.clone()));
    let ratio: Vec<bool> = def.columns.iter().map(|c| c.divide_by.is_some()).collect();
    let timeline = matches!(def.tags.first(), Some(Tag::Hour | Tag::Day | Tag::Month | Tag::Weekday));
    let chart = ChartView {
        kind: if timeline { "line" } else { "bar" }.to_string(),
        categories: rows.iter().map(|r| r.labels.join(" / ")).collect(),
        series: chart_series(def),
        label_from: 0,
    };
    let range = format!("{} ~ {}", reports::day_text(range.first), reports::day_text(range.last));
    ReportView { title: def.name.clone(), range, headers, tag_count: def.tags.len(), ratio, rows, total, chart }
}

/// The columns a chart draws: counts, not ratios (another scale) nor seconds (which dwarf
/// the counts), unless a report has nothing else.
fn chart_series(def: &ReportDef) -> Vec<usize> {
    let seconds = |s: &Statistic| {
        matches!(s, Statistic::TalkSeconds | Statistic::IvrSeconds | Statistic::RingSeconds | Statistic::QueueSeconds)
    };
    let plain = |c: &&Column| c.divide_by.is_none();
    let pick = |keep_seconds: bool| -> Vec<usize> {
        let columns = def.columns.iter().enumerate().filter(|(_, c)| plain(c) && (keep_seconds || !seconds(&c.statistic)));
        columns.map(|(i, _)| i).take(CHART_SERIES).collect()
    };
    let counts = pick(false);
    if counts.is_empty() { pick(true) } else { counts }
}

/// The names keys stand for: projects, sites, batches.
pub struct Names {
    projects: HashMap<i64, String>,
    sites: HashMap<i64, String>,
    batches: HashMap<i64, String>,
}

impl Names {
    pub fn load(store: &Store, tags: &[Tag]) -> Result<Names, ApiError> {
        let batches = if tags.contains(&Tag::Batch) {
            store.list_batches()?.into_iter().map(|b| (b.id, b.name)).collect()
        } else {
            HashMap::new()
        };
        Ok(Names {
            projects: store.list_projects()?.into_iter().map(|p| (p.id, p.name)).collect(),
            sites: store.list_sites()?.into_iter().map(|s| (s.id, s.name)).collect(),
            batches,
        })
    }

    fn site(&self, id: i64) -> String {
        self.sites.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
    }

    /// The words of one key part of `tag`.
    pub fn label(&self, tr: Tr, tag: Tag, key: &KeyPart) -> String {
        let t = tr.text();
        let none = || t.reports_none.to_string();
        match key {
            KeyPart::Int(n) => match tag {
                Tag::Project => self.projects.get(n).cloned().unwrap_or_else(|| format!("#{n}")),
                Tag::Site => self.site(*n),
                Tag::Batch => self.batches.get(n).cloned().unwrap_or_else(|| format!("#{n}")),
                Tag::Hour => format!("{n:02}:00"),
                Tag::Weekday => weekday_name(tr, *n).to_string(),
                _ => n.to_string(),
            },
            KeyPart::Text(text) => match (tag, text.as_str()) {
                (Tag::HangupSide, "customer") => t.reports_hangup_customer.to_string(),
                (Tag::HangupSide, "agent") => t.reports_hangup_agent.to_string(),
                (Tag::HangupSide, "system") => t.reports_hangup_system.to_string(),
                (Tag::HangupSide, _) => none(),
                (Tag::Direction, "inbound") => t.reports_inbound.to_string(),
                (Tag::Direction, _) => t.reports_outbound.to_string(),
                (_, "") => none(),
                _ => text.clone(),
            },
            // 外呼团队 defaults to the site account: a site without agent groups is its own team.
            KeyPart::SiteText { site, text } if tag == Tag::Team && text.is_empty() => self.site(*site),
            KeyPart::SiteText { site, text } => {
                let text = if text.is_empty() { none() } else { text.clone() };
                format!("{} · {text}", self.site(*site))
            }
        }
    }
}

fn weekday_name(tr: Tr, n: i64) -> &'static str {
    let t = tr.text();
    let names = [t.reports_mon, t.reports_tue, t.reports_wed, t.reports_thu, t.reports_fri, t.reports_sat, t.reports_sun];
    names.get((n.clamp(1, 7) - 1) as usize).copied().unwrap_or("")
}

/// A tag's name (标签).
pub fn tag_name(tr: Tr, tag: Tag) -> &'static str {
    let t = tr.text();
    match tag {
        Tag::Project => t.reports_tag_project,
        Tag::Site => t.reports_tag_site,
        Tag::Team => t.reports_tag_team,
        Tag::Extension => t.reports_tag_extension,
        Tag::Agent => t.reports_tag_agent,
        Tag::Batch => t.reports_tag_batch,
        Tag::Account => t.reports_tag_account,
        Tag::HangupSide => t.reports_tag_hangup,
        Tag::Direction => t.reports_tag_direction,
        Tag::Hour => t.reports_tag_hour,
        Tag::Weekday => t.reports_tag_weekday,
        Tag::Day => t.reports_tag_day,
        Tag::Month => t.reports_tag_month,
    }
}

/// Every tag, in the builder's order.
pub const TAGS: [Tag; 13] = [
    Tag::Site,
    Tag::Team,
    Tag::Agent,
    Tag::Extension,
    Tag::Batch,
    Tag::Account,
    Tag::HangupSide,
    Tag::Direction,
    Tag::Hour,
    Tag::Weekday,
    Tag::Day,
    Tag::Month,
    Tag::Project,
];

/// A plain statistic's name (数据项).
pub fn statistic_name(tr: Tr, statistic: &Statistic) -> String {
    let t = tr.text();
    match statistic {
        Statistic::Attempts => t.reports_st_attempts.into(),
        Statistic::Dials => t.reports_st_dials.into(),
        Statistic::DialConnected => t.reports_st_dial_connected.into(),
        Statistic::CustomerConnected => t.reports_st_customer_connected.into(),
        Statistic::ExtensionConnected => t.reports_st_extension_connected.into(),
        Statistic::ExtensionRejected => t.reports_st_extension_rejected.into(),
        Statistic::ExtensionMissed => t.reports_st_extension_missed.into(),
        Statistic::QueueAbandon => t.reports_st_queue_abandon.into(),
        Statistic::IvrAbandon => t.reports_st_ivr_abandon.into(),
        Statistic::Inbound => t.reports_st_inbound.into(),
        Statistic::InboundConnected => t.reports_st_inbound_connected.into(),
        Statistic::TalkSeconds => t.reports_st_talk_seconds.into(),
        Statistic::IvrSeconds => t.reports_st_ivr_seconds.into(),
        Statistic::RingSeconds => t.reports_st_ring_seconds.into(),
        Statistic::QueueSeconds => t.reports_st_queue_seconds.into(),
        Statistic::AgentsReached => t.reports_st_agents_reached.into(),
        Statistic::FieldValue { key, value } => format!("{key}-{value}"),
    }
}

/// The standard columns of the reports built on the builder (项目报表, 综合项目报表, 在执行项目,
/// and a leaderboard of a project without a report of its own).
pub fn standard_columns(tr: Tr) -> Vec<Column> {
    let t = tr.text();
    let col = |header: &str, statistic: Statistic, divide_by: Option<Statistic>| Column { header: header.to_string(), statistic, divide_by };
    vec![
        col(t.reports_st_dials, Statistic::Dials, None),
        col(t.reports_st_dial_connected, Statistic::DialConnected, None),
        col(t.reports_col_connect_rate, Statistic::DialConnected, Some(Statistic::Dials)),
        col(t.reports_st_extension_connected, Statistic::ExtensionConnected, None),
        col(t.reports_st_talk_seconds, Statistic::TalkSeconds, None),
    ]
}

/// The distinct values of `tag` (teams, accounts) among the attempts `scope` sees of
/// `projects` over the last year: the filters' choices.
pub fn choices(store: &Store, tr: Tr, scope: &Scope, projects: &[i64], tag: Tag, now: i64) -> Result<Vec<String>, ApiError> {
    let zone = zone(store);
    let today = zone.local_day(now);
    let range = DayRange { first: today - reports::MAX_RANGE_DAYS + 1, last: today };
    let all_sites: Vec<i64> = store.list_sites()?.into_iter().map(|s| s.id).collect();
    let def = ReportDef {
        name: "choices".into(),
        tags: vec![tag],
        conditions: vec![],
        columns: vec![Column { header: "n".into(), statistic: Statistic::Attempts, divide_by: None }],
    };
    let mut out = BTreeSet::new();
    for (projects, sites) in scoped_runs(tr, scope, &all_sites, projects, &[])? {
        let filter = Filter { projects: Some(projects), sites, accounts: None, teams: None, days: range };
        for row in engine_table(store, &def, &filter)?.rows {
            match row.keys.first() {
                Some(KeyPart::Text(text)) | Some(KeyPart::SiteText { text, .. }) if !text.is_empty() => {
                    out.insert(text.clone());
                }
                _ => {}
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_worked_out_from_the_sums() {
        let def = ReportDef {
            name: "r".into(),
            tags: vec![Tag::Team],
            conditions: vec![],
            columns: standard_columns(Tr { lang: super::super::Lang::Zh }),
        };
        let needs = Needs::of(&def);
        assert_eq!(needs.0, vec![Statistic::Dials, Statistic::DialConnected, Statistic::ExtensionConnected, Statistic::TalkSeconds]);
        let values = needs.values(&def, &[8, 2, 1, 90]);
        assert_eq!(values, vec![Some(8.0), Some(2.0), Some(0.25), Some(1.0), Some(90.0)]);
        assert_eq!(needs.values(&def, &[0, 0, 0, 0])[2], None);
    }

    #[test]
    fn a_site_without_groups_is_its_own_team() {
        let names = Names { projects: HashMap::new(), sites: HashMap::from([(3, "杭州职场".to_owned())]), batches: HashMap::new() };
        let tr = Tr { lang: super::super::Lang::Zh };
        let no_group = KeyPart::SiteText { site: 3, text: String::new() };
        assert_eq!(names.label(tr, Tag::Team, &no_group), "杭州职场");
        let group = KeyPart::SiteText { site: 3, text: "A组".into() };
        assert_eq!(names.label(tr, Tag::Team, &group), "杭州职场 · A组");
        assert_eq!(names.label(tr, Tag::Agent, &no_group), "杭州职场 · （无）");
    }
}

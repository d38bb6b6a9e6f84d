//! Project categories (项目分类, add only) and sub-projects (子项目) with their custom
//! customer fields (客户资料字段), business-record fields (业务记录字段), popup page (script
//! 话术, "hide middle four digits", per-field default / required / read-only / hidden), project
//! parameters (项目参数), participating sites and project admins (参与职场, 项目管理员).
//!
//! Every change of a definition bumps its `version` and appends a [`DownEvent::Project`] to
//! the down log of every participating site and every site that was ever sent the project, in
//! the same transaction as the change. The project status (项目状态, running / paused) travels
//! in the [`sync_protocol::ProjectSettings`] that follows it; a site holds a project HQ
//! paused from taking any number of it, online or offline, until HQ runs it again.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sync_protocol::DownEvent;

use super::down::append_down;
use super::{is_unique_violation, now_unix, DbError, Store};

/// A project category.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum FieldSpecKind {
    Text,
    SingleChoice,
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// Several options, stored `;`-separated.
    MultipleChoice,
}

impl FieldSpecKind {
    fn has_options(self) -> bool {
        matches!(self, FieldSpecKind::SingleChoice | FieldSpecKind::MultipleChoice)
    }
}

/// A custom field as HQ defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct FieldSpec {
    /// Variable name (`[a-z][a-z0-9_]*`), unique in its list.
    pub key: String,
    /// Title shown to people, also matched against spreadsheet headers.
    pub title: String,
    pub kind: FieldSpecKind,
    /// Options of a single or multiple choice field, in display order; empty otherwise.
    #[serde(default)]
    pub options: Vec<String>,
    /// Pre-filled value in the popup (默认值).
    #[serde(default)]
    pub default: String,
    /// The agent must fill it before saving (必填).
    #[serde(default)]
    pub required: bool,
    /// Shown but not editable (只读).
    #[serde(default)]
    pub read_only: bool,
    /// Not shown to agents at all (隐藏); the server leaves it out of every agent response.
    #[serde(default)]
    pub hidden: bool,
    /// A filter of HQ's data across sites (筛选条件, H6): 客户资料 / 业务资料 can be searched
    /// by this field. HQ-side only: sites are not sent it.
    #[serde(default)]
    pub filterable: bool,
    /// Shown as a column of the lists (列表显示) at HQ, at the sites and on the desk; the
    /// popup and the edit forms show it either way. On unless unticked.
    #[serde(default = "listed_by_default")]
    pub listed: bool,
}

fn listed_by_default() -> bool {
    true
}

impl FieldSpec {
    /// A plain text field (tests and templates).
    pub fn text(key: &str, title: &str) -> FieldSpec {
        FieldSpec::new(key, title, FieldSpecKind::Text, &[])
    }

    /// A field of `kind` with `options`, all popup flags off.
    pub fn new(key: &str, title: &str, kind: FieldSpecKind, options: &[&str]) -> FieldSpec {
        FieldSpec {
            key: key.to_string(),
            title: title.to_string(),
            kind,
            options: options.iter().map(|o| o.to_string()).collect(),
            default: String::new(),
            required: false,
            read_only: false,
            hidden: false,
            filterable: false,
            listed: true,
        }
    }

    /// Checks one value of this field; the English and Chinese reason when it is not valid.
    pub fn check_value(&self, value: &str) -> Result<(), (String, String)> {
        if value.is_empty() {
            return Ok(());
        }
        match self.kind {
            FieldSpecKind::Text => Ok(()),
            FieldSpecKind::Number => {
                if value.parse::<f64>().map(f64::is_finite).unwrap_or(false) {
                    Ok(())
                } else {
                    Err((format!("{value:?} is not a number: type digits only, such as 12 or 3.5"), format!("“{value}”不是数字：请填写数字，如 12 或 3.5")))
                }
            }
            FieldSpecKind::Date => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                let date = value.get(..10).unwrap_or(value);
                if time::Date::parse(date, &format).is_ok() {
                    Ok(())
                } else {
                    Err((format!("{value:?} is not a date: write it as 2024-05-31"), format!("“{value}”不是日期：请写成 2024-05-31 的格式")))
                }
            }
            FieldSpecKind::SingleChoice => {
                if self.options.iter().any(|o| o == value) {
                    Ok(())
                } else {
                    let options = self.options.join(" / ");
                    Err((format!("{value:?} is not one of the options ({options}): use one of them"), format!("“{value}”不是可选项（{options}）之一：请填写其中一项")))
                }
            }
            FieldSpecKind::MultipleChoice => {
                for part in value.split([';', '；', ',', '，']).map(str::trim).filter(|p| !p.is_empty()) {
                    if !self.options.iter().any(|o| o == part) {
                        let options = self.options.join(" / ");
                        return Err((format!("{part:?} is not one of the options ({options}): separate chosen options with ';'"), format!("“{part}”不是可选项（{options}）之一：多个选项用“;”分隔")));
                    }
                }
                Ok(())
            }
        }
    }
}

impl FieldSpec {
    /// The wire form sent to sites.
    pub fn to_wire(&self) -> sync_protocol::FieldDef {
        let kind = match self.kind {
            FieldSpecKind::Text => sync_protocol::FieldKind::Text,
            FieldSpecKind::SingleChoice => sync_protocol::FieldKind::SingleChoice(self.options.clone()),
            FieldSpecKind::Number => sync_protocol::FieldKind::Number,
            FieldSpecKind::Date => sync_protocol::FieldKind::Date,
            FieldSpecKind::MultipleChoice => sync_protocol::FieldKind::MultipleChoice(self.options.clone()),
        };
        sync_protocol::FieldDef {
            key: self.key.clone(),
            title: self.title.clone(),
            kind,
            required: self.required,
            read_only: self.read_only,
            hidden: self.hidden,
        }
    }
}

/// Dial mode HQ may bind (外呼方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum DialModeSetting {
    /// 预测外呼
    Predictive,
    /// 一键外呼
    OneClick,
}

/// When the popup opens (弹屏时机).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum PopupTiming {
    /// 接通弹屏
    OnAnswer,
    /// 振铃弹屏: shows only the first 3 and last 4 digits until answered.
    OnRing,
}

/// Project status (项目状态).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum ProjectStatus {
    Running,
    Paused,
}

/// What the phone column of this project's files holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum PhoneMode {
    /// Chinese mobile or landline numbers, normalised.
    #[default]
    Number,
    /// A carrier's encrypted dial token (hex), dialed as-is through the trunk.
    Token,
}

/// A daily calling window (定时外呼), `HH:MM`-`HH:MM` China time; outside every window no
/// number is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct CallingWindow {
    pub start: String,
    pub end: String,
}

/// Project parameters (项目参数). A value HQ sets binds every site (read-only there); `None`
/// (or an empty window list) leaves it to each site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ProjectSettings {
    #[serde(default)]
    pub dial_mode: Option<DialModeSetting>,
    #[serde(default)]
    pub popup_timing: Option<PopupTiming>,
    #[serde(default)]
    pub status: Option<ProjectStatus>,
    /// Ring duration in seconds; 0 or absent = not set by HQ (advice 35-40 s).
    #[serde(default)]
    pub ring_seconds: Option<u32>,
    /// Predictive ratio, calls per available agent (1..=10).
    #[serde(default)]
    pub ratio: Option<u32>,
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub calling_windows: Vec<CallingWindow>,
}

/// What is needed to create a sub-project.
#[derive(Debug, Clone, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct NewProject {
    pub category_id: i64,
    pub name: String,
    /// Clone fields, popup page (script, masking, per-field settings) from this sub-project
    /// of the same category; the lists and popup given here are then ignored.
    #[serde(default)]
    pub template_id: Option<i64>,
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub hide_middle_digits: bool,
    #[serde(default)]
    pub customer_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub record_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub settings: ProjectSettings,
    #[serde(default)]
    pub phone_mode: PhoneMode,
}

/// A full replacement of a sub-project's definition (the category does not change).
#[derive(Debug, Clone, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ProjectEdit {
    pub name: String,
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub hide_middle_digits: bool,
    #[serde(default)]
    pub customer_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub record_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub settings: ProjectSettings,
    #[serde(default)]
    pub phone_mode: PhoneMode,
}

/// A project admin (项目管理员) and the participating sites it manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ProjectAdmin {
    pub account_id: i64,
    pub site_ids: Vec<i64>,
}

/// A sub-project.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct Project {
    pub id: i64,
    pub category_id: i64,
    pub category_name: String,
    pub name: String,
    pub script: String,
    pub hide_middle_digits: bool,
    pub customer_fields: Vec<FieldSpec>,
    pub record_fields: Vec<FieldSpec>,
    /// Bumped on every change of the definition; sites keep the newest they were sent.
    pub version: i64,
    pub created_at: i64,
    pub settings: ProjectSettings,
    pub phone_mode: PhoneMode,
    /// The sub-project this one was cloned from, if any.
    pub template_id: Option<i64>,
    /// Participating sites (参与职场).
    pub site_ids: Vec<i64>,
}

impl Project {
    /// The parameters [`sync_protocol::ProjectParams`] has no room for (popup timing,
    /// status, calling windows), sent right after the definition of the same version.
    pub fn settings_to_wire(&self) -> sync_protocol::ProjectSettings {
        let s = &self.settings;
        // "HH:MM" was checked when stored; anything unreadable is left out rather than sent.
        let minute = |text: &str| -> Option<u16> {
            let (h, m) = text.split_once(':')?;
            let (h, m): (u16, u16) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
        };
        sync_protocol::ProjectSettings {
            project_id: self.id as u64,
            version: self.version as u64,
            popup_on_ring: s.popup_timing.map(|p| p == PopupTiming::OnRing),
            running: s.status.map(|st| st == ProjectStatus::Running),
            calling_windows: s
                .calling_windows
                .iter()
                .filter_map(|w| Some(sync_protocol::CallingWindow { start_minute: minute(&w.start)?, end_minute: minute(&w.end)? }))
                .collect(),
        }
    }

    /// The fields left out of list columns, sent after the definition of the same version.
    pub fn list_columns_to_wire(&self) -> sync_protocol::ListColumns {
        let unlisted = |fields: &[FieldSpec]| fields.iter().filter(|f| !f.listed).map(|f| f.key.clone()).collect();
        sync_protocol::ListColumns {
            project_id: self.id as u64,
            version: self.version as u64,
            unlisted_customer: unlisted(&self.customer_fields),
            unlisted_record: unlisted(&self.record_fields),
        }
    }

    /// The definition sent down to sites; [`Project::settings_to_wire`] follows it.
    pub fn to_wire(&self) -> sync_protocol::ProjectDef {
        let s = &self.settings;
        sync_protocol::ProjectDef {
            project_id: self.id as u64,
            category: self.category_name.clone(),
            name: self.name.clone(),
            script: self.script.clone(),
            hide_middle_digits: self.hide_middle_digits,
            customer_fields: self.customer_fields.iter().map(FieldSpec::to_wire).collect(),
            record_fields: self.record_fields.iter().map(FieldSpec::to_wire).collect(),
            params: sync_protocol::ProjectParams {
                dial_mode: s.dial_mode.map(|m| match m {
                    DialModeSetting::Predictive => sync_protocol::DialMode::Predictive,
                    DialModeSetting::OneClick => sync_protocol::DialMode::OneClick,
                }),
                ring_seconds: s.ring_seconds,
                ratio: s.ratio,
                max_concurrency: s.max_concurrency,
            },
            version: self.version as u64,
        }
    }
}

/// Failure to add a category.
#[derive(Debug, thiserror::Error)]
pub enum CreateCategoryError {
    /// The name is empty.
    #[error("category name is empty: type a name such as 套餐类")]
    EmptyName,
    /// Categories are add-only and unique by name.
    #[error("a category named {0:?} already exists (categories cannot be renamed or deleted): choose another name")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to create a sub-project.
#[derive(Debug, thiserror::Error)]
pub enum CreateProjectError {
    /// The category does not exist.
    #[error("category {0} does not exist: create the category first")]
    UnknownCategory(i64),
    /// The name is empty.
    #[error("sub-project name is empty: type a name")]
    EmptyName,
    /// The category already has a sub-project with this name.
    #[error("this category already has a sub-project named {0:?}: choose another name")]
    Duplicate(String),
    /// A custom field is not valid.
    #[error("{list} {number}: {reason}")]
    InvalidField { list: &'static str, number: usize, reason: String },
    /// The template does not exist or belongs to another category.
    #[error("template sub-project {0} is not in this category: pick a sub-project of the same category as template")]
    BadTemplate(i64),
    /// A project parameter is out of range.
    #[error("project parameter {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    /// The sub-project does not exist (when editing).
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for CreateProjectError {
    fn from(e: rusqlite::Error) -> Self {
        CreateProjectError::Db(DbError(e))
    }
}

/// Failure to set participating sites or project admins.
#[derive(Debug, thiserror::Error)]
pub enum ProjectAccessError {
    /// No such sub-project.
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    /// No such site.
    #[error("site {0} does not exist: pick sites from the site register")]
    UnknownSite(i64),
    /// No such account.
    #[error("account {0} does not exist")]
    UnknownAccount(i64),
    /// Step 2 before step 1.
    #[error("save the participating sites first (step 1), then add project admins (step 2)")]
    NoParticipatingSites,
    /// An admin's site is not participating.
    #[error("site {site} is not a participating site of this sub-project: add it in step 1 first")]
    NotParticipating { site: i64 },
    /// An admin's site is outside that account's data permission.
    #[error("account {account} may not manage site {site}: it is outside that account's data permission")]
    OutsideScope { account: i64, site: i64 },
    /// A down-log event could not be encoded.
    #[error("cannot encode the project definition: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ProjectAccessError {
    fn from(e: rusqlite::Error) -> Self {
        ProjectAccessError::Db(DbError(e))
    }
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && key.len() <= 40
}

/// Checks and tidies one list of fields (trims titles and options).
fn clean_fields(list: &'static str, fields: &[FieldSpec], reserved: &[&str]) -> Result<Vec<FieldSpec>, CreateProjectError> {
    let mut cleaned: Vec<FieldSpec> = Vec::with_capacity(fields.len());
    for (index, field) in fields.iter().enumerate() {
        let number = index + 1;
        let invalid = |reason: String| CreateProjectError::InvalidField { list, number, reason };
        let key = field.key.trim().to_string();
        let title = field.title.trim().to_string();
        if !valid_key(&key) {
            return Err(invalid(format!(
                "variable name {key:?} is not valid: use lower-case letters, digits and '_', starting with a letter"
            )));
        }
        if reserved.contains(&key.as_str()) {
            return Err(invalid(format!("variable name {key:?} is reserved for a system field: choose another")));
        }
        if title.is_empty() {
            return Err(invalid("title is empty: give the field a title".to_string()));
        }
        if cleaned.iter().any(|f| f.key == key) {
            return Err(invalid(format!("variable name {key:?} is used twice: make it unique")));
        }
        if cleaned.iter().any(|f| f.title == title) {
            return Err(invalid(format!("title {title:?} is used twice: make it unique")));
        }
        let options: Vec<String> = field.options.iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
        if field.kind.has_options() {
            {
                if options.is_empty() {
                    let what = if field.kind == FieldSpecKind::SingleChoice { "single choice" } else { "multiple choice" };
                    return Err(invalid(format!("{what} {title:?} has no options: enter one option per line")));
                }
                for (option_idx, option) in options.iter().enumerate() {
                    if options[..option_idx].contains(option) {
                        return Err(invalid(format!("option {option:?} is listed twice: remove one")));
                    }
                }
            }
        }
        let options = if field.kind.has_options() { options } else { Vec::new() };
        let mut spec = FieldSpec { key, title, kind: field.kind, options, ..field.clone() };
        spec.default = spec.default.trim().to_string();
        if let Err((reason, _)) = spec.check_value(&spec.default) {
            return Err(invalid(format!("default value: {reason}")));
        }
        if spec.required && spec.hidden {
            return Err(invalid("a field cannot be both required and hidden: agents could never fill it".to_string()));
        }
        cleaned.push(spec);
    }
    Ok(cleaned)
}

const PROJECT_SELECT: &str = "SELECT p.id, p.category_id, c.name, p.name, p.script, p.hide_middle_digits,
        p.customer_fields, p.record_fields, p.version, p.created_at, p.settings, p.phone_mode, p.template_id,
        (SELECT group_concat(site_id) FROM project_sites ps WHERE ps.project_id = p.id)
     FROM projects p JOIN categories c ON c.id = p.category_id";

fn project_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    let json_column = |idx: usize| -> rusqlite::Result<Vec<FieldSpec>> {
        let text: String = r.get(idx)?;
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(Project {
        id: r.get(0)?,
        category_id: r.get(1)?,
        category_name: r.get(2)?,
        name: r.get(3)?,
        script: r.get(4)?,
        hide_middle_digits: r.get(5)?,
        customer_fields: json_column(6)?,
        record_fields: json_column(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        settings: {
            let text: String = r.get(10)?;
            serde_json::from_str(&text)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e)))?
        },
        phone_mode: if r.get::<_, String>(11)? == "token" { PhoneMode::Token } else { PhoneMode::Number },
        template_id: r.get(12)?,
        site_ids: {
            let list: Option<String> = r.get(13)?;
            let mut ids: Vec<i64> = list.unwrap_or_default().split(',').filter_map(|v| v.parse().ok()).collect();
            ids.sort_unstable();
            ids
        },
    })
}

/// Checks and tidies project parameters.
fn clean_settings(settings: &ProjectSettings) -> Result<ProjectSettings, CreateProjectError> {
    let bad = |name: &'static str, reason: String| CreateProjectError::InvalidSetting { name, reason };
    let mut s = settings.clone();
    if s.ring_seconds == Some(0) {
        s.ring_seconds = None;
    }
    if let Some(ring) = s.ring_seconds
        && !(5..=120).contains(&ring)
    {
        return Err(bad("ring_seconds", format!("{ring} s is out of range: use 5 to 120 (35-40 advised), or 0 to leave it to each site")));
    }
    if let Some(ratio) = s.ratio
        && !(1..=10).contains(&ratio)
    {
        return Err(bad("ratio", format!("{ratio} is out of range: use 1 to 10 calls per available agent")));
    }
    if s.max_concurrency == Some(0) {
        return Err(bad("max_concurrency", "0 would never dial: leave it unset or use 1 or more".to_string()));
    }
    if s.dial_mode == Some(DialModeSetting::Predictive) && s.popup_timing == Some(PopupTiming::OnRing) {
        return Err(bad("popup_timing", "predictive dialing pops on answer: choose on answer, or one-click dialing".to_string()));
    }
    let minutes = |text: &str| -> Option<u32> {
        let (h, m) = text.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
    };
    for (idx, window) in s.calling_windows.iter_mut().enumerate() {
        let (Some(start), Some(end)) = (minutes(&window.start), minutes(&window.end)) else {
            return Err(bad("calling_windows", format!("window {}: write times as HH:MM, such as 09:00 and 12:00", idx + 1)));
        };
        if start >= end {
            return Err(bad("calling_windows", format!("window {}: {} is not before {}", idx + 1, window.start, window.end)));
        }
        window.start = window.start.trim().to_string();
        window.end = window.end.trim().to_string();
    }
    Ok(s)
}

fn phone_mode_text(mode: PhoneMode) -> &'static str {
    match mode {
        PhoneMode::Number => "number",
        PhoneMode::Token => "token",
    }
}

/// Appends the project's current definition to the down log of every participating site and
/// every site that was sent it before, unless that site already has this version.
pub(super) fn push_project(tx: &Transaction<'_>, project_id: i64) -> Result<Vec<i64>, ProjectAccessError> {
    let project = load_project(tx, project_id)?.ok_or(ProjectAccessError::UnknownProject(project_id))?;
    let mut sites: BTreeSet<i64> = project.site_ids.iter().copied().collect();
    {
        let mut stmt = tx.prepare("SELECT site_id FROM sent_projects WHERE project_id = ?1")?;
        for site in stmt.query_map([project_id], |r| r.get::<_, i64>(0))? {
            sites.insert(site?);
        }
    }
    let mut pushed = Vec::new();
    for site_id in sites {
        let sent: Option<i64> = tx
            .query_row("SELECT version FROM sent_projects WHERE site_id = ?1 AND project_id = ?2", params![site_id, project_id], |r| r.get(0))
            .optional()?;
        if sent == Some(project.version) {
            continue;
        }
        append_down(tx, site_id, &DownEvent::Project(project.to_wire())).map_err(|e| ProjectAccessError::Encode(e.to_string()))?;
        append_down(tx, site_id, &DownEvent::ProjectSettings(project.settings_to_wire()))
            .map_err(|e| ProjectAccessError::Encode(e.to_string()))?;
        append_down(tx, site_id, &DownEvent::ListColumns(project.list_columns_to_wire()))
            .map_err(|e| ProjectAccessError::Encode(e.to_string()))?;
        tx.execute(
            "INSERT INTO sent_projects (site_id, project_id, version) VALUES (?1, ?2, ?3)
             ON CONFLICT (site_id, project_id) DO UPDATE SET version = excluded.version",
            params![site_id, project_id, project.version],
        )?;
        if sent.is_none() {
            // A site new to the project learns HQ's one-click state before any batch of it.
            super::one_click::seed_project_site(tx, project_id, site_id).map_err(|e| ProjectAccessError::Encode(e.to_string()))?;
            super::report_defs::seed_site(tx, project_id, site_id).map_err(|e| ProjectAccessError::Encode(e.to_string()))?;
        }
        pushed.push(site_id);
    }
    Ok(pushed)
}

pub(super) fn load_project(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Project>> {
    conn.query_row(&format!("{PROJECT_SELECT} WHERE p.id = ?1"), [id], project_from_row).optional()
}

/// Checks both field lists and encodes them for storage.
fn fields_json(customer: &[FieldSpec], record: &[FieldSpec]) -> Result<(String, String), CreateProjectError> {
    let customer_fields = clean_fields("customer field", customer, &["phone", "seat", "batch"])?;
    let record_fields = clean_fields("business-record field", record, &["title"])?;
    let encode = |list: &'static str, fields: &[FieldSpec]| {
        serde_json::to_string(fields).map_err(|e| CreateProjectError::InvalidField { list, number: 0, reason: e.to_string() })
    };
    Ok((encode("customer field", &customer_fields)?, encode("business-record field", &record_fields)?))
}

impl Store {
    /// Adds a category (add only: there is no rename or delete).
    pub fn create_category(&self, name: &str) -> Result<i64, CreateCategoryError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CreateCategoryError::EmptyName);
        }
        let conn = self.conn();
        match conn.execute("INSERT INTO categories (name, created_at) VALUES (?1, ?2)", params![name, now_unix()]) {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(CreateCategoryError::Duplicate(name.to_string())),
            Err(e) => Err(DbError(e).into()),
        }
    }

    /// All categories, oldest first.
    pub fn list_categories(&self) -> Result<Vec<Category>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, created_at FROM categories ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok(Category { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates a sub-project after checking its fields; with a template, its fields and popup
    /// page are cloned from that sub-project (which must be in the same category).
    pub fn create_project(&self, new: &NewProject) -> Result<i64, CreateProjectError> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(CreateProjectError::EmptyName);
        }
        let settings = clean_settings(&new.settings)?;
        let mut new = new.clone();
        if let Some(template_id) = new.template_id {
            let template = load_project(&self.conn(), template_id)?;
            match template {
                Some(t) if t.category_id == new.category_id => {
                    new.customer_fields = t.customer_fields;
                    new.record_fields = t.record_fields;
                    new.script = t.script;
                    new.hide_middle_digits = t.hide_middle_digits;
                }
                _ => return Err(CreateProjectError::BadTemplate(template_id)),
            }
        }
        let (customer_json, record_json) = fields_json(&new.customer_fields, &new.record_fields)?;
        let settings_json = serde_json::to_string(&settings).map_err(|e| CreateProjectError::InvalidSetting { name: "settings", reason: e.to_string() })?;
        let conn = self.conn();
        let category_exists = conn
            .query_row("SELECT 1 FROM categories WHERE id = ?1", [new.category_id], |_| Ok(()))
            .optional()
            .map_err(DbError)?
            .is_some();
        if !category_exists {
            return Err(CreateProjectError::UnknownCategory(new.category_id));
        }
        let inserted = conn.execute(
            "INSERT INTO projects (category_id, name, script, hide_middle_digits, customer_fields, record_fields, version, created_at,
                                   settings, phone_mode, template_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10)",
            params![new.category_id, name, new.script, new.hide_middle_digits, customer_json, record_json, now_unix(),
                    settings_json, phone_mode_text(new.phone_mode), new.template_id],
        );
        match inserted {
            Ok(_) => {
                let id = conn.last_insert_rowid();
                if let Some(template_id) = new.template_id {
                    // A template clones its report definitions too (H2).
                    super::report_defs::clone_definitions(&conn, template_id, id).map_err(DbError)?;
                }
                Ok(id)
            }
            Err(e) if is_unique_violation(&e) => Err(CreateProjectError::Duplicate(name.to_string())),
            Err(e) => Err(DbError(e).into()),
        }
    }

    /// Replaces a sub-project's definition: a new version, sent down to its sites. Returns the
    /// ids of the sites it was sent to.
    pub fn update_project(&self, id: i64, edit: &ProjectEdit) -> Result<Vec<i64>, CreateProjectError> {
        let name = edit.name.trim();
        if name.is_empty() {
            return Err(CreateProjectError::EmptyName);
        }
        let settings = clean_settings(&edit.settings)?;
        let (customer_json, record_json) = fields_json(&edit.customer_fields, &edit.record_fields)?;
        let settings_json = serde_json::to_string(&settings).map_err(|e| CreateProjectError::InvalidSetting { name: "settings", reason: e.to_string() })?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Call records keep the name a project had at the time of the call (the manual).
        super::edits::remember_old_name(&tx, id, name)?;
        let updated = tx.execute(
            "UPDATE projects SET name = ?2, script = ?3, hide_middle_digits = ?4, customer_fields = ?5, record_fields = ?6,
                settings = ?7, phone_mode = ?8, version = version + 1 WHERE id = ?1",
            params![id, name, edit.script, edit.hide_middle_digits, customer_json, record_json, settings_json, phone_mode_text(edit.phone_mode)],
        );
        match updated {
            Ok(0) => return Err(CreateProjectError::UnknownProject(id)),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(CreateProjectError::Duplicate(name.to_string())),
            Err(e) => return Err(DbError(e).into()),
        }
        let pushed = push_project(&tx, id).map_err(|e| match e {
            ProjectAccessError::Db(db) => CreateProjectError::Db(db),
            other => CreateProjectError::InvalidSetting { name: "definition", reason: other.to_string() },
        })?;
        tx.commit()?;
        drop(conn);
        for site in &pushed {
            self.down_notify_for(*site as u64).notify_one();
        }
        Ok(pushed)
    }

    /// One sub-project.
    pub fn project(&self, id: i64) -> Result<Option<Project>, DbError> {
        Ok(load_project(&self.conn(), id)?)
    }

    /// All sub-projects, by category then id.
    pub fn list_projects(&self) -> Result<Vec<Project>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{PROJECT_SELECT} ORDER BY p.category_id, p.id"))?;
        let rows = stmt.query_map([], project_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// A dial token's length (hex digits) when the project sets none: the manual's tokens,
/// such as `A207A92E2B93892F5F4C`, are 20.
pub const DEFAULT_TOKEN_LENGTH: usize = 20;

/// Dial-token lengths a project may set.
pub const TOKEN_LENGTHS: std::ops::RangeInclusive<usize> = 8..=64;

/// Refuses a dial-token length outside [`TOKEN_LENGTHS`], saying why.
pub fn check_token_length(length: usize) -> Result<(), CreateProjectError> {
    if TOKEN_LENGTHS.contains(&length) {
        return Ok(());
    }
    Err(CreateProjectError::InvalidSetting {
        name: "token_length",
        reason: format!(
            "{length} is out of range: a dial token is {} to {} hex digits ({DEFAULT_TOKEN_LENGTH} in the manual's sample)",
            TOKEN_LENGTHS.start(),
            TOKEN_LENGTHS.end()
        ),
    })
}

// The dial-token length is its own column (migration 7), read and set on its own: it rules
// only the import of token projects, and sites never see it.
impl Store {
    /// The length of sub-project `id`'s dial tokens; `None` if there is no such sub-project.
    pub fn project_token_length(&self, id: i64) -> Result<Option<usize>, DbError> {
        let length: Option<i64> =
            self.conn().query_row("SELECT token_length FROM projects WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(length.map(|n| usize::try_from(n).unwrap_or(DEFAULT_TOKEN_LENGTH)))
    }

    /// Sets the length of sub-project `id`'s dial tokens (hex digits, within [`TOKEN_LENGTHS`]).
    pub fn set_project_token_length(&self, id: i64, length: usize) -> Result<(), CreateProjectError> {
        check_token_length(length)?;
        let updated = self.conn().execute("UPDATE projects SET token_length = ?2 WHERE id = ?1", params![id, length as i64])?;
        if updated == 0 {
            return Err(CreateProjectError::UnknownProject(id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, title: &str, kind: FieldSpecKind, options: &[&str]) -> FieldSpec {
        FieldSpec::new(key, title, kind, options)
    }

    #[test]
    fn categories_are_unique_and_projects_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let category = store.create_category("套餐类").unwrap();
        assert!(matches!(store.create_category("套餐类"), Err(CreateCategoryError::Duplicate(_))));
        assert!(matches!(store.create_category("  "), Err(CreateCategoryError::EmptyName)));

        let mut new = NewProject {
            category_id: category,
            name: "流量包".into(),
            script: "您好".into(),
            hide_middle_digits: true,
            customer_fields: vec![field("name", "姓名", FieldSpecKind::Text, &[])],
            record_fields: vec![field("result", "营销结果", FieldSpecKind::SingleChoice, &[" 成功 ", "失败", ""])],
            template_id: None,
            settings: ProjectSettings::default(),
            phone_mode: PhoneMode::Number,
        };
        let id = store.create_project(&new).unwrap();
        let project = store.project(id).unwrap().unwrap();
        assert_eq!(project.record_fields[0].options, vec!["成功", "失败"]);
        assert_eq!(project.category_name, "套餐类");
        assert!(matches!(store.create_project(&new), Err(CreateProjectError::Duplicate(_))));

        new.name = "其他".into();
        new.customer_fields = vec![field("Name", "姓名", FieldSpecKind::Text, &[])];
        let err = store.create_project(&new).unwrap_err().to_string();
        assert!(err.starts_with("customer field 1: variable name \"Name\" is not valid"), "{err}");
        new.customer_fields = vec![field("phone", "电话", FieldSpecKind::Text, &[])];
        assert!(store.create_project(&new).unwrap_err().to_string().contains("reserved"));
        new.customer_fields = vec![];
        new.record_fields = vec![field("result", "结果", FieldSpecKind::SingleChoice, &[])];
        assert!(store.create_project(&new).unwrap_err().to_string().contains("one option per line"));
        new.category_id = 77;
        new.record_fields = vec![];
        assert!(matches!(store.create_project(&new), Err(CreateProjectError::UnknownCategory(77))));
    }
}

//! What a report is: its tags (group-by), conditions (数据条件) and columns (each a statistic
//! or a ratio of two, under its own header), and the checks a definition must pass before it
//! is stored. Errors name the field at fault and come in Chinese and English: the UIs pick.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// At most this many tags at once (the manual: 标签最多可以选择五个).
pub const MAX_TAGS: usize = 5;
/// Columns per report: a sheet wider than this is not read by anyone.
pub const MAX_COLUMNS: usize = 40;
/// Conditions per report.
pub const MAX_CONDITIONS: usize = 20;
/// Characters of a report name or a column header.
pub const MAX_NAME_CHARS: usize = 100;

/// A group-by of a report (标签).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    /// The sub-project (for reports over several, 综合项目报表).
    Project,
    /// The site (外呼职场).
    Site,
    /// The site's team (外呼团队); a team is a team of one site.
    Team,
    /// The agent's extension (分机).
    Extension,
    /// The agent account (分机账号).
    Agent,
    /// The task / batch (路由或外呼任务).
    Batch,
    /// The account that dispatched the batch (数据来源).
    Account,
    /// Who hung up (挂断位置).
    HangupSide,
    /// Inbound or outbound (通话方式).
    Direction,
    /// Hour of day 0-23 (时段-时).
    Hour,
    /// ISO weekday 1 (Monday) - 7 (时段-周).
    Weekday,
    /// The calendar day.
    Day,
    /// The calendar month (时段-月).
    Month,
}

/// What a condition filters on: a dimension or a single-choice business field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Project,
    Site,
    Team,
    Extension,
    Agent,
    Batch,
    Account,
    /// `customer`, `agent`, `system` or `none`.
    HangupSide,
    /// `outbound` or `inbound`.
    Direction,
    /// 0-23.
    Hour,
    /// 1 (Monday) - 7.
    Weekday,
    /// A business-record single-choice field, by its key; `""` matches "no record / no value".
    Field { key: String },
}

/// A data condition (数据条件): the attempt's subject is one of `values` (or, negated, none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    pub subject: Subject,
    pub values: Vec<String>,
    #[serde(default)]
    pub negate: bool,
}

/// A statistic: a count or a sum over the attempts of a row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Statistic {
    /// Every attempt, in or out.
    Attempts,
    /// Outbound attempts (外呼数).
    Dials,
    /// Outbound attempts the customer answered (外呼接通数).
    DialConnected,
    /// Attempts, in or out, with the customer on the line (客户接通数).
    CustomerConnected,
    /// Attempts an agent's extension took (分机接通数).
    ExtensionConnected,
    /// Attempts an agent rejected (分机拒接数).
    ExtensionRejected,
    /// Attempts offered to an agent who let them ring out (分机拒转放弃数).
    ExtensionMissed,
    /// Answered calls the customer left while queued for an agent (队列放弃数).
    QueueAbandon,
    /// Calls the customer left in the IVR (IVR放弃数).
    IvrAbandon,
    /// Inbound calls (呼入数).
    Inbound,
    /// Inbound calls an agent took (呼入接通数).
    InboundConnected,
    /// Seconds of agent-customer talk (通话时长).
    TalkSeconds,
    /// Seconds in the IVR (在IVR时长).
    IvrSeconds,
    /// Seconds the customer's phone rang.
    RingSeconds,
    /// Seconds answered customers waited for an agent.
    QueueSeconds,
    /// Attempts put through to an agent's extension, taken or not (接入坐席数).
    AgentsReached,
    /// Attempts whose business record holds `value` in single-choice field `key`
    /// ("本次业务结果-成功").
    FieldValue { key: String, value: String },
}

/// A column: a statistic, or the ratio `statistic ÷ divide_by` (接通率), under its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Column {
    /// 表头名称.
    pub header: String,
    pub statistic: Statistic,
    /// When set the column is a ratio; a row whose divisor is 0 shows no value.
    #[serde(default)]
    pub divide_by: Option<Statistic>,
}

/// A report of the builder (综合话务统计, 话务+CRM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportDef {
    pub name: String,
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub columns: Vec<Column>,
}

/// The language of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

/// Why a definition is refused, without the words: the UIs translate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefErrorKind {
    #[error("must not be empty")]
    Empty,
    #[error("at most {max} characters (got {got})")]
    TooLong { max: usize, got: usize },
    #[error("at most {max} (got {got})")]
    TooMany { max: usize, got: usize },
    #[error("listed twice")]
    Duplicate,
    #[error("at least one column is needed")]
    NoColumns,
    #[error("{value:?} is not a valid value here")]
    BadValue { value: String },
}

/// A refused definition: which field (`columns[2].header`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {kind}")]
pub struct DefError {
    pub field: String,
    pub kind: DefErrorKind,
}

impl DefError {
    fn new(field: impl Into<String>, kind: DefErrorKind) -> DefError {
        DefError { field: field.into(), kind }
    }

    /// The message in `lang`, naming the field.
    pub fn message(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.to_string(),
            Lang::Zh => {
                let why = match &self.kind {
                    DefErrorKind::Empty => "不能为空".to_owned(),
                    DefErrorKind::TooLong { max, got } => format!("最多 {max} 个字符（现有 {got} 个）"),
                    DefErrorKind::TooMany { max, got } => format!("最多 {max} 项（现有 {got} 项）"),
                    DefErrorKind::Duplicate => "重复".to_owned(),
                    DefErrorKind::NoColumns => "至少需要一个数据列".to_owned(),
                    DefErrorKind::BadValue { value } => format!("“{value}”不是有效的取值"),
                };
                format!("{}：{why}", field_zh(&self.field))
            }
        }
    }
}

/// A definition's field path (`columns[2].header`) as the report editor labels it
/// (数值第 3 项的表头名称), not by its variables.
fn field_zh(path: &str) -> String {
    let label = |key: &str| match key {
        "name" => "标题",
        "tags" => "标签",
        "columns" => "数值",
        "header" => "表头名称",
        "conditions" => "数据条件",
        "values" => "取值",
        "field" => "业务字段",
        "statistic" => "统计项",
        "numerator" => "分子",
        "denominator" => "分母",
        "divide_by" => "除以",
        "key" => "业务字段",
        _ => "",
    };
    let parts: Vec<String> = path
        .split('.')
        .map(|segment| {
            let (key, index) = match segment.split_once('[') {
                Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            let word = if label(key).is_empty() { key.to_string() } else { label(key).to_string() };
            match index {
                Some(index) => format!("{word}第 {} 项", index + 1),
                None => word,
            }
        })
        .collect();
    parts.join("的")
}

fn check_text(field: String, text: &str) -> Result<(), DefError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(DefError::new(field, DefErrorKind::Empty));
    }
    if chars > MAX_NAME_CHARS {
        return Err(DefError::new(field, DefErrorKind::TooLong { max: MAX_NAME_CHARS, got: chars }));
    }
    Ok(())
}

fn check_statistic(field: String, statistic: &Statistic) -> Result<(), DefError> {
    if let Statistic::FieldValue { key, value } = statistic {
        if key.trim().is_empty() {
            return Err(DefError::new(format!("{field}.key"), DefErrorKind::Empty));
        }
        if value.is_empty() {
            return Err(DefError::new(format!("{field}.value"), DefErrorKind::Empty));
        }
    }
    Ok(())
}

/// Whether `value` can be a value of `subject` (numbers where numbers are meant).
fn valid_condition_value(subject: &Subject, value: &str) -> bool {
    match subject {
        Subject::Project | Subject::Site | Subject::Batch => value.parse::<i64>().is_ok(),
        Subject::HangupSide => ["customer", "agent", "system", "none"].contains(&value),
        Subject::Direction => ["outbound", "inbound"].contains(&value),
        Subject::Hour => value.parse::<u8>().is_ok_and(|h| h < 24),
        Subject::Weekday => value.parse::<u8>().is_ok_and(|d| (1..=7).contains(&d)),
        Subject::Team | Subject::Extension | Subject::Agent | Subject::Account | Subject::Field { .. } => true,
    }
}

impl ReportDef {
    /// Checks the definition; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), DefError> {
        check_text("name".to_owned(), &self.name)?;
        if self.tags.len() > MAX_TAGS {
            return Err(DefError::new("tags", DefErrorKind::TooMany { max: MAX_TAGS, got: self.tags.len() }));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if self.tags[..i].contains(tag) {
                return Err(DefError::new(format!("tags[{i}]"), DefErrorKind::Duplicate));
            }
        }
        if self.conditions.len() > MAX_CONDITIONS {
            let got = self.conditions.len();
            return Err(DefError::new("conditions", DefErrorKind::TooMany { max: MAX_CONDITIONS, got }));
        }
        for (i, condition) in self.conditions.iter().enumerate() {
            if let Subject::Field { key } = &condition.subject {
                if key.trim().is_empty() {
                    return Err(DefError::new(format!("conditions[{i}].subject.key"), DefErrorKind::Empty));
                }
            }
            if condition.values.is_empty() {
                return Err(DefError::new(format!("conditions[{i}].values"), DefErrorKind::Empty));
            }
            for (j, value) in condition.values.iter().enumerate() {
                if !valid_condition_value(&condition.subject, value) {
                    let kind = DefErrorKind::BadValue { value: value.clone() };
                    return Err(DefError::new(format!("conditions[{i}].values[{j}]"), kind));
                }
            }
        }
        if self.columns.is_empty() {
            return Err(DefError::new("columns", DefErrorKind::NoColumns));
        }
        if self.columns.len() > MAX_COLUMNS {
            let got = self.columns.len();
            return Err(DefError::new("columns", DefErrorKind::TooMany { max: MAX_COLUMNS, got }));
        }
        for (i, column) in self.columns.iter().enumerate() {
            check_text(format!("columns[{i}].header"), &column.header)?;
            if self.columns[..i].iter().any(|c| c.header.trim() == column.header.trim()) {
                return Err(DefError::new(format!("columns[{i}].header"), DefErrorKind::Duplicate));
            }
            check_statistic(format!("columns[{i}].statistic"), &column.statistic)?;
            if let Some(divisor) = &column.divide_by {
                check_statistic(format!("columns[{i}].divide_by"), divisor)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ReportDef {
        ReportDef {
            name: "统计-综合话务报表".to_owned(),
            tags: vec![Tag::Team],
            conditions: vec![],
            columns: vec![
                Column { header: "外呼数".to_owned(), statistic: Statistic::Dials, divide_by: None },
                Column {
                    header: "接通率".to_owned(),
                    statistic: Statistic::DialConnected,
                    divide_by: Some(Statistic::Dials),
                },
            ],
        }
    }

    #[test]
    fn a_good_definition_passes_and_round_trips_as_json() {
        let def = def();
        def.validate().unwrap();
        let json = serde_json::to_string(&def).unwrap();
        assert_eq!(serde_json::from_str::<ReportDef>(&json).unwrap(), def);
    }

    #[test]
    fn six_tags_are_refused_naming_the_field_in_both_languages() {
        let mut def = def();
        def.tags = vec![Tag::Site, Tag::Team, Tag::Agent, Tag::Hour, Tag::Day, Tag::Month];
        let err = def.validate().unwrap_err();
        assert_eq!(err.field, "tags");
        assert_eq!(err.message(Lang::En), "tags: at most 5 (got 6)");
        assert_eq!(err.message(Lang::Zh), "标签：最多 5 项（现有 6 项）");
        assert_eq!(field_zh("columns[2].header"), "数值第 3 项的表头名称");
    }

    #[test]
    fn bad_fields_are_named() {
        let mut d = def();
        d.columns[1].header = "外呼数".to_owned();
        assert_eq!(d.validate().unwrap_err().field, "columns[1].header");
        let mut d = def();
        d.conditions.push(Condition { subject: Subject::Hour, values: vec!["24".to_owned()], negate: false });
        let err = d.validate().unwrap_err();
        assert_eq!(err.field, "conditions[0].values[0]");
        assert_eq!(err.kind, DefErrorKind::BadValue { value: "24".to_owned() });
        let mut d = def();
        d.columns.clear();
        assert_eq!(d.validate().unwrap_err().kind, DefErrorKind::NoColumns);
        let mut d = def();
        d.tags.push(Tag::Team);
        assert_eq!(d.validate().unwrap_err().field, "tags[1]");
        let mut d = def();
        d.columns[0].statistic = Statistic::FieldValue { key: "result".to_owned(), value: String::new() };
        assert_eq!(d.validate().unwrap_err().field, "columns[0].statistic.value");
    }
}

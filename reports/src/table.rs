//! A report's scope ([`Filter`]) and its answer ([`ReportTable`]), shared by the engine and
//! the brute-force oracle so the two can be compared value for value.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fact::{measure_index, Measures};
use crate::model::{ReportDef, Statistic};
use crate::time::{civil_from_days, DayRange};

/// Which attempts a report counts, besides its own conditions: the preview's filters and the
/// caller's scope (a sub-admin's sites). `None` means no restriction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub projects: Option<Vec<i64>>,
    pub sites: Option<Vec<i64>>,
    /// Data source: the dispatching accounts.
    pub accounts: Option<Vec<String>>,
    /// Team names (at any site in scope).
    pub teams: Option<Vec<String>>,
    pub days: DayRange,
}

/// One part of a row's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum KeyPart {
    /// Project, site, batch ids; hour 0-23; weekday 1-7.
    Int(i64),
    /// Account; hang-up side and direction names; day `YYYY-MM-DD`; month `YYYY-MM`.
    Text(String),
    /// A team, agent or extension of one site.
    SiteText { site: i64, text: String },
}

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Value {
    Count(i64),
    /// A ratio column; `None` when the divisor is 0.
    Ratio(Option<f64>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Row {
    pub keys: Vec<KeyPart>,
    pub values: Vec<Value>,
}

/// A report's answer: one row per combination of tag values that has attempts, sorted by the
/// keys, and the total over all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportTable {
    pub tags: Vec<crate::model::Tag>,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
    pub total: Vec<Value>,
}

/// The distinct business-field counts a definition uses, in first-use order.
pub(crate) fn field_statistics(def: &ReportDef) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let all = def.columns.iter().flat_map(|c| std::iter::once(&c.statistic).chain(c.divide_by.iter()));
    for statistic in all {
        if let Statistic::FieldValue { key, value } = statistic {
            if !out.iter().any(|(k, v)| k == key && v == value) {
                out.push((key.clone(), value.clone()));
            }
        }
    }
    out
}

/// A statistic's value from a group's sums: the base measures and the field counts (in
/// [`field_statistics`] order).
fn statistic_value(statistic: &Statistic, m: &Measures, fields: &[(String, String)], counts: &[i64]) -> i64 {
    if let Some(i) = measure_index(statistic) {
        return m[i];
    }
    match statistic {
        Statistic::FieldValue { key, value } => fields
            .iter()
            .position(|(k, v)| k == key && v == value)
            .and_then(|i| counts.get(i).copied())
            .unwrap_or(0),
        _ => 0,
    }
}

/// The column values of a group.
pub(crate) fn values(def: &ReportDef, m: &Measures, fields: &[(String, String)], counts: &[i64]) -> Vec<Value> {
    def.columns
        .iter()
        .map(|column| {
            let n = statistic_value(&column.statistic, m, fields, counts);
            match &column.divide_by {
                None => Value::Count(n),
                Some(divisor) => {
                    let d = statistic_value(divisor, m, fields, counts);
                    Value::Ratio((d != 0).then(|| n as f64 / d as f64))
                }
            }
        })
        .collect()
}

/// A day number as `YYYY-MM-DD`.
pub fn day_text(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A month index (months since 1970-01) as `YYYY-MM`.
pub fn month_text(month: i64) -> String {
    format!("{:04}-{:02}", 1970 + month.div_euclid(12), month.rem_euclid(12) + 1)
}

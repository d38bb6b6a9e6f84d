//! The date filter and keyset pager shared by the console's growing lists (文件管理,
//! 下发任务管理, 业务记录): `?from=2026-12-01&to=2026-12-07&before=…`, dates in the hub's
//! time zone (China time unless `serve --time-zone`), `to` included. The pager links carry
//! the dates on, so paging never drops the filter.

use serde::Deserialize;

use super::Tr;
use crate::store::{ListWindow, RecordWindow};

/// Rows per page of these lists.
pub const PAGE_ROWS: usize = 50;

/// The query string of a paged list; every field optional and read leniently, so a bad
/// value is reported on the page rather than refused by the framework.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
}

/// What a list page shows around its table: the filter's values, an error, the links.
pub struct Pager {
    pub from: String,
    pub to: String,
    pub error: String,
    pub first: Option<String>,
    pub next: Option<String>,
}

/// The unix time a `YYYY-MM-DD` day starts at, `offset` seconds east of UTC.
fn day_start(text: &str, offset: i32) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() - i64::from(offset))
}

impl ListQuery {
    fn text(value: &Option<String>) -> String {
        value.as_deref().unwrap_or("").trim().to_string()
    }

    /// The dates as unix bounds `[from, to)`, or the error to show (naming the field).
    fn bounds(&self, tr: Tr, offset: i32) -> (Option<i64>, Option<i64>, String) {
        let mut error = String::new();
        let mut read = |value: &Option<String>, zh: &str, en: &str| -> Option<i64> {
            let text = Self::text(value);
            if text.is_empty() {
                return None;
            }
            let found = day_start(&text, offset);
            if found.is_none() && error.is_empty() {
                error = if tr.is_en() {
                    format!("{en} date {text:?} is not valid: write it as 2026-12-07")
                } else {
                    format!("{zh}日期“{text}”无效：请写成 2026-12-07 的格式")
                };
            }
            found
        };
        let from = read(&self.from, "开始", "start");
        let to = read(&self.to, "结束", "end").map(|day| day + 86_400);
        (from, to, error)
    }

    /// The window of an id-keyed list.
    pub fn window(&self, tr: Tr, offset: i32) -> (ListWindow, String) {
        let (from, to, error) = self.bounds(tr, offset);
        let before = self.before.as_deref().and_then(|b| b.trim().parse().ok());
        (ListWindow { before, from, to, limit: PAGE_ROWS }, error)
    }

    /// The window of a batch's records (cursor `saved_at.attempt_id`).
    pub fn record_window(&self, tr: Tr, offset: i32) -> (RecordWindow, String) {
        let (from, to, error) = self.bounds(tr, offset);
        let before = self.before.as_deref().and_then(|b| {
            let (saved, attempt) = b.trim().split_once('.')?;
            Some((saved.parse().ok()?, attempt.parse().ok()?))
        });
        (RecordWindow { before, from, to, limit: PAGE_ROWS }, error)
    }

    /// The pager for a page of `path` whose next page starts at `next` (if any).
    pub fn pager(&self, path: &str, error: String, next: Option<String>) -> Pager {
        let (from, to) = (Self::text(&self.from), Self::text(&self.to));
        let dates = format!("from={}&to={}", escape(&from), escape(&to));
        Pager {
            first: self.before.is_some().then(|| format!("{path}?{dates}")),
            next: next.map(|cursor| format!("{path}?{dates}&before={}", escape(&cursor))),
            from,
            to,
            error,
        }
    }
}

/// Percent-encodes a query value.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::i18n::Lang;
    use super::*;

    #[test]
    fn dates_are_local_days_and_bad_ones_are_named() {
        let tr = Tr { lang: Lang::Zh };
        let query = ListQuery { from: Some("2026-12-07".into()), to: Some("2026-12-07".into()), before: Some("40".into()) };
        let (window, error) = query.window(tr, 8 * 3600);
        assert_eq!(error, "");
        // 2026-12-07 00:00 China time is 2026-12-06 16:00 UTC.
        assert_eq!(window.from, Some(1_796_601_600 - 8 * 3600));
        assert_eq!(window.to, Some(1_796_601_600 - 8 * 3600 + 86_400));
        assert_eq!(window.before, Some(40));
        let pager = query.pager("/files", error, Some("12".into()));
        assert_eq!(pager.next.as_deref(), Some("/files?from=2026-12-07&to=2026-12-07&before=12"));
        assert_eq!(pager.first.as_deref(), Some("/files?from=2026-12-07&to=2026-12-07"));

        let bad = ListQuery { from: Some("12/07".into()), ..ListQuery::default() };
        let (window, error) = bad.window(tr, 8 * 3600);
        assert_eq!(window.from, None);
        assert!(error.contains("开始日期“12/07”无效"), "{error}");
    }
}

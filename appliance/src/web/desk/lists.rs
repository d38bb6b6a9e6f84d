//! What the desk's growing lists (外呼通话记录, 客户管理) share: the filters with a date
//! span (days in China time, as every time at the site), and keyset paging — a page ends
//! with a "next page" link carrying the last row's key, so paging stays exact and cheap
//! however long the list grows, and a row added meanwhile never shifts a page.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::Deserialize;

use crate::store::{PopupField, Store, Unlisted};

use crate::web::ApiError;
use crate::web::limits::{self, Check, Limits};

use super::words::DeskWords;

/// Rows per page of a desk list.
pub const PAGE: u32 = 50;

/// The query of a desk list.
#[derive(Debug, Default, Deserialize)]
pub struct DeskListQuery {
    pub outcome: Option<String>,
    pub phone_tail: Option<String>,
    /// First day, `YYYY-MM-DD` (China time).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (China time), included.
    pub to: Option<String>,
    /// Call records: the last attempt of the page before.
    pub before: Option<u64>,
    /// Customers: the last row of the page before.
    pub after_batch: Option<u64>,
    pub after_row: Option<u64>,
}

impl Limits for DeskListQuery {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt("outcome", self.outcome.as_deref(), limits::KEY)?;
        check.opt("phone_tail", self.phone_tail.as_deref(), limits::KEY)?;
        check.opt("from", self.from.as_deref(), limits::KEY)?;
        check.opt("to", self.to.as_deref(), limits::KEY)?;
        check.opt_id("before", self.before)?;
        check.opt_id("after_batch", self.after_batch)?;
        check.opt_id("after_row", self.after_row)
    }
}

impl DeskListQuery {
    /// The span `[from, to + 1 day)` in unix seconds; a malformed day is refused by its label.
    pub fn span(&self, w: &DeskWords) -> Result<(Option<i64>, Option<i64>), ApiError> {
        let day = |text: &Option<String>, label: &str| -> Result<Option<i64>, ApiError> {
            match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(text) => china_day_start(text)
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(w.err_date.replace("{field}", label))),
            }
        };
        Ok((day(&self.from, w.date_from)?, day(&self.to, w.date_to)?.map(|start| start + 86_400)))
    }

    /// The query string of this list's filters (no cursor), for the pager's links.
    pub fn filters(&self) -> String {
        let pairs = [("outcome", &self.outcome), ("phone_tail", &self.phone_tail), ("from", &self.from), ("to", &self.to)];
        pairs
            .iter()
            .filter_map(|(key, value)| value.as_deref().filter(|v| !v.is_empty()).map(|v| format!("{key}={}", encode(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The fields each project's lists show (列表显示 at HQ), read once per project per page.
pub struct Listed<'a> {
    store: &'a Store,
    unlisted: HashMap<u64, Unlisted>,
}

impl<'a> Listed<'a> {
    pub fn new(store: &'a Store) -> Listed<'a> {
        Listed { store, unlisted: HashMap::new() }
    }

    fn of(&mut self, project_id: Option<u64>) -> Result<&Unlisted, ApiError> {
        let project_id = project_id.unwrap_or_default();
        if let Entry::Vacant(slot) = self.unlisted.entry(project_id) {
            slot.insert(self.store.unlisted_fields(project_id)?);
        }
        Ok(&self.unlisted[&project_id])
    }

    /// The customer fields of `project_id` its lists show.
    pub fn customer(&mut self, project_id: Option<u64>, fields: &[PopupField]) -> Result<Vec<PopupField>, ApiError> {
        let unlisted = self.of(project_id)?;
        Ok(fields.iter().filter(|f| !unlisted.customer.contains(&f.key)).cloned().collect())
    }

    /// The business-record fields of `project_id` its lists show.
    pub fn record(&mut self, project_id: Option<u64>, fields: &[PopupField]) -> Result<Vec<PopupField>, ApiError> {
        let unlisted = self.of(project_id)?;
        Ok(fields.iter().filter(|f| !unlisted.record.contains(&f.key)).cloned().collect())
    }

    /// The list's column titles: the definition's fields, less hidden and unlisted ones.
    pub fn columns(&mut self, project_id: u64, fields: &[sync_protocol::FieldDef], record: bool) -> Result<Vec<String>, ApiError> {
        let unlisted = self.of(Some(project_id))?;
        let keys = if record { &unlisted.record } else { &unlisted.customer };
        Ok(fields.iter().filter(|f| !f.hidden && !keys.contains(&f.key)).map(|f| f.title.clone()).collect())
    }
}

/// Unix seconds of 00:00 China time (UTC+8) on `YYYY-MM-DD`.
pub fn china_day_start(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?.parse::<i32>().ok()?, parts.next()?.parse::<u8>().ok()?, parts.next()?.parse::<u8>().ok()?);
    if parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() - 8 * 3600)
}

/// Percent-encodes everything but ASCII letters, digits and `-_.`.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The pager under a list: the first page's link when not on it, the next page's when
/// there is one.
pub struct Pager {
    pub first: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `cursor` is the next page's cursor (`before=..`), when more rows follow.
    pub fn new(path: &str, query: &DeskListQuery, on_first: bool, cursor: Option<String>) -> Pager {
        Pager::with_filters(path, &query.filters(), on_first, cursor)
    }

    /// The same with the list's filters given as a query string (no cursor).
    pub fn with_filters(path: &str, filters: &str, on_first: bool, cursor: Option<String>) -> Pager {
        let join = |extra: Option<&str>| {
            let parts: Vec<&str> = [Some(filters), extra].into_iter().flatten().filter(|p| !p.is_empty()).collect();
            if parts.is_empty() { path.to_string() } else { format!("{path}?{}", parts.join("&")) }
        };
        Pager { first: (!on_first).then(|| join(None)), next: cursor.map(|cursor| join(Some(&cursor))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_midnight_china_time() {
        // 2026-12-07 00:00 +08:00 = 2026-12-06 16:00 UTC.
        assert_eq!(china_day_start("2026-12-07"), Some(1_796_601_600 - 8 * 3600));
        assert_eq!(china_day_start("2026-02-30"), None);
        assert_eq!(china_day_start("2026-12"), None);
        assert_eq!(china_day_start("2026-12-07-1"), None);
    }

    #[test]
    fn the_pager_keeps_the_filters() {
        let query = DeskListQuery { outcome: Some("busy".into()), from: Some("2026-12-01".into()), ..DeskListQuery::default() };
        let pager = Pager::new("/desk/records", &query, false, Some("before=17".into()));
        assert_eq!(pager.next.as_deref(), Some("/desk/records?outcome=busy&from=2026-12-01&before=17"));
        assert_eq!(pager.first.as_deref(), Some("/desk/records?outcome=busy&from=2026-12-01"));
        let bare = Pager::new("/desk/customers", &DeskListQuery::default(), true, None);
        assert!(bare.first.is_none() && bare.next.is_none());
    }
}

//! The data filter's result file (外呼数据过滤, manual 1.2.1.9): the store judges a file's
//! rows ([`Store::judge_filter`]); this module names the result "【过滤结果】name_YYYYMMDDhhmmss"
//! (Beijing time), writes its workbook (the kept rows, and a sheet of removal reasons:
//! [`crate::export::filter_result_xlsx`]) and stores it as a system-generated file whose
//! report lists every removed row with its reason.
//!
//! The workbook is written on a second thread while this one stores the kept rows: at a
//! million rows the two take about as long as each other.

use std::time::Instant;

use time::OffsetDateTime;

use crate::store::{FilterError, FilterOutcome, FilterSettings, GoodRow, ImportReport, Scope, Store, IMPORT_CHUNK_ROWS};

/// The result file's name for a filter of `source` run at `at`, stamped in Beijing time
/// (UTC+8), as the console lists it.
pub fn result_file_name(source: &str, at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC));
    let stamp =
        format!("{:04}{:02}{:02}{:02}{:02}{:02}", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second());
    format!("【过滤结果】{source}_{stamp}")
}

/// Filters file `file_id`'s rows (phones already taken from the auto-detected or chosen
/// column: `rows`), stores the result file and remembers the settings for the account.
pub fn run_filter(
    store: &Store,
    file_id: i64,
    rows: &[GoodRow],
    phone_header: &str,
    settings: &FilterSettings,
    scope: &Scope,
) -> Result<FilterOutcome, FilterError> {
    let t_run = Instant::now();
    let judged = store.judge_filter(file_id, rows, phone_header, settings, scope)?;
    let file_name = result_file_name(&judged.file_name, OffsetDateTime::now_utc());
    let (project, kept, removed) = (judged.project, judged.kept, judged.removed);
    let (n_kept, n_removed) = (kept.len() as u64, removed.len() as u64);
    let new_id = std::thread::scope(|threads| -> Result<i64, FilterError> {
        let (project, kept) = (&project, &kept);
        // The thread owns the removed rows and hands them back for the report.
        let workbook = threads.spawn(move || (crate::export::filter_result_xlsx(project, phone_header, kept, &removed), removed));
        let mut file = store.begin_file(project.id, &file_name, &scope.account.username, "system", "数据过滤生成的结果文件")?;
        for chunk in kept.chunks(IMPORT_CHUNK_ROWS) {
            file.append(chunk)?;
        }
        tracing::debug!(seconds = t_run.elapsed().as_secs_f64(), "filter: kept rows stored");
        let (bytes, removed) = workbook.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let bytes = bytes.map_err(|e| FilterError::Write(e.to_string()))?;
        tracing::debug!(seconds = t_run.elapsed().as_secs_f64(), "filter: result workbook written");
        file.keep_copy(&bytes)?;
        let report = ImportReport {
            n_rows: n_kept,
            n_good: n_kept,
            bad: removed,
            phone_column: phone_header.to_string(),
            unmatched_fields: Vec::new(),
            ..ImportReport::default()
        };
        Ok(file.finish(&report)?)
    })?;
    tracing::debug!(seconds = t_run.elapsed().as_secs_f64(), "filter: result file stored");
    store.remember_filter_settings(scope.account.id, settings)?;
    Ok(FilterOutcome { file_id: new_id, file_name, kept: n_kept, removed: n_removed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_named_for_its_file_in_beijing_time() {
        // 2024-05-31 17:04:05 UTC is 2024-06-01 01:04:05 in Beijing.
        let at = OffsetDateTime::from_unix_timestamp(1_717_175_045).unwrap();
        assert_eq!(result_file_name("五月名单.xlsx", at), "【过滤结果】五月名单.xlsx_20240601010405");
    }
}

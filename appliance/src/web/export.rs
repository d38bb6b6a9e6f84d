//! Exports of project data: business results as xlsx (rust_xlsxwriter) and recordings as a
//! zip of WAV files. Both take views the store already masked for the exporting account,
//! so an export carries nothing the page would not show. Times are local to the site's
//! report zone (`report_time_zone`, Asia/Shanghai by default) and outcomes are words (接通),
//! as the pages show them, never UTC or stored keys.

use std::io::Write;
use std::path::PathBuf;

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::admin::report_text::ReportText;
use super::i18n::Lang;
use crate::store::CallRecordView;

/// Why an export could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The spreadsheet writer failed.
    #[error("cannot write the xlsx export: {0}")]
    Xlsx(#[from] XlsxError),
    /// A recording file could not be read or the zip written.
    #[error("cannot build the recordings export: {0}")]
    Zip(String),
}

/// `unix` as `2026-12-07 15:36:05` in `zone`.
fn time_text(zone: &reports::Zone, unix: Option<i64>) -> String {
    let Some(unix) = unix else { return String::new() };
    let local = unix + zone.offset_at(unix);
    let (secs, day) = (local.rem_euclid(86_400), local.div_euclid(86_400));
    let (year, month, date) = reports::civil_from_days(day);
    format!("{year:04}-{month:02}-{date:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The business results: one row per call, customer fields and record fields as columns
/// (titles from the first record of each key, in order of appearance).
pub fn records_xlsx(records: &[CallRecordView], zone: &reports::Zone, lang: Lang) -> Result<Vec<u8>, ExportError> {
    let words = ReportText::of(lang);
    let mut customer_cols: Vec<(String, String)> = Vec::new();
    let mut record_cols: Vec<(String, String)> = Vec::new();
    for record in records {
        for field in &record.customer {
            if !customer_cols.iter().any(|(key, _)| *key == field.key) {
                customer_cols.push((field.key.clone(), field.title.clone()));
            }
        }
        for field in &record.record {
            if !record_cols.iter().any(|(key, _)| *key == field.key) {
                record_cols.push((field.key.clone(), field.title.clone()));
            }
        }
    }
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let (name, columns) = match lang {
        Lang::Zh => ("业务资料", ["通话编号", "项目", "批次", "客户号码", "坐席", "呼叫时间", "结果", "通话时长(秒)", "保存时间"]),
        Lang::En => ("Business records", ["Call", "Project", "Batch", "Customer number", "Agent", "Called at", "Outcome", "Talk (s)", "Saved at"]),
    };
    sheet.set_name(name)?;
    let bold = Format::new().set_bold();
    let mut headers: Vec<String> = columns
        .iter()
        .map(|text| text.to_string())
        .collect();
    headers.extend(customer_cols.iter().map(|(_, title)| title.clone()));
    headers.extend(record_cols.iter().map(|(_, title)| title.clone()));
    for (col, title) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, title, &bold)?;
    }
    for (idx, record) in records.iter().enumerate() {
        let row = idx as u32 + 1;
        sheet.write_number(row, 0, record.attempt_id as f64)?;
        sheet.write_string(row, 1, &record.project)?;
        sheet.write_number(row, 2, record.batch_id as f64)?;
        sheet.write_string(row, 3, &record.phone)?;
        sheet.write_string(row, 4, record.agent.as_deref().unwrap_or(""))?;
        sheet.write_string(row, 5, time_text(zone, Some(record.started_at)))?;
        sheet.write_string(row, 6, record.outcome.as_deref().map(|key| words.outcome(key)).unwrap_or(""))?;
        sheet.write_number(row, 7, f64::from(record.talk_seconds))?;
        sheet.write_string(row, 8, time_text(zone, record.record_saved_at))?;
        let mut col = 9u16;
        for (key, _) in &customer_cols {
            let value = record.customer.iter().find(|f| f.key == *key).map(|f| f.value.as_str()).unwrap_or("");
            sheet.write_string(row, col, value)?;
            col += 1;
        }
        for (key, _) in &record_cols {
            let value = record.record.iter().find(|f| f.key == *key).map(|f| f.value.as_str()).unwrap_or("");
            sheet.write_string(row, col, value)?;
            col += 1;
        }
    }
    Ok(workbook.save_to_buffer()?)
}

/// A zip (stored, WAV compresses poorly) of `(name in the zip, file)`.
pub fn recordings_zip(files: &[(String, PathBuf)]) -> Result<Vec<u8>, ExportError> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, path) in files {
            let bytes = std::fs::read(path).map_err(|e| ExportError::Zip(format!("{}: {e}", path.display())))?;
            zip.start_file(name.as_str(), options).map_err(|e| ExportError::Zip(e.to_string()))?;
            zip.write_all(&bytes).map_err(|e| ExportError::Zip(e.to_string()))?;
        }
        zip.finish().map_err(|e| ExportError::Zip(e.to_string()))?;
    }
    Ok(buffer.into_inner())
}

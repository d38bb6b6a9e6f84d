//! Spreadsheets the hub hands out: the bad-rows sheet of an import (row, column, reason) and
//! the result file of a data filter (kept rows, and a second sheet with each removed row's
//! reason).

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::store::{BadRow, GoodRow, Project};

/// The bad rows of an import as an xlsx: 行号 / 列 / 原因, in the caller's language only
/// (`english`), like every other export: an English sentence in a Chinese sheet is noise to
/// the clerk who reads it.
pub fn bad_rows_xlsx(bad: &[BadRow], english: bool) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet();
    sheet.set_name(if english { "Bad rows" } else { "错误行" })?;
    let titles = if english { ["Row", "Column", "Reason"] } else { ["行号", "列", "原因"] };
    for (col, title) in titles.iter().enumerate() {
        sheet.write_with_format(0, col as u16, *title, &bold)?;
    }
    for (idx, row) in bad.iter().enumerate() {
        let line = idx as u32 + 1;
        sheet.write(line, 0, row.row)?;
        sheet.write(line, 1, row.column.as_str())?;
        sheet.write(line, 2, if english { row.reason.as_str() } else { row.reason_zh.as_str() })?;
    }
    sheet.set_column_width(2, 60)?;
    workbook.save_to_buffer()
}

/// A filter's result: sheet 1 the kept rows (phone then the project's customer fields, so it
/// imports again as is), sheet 2 "过滤原因" the removed rows with their reasons.
///
/// Both sheets are written in constant-memory mode (rows go to a temporary file as they are
/// written, strings inline): a result can hold a million rows, and the in-memory cell table
/// and shared-string map cost over a gigabyte and most of the time at that size.
pub fn filter_result_xlsx(project: &Project, phone_header: &str, kept: &[GoodRow], removed: &[BadRow]) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    // Checks that the directory is writable, so a full or read-only temp dir is an error
    // here rather than a panic inside the writer.
    workbook.set_tempdir(std::env::temp_dir())?;
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet_with_constant_memory();
    sheet.set_name("数据")?;
    sheet.write_with_format(0, 0, phone_header, &bold)?;
    for (idx, field) in project.customer_fields.iter().enumerate() {
        sheet.write_with_format(0, idx as u16 + 1, field.title.as_str(), &bold)?;
    }
    for (line, row) in kept.iter().enumerate() {
        let line = line as u32 + 1;
        sheet.write(line, 0, row.phone.as_str())?;
        for idx in 0..project.customer_fields.len() {
            let value = row.fields.get(idx).unwrap_or("");
            sheet.write(line, idx as u16 + 1, value)?;
        }
    }
    // The reasons repeat (a few distinct texts): shared strings keep that sheet's XML, and
    // the time to compress it, small.
    let reasons = workbook.add_worksheet_with_low_memory();
    reasons.set_name("过滤原因")?;
    for (col, title) in ["原行号 Row", "列 Column", "过滤原因", "Reason"].iter().enumerate() {
        reasons.write_with_format(0, col as u16, *title, &bold)?;
    }
    for (idx, row) in removed.iter().enumerate() {
        let line = idx as u32 + 1;
        reasons.write(line, 0, row.row)?;
        reasons.write(line, 1, row.column.as_str())?;
        reasons.write(line, 2, row.reason_zh.as_str())?;
        reasons.write(line, 3, row.reason.as_str())?;
    }
    workbook.save_to_buffer()
}

/// Rows of a file as an xlsx that imports again as is: the phone, then the project's customer
/// fields under their titles.
pub fn rows_xlsx(project: &Project, phone_header: &str, rows: &[GoodRow]) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet();
    sheet.set_name("数据")?;
    sheet.write_with_format(0, 0, phone_header, &bold)?;
    for (idx, field) in project.customer_fields.iter().enumerate() {
        sheet.write_with_format(0, idx as u16 + 1, field.title.as_str(), &bold)?;
    }
    for (line, row) in rows.iter().enumerate() {
        let line = line as u32 + 1;
        sheet.write(line, 0, row.phone.as_str())?;
        for idx in 0..project.customer_fields.len() {
            sheet.write(line, idx as u16 + 1, row.fields.get(idx).unwrap_or(""))?;
        }
    }
    workbook.save_to_buffer()
}

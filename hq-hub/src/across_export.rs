//! The `.xlsx` of a project's data across sites (客户资料 / 业务资料), as filtered.
//!
//! The workbook is read through the same keyset pages as the console (so scope, masking and
//! hidden fields are the store's, never re-decided here) and written in constant-memory mode,
//! page after page. People read it: headers are the field titles and the UI's words, sites
//! and batches by name, times in China time (UTC+8). It stops at Excel's last row and says
//! so in a final line rather than cutting silently.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::store::{AcrossError, AcrossQuery, DataColumn, Scope, Store};

/// Rows read per page while exporting.
const EXPORT_PAGE: u32 = 500;

/// Data rows a sheet holds below its header (Excel's 1,048,576 rows).
const MAX_SHEET_ROWS: u32 = 1_048_575;

/// The fixed columns' headers in the UI's language.
#[derive(Debug, Clone, Copy)]
pub struct ExportWords {
    pub sheet_customers: &'static str,
    pub sheet_records: &'static str,
    pub site: &'static str,
    pub batch: &'static str,
    pub phone: &'static str,
    pub agent: &'static str,
    pub dispatched_at: &'static str,
    pub last_edited_at: &'static str,
    pub last_edited_by: &'static str,
    pub saved_by: &'static str,
    pub saved_at: &'static str,
    /// Written below the last row when Excel's row limit cut the export.
    pub truncated: &'static str,
}

/// Failure to export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Query(#[from] AcrossError),
    #[error("cannot write the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` China time.
pub fn china_time(unix: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(at) => {
            let at = at.to_offset(offset);
            format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second())
        }
        Err(_) => unix.to_string(),
    }
}

/// A sheet being written: its header once the first page tells the columns, then rows.
struct Sheet<'a> {
    sheet: &'a mut rust_xlsxwriter::Worksheet,
    bold: Format,
    line: u32,
}

impl Sheet<'_> {
    fn header(&mut self, fixed: &[&str], columns: &[DataColumn]) -> Result<(), XlsxError> {
        let titles = fixed.iter().map(|t| t.to_string()).chain(columns.iter().map(|c| c.title.clone()));
        for (col, title) in titles.enumerate() {
            self.sheet.write_with_format(0, col as u16, title, &self.bold)?;
        }
        self.line = 1;
        Ok(())
    }

    /// Writes a row; `false` once the sheet is full (its last line is kept for [`Sheet::note`]).
    fn row(&mut self, cells: impl IntoIterator<Item = String>) -> Result<bool, XlsxError> {
        if self.line >= MAX_SHEET_ROWS {
            return Ok(false);
        }
        for (col, cell) in cells.into_iter().enumerate() {
            self.sheet.write(self.line, col as u16, cell)?;
        }
        self.line += 1;
        Ok(true)
    }

    /// A line of text below the rows (the sheet's last line is kept free for it).
    fn note(&mut self, text: &str) -> Result<(), XlsxError> {
        self.sheet.write_with_format(self.line, 0, text, &self.bold)?;
        Ok(())
    }
}

fn new_workbook() -> Result<Workbook, XlsxError> {
    let mut workbook = Workbook::new();
    // Fails here, not inside the writer, when the temporary directory is not writable.
    workbook.set_tempdir(std::env::temp_dir())?;
    Ok(workbook)
}

/// The customer data `query` finds (every page, from its first), as an xlsx.
pub fn customers_xlsx(store: &Store, scope: &Scope, query: &AcrossQuery, words: &ExportWords) -> Result<Vec<u8>, ExportError> {
    let mut workbook = new_workbook()?;
    let sheet = workbook.add_worksheet_with_constant_memory();
    sheet.set_name(words.sheet_customers)?;
    let mut out = Sheet { sheet, bold: Format::new().set_bold(), line: 0 };
    let fixed = [words.site, words.batch, words.phone, words.agent, words.dispatched_at, words.last_edited_at, words.last_edited_by];
    let mut query = AcrossQuery { after: None, limit: EXPORT_PAGE, ..query.clone() };
    loop {
        let page = store.customer_data(scope, &query)?;
        if out.line == 0 {
            out.header(&fixed, &page.columns)?;
        }
        for row in page.rows {
            let cells = [
                row.site_name,
                row.batch_name,
                row.phone,
                row.agent.unwrap_or_default(),
                china_time(row.dispatched_at),
                row.last_edited_at.map(china_time).unwrap_or_default(),
                row.last_edited_by.unwrap_or_default(),
            ];
            if !out.row(cells.into_iter().chain(row.values.into_iter().map(|v| v.value)))? {
                out.note(words.truncated)?;
                return Ok(workbook.save_to_buffer()?);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(workbook.save_to_buffer()?)
}

/// The business records `query` finds (every page, from its first), as an xlsx.
pub fn records_xlsx(store: &Store, scope: &Scope, query: &AcrossQuery, words: &ExportWords) -> Result<Vec<u8>, ExportError> {
    let mut workbook = new_workbook()?;
    let sheet = workbook.add_worksheet_with_constant_memory();
    sheet.set_name(words.sheet_records)?;
    let mut out = Sheet { sheet, bold: Format::new().set_bold(), line: 0 };
    let fixed = [words.site, words.batch, words.phone, words.saved_by, words.saved_at];
    let mut query = AcrossQuery { after: None, limit: EXPORT_PAGE, ..query.clone() };
    loop {
        let page = store.business_data(scope, &query)?;
        if out.line == 0 {
            out.header(&fixed, &page.columns)?;
        }
        for row in page.rows {
            let cells = [row.site_name, row.batch_name, row.phone, row.agent, china_time(row.saved_at)];
            if !out.row(cells.into_iter().chain(row.values.into_iter().map(|v| v.value)))? {
                out.note(words.truncated)?;
                return Ok(workbook.save_to_buffer()?);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(workbook.save_to_buffer()?)
}

//! xlsx import (导入外呼数据): reads an uploaded workbook with calamine, finds the header row,
//! the phone column and the sub-project's custom customer fields by header, and splits the
//! rows into good ones and a report of bad ones.
//!
//! - Only `.xlsx` is accepted (the manual's rule); anything else, or a damaged workbook, is
//!   one clear [`ImportError`] and nothing is stored.
//! - The sheet read is the first one with a header row; empty sheets before it (and sheets
//!   with no phone column, such as an instructions sheet) are passed over, and the report
//!   names the sheet read. The header row is found in the first [`HEADER_SCAN_ROWS`]
//!   non-blank rows:
//!   title rows above it are skipped (and reported). The phone column is found by its
//!   header (手机 / 电话 / 号码 / phone …); custom fields match on title or variable name.
//! - **Nothing is invented.** A value that cannot be trusted rejects its row, with a reason
//!   naming the row, column and value: a number cell with more than [`EXCEL_DIGITS`]
//!   significant digits (Excel keeps 15; `98765432109876540000` is not what was typed), text
//!   in scientific notation (`1.39001E+10`), a phone number cell that is not a whole number.
//!   A leading apostrophe (Excel's "keep as text" mark, when a tool wrote it into the value)
//!   is dropped. A value longer than [`MAX_FIELD_CHARS`] is cut to it, and the report warns.
//! - Dial tokens (token projects) are exactly the project's length of hex digits.
//! - Every bad row is reported with its row number, column and reason; good rows are kept.
//!   Blank rows (including the trailing ones spreadsheets often carry) are ignored.
//! - Duplicate phones within the file: the first occurrence is kept, later ones are reported.
//! - At most [`MAX_ROWS`] data rows, Excel's own limit.
//! - [`import_xlsx`] stores while it parses (a writer thread behind a bounded channel), so a
//!   million-row upload costs little more than reading it.
//!
//! Here: the workbook, its sheets and the report. A cell is judged in `cells`, the header
//! row found in `header`, a data row judged in `rows` (`judge_row`, pure, with its check
//! tables).

mod cells;
mod header;
mod rows;

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, DataRef, Reader, Xlsx};

pub use self::cells::CellError;
use self::cells::{cell_owned, cell_ref, cell_text, header_text, is_blank, phone_from_cell};
use self::header::{header_key, header_match, no_phone_column, pick_header, read_header, title_warning, Header, HeaderMatch, PHONE_HEADERS, PHONE_WORDS};
use self::rows::{RowSink, RowState};
use crate::store::{
    BadRow, ColumnMatch, FieldValuesBuilder, FileImport, GoodRow, ImportReport, Project, SaveImportError, Store,
    DEFAULT_TOKEN_LENGTH,
};

/// Most data rows one file may carry: Excel's own limit (1,048,576 rows a sheet, one of
/// them the header).
pub const MAX_ROWS: usize = 1_048_575;

/// Longest value a customer field may hold, in characters; a longer one is cut to this
/// and the report warns (the row is kept).
pub const MAX_FIELD_CHARS: usize = 1000;

/// The header row is looked for in this many first non-blank rows of a sheet; rows above
/// it are titles and skipped.
pub const HEADER_SCAN_ROWS: u32 = 10;

/// Significant digits Excel keeps of a number: a number cell showing more was not typed
/// as it reads (or is binary noise), and is not stored.
pub const EXCEL_DIGITS: usize = 15;

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file name does not end in `.xlsx`.
    #[error("{file_name:?} is not an .xlsx file: only .xlsx workbooks can be imported (save it as \"Excel Workbook (*.xlsx)\")")]
    NotXlsx { file_name: String },
    /// The bytes are not a readable xlsx workbook.
    #[error("{file_name:?} cannot be read as an xlsx workbook ({detail}): open it in Excel or WPS and save it again as .xlsx")]
    Unreadable { file_name: String, detail: String },
    /// The workbook has no sheet.
    #[error("{file_name:?} has no worksheet: put the numbers on the first sheet")]
    NoSheet { file_name: String },
    /// No sheet has any data.
    #[error("every sheet of {file_name:?} is empty: put a header row and the numbers on the first sheet")]
    Empty { file_name: String },
    /// No header in the first rows of any sheet with data looks like a phone column.
    #[error("no phone column found in the first {HEADER_SCAN_ROWS} rows of sheet {sheet:?} (row {header_row}; headers: {headers}): name the phone column 手机号码, 电话 or phone")]
    NoPhoneColumn { sheet: String, header_row: u32, headers: String },
    /// More data rows than the cap ([`MAX_ROWS`]).
    #[error("the sheet has {n_rows} rows, more than the {max} one file may hold: split it into several files")]
    TooManyRows { n_rows: usize, max: usize },
}

impl ImportError {
    /// The message in Simplified Chinese, for the console.
    pub fn zh(&self) -> String {
        match self {
            ImportError::NotXlsx { file_name } => format!("“{file_name}”不是 xlsx 文件：导入的数据文件格式仅支持 xlsx，请另存为“Excel 工作簿 (*.xlsx)”"),
            ImportError::Unreadable { file_name, detail } => {
                format!("“{file_name}”无法作为 xlsx 工作簿读取（{detail}）：请用 Excel 或 WPS 打开后重新保存为 xlsx")
            }
            ImportError::NoSheet { file_name } => format!("“{file_name}”没有工作表：请把号码放在第一个工作表"),
            ImportError::Empty { file_name } => format!("“{file_name}”的工作表都是空的：请在第一个工作表填写标题行和号码"),
            ImportError::NoPhoneColumn { sheet, header_row, headers } => format!(
                "工作表“{sheet}”的前 {HEADER_SCAN_ROWS} 行中没有号码列（第 {header_row} 行：{headers}）：请把号码列的标题改为“手机号码”、“电话”或“phone”"
            ),
            ImportError::TooManyRows { n_rows, max } => format!("工作表有 {n_rows} 行，超过单个文件上限 {max} 行：请拆分为多个文件"),
        }
    }
}

/// The rows worth keeping and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedImport {
    pub rows: Vec<GoodRow>,
    pub report: ImportReport,
}

/// Options of an import beyond the file and the project.
#[derive(Default)]
pub struct ParseOptions<'a> {
    /// Take the phone from this column (0-based) instead of detecting it (号码匹配数据第 X 列).
    pub phone_column: Option<usize>,
    /// Called with (rows done, rows total) while the rows are checked.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// The project's dial-token length (token projects); `None` is the default
    /// ([`DEFAULT_TOKEN_LENGTH`]). [`import_xlsx`] always takes the project's stored one.
    pub token_length: Option<usize>,
}

/// What the judge holds rows to: the row cap and the token length. The cap is a parameter
/// so that its boundary can be tested without a million-row file.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_rows: usize,
    token_length: usize,
}

/// Reads `bytes` (an uploaded file called `file_name`) for `project`.
pub fn parse_xlsx(file_name: &str, bytes: &[u8], project: &Project) -> Result<ParsedImport, ImportError> {
    parse_xlsx_with(file_name, bytes, project, &ParseOptions::default())
}

/// What a sheet's visitor tells the reader.
enum Flow {
    /// Go on with the next row.
    Next,
    /// Stop reading this sheet.
    Stop,
}

/// One sheet's rows in order, streamed with calamine's cells reader (the sheet is never
/// held whole): `visit(row_index, cells, last_row)` gets each row that has a cell, 0-based,
/// with missing cells as [`DataRef::Empty`], and the sheet's last row index. Cells stay
/// borrowed from calamine's shared-string table: no cell is copied here.
fn stream_sheet(
    file_name: &str,
    workbook: &mut Xlsx<Cursor<&[u8]>>,
    sheet: &str,
    mut visit: impl FnMut(u32, &[DataRef<'_>], u32) -> Result<Flow, ImportError>,
) -> Result<(), ImportError> {
    let unreadable = |detail: String| ImportError::Unreadable { file_name: file_name.to_string(), detail };
    let mut reader = workbook.worksheet_cells_reader(sheet).map_err(|e| unreadable(e.to_string()))?;
    let last_row = reader.dimensions().end.0;
    let mut row: Vec<DataRef<'_>> = Vec::new();
    let mut current: Option<u32> = None;
    // Cells of the widest row so far: each row starts that wide, so that filling it does
    // not grow the vector cell by cell.
    // The visitor sees the row up to its last cell (`used`).
    let mut used = 0;
    while let Some(cell) = reader.next_cell().map_err(|e| unreadable(e.to_string()))? {
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(done) = current
                && let Flow::Stop = visit(done, &row[..used], last_row)?
            {
                return Ok(());
            }
            let width = row.len();
            row.clear();
            row.resize(width, DataRef::Empty);
            used = 0;
            current = Some(r);
        }
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, DataRef::Empty);
        }
        row[c] = cell.get_value().clone();
        used = used.max(c + 1);
    }
    if let Some(done) = current {
        visit(done, &row[..used], last_row)?;
    }
    Ok(())
}

/// [`parse_xlsx`] with a chosen phone column and a progress callback. The sheet is
/// streamed row by row; only the good rows and the report are kept.
pub fn parse_xlsx_with(file_name: &str, bytes: &[u8], project: &Project, options: &ParseOptions<'_>) -> Result<ParsedImport, ImportError> {
    let limits = Limits { max_rows: MAX_ROWS, token_length: options.token_length.unwrap_or(DEFAULT_TOKEN_LENGTH) };
    let mut rows = Vec::new();
    let report = parse_rows(file_name, bytes, project, options, limits, &mut rows)?;
    Ok(ParsedImport { rows, report })
}

/// Where a sheet's reading stands.
enum Phase {
    /// Looking for the header: the non-blank rows so far (owned: at most
    /// [`HEADER_SCAN_ROWS`] of them).
    Looking(Vec<(u32, Vec<Data>)>),
    /// Reading data rows under this header.
    Reading(Header),
    /// No header in this sheet.
    NoHeader(ImportError),
}

/// The parse proper: finds the sheet and its header, then each good row goes to `sink`
/// as soon as it is judged; answers the report.
fn parse_rows(
    file_name: &str,
    bytes: &[u8],
    project: &Project,
    options: &ParseOptions<'_>,
    limits: Limits,
    sink: &mut dyn RowSink,
) -> Result<ImportReport, ImportError> {
    if !file_name.to_lowercase().ends_with(".xlsx") {
        return Err(ImportError::NotXlsx { file_name: file_name.to_string() });
    }
    let unreadable = |detail: String| ImportError::Unreadable { file_name: file_name.to_string(), detail };
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(unreadable("it is not a zip container, which every xlsx file is".to_string()));
    }
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    let sheets = workbook.sheet_names();
    if sheets.is_empty() {
        return Err(ImportError::NoSheet { file_name: file_name.to_string() });
    }
    let mut state = RowState {
        sink,
        n_good: 0,
        n_rows: 0,
        bad: Vec::new(),
        warnings: Vec::new(),
        first_seen: HashMap::new(),
        first_seen_tokens: HashMap::new(),
        blank_run: 0,
        total: 0,
        values: FieldValuesBuilder::default(),
    };
    // Sheets passed over (empty, or without a phone column), and the first reason one had none.
    let mut passed: Vec<String> = Vec::new();
    let mut no_header: Option<ImportError> = None;
    let mut found: Option<(String, Header, Vec<String>)> = None;
    for sheet in &sheets {
        let mut phase = Phase::Looking(Vec::new());
        let mut titles: Vec<String> = Vec::new();
        let chosen = options.phone_column.is_some();
        // Settles the header from the rows held so far and reads the rows held below it.
        let settle = |held: Vec<(u32, Vec<Data>)>, state: &mut RowState<'_>, titles: &mut Vec<String>, last_row: u32| -> Result<Phase, ImportError> {
            let Some(at) = pick_header(&held, project, chosen) else {
                let (index, first) = held.first().map(|(i, r)| (*i, r.as_slice())).unwrap_or((0, &[]));
                let headers: Vec<String> = first.iter().map(|c| header_text(&cell_ref(c))).collect();
                return Ok(Phase::NoHeader(no_phone_column(sheet, index + 1, &headers)));
            };
            let (index, cells) = &held[at];
            let cells: Vec<DataRef<'_>> = cells.iter().map(cell_ref).collect();
            let head = read_header(&cells, index + 1, sheet, project, options)?;
            titles.extend(held[..at].iter().map(|(i, row)| title_warning(*i + 1, row)));
            state.total = u64::from(last_row.saturating_sub(*index));
            // The rows the sheet announces, bounded by the cap.
            state.sink.announced((state.total as usize).min(limits.max_rows));
            state.first_seen.reserve((state.total as usize).min(limits.max_rows));
            for (i, row) in &held[at + 1..] {
                let cells: Vec<DataRef<'_>> = row.iter().map(cell_ref).collect();
                state.data_row(*i, &cells, &head, project, limits, options)?;
            }
            Ok(Phase::Reading(head))
        };
        let mut last = 0;
        stream_sheet(file_name, &mut workbook, sheet, |index, row, last_row| {
            last = last_row;
            match &mut phase {
                Phase::Reading(head) => {
                    state.data_row(index, row, head, project, limits, options)?;
                    Ok(Flow::Next)
                }
                Phase::NoHeader(_) => Ok(Flow::Stop),
                Phase::Looking(held) => {
                    if row.iter().all(is_blank) {
                        return Ok(Flow::Next);
                    }
                    if held.len() < HEADER_SCAN_ROWS as usize {
                        held.push((index, row.iter().map(cell_owned).collect()));
                        // A row naming the phone column outright settles it at once.
                        if header_match(row, project) == HeaderMatch::Exact {
                            phase = settle(std::mem::take(held), &mut state, &mut titles, last_row)?;
                        }
                        return Ok(Flow::Next);
                    }
                    // Past the first rows: settle with what was held, then read this row.
                    phase = settle(std::mem::take(held), &mut state, &mut titles, last_row)?;
                    match &phase {
                        Phase::Reading(head) => {
                            state.data_row(index, row, head, project, limits, options)?;
                            Ok(Flow::Next)
                        }
                        _ => Ok(Flow::Stop),
                    }
                }
            }
        })?;
        if let Phase::Looking(held) = phase {
            phase = if held.is_empty() { Phase::Looking(held) } else { settle(held, &mut state, &mut titles, last)? };
        }
        match phase {
            Phase::Reading(head) => {
                found = Some((sheet.clone(), head, titles));
                break;
            }
            Phase::NoHeader(err) => {
                no_header.get_or_insert(err);
                passed.push(sheet.clone());
            }
            Phase::Looking(_) => passed.push(sheet.clone()),
        }
    }
    let Some((sheet, head, titles)) = found else {
        return Err(no_header.unwrap_or(ImportError::Empty { file_name: file_name.to_string() }));
    };
    Ok(sheet_report(state, sheet, head, titles, &passed, project, options))

}

/// The report of a parse that read `sheet` under `head`, after passing over the sheets
/// `passed` and skipping the title rows `titles`.
fn sheet_report(
    state: RowState<'_>,
    sheet: String,
    head: Header,
    titles: Vec<String>,
    passed: &[String],
    project: &Project,
    options: &ParseOptions<'_>,
) -> ImportReport {
    let Header { headers, warnings: mut header_warnings, field_columns, phone_col, .. } = head;
    if !passed.is_empty() {
        let names = passed.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let names_zh = passed.iter().map(|s| format!("“{s}”")).collect::<Vec<_>>().join("、");
        header_warnings.insert(
            0,
            format!("sheet {names} has no data or no phone column; the rows were read from sheet {sheet:?} (工作表{names_zh}为空或没有号码列，已读取工作表“{sheet}”)"),
        );
    }
    header_warnings.extend(titles);
    let RowState { n_good, n_rows, bad, warnings, blank_run, total, .. } = state;
    // Blank rows after the last data row (spreadsheets often carry formatted empty rows).
    let trailing_empty_rows = blank_run;
    let phone_header = headers[phone_col].clone();
    let unmatched_fields = project
        .customer_fields
        .iter()
        .zip(&field_columns)
        .filter(|(_, column)| column.is_none())
        .map(|(field, _)| field.title.clone())
        .collect();
    let columns = project
        .customer_fields
        .iter()
        .zip(&field_columns)
        .map(|(field, column)| match column {
            Some(idx) => ColumnMatch { field_key: field.key.clone(), field_title: field.title.clone(), column: Some(headers[*idx].clone()), reason: None, reason_zh: None },
            None => ColumnMatch {
                field_key: field.key.clone(),
                field_title: field.title.clone(),
                column: None,
                reason: Some(format!(
                    "no column is titled {:?} or {:?}: check that the header is text (retype it), has no special characters, and that the sheet has no trailing empty rows",
                    field.title, field.key
                )),
                reason_zh: Some(format!(
                    "没有标题为“{}”或“{}”的列：请检查标题栏是否为文本格式（重新手动输入标题文字）、是否存在特殊字符、文档末尾是否存在空行",
                    field.title, field.key
                )),
            },
        })
        .collect();
    if let Some(progress) = options.progress {
        progress(total, total);
    }
    ImportReport {
        n_rows,
        n_good,
        bad,
        phone_column: phone_header,
        unmatched_fields,
        columns,
        trailing_empty_rows,
        header_warnings,
        sheet,
        warnings,
    }
}

/// Why an upload was not imported; in every case nothing of it is left in the store.
#[derive(Debug, thiserror::Error)]
pub enum ImportFileError {
    /// The workbook itself is unusable (not xlsx, damaged, no phone column …).
    #[error(transparent)]
    Parse(#[from] ImportError),
    /// Storing the rows or the copy failed (disk full, database error).
    #[error(transparent)]
    Save(#[from] SaveImportError),
}

impl ImportFileError {
    /// The message in Simplified Chinese, for the console.
    pub fn zh(&self) -> String {
        match self {
            ImportFileError::Parse(e) => e.zh(),
            ImportFileError::Save(e) => format!("保存失败：{e}"),
        }
    }
}

/// Rows handed from the parser to the writer at a time.
const CHUNK_ROWS: usize = crate::store::IMPORT_CHUNK_ROWS;

/// Chunks parsed but not yet stored: bounds the memory an import holds (a few tens of
/// thousands of rows) while letting the parser run ahead of a commit.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Good rows on their way to the writer thread, [`CHUNK_ROWS`] at a time.
struct Chunks {
    chunk: Vec<GoodRow>,
    /// `None` once the writer has failed: the rest of the rows have nowhere to go, and the
    /// parse still finishes (the writer's error is what is reported).
    sender: Option<std::sync::mpsc::SyncSender<Vec<GoodRow>>>,
}

impl Chunks {
    fn flush(&mut self) {
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        if !full.is_empty() && self.sender.as_ref().is_some_and(|s| s.send(full).is_err()) {
            self.sender = None;
        }
    }
}

impl RowSink for Chunks {
    fn announced(&mut self, _rows: usize) {}

    fn keep(&mut self, row: GoodRow) {
        self.chunk.push(row);
        if self.chunk.len() == CHUNK_ROWS {
            self.flush();
        }
    }
}

/// Imports an upload as the console does: parses `bytes` for `project` on this thread
/// while another stores the good rows as they come (chunks through a bounded channel, each
/// committed hidden) and writes the file's copy; the file appears with its report at the
/// end, or not at all: a file that turns out damaged halfway, or a failed write, deletes
/// what was stored. Answers the new file's id and the report.
pub fn import_xlsx(
    store: &Store,
    project: &Project,
    file_name: &str,
    bytes: &[u8],
    creator: &str,
    options: &ParseOptions<'_>,
) -> Result<(i64, ImportReport), ImportFileError> {
    // A file that is not even xlsx is refused before anything is written.
    if !file_name.to_lowercase().ends_with(".xlsx") {
        return Err(ImportError::NotXlsx { file_name: file_name.to_string() }.into());
    }
    // Dial tokens are exactly as long as the project says.
    let token_length = store.project_token_length(project.id).map_err(SaveImportError::from)?.unwrap_or(DEFAULT_TOKEN_LENGTH);
    let limits = Limits { max_rows: MAX_ROWS, token_length };
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<GoodRow>>(CHUNKS_IN_FLIGHT);
        let writer = scope.spawn(move || -> Result<FileImport<'_>, SaveImportError> {
            let started = std::time::Instant::now();
            let mut file = store.begin_file(project.id, file_name, creator, "upload", "")?;
            file.keep_copy(bytes)?;
            let copied = started.elapsed().as_secs_f64();
            let mut busy = std::time::Duration::ZERO;
            for chunk in receiver {
                let appending = std::time::Instant::now();
                file.append(&chunk)?;
                busy += appending.elapsed();
            }
            tracing::debug!(copy_s = copied, append_s = busy.as_secs_f64(), total_s = started.elapsed().as_secs_f64(), "import writer done");
            Ok(file)
        });
        let mut chunks = Chunks { chunk: Vec::with_capacity(CHUNK_ROWS), sender: Some(sender) };
        let parsed = parse_rows(file_name, bytes, project, options, limits, &mut chunks);
        if parsed.is_ok() {
            chunks.flush();
        }
        drop(chunks);
        tracing::debug!("import parse done");
        let written = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A parse error wins: dropping the unfinished file (if any) deletes what it stored.
        let report = parsed?;
        let file = written?;
        let file_id = file.finish(&report)?;
        tracing::debug!("import finished");
        Ok((file_id, report))
    })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use rust_xlsxwriter::Workbook;

    use super::*;
    use crate::store::{FieldSpec, FieldSpecKind, PhoneMode};

    /// A workbook of `rows` numbered phone rows under a title row and a header.
    fn titled_workbook(rows: u32) -> Vec<u8> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "客户名单").unwrap();
        sheet.write(1, 0, "手机号码").unwrap();
        for row in 0..rows {
            sheet.write(row + 2, 0, (13_800_000_000u64 + u64::from(row)).to_string()).unwrap();
        }
        workbook.save_to_buffer().unwrap()
    }

    /// A workbook with a title row, then a header whose phone column is named only in part
    /// (settled after the first rows are held), then `rows` numbers.
    fn loosely_headed_workbook(rows: u32) -> Vec<u8> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "客户电话名单").unwrap();
        sheet.write(2, 0, "客户手机号").unwrap();
        sheet.write(2, 1, "姓名").unwrap();
        for row in 0..rows {
            sheet.write(row + 3, 0, (13_800_000_000u64 + u64::from(row)).to_string()).unwrap();
            sheet.write(row + 3, 1, format!("客户{row}")).unwrap();
        }
        workbook.save_to_buffer().unwrap()
    }

    #[test]
    fn rows_held_while_the_header_is_looked_for_are_all_read() {
        for rows in [3, 9, 10, 25] {
            let parsed = parse_xlsx("名单.xlsx", &loosely_headed_workbook(rows), &project()).unwrap();
            assert_eq!(parsed.report.phone_column, "客户手机号");
            assert_eq!((parsed.report.n_rows, parsed.rows.len()), (u64::from(rows), rows as usize), "{:?}", parsed.report.bad);
            let numbers: Vec<(u32, &str)> = parsed.rows.iter().map(|r| (r.row_number, r.phone.as_str())).collect();
            let expected: Vec<(u32, String)> = (0..rows).map(|r| (r + 4, (13_800_000_000u64 + u64::from(r)).to_string())).collect();
            assert_eq!(numbers, expected.iter().map(|(n, p)| (*n, p.as_str())).collect::<Vec<_>>());
            assert!(parsed.report.header_warnings.iter().any(|w| w.starts_with("row 1 \"客户电话名单\" is above the header row")));
        }
    }

    #[test]
    fn the_row_cap_is_excels() {
        assert_eq!(MAX_ROWS, 1_048_575, "Excel's 1,048,576 rows less the header row");
        let parse = |rows: u32, max_rows: usize| {
            let limits = Limits { max_rows, token_length: DEFAULT_TOKEN_LENGTH };
            let mut kept = Vec::new();
            parse_rows("名单.xlsx", &titled_workbook(rows), &project(), &ParseOptions::default(), limits, &mut kept).map(|r| (r.n_rows, kept.len()))
        };
        // At the cap every row is kept; one more and the file is refused, naming the cap.
        assert_eq!(parse(5, 5).unwrap(), (5, 5));
        let err = parse(6, 5).unwrap_err();
        assert!(matches!(err, ImportError::TooManyRows { n_rows: 6, max: 5 }), "{err}");
        assert_eq!(err.to_string(), "the sheet has 6 rows, more than the 5 one file may hold: split it into several files");
        assert_eq!(err.zh(), "工作表有 6 行，超过单个文件上限 5 行：请拆分为多个文件");
    }

    #[test]
    fn an_empty_first_sheet_is_passed_over_and_named() {
        let mut workbook = Workbook::new();
        workbook.add_worksheet();
        let notes = workbook.add_worksheet().set_name("说明").unwrap();
        notes.write(0, 0, "请在“名单”工作表填写号码").unwrap();
        let data = workbook.add_worksheet().set_name("名单").unwrap();
        data.write(0, 0, "号码").unwrap();
        data.write(1, 0, "13800138000").unwrap();
        let parsed = parse_xlsx("名单.xlsx", &workbook.save_to_buffer().unwrap(), &project()).unwrap();
        assert_eq!(parsed.report.sheet, "名单");
        assert_eq!(parsed.rows.len(), 1);
        expect![[r#"["sheet \"Sheet1\", \"说明\" has no data or no phone column; the rows were read from sheet \"名单\" (工作表“Sheet1”、“说明”为空或没有号码列，已读取工作表“名单”)"]"#]]
            .assert_eq(&format!("{:?}", parsed.report.header_warnings));
    }

    /// A sheet's rows as text cells (`""` = empty).
    pub(super) fn text_rows(rows: &[&[&str]]) -> Vec<Vec<Data>> {
        rows.iter()
            .map(|row| row.iter().map(|c| if c.is_empty() { Data::Empty } else { Data::String(c.to_string()) }).collect())
            .collect()
    }

    pub(super) fn project() -> Project {
        Project {
            id: 1,
            category_id: 1,
            category_name: "套餐类".into(),
            name: "流量包".into(),
            script: String::new(),
            hide_middle_digits: true,
            customer_fields: vec![
                FieldSpec::text("name", "姓名"),
                FieldSpec::new("level", "客户等级", FieldSpecKind::SingleChoice, &["A", "B"]),
            ],
            record_fields: vec![],
            version: 1,
            created_at: 0,
            settings: Default::default(),
            phone_mode: PhoneMode::Number,
            template_id: None,
            site_ids: vec![],
        }
    }

    #[test]
    fn numbers_dates_and_trailing_blank_rows() {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "level").unwrap();
        sheet.write(0, 1, "电话号码").unwrap();
        sheet.write(0, 2, "姓名").unwrap();
        sheet.write(1, 1, 13800138000.0).unwrap();
        sheet.write(1, 2, "张三").unwrap();
        sheet.write(1, 0, "A").unwrap();
        // A landline typed as a number loses its leading zero in Excel.
        sheet.write(2, 1, 1062345678.0).unwrap();
        sheet.write(2, 0, "C").unwrap();
        sheet.write(3, 1, "+86 139 0013 9000").unwrap();
        sheet.write(3, 2, 42.0).unwrap();
        // Trailing rows that only look empty.
        sheet.write(6, 1, "  ").unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        let parsed = parse_xlsx("名单.XLSX", &bytes, &project()).unwrap();
        assert_eq!(
            parsed.rows,
            vec![
                GoodRow { row_number: 2, phone: "13800138000".into(), fields: ["张三", "A"].into_iter().collect() },
                GoodRow { row_number: 4, phone: "13900139000".into(), fields: ["42", ""].into_iter().collect() },
            ]
        );
        assert_eq!(parsed.report.n_rows, 3);
        assert_eq!(parsed.report.bad.len(), 1, "{:?}", parsed.report.bad);
        assert_eq!(parsed.report.bad[0].row, 3);
        assert_eq!(parsed.report.bad[0].column, "level");
        assert_eq!(parsed.report.bad[0].reason, "\"C\" is not one of the options (A / B): use one of them");
        assert_eq!(parsed.report.phone_column, "电话号码");
    }

    /// A workbook of `rows` numbered rows (phone and name).
    fn big_workbook(rows: u32) -> Vec<u8> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "手机号码").unwrap();
        sheet.write(0, 1, "姓名").unwrap();
        for row in 1..=rows {
            sheet.write(row, 0, (13_800_000_000u64 + u64::from(row)).to_string()).unwrap();
            sheet.write(row, 1, format!("客户{row}")).unwrap();
        }
        workbook.save_to_buffer().unwrap()
    }

    /// `bytes` with the compressed sheet damaged `at` (a fraction) of the way through, so
    /// that reading fails only after most rows were read.
    fn damage_sheet(mut bytes: Vec<u8>, at: f64) -> Vec<u8> {
        let name = b"xl/worksheets/sheet1.xml";
        let header = bytes.windows(4).enumerate().find_map(|(i, w)| {
            (w == b"PK\x03\x04" && bytes[i + 30..].starts_with(name)).then_some(i)
        });
        let header = header.expect("the sheet's local header");
        let le16 = |at: usize| usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        let size = u32::from_le_bytes([bytes[header + 18], bytes[header + 19], bytes[header + 20], bytes[header + 21]]) as usize;
        let data = header + 30 + le16(header + 26) + le16(header + 28);
        let from = data + (size as f64 * at) as usize;
        for byte in &mut bytes[from..from + 64] {
            *byte ^= 0x5a;
        }
        bytes
    }

    #[test]
    fn import_stores_rows_and_copy_while_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let project = imported_project(&store);
        let bytes = big_workbook(45_000);
        let (file_id, report) = import_xlsx(&store, &project, "名单.xlsx", &bytes, "admin", &ParseOptions::default()).unwrap();
        assert_eq!((report.n_rows, report.n_good), (45_000, 45_000));
        let rows = store.file_rows(file_id).unwrap();
        assert_eq!(rows.len(), 45_000);
        assert_eq!((rows[44_999].row_number, rows[44_999].phone.as_str()), (45_001, "13800045000"));
        assert_eq!(rows[0].fields.iter().collect::<Vec<_>>(), vec!["客户1", ""]);
        assert_eq!(store.file_bytes(file_id).unwrap(), Some(bytes));
        assert_eq!(store.list_files(None).unwrap().len(), 1);
    }

    #[test]
    fn a_file_damaged_halfway_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let project = imported_project(&store);
        let bytes = damage_sheet(big_workbook(60_000), 0.9);
        let rows_seen = std::sync::atomic::AtomicU64::new(0);
        let progress = |done: u64, _total: u64| rows_seen.store(done, std::sync::atomic::Ordering::Relaxed);
        let options = ParseOptions { phone_column: None, progress: Some(&progress), ..ParseOptions::default() };
        let err = import_xlsx(&store, &project, "坏.xlsx", &bytes, "admin", &options).unwrap_err();
        assert!(matches!(err, ImportFileError::Parse(ImportError::Unreadable { .. })), "{err}");
        // The damage sat past the first chunks: rows had been stored (hidden) and were removed.
        assert!(rows_seen.load(std::sync::atomic::Ordering::Relaxed) >= 2 * CHUNK_ROWS as u64, "{rows_seen:?}");
        assert_eq!(store.count_files_and_rows().unwrap(), (0, 0));
        assert!(store.list_files(None).unwrap().is_empty());
        let left: Vec<_> = std::fs::read_dir(store.files_dir()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_import_cut_short_by_a_crash_is_deleted_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let project = imported_project(&store);
            let mut file = store.begin_file(project.id, "名单.xlsx", "admin", "upload", "").unwrap();
            file.keep_copy(b"PK\x03\x04").unwrap();
            file.append(&[GoodRow { row_number: 2, phone: "13800138000".into(), fields: ["张三", "A"].into_iter().collect() }]).unwrap();
            // The process dies here: no finish, no drop.
            std::mem::forget(file);
            assert_eq!(store.count_files_and_rows().unwrap(), (1, 1));
            assert!(store.list_files(None).unwrap().is_empty(), "an unfinished file is hidden");
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count_files_and_rows().unwrap(), (0, 0));
        assert_eq!(std::fs::read_dir(store.files_dir()).unwrap().count(), 0);
    }

    /// The test project, stored (imports need its id).
    fn imported_project(store: &Store) -> Project {
        let category = store.create_category("套餐类").unwrap();
        let new = crate::store::NewProject {
            category_id: category,
            name: "流量包".into(),
            template_id: None,
            script: String::new(),
            hide_middle_digits: true,
            customer_fields: project().customer_fields,
            record_fields: Vec::new(),
            settings: Default::default(),
            phone_mode: PhoneMode::Number,
        };
        let id = store.create_project(&new).unwrap();
        store.project(id).unwrap().unwrap()
    }

    #[test]
    fn file_level_errors() {
        let err = parse_xlsx("list.xls", b"whatever", &project()).unwrap_err();
        assert!(matches!(err, ImportError::NotXlsx { .. }), "{err}");
        let err = parse_xlsx("list.xlsx", b"not a zip", &project()).unwrap_err();
        assert!(err.to_string().contains("not a zip container"), "{err}");
        let err = parse_xlsx("list.xlsx", b"PK\x03\x04 broken", &project()).unwrap_err();
        assert!(matches!(err, ImportError::Unreadable { .. }), "{err}");

        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "姓名").unwrap();
        sheet.write(0, 1, "地址").unwrap();
        sheet.write(1, 0, "张三").unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        let err = parse_xlsx("list.xlsx", &bytes, &project()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no phone column found in the first 10 rows of sheet \"Sheet1\" (row 1; headers: \"姓名\", \"地址\"): name the phone column 手机号码, 电话 or phone"
        );

        let mut workbook = Workbook::new();
        workbook.add_worksheet();
        let bytes = workbook.save_to_buffer().unwrap();
        assert!(matches!(parse_xlsx("empty.xlsx", &bytes, &project()), Err(ImportError::Empty { .. })));
    }
}

/// The numbers of a black / white list workbook: the phone column is found by its header
/// as in a call list; a sheet without a recognisable header is read from its first column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhoneListSheet {
    /// Normalised numbers, each once, in sheet order.
    pub phones: Vec<String>,
    /// Cells that are not dialable numbers, and repeats.
    pub bad: Vec<BadRow>,
}

/// Reads a black / white list upload (`.xlsx` only, like call lists).
pub fn read_phone_list(file_name: &str, bytes: &[u8]) -> Result<PhoneListSheet, ImportError> {
    if !file_name.to_lowercase().ends_with(".xlsx") {
        return Err(ImportError::NotXlsx { file_name: file_name.to_string() });
    }
    let unreadable = |detail: String| ImportError::Unreadable { file_name: file_name.to_string(), detail };
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(unreadable("it is not a zip container, which every xlsx file is".to_string()));
    }
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    let range = match workbook.worksheet_range_at(0) {
        None => return Err(ImportError::NoSheet { file_name: file_name.to_string() }),
        Some(Err(e)) => return Err(unreadable(e.to_string())),
        Some(Ok(range)) => range,
    };
    let first_row = range.start().map(|(row, _)| row).unwrap_or(0);
    let rows: Vec<&[Data]> = range.rows().collect();
    let Some(header_idx) = rows.iter().position(|row| !row.iter().all(|c| is_blank(&cell_ref(c)))) else {
        return Err(ImportError::Empty { file_name: file_name.to_string() });
    };
    let keys: Vec<String> = rows[header_idx].iter().map(|c| header_key(&cell_text(&cell_ref(c)).unwrap_or_default())).collect();
    let by_header = keys
        .iter()
        .position(|k| PHONE_HEADERS.contains(&k.as_str()))
        .or_else(|| keys.iter().position(|k| PHONE_WORDS.iter().any(|w| k.contains(w))));
    // With a header the numbers start below it; without one the first row is a number too.
    let (column, start) = match by_header {
        Some(column) => (column, header_idx + 1),
        None => (0, header_idx),
    };
    if rows.len() - start > MAX_ROWS {
        return Err(ImportError::TooManyRows { n_rows: rows.len() - start, max: MAX_ROWS });
    }
    let column_name = match by_header {
        Some(_) => cell_text(&cell_ref(&rows[header_idx][column])).unwrap_or_default(),
        None => "A".to_string(),
    };
    let mut sheet = PhoneListSheet::default();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for (offset, row) in rows[start..].iter().enumerate() {
        let row_number = first_row + (start + offset) as u32 + 1;
        let Some(cell) = row.get(column).map(cell_ref).filter(|c| !is_blank(c)) else { continue };
        match phone_from_cell(&cell) {
            Ok(number) => match seen.get(&number) {
                Some(first) => sheet.bad.push(BadRow {
                    row: row_number,
                    column: column_name.clone(),
                    reason: format!("{number} repeats row {first}"),
                    reason_zh: format!("{number} 与第 {first} 行重复"),
                }),
                None => {
                    seen.insert(number.clone(), row_number);
                    sheet.phones.push(number);
                }
            },
            Err(err) => sheet.bad.push(BadRow { row: row_number, column: column_name.clone(), reason: err.to_string(), reason_zh: err.zh() }),
        }
    }
    Ok(sheet)
}
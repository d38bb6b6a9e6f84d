//! xlsx import (导入外呼数据): reads the first sheet of an uploaded workbook with calamine,
//! finds the phone column and the sub-project's custom customer fields by header, and splits
//! the rows into good ones and a report of bad ones.
//!
//! - Only `.xlsx` is accepted (the manual's rule); anything else, or a damaged workbook, is
//!   one clear [`ImportError`] and nothing is stored.
//! - The header row is the first non-empty row. The phone column is found by its header
//!   (手机 / 电话 / 号码 / phone …); custom fields match on title or variable name.
//! - Every bad row is reported with its row number, column and reason; good rows are kept.
//!   Blank rows (including the trailing ones spreadsheets often carry) are ignored.
//! - Duplicate phones within the file: the first occurrence is kept, later ones are reported.
//! - [`import_xlsx`] stores while it parses (a writer thread behind a bounded channel), so a
//!   million-row upload costs little more than reading it.

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, DataRef, Reader, Xlsx};

use crate::phone::{self, PhoneError};
use crate::store::{BadRow, ColumnMatch, FieldValuesBuilder, FileImport, GoodRow, ImportReport, PhoneMode, Project, SaveImportError, Store};

/// Most data rows one file may carry (keeps a single upload from exhausting the hub).
pub const MAX_ROWS: usize = 1_000_000;

/// Longest value a customer field may hold, in characters.
const MAX_FIELD_CHARS: usize = 1000;

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
    /// The first sheet has no data at all.
    #[error("the first sheet of {file_name:?} is empty: put a header row and the numbers on the first sheet")]
    Empty { file_name: String },
    /// No header looks like a phone column.
    #[error("no phone column found in the header row (row {header_row}; headers: {headers}): name the phone column 手机号码, 电话 or phone")]
    NoPhoneColumn { header_row: u32, headers: String },
    /// More rows than [`MAX_ROWS`].
    #[error("the sheet has {n_rows} rows, more than the {MAX_ROWS} one file may hold: split it into several files")]
    TooManyRows { n_rows: usize },
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
            ImportError::Empty { file_name } => format!("“{file_name}”的第一个工作表为空：请填写标题行和号码"),
            ImportError::NoPhoneColumn { header_row, headers } => {
                format!("标题行（第 {header_row} 行：{headers}）中没有号码列：请把号码列的标题改为“手机号码”、“电话”或“phone”")
            }
            ImportError::TooManyRows { n_rows } => format!("工作表有 {n_rows} 行，超过单个文件上限 {MAX_ROWS} 行：请拆分为多个文件"),
        }
    }
}

/// The rows worth keeping and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedImport {
    pub rows: Vec<GoodRow>,
    pub report: ImportReport,
}

/// Headers that name the phone column outright (compared after [`header_key`]).
const PHONE_HEADERS: &[&str] = &[
    "手机", "手机号", "手机号码", "电话", "电话号", "电话号码", "号码", "联系电话", "联系方式", "客户电话", "客户号码",
    "phone", "phonenumber", "phone_number", "mobile", "mobilephone", "tel", "telephone",
];

/// Words that mark a phone column inside a longer header.
const PHONE_WORDS: &[&str] = &["手机", "电话", "号码", "phone", "mobile"];

/// Characters spreadsheets smuggle into headers: byte-order marks, zero-width spaces and
/// joiners, soft hyphens. They are dropped when comparing (and reported).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{00ad}') || (c.is_control() && !c.is_whitespace())
}

/// A header as compared: trimmed, lower case, without spaces (also full-width and line
/// breaks), invisible characters, the `*` marking required columns and `:`/`：` suffixes.
fn header_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace() && !is_invisible(*c) && !matches!(c, '*' | '＊' | ':' | '：'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Options of an import beyond the file and the project.
#[derive(Default)]
pub struct ParseOptions<'a> {
    /// Take the phone from this column (0-based) instead of detecting it (号码匹配数据第 X 列).
    pub phone_column: Option<usize>,
    /// Called with (rows done, rows total) while the rows are checked.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

/// A whole-workbook cell (black / white list sheets are read as a range) as the borrowed
/// form the streamed call-list import works on.
fn cell_ref(cell: &Data) -> DataRef<'_> {
    match cell {
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::String(s) => DataRef::SharedString(s),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(dt) => DataRef::DateTime(*dt),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
        Data::Empty => DataRef::Empty,
    }
}

/// An encrypted dial token: 16 to 64 hex digits, dialed as-is (upper-cased).
fn token_from_cell(cell: &DataRef<'_>) -> Result<String, (String, String)> {
    let text = cell_text(cell).unwrap_or_default();
    let token: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if token.is_empty() {
        return Err(("dial token is empty: fill it in or delete the row".into(), "加密号码为空：请填写或删除该行".into()));
    }
    if !(16..=64).contains(&token.len()) || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err((
            format!("{text:?} is not an encrypted dial token: this project takes 16 to 64 hex digits such as A207A92E2B93892F5F4C"),
            format!("“{text}”不是加密号码：本项目的号码列应为 16 到 64 位十六进制，如 A207A92E2B93892F5F4C"),
        ));
    }
    Ok(token.to_ascii_uppercase())
}

/// A cell's text as a value (numbers without Excel's float noise).
fn cell_text(cell: &DataRef<'_>) -> Result<String, &'static str> {
    let mut text = String::new();
    write_cell(cell, &mut text).map(|()| text)
}

/// [`cell_text`] appended to `out`: the import writes each value straight into the row's
/// one buffer.
fn write_cell(cell: &DataRef<'_>, out: &mut String) -> Result<(), &'static str> {
    use std::fmt::Write as _;
    // Writing into a String cannot fail; `fmt::Result` is only the trait's shape.
    match cell {
        DataRef::Empty => {}
        DataRef::SharedString(s) => out.push_str(s.trim()),
        DataRef::String(s) => out.push_str(s.trim()),
        DataRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        DataRef::Float(f) => match phone::float_to_digits(*f) {
            Some(digits) => out.push_str(&digits),
            None => {
                let _ = write!(out, "{f}");
            }
        },
        DataRef::Bool(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
        DataRef::DateTime(dt) => {
            let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
            let _ = if (h, mi, s) == (0, 0, 0) {
                write!(out, "{y:04}-{mo:02}-{d:02}")
            } else {
                write!(out, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            };
        }
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => out.push_str(s),
        DataRef::Error(_) => return Err("the cell holds an Excel error (#N/A, #VALUE! …): fix the formula or type the value"),
    }
    Ok(())
}

fn is_blank(cell: &DataRef<'_>) -> bool {
    match cell {
        DataRef::Empty => true,
        DataRef::SharedString(s) => s.trim().is_empty(),
        DataRef::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The phone cell as a dialable number.
fn phone_from_cell(cell: &DataRef<'_>) -> Result<String, PhoneError> {
    match cell {
        DataRef::Float(_) | DataRef::Int(_) => {
            let digits = cell_text(cell).unwrap_or_default();
            match phone::normalize(&digits) {
                Ok(number) => Ok(number),
                // Excel drops a landline's leading zero when the cell is a number.
                Err(err) => phone::normalize(&format!("0{digits}")).map_err(|_| err),
            }
        }
        DataRef::SharedString(s) => phone::normalize(s),
        DataRef::String(s) => phone::normalize(s),
        DataRef::Empty => Err(PhoneError::Empty),
        other => Err(PhoneError::NotDigits(cell_text(other).unwrap_or_else(|_| "#ERROR".to_string()))),
    }
}

/// Reads `bytes` (an uploaded file called `file_name`) for `project`.
pub fn parse_xlsx(file_name: &str, bytes: &[u8], project: &Project) -> Result<ParsedImport, ImportError> {
    parse_xlsx_with(file_name, bytes, project, &ParseOptions::default())
}

/// The first sheet's rows in order, streamed with calamine's cells reader (the sheet is
/// never held whole): `visit(row_index, cells)` gets each row that has a cell, 0-based,
/// with missing cells as [`DataRef::Empty`]. Also answers the sheet's last row index.
/// Cells stay borrowed from calamine's shared-string table: no cell is copied here.
fn stream_rows(
    file_name: &str,
    bytes: &[u8],
    mut visit: impl FnMut(u32, &[DataRef<'_>], u32) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let unreadable = |detail: String| ImportError::Unreadable { file_name: file_name.to_string(), detail };
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(unreadable("it is not a zip container, which every xlsx file is".to_string()));
    }
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    let Some(sheet) = workbook.sheet_names().first().cloned() else {
        return Err(ImportError::NoSheet { file_name: file_name.to_string() });
    };
    let mut reader = workbook.worksheet_cells_reader(&sheet).map_err(|e| unreadable(e.to_string()))?;
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
            if let Some(done) = current {
                visit(done, &row[..used], last_row)?;
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

/// What the header row decided.
struct Header {
    row_number: u32,
    headers: Vec<String>,
    warnings: Vec<String>,
    field_columns: Vec<Option<usize>>,
    phone_col: usize,
}

fn invisible_warning(idx: usize, shown: &str) -> String {
    format!("column {}: header {shown:?} holds special (invisible) characters; they were ignored (标题含特殊字符，已忽略)", idx + 1)
}

/// Reads the header row: phone column, field columns, warnings about odd headers.
fn read_header(cells: &[DataRef<'_>], row_number: u32, project: &Project, options: &ParseOptions<'_>) -> Result<Header, ImportError> {
    let headers: Vec<String> = cells
        .iter()
        .map(|cell| match cell {
            DataRef::SharedString(s) => s.trim().to_string(),
            DataRef::String(s) => s.trim().to_string(),
            other => cell_text(other).unwrap_or_default(),
        })
        .collect();
    let keys: Vec<String> = headers.iter().map(|h| header_key(h)).collect();
    let mut warnings = Vec::new();
    for (idx, cell) in cells.iter().enumerate() {
        let shown = headers[idx].chars().filter(|c| !is_invisible(*c)).collect::<String>();
        match cell {
            DataRef::SharedString(s) if s.chars().any(is_invisible) => warnings.push(invisible_warning(idx, &shown)),
            DataRef::String(s) if s.chars().any(is_invisible) => warnings.push(invisible_warning(idx, &shown)),
            DataRef::SharedString(_) | DataRef::String(_) | DataRef::Empty => {}
            _ => warnings.push(format!(
                "column {}: header {shown:?} is not text (a number or date); it was read as text (标题栏不是文本格式)",
                idx + 1
            )),
        }
    }
    // Custom fields first, so a field titled "身份证号码" is not mistaken for the phone column.
    let mut field_columns: Vec<Option<usize>> = Vec::with_capacity(project.customer_fields.len());
    for field in &project.customer_fields {
        let title = header_key(&field.title);
        let key = header_key(&field.key);
        field_columns.push(keys.iter().position(|k| *k == title).or_else(|| keys.iter().position(|k| *k == key)));
    }
    let taken = |idx: usize| field_columns.contains(&Some(idx));
    let chosen = options.phone_column.filter(|idx| *idx < headers.len());
    let phone_col = chosen.or_else(|| {
        keys.iter()
            .enumerate()
            .find(|(idx, k)| !taken(*idx) && PHONE_HEADERS.contains(&k.as_str()))
            .or_else(|| keys.iter().enumerate().find(|(idx, k)| !taken(*idx) && PHONE_WORDS.iter().any(|w| k.contains(w))))
            .map(|(idx, _)| idx)
    });
    let Some(phone_col) = phone_col else {
        let shown: Vec<String> = headers.iter().filter(|h| !h.is_empty()).map(|h| format!("{h:?}")).collect();
        return Err(ImportError::NoPhoneColumn {
            header_row: row_number,
            headers: if shown.is_empty() { "none".to_string() } else { shown.join(", ") },
        });
    };
    Ok(Header { row_number, headers, warnings, field_columns, phone_col })
}

/// [`parse_xlsx`] with a chosen phone column and a progress callback. The sheet is
/// streamed row by row; only the good rows and the report are kept.
pub fn parse_xlsx_with(file_name: &str, bytes: &[u8], project: &Project, options: &ParseOptions<'_>) -> Result<ParsedImport, ImportError> {
    let mut rows = Vec::new();
    let report = parse_rows(file_name, bytes, project, options, &mut rows)?;
    Ok(ParsedImport { rows, report })
}

/// Where the parse puts the good rows.
trait RowSink {
    /// The sheet announces about `rows` data rows (a hint for reserving).
    fn announced(&mut self, rows: usize);
    /// A good row, as soon as it is judged.
    fn keep(&mut self, row: GoodRow);
}

/// Kept in memory (the filter's re-read, tests).
impl RowSink for Vec<GoodRow> {
    fn announced(&mut self, rows: usize) {
        // Reserve, so that the kept rows are not copied over and over while the vector grows.
        self.reserve(rows);
    }

    fn keep(&mut self, row: GoodRow) {
        self.push(row);
    }
}

/// The parse proper: each good row goes to `sink` as soon as it is judged; answers the
/// report.
fn parse_rows(
    file_name: &str,
    bytes: &[u8],
    project: &Project,
    options: &ParseOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<ImportReport, ImportError> {
    if !file_name.to_lowercase().ends_with(".xlsx") {
        return Err(ImportError::NotXlsx { file_name: file_name.to_string() });
    }
    let mut header: Option<Header> = None;
    let mut n_good: u64 = 0;
    let mut bad = Vec::new();
    // First row of each number: normalised numbers are digits, keyed as one u64
    // ([`phone::number_key`]); dial tokens (too long for that) by their text.
    let mut first_seen: HashMap<u64, u32> = HashMap::new();
    let mut first_seen_tokens: HashMap<String, u32> = HashMap::new();
    let mut n_rows: u64 = 0;
    // Blank rows since the last row with data: at the end, the trailing empty rows.
    let mut blank_run: u64 = 0;
    let mut total: u64 = 0;
    let empty = DataRef::Empty;
    let mut values = FieldValuesBuilder::default();
    stream_rows(file_name, bytes, |index, row, last_row| {
        let row_number = index + 1;
        if row.iter().all(is_blank) {
            if header.is_some() {
                blank_run += 1;
            }
            return Ok(());
        }
        let Some(head) = &header else {
            let found = read_header(row, row_number, project, options)?;
            total = u64::from(last_row.saturating_sub(index));
            // The rows the sheet announces, bounded by MAX_ROWS.
            sink.announced((total as usize).min(MAX_ROWS));
            first_seen.reserve((total as usize).min(MAX_ROWS));
            header = Some(found);
            return Ok(());
        };
        // Rows missing from the sheet's XML between two data rows are blank too.
        blank_run = 0;
        n_rows += 1;
        if n_rows as usize > MAX_ROWS {
            return Err(ImportError::TooManyRows { n_rows: (total as usize).max(n_rows as usize) });
        }
        if let Some(progress) = options.progress
            && n_rows.is_multiple_of(5000)
        {
            progress(u64::from(index + 1 - head.row_number), total);
        }
        let phone_header = &head.headers[head.phone_col];
        let mut problems: Vec<BadRow> = Vec::new();
        let cell = row.get(head.phone_col).unwrap_or(&empty);
        let phone = match project.phone_mode {
            PhoneMode::Number => phone_from_cell(cell).map_err(|err| (err.to_string(), err.zh())),
            PhoneMode::Token => token_from_cell(cell),
        };
        let phone = match phone {
            Ok(number) => Some(number),
            Err((reason, reason_zh)) => {
                problems.push(BadRow { row: row_number, column: phone_header.clone(), reason, reason_zh });
                None
            }
        };
        for (field, column) in project.customer_fields.iter().zip(&head.field_columns) {
            let Some(column) = column else {
                let _ = values.push_with(|_| Ok::<(), ()>(()));
                continue;
            };
            let header_text = &head.headers[*column];
            let value = match values.push_with(|out| write_cell(row.get(*column).unwrap_or(&empty), out)) {
                Ok(value) => value,
                Err(reason) => {
                    problems.push(BadRow {
                        row: row_number,
                        column: header_text.clone(),
                        reason: reason.to_string(),
                        reason_zh: "单元格是 Excel 错误值（#N/A、#VALUE! 等）：请修正公式或直接填写内容".to_string(),
                    });
                    continue;
                }
            };
            // A UTF-8 character is at least one byte: short values need no counting.
            if value.len() > MAX_FIELD_CHARS && value.chars().count() > MAX_FIELD_CHARS {
                problems.push(BadRow {
                    row: row_number,
                    column: header_text.clone(),
                    reason: format!("value is longer than {MAX_FIELD_CHARS} characters: shorten it"),
                    reason_zh: format!("内容超过 {MAX_FIELD_CHARS} 个字符：请缩短"),
                });
                continue;
            }
            if let Err((reason, reason_zh)) = field.check_value(value) {
                problems.push(BadRow { row: row_number, column: header_text.clone(), reason, reason_zh });
                continue;
            }
        }
        let fields = values.finish();
        // The number's first row, recorded now if this row is the first (one hash per row:
        // only a row without other problems claims its number).
        let repeats = match (&phone, problems.is_empty()) {
            (Some(number), true) => {
                let first = match phone::number_key(number) {
                    Some(key) => *first_seen.entry(key).or_insert(row_number),
                    None => *first_seen_tokens.entry(number.clone()).or_insert(row_number),
                };
                (first != row_number).then_some((number, first))
            }
            _ => None,
        };
        if let Some((number, first_row)) = repeats {
            problems.push(BadRow {
                row: row_number,
                column: phone_header.clone(),
                reason: format!("{number} repeats row {first_row}: the number is imported once, delete this row"),
                reason_zh: format!("{number} 与第 {first_row} 行重复：同一号码只导入一次，请删除该行"),
            });
        }
        match phone {
            Some(number) if problems.is_empty() => {
                n_good += 1;
                sink.keep(GoodRow { row_number, phone: number, fields });
            }
            _ => bad.extend(problems),
        }
        Ok(())
    })?;
    let Some(Header { headers, warnings: header_warnings, field_columns, phone_col, .. }) = header else {
        return Err(ImportError::Empty { file_name: file_name.to_string() });
    };
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
    Ok(ImportReport { n_rows, n_good, bad, phone_column: phone_header, unmatched_fields, columns, trailing_empty_rows, header_warnings })
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
        let parsed = parse_rows(file_name, bytes, project, options, &mut chunks);
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
    use rust_xlsxwriter::Workbook;

    use super::*;
    use crate::store::{FieldSpec, FieldSpecKind};

    fn project() -> Project {
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
        let options = ParseOptions { phone_column: None, progress: Some(&progress) };
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
            "no phone column found in the header row (row 1; headers: \"姓名\", \"地址\"): name the phone column 手机号码, 电话 or phone"
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
        return Err(ImportError::TooManyRows { n_rows: rows.len() - start });
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

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

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Data, DataRef, Reader, Xlsx};

use crate::phone::{self, PhoneError};
use crate::store::{
    BadRow, ColumnMatch, FieldValuesBuilder, FileImport, GoodRow, ImportReport, PhoneMode, Project, SaveImportError, Store,
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

/// Why one cell's value is not stored. Each names the value as the file holds it; the row
/// and column travel beside it in the [`BadRow`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CellError {
    /// An Excel error value (`#N/A`, `#VALUE!` …).
    #[error("the cell holds the Excel error {0}: fix the formula or type the value")]
    ExcelError(String),
    /// A number cell with more digits than Excel keeps.
    #[error("the number {shown} has more than {EXCEL_DIGITS} significant digits: precision lost in Excel (it keeps {EXCEL_DIGITS}, so these digits are not the ones typed); format the column as text and type the value again")]
    PrecisionLost { shown: String },
    /// Text that is Excel's scientific display of a number (`1.39001E+10`).
    #[error("{shown:?} is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value")]
    Scientific { shown: String },
    /// A phone number cell with a fraction.
    #[error("the number {shown} is not a whole number, so it is not a phone number: type the number as text")]
    NotWhole { shown: String },
    /// The phone column of a number project.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// The phone column of a token project, empty.
    #[error("dial token is empty: fill it in or delete the row")]
    TokenEmpty,
    /// The phone column of a token project, not a token of the project's length.
    #[error("{shown:?} is not an encrypted dial token: this project's tokens are exactly {length} hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has {found} characters")]
    NotToken { shown: String, length: usize, found: usize },
}

impl CellError {
    /// The reason in Simplified Chinese, for the console's import report.
    pub fn zh(&self) -> String {
        match self {
            CellError::ExcelError(e) => format!("单元格是 Excel 错误值 {e}：请修正公式或直接填写内容"),
            CellError::PrecisionLost { shown } => format!(
                "数字 {shown} 超过 {EXCEL_DIGITS} 位有效数字：Excel 已丢失精度（只保留 {EXCEL_DIGITS} 位，这些数字并非原样录入）；请把该列设为文本格式后重新填写"
            ),
            CellError::Scientific { shown } => {
                format!("“{shown}”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整内容")
            }
            CellError::NotWhole { shown } => format!("数字 {shown} 不是整数，不是电话号码：请以文本格式填写号码"),
            CellError::Phone(err) => err.zh(),
            CellError::TokenEmpty => "加密号码为空：请填写或删除该行".to_string(),
            CellError::NotToken { shown, length, found } => format!(
                "“{shown}”不是加密号码：本项目的加密号码为 {length} 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 {found} 个字符"
            ),
        }
    }

    fn bad_row(&self, row: u32, column: &str) -> BadRow {
        BadRow { row, column: column.to_string(), reason: self.to_string(), reason_zh: self.zh() }
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

/// Longest header (as compared) a phone word counts in: past that it is a sentence, such
/// as an instructions sheet's "请在“名单”工作表填写号码", not a column name.
const PHONE_WORD_HEADER_CHARS: usize = 12;

/// Whether a header (as compared) holds a phone word and reads as a column name.
fn has_phone_word(key: &str) -> bool {
    key.chars().count() <= PHONE_WORD_HEADER_CHARS
        && !key.contains(['，', '。', '；', '！', '？', '“', '”'])
        && PHONE_WORDS.iter().any(|w| key.contains(w))
}

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

/// A whole-workbook cell (black / white list sheets are read as a range, and the first
/// rows of a sheet are held while the header is looked for) as the borrowed form the
/// streamed call-list import works on.
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

/// A streamed cell, owned (the inverse of [`cell_ref`]).
fn cell_owned(cell: &DataRef<'_>) -> Data {
    match cell {
        DataRef::Int(i) => Data::Int(*i),
        DataRef::Float(f) => Data::Float(*f),
        DataRef::String(s) => Data::String(s.clone()),
        DataRef::SharedString(s) => Data::String((*s).to_string()),
        DataRef::Bool(b) => Data::Bool(*b),
        DataRef::DateTime(dt) => Data::DateTime(*dt),
        DataRef::DateTimeIso(s) => Data::DateTimeIso(s.clone()),
        DataRef::DurationIso(s) => Data::DurationIso(s.clone()),
        DataRef::Error(e) => Data::Error(e.clone()),
        DataRef::Empty => Data::Empty,
    }
}

/// A text cell's value: trimmed, without the leading apostrophe some tools write into the
/// value itself (Excel's "keep as text" mark, which Excel keeps out of the value).
fn text_value(raw: &str) -> &str {
    let text = raw.trim();
    match text.strip_prefix(['\'', '＇', '‘', '’']) {
        Some(rest) => rest.trim(),
        None => text,
    }
}

/// Whether `text` is how Excel displays a long number (`1.39001E+10`, `1E-05`): scientific
/// notation with a signed exponent. Plain codes such as `3E5` are left alone in fields.
fn is_excel_scientific(text: &str) -> bool {
    phone::is_scientific(text) && text.split_once(['e', 'E']).is_some_and(|(_, exp)| exp.starts_with(['+', '-']))
}

/// A number cell as text, if Excel kept every digit of it: at most [`EXCEL_DIGITS`]
/// significant digits, and a whole number below 10^15 (past that its last digits are
/// zeros Excel put there). Whole numbers without `.0`; others as the file holds them.
fn number_text(value: f64) -> Result<String, CellError> {
    let shown = || format!("{value}");
    if !value.is_finite() {
        return Err(CellError::PrecisionLost { shown: shown() });
    }
    let whole = value.fract() == 0.0;
    // The common case, a phone number cell: a whole number below 10^15 has at most 15
    // digits, all of them kept.
    if whole && value.abs() < 1e15 {
        return Ok(if value == 0.0 { "0".to_string() } else { format!("{value:.0}") });
    }
    // `{:e}` is the shortest form that reads back as the same f64: its mantissa's digits
    // are the digits the file holds.
    let scientific = format!("{value:e}");
    let mantissa = scientific.split('e').next().unwrap_or_default();
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    if whole || digits > EXCEL_DIGITS {
        return Err(CellError::PrecisionLost { shown: shown() });
    }
    Ok(shown())
}

/// A cell's text as a value, judged ([`write_cell`]).
fn cell_text(cell: &DataRef<'_>) -> Result<String, CellError> {
    let mut text = String::new();
    write_cell(cell, &mut text).map(|()| text)
}

/// A customer field cell's value appended to `out` (the import writes each value straight
/// into the row's one buffer), or why it cannot be trusted.
fn write_cell(cell: &DataRef<'_>, out: &mut String) -> Result<(), CellError> {
    use std::fmt::Write as _;
    // Writing into a String cannot fail; `fmt::Result` is only the trait's shape.
    match cell {
        DataRef::Empty => {}
        DataRef::SharedString(s) => write_text(s, out)?,
        DataRef::String(s) => write_text(s, out)?,
        DataRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        DataRef::Float(f) => out.push_str(&number_text(*f)?),
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
        DataRef::Error(e) => return Err(CellError::ExcelError(e.to_string())),
    }
    Ok(())
}

fn write_text(raw: &str, out: &mut String) -> Result<(), CellError> {
    let text = text_value(raw);
    if is_excel_scientific(text) {
        return Err(CellError::Scientific { shown: raw.trim().to_string() });
    }
    out.push_str(text);
    Ok(())
}

/// A header cell's text: never refused (a header is a name, not data).
fn header_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::SharedString(s) => s.trim().to_string(),
        DataRef::String(s) => s.trim().to_string(),
        DataRef::Float(f) => number_text(*f).unwrap_or_else(|_| format!("{f}")),
        DataRef::Error(e) => e.to_string(),
        other => cell_text(other).unwrap_or_default(),
    }
}

fn is_blank(cell: &DataRef<'_>) -> bool {
    match cell {
        DataRef::Empty => true,
        DataRef::SharedString(s) => s.trim().is_empty(),
        DataRef::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The phone cell of a number project as a dialable number.
fn phone_from_cell(cell: &DataRef<'_>) -> Result<String, CellError> {
    let digits = match cell {
        DataRef::Float(f) => {
            let digits = number_text(*f)?;
            if f.fract() != 0.0 {
                return Err(CellError::NotWhole { shown: digits });
            }
            digits
        }
        DataRef::Int(i) => i.to_string(),
        DataRef::SharedString(s) => return Ok(phone::normalize(text_value(s))?),
        DataRef::String(s) => return Ok(phone::normalize(text_value(s))?),
        DataRef::Empty => return Err(PhoneError::Empty.into()),
        DataRef::Error(e) => return Err(CellError::ExcelError(e.to_string())),
        other => return Err(PhoneError::NotDigits(cell_text(other).unwrap_or_default()).into()),
    };
    if digits.starts_with('-') {
        return Err(PhoneError::NotDialable(digits).into());
    }
    match phone::normalize(&digits) {
        Ok(number) => Ok(number),
        // Excel drops a landline's leading zero when the cell is a number.
        Err(err) => phone::normalize(&format!("0{digits}")).map_err(|_| err.into()),
    }
}

/// The phone cell of a token project: exactly `length` hex digits, dialed as-is
/// (upper-cased); spaces inside are dropped.
fn token_from_cell(cell: &DataRef<'_>, length: usize) -> Result<String, CellError> {
    let text = match cell {
        DataRef::SharedString(s) => text_value(s).to_string(),
        DataRef::String(s) => text_value(s).to_string(),
        // A number cell is a token only if Excel kept all its digits (a 20-digit one never).
        DataRef::Float(f) => {
            let text = number_text(*f)?;
            if f.fract() != 0.0 {
                return Err(CellError::NotToken { found: text.chars().count(), shown: text, length });
            }
            text
        }
        DataRef::Error(e) => return Err(CellError::ExcelError(e.to_string())),
        other => cell_text(other)?,
    };
    let token: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if token.is_empty() {
        return Err(CellError::TokenEmpty);
    }
    if token.len() != length || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        // `1234567890123456E789` is a token, `9.87654E+19` is Excel's display of a number.
        if phone::is_scientific(&token) {
            return Err(CellError::Scientific { shown: text });
        }
        return Err(CellError::NotToken { found: token.chars().count(), shown: text, length });
    }
    Ok(token.to_ascii_uppercase())
}

/// Where `text` must be cut to hold at most `max` characters (a byte index), if it is
/// longer, and how many characters it has.
fn cut_point(text: &str, max: usize) -> Option<(usize, usize)> {
    // A UTF-8 character is at least one byte: short values need no counting.
    if text.len() <= max {
        return None;
    }
    let (cut, _) = text.char_indices().nth(max)?;
    Some((cut, text.chars().count()))
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

/// How well a row looks like the header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HeaderMatch {
    /// No phone column.
    None,
    /// A header containing a phone word (客户手机号), in a row of one cell: could be a title.
    WordAlone,
    /// A header containing a phone word, beside other headers.
    Word,
    /// A header that names the phone column outright (手机号码).
    Exact,
}

/// The columns of the project's custom fields in a header row, by title or variable name.
fn field_columns(keys: &[String], project: &Project) -> Vec<Option<usize>> {
    project
        .customer_fields
        .iter()
        .map(|field| {
            let (title, key) = (header_key(&field.title), header_key(&field.key));
            keys.iter().position(|k| *k == title).or_else(|| keys.iter().position(|k| *k == key))
        })
        .collect()
}

/// The phone column of a header row and how sure it is. Custom fields are matched first,
/// so that a field titled "身份证号码" is not mistaken for the phone column.
fn phone_column(keys: &[String], fields: &[Option<usize>]) -> Option<(usize, HeaderMatch)> {
    let taken = |idx: usize| fields.contains(&Some(idx));
    if let Some(idx) = (0..keys.len()).find(|idx| !taken(*idx) && PHONE_HEADERS.contains(&keys[*idx].as_str())) {
        return Some((idx, HeaderMatch::Exact));
    }
    let idx = (0..keys.len()).find(|idx| !taken(*idx) && has_phone_word(&keys[*idx]))?;
    let filled = keys.iter().filter(|k| !k.is_empty()).count();
    Some((idx, if filled > 1 { HeaderMatch::Word } else { HeaderMatch::WordAlone }))
}

/// How well `cells` look like the header row.
fn header_match(cells: &[DataRef<'_>], project: &Project) -> HeaderMatch {
    let keys: Vec<String> = cells.iter().map(|c| header_key(&header_text(c))).collect();
    phone_column(&keys, &field_columns(&keys, project)).map_or(HeaderMatch::None, |(_, how)| how)
}

/// Of the first rows of a sheet (non-blank, in order, with their indexes), the index of the
/// header row: the first that names a phone column outright, else the first with a phone
/// word among other headers, else the first with a phone word at all; with a chosen phone
/// column and none of these, the first row.
fn pick_header(rows: &[(u32, Vec<Data>)], project: &Project, chosen_column: bool) -> Option<usize> {
    let matches: Vec<HeaderMatch> =
        rows.iter().map(|(_, row)| header_match(&row.iter().map(cell_ref).collect::<Vec<_>>(), project)).collect();
    for wanted in [HeaderMatch::Exact, HeaderMatch::Word, HeaderMatch::WordAlone] {
        if let Some(idx) = matches.iter().position(|m| *m == wanted) {
            return Some(idx);
        }
    }
    (chosen_column && !rows.is_empty()).then_some(0)
}

/// Reads the header row: phone column, field columns, warnings about odd headers.
fn read_header(cells: &[DataRef<'_>], row_number: u32, sheet: &str, project: &Project, options: &ParseOptions<'_>) -> Result<Header, ImportError> {
    let headers: Vec<String> = cells.iter().map(header_text).collect();
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
    let field_columns = field_columns(&keys, project);
    let chosen = options.phone_column.filter(|idx| *idx < headers.len());
    let phone_col = chosen.or_else(|| phone_column(&keys, &field_columns).map(|(idx, _)| idx));
    let Some(phone_col) = phone_col else {
        return Err(no_phone_column(sheet, row_number, &headers));
    };
    Ok(Header { row_number, headers, warnings, field_columns, phone_col })
}

/// A sheet has no phone column; `headers` are those of its first row with data.
fn no_phone_column(sheet: &str, header_row: u32, headers: &[String]) -> ImportError {
    let shown: Vec<String> = headers.iter().filter(|h| !h.is_empty()).map(|h| format!("{h:?}")).collect();
    ImportError::NoPhoneColumn {
        sheet: sheet.to_string(),
        header_row,
        headers: if shown.is_empty() { "none".to_string() } else { shown.join(", ") },
    }
}

/// [`parse_xlsx`] with a chosen phone column and a progress callback. The sheet is
/// streamed row by row; only the good rows and the report are kept.
pub fn parse_xlsx_with(file_name: &str, bytes: &[u8], project: &Project, options: &ParseOptions<'_>) -> Result<ParsedImport, ImportError> {
    let limits = Limits { max_rows: MAX_ROWS, token_length: options.token_length.unwrap_or(DEFAULT_TOKEN_LENGTH) };
    let mut rows = Vec::new();
    let report = parse_rows(file_name, bytes, project, options, limits, &mut rows)?;
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

/// One data row, judged.
#[derive(Debug)]
enum Judged {
    /// Worth keeping (if its number is not a repeat), with warnings about what was changed.
    Keep { phone: String, warnings: Vec<BadRow> },
    /// Every reason it is not kept.
    Reject(Vec<BadRow>),
}

/// Judges one data row against the header and the project: the phone cell, then each
/// custom field (whose values go into `values`; the caller takes them when the row is kept).
fn judge_row(
    row_number: u32,
    cells: &[DataRef<'_>],
    head: &Header,
    project: &Project,
    limits: Limits,
    values: &mut FieldValuesBuilder,
) -> Judged {
    let empty = DataRef::Empty;
    let mut problems: Vec<BadRow> = Vec::new();
    let mut warnings: Vec<BadRow> = Vec::new();
    let cell = cells.get(head.phone_col).unwrap_or(&empty);
    let phone = match project.phone_mode {
        PhoneMode::Number => phone_from_cell(cell),
        PhoneMode::Token => token_from_cell(cell, limits.token_length),
    };
    let phone = match phone {
        Ok(number) => Some(number),
        Err(err) => {
            problems.push(err.bad_row(row_number, &head.headers[head.phone_col]));
            None
        }
    };
    for (field, column) in project.customer_fields.iter().zip(&head.field_columns) {
        let Some(column) = column else {
            let _ = values.push_with(|_| Ok::<(), ()>(()));
            continue;
        };
        let header_text = &head.headers[*column];
        let mut cut_from = None;
        let written = values.push_with(|out| {
            let start = out.len();
            write_cell(cells.get(*column).unwrap_or(&empty), out)?;
            if let Some((cut, chars)) = cut_point(&out[start..], MAX_FIELD_CHARS) {
                out.truncate(start + cut);
                cut_from = Some(chars);
            }
            Ok::<(), CellError>(())
        });
        let value = match written {
            Ok(value) => value,
            Err(err) => {
                problems.push(err.bad_row(row_number, header_text));
                continue;
            }
        };
        if let Err((reason, reason_zh)) = field.check_value(value) {
            problems.push(BadRow { row: row_number, column: header_text.clone(), reason, reason_zh });
            continue;
        }
        if let Some(chars) = cut_from {
            warnings.push(BadRow {
                row: row_number,
                column: header_text.clone(),
                reason: format!("the value has {chars} characters, more than the {MAX_FIELD_CHARS} a field holds: it was cut to its first {MAX_FIELD_CHARS}"),
                reason_zh: format!("内容有 {chars} 个字符，超过字段上限 {MAX_FIELD_CHARS}：已截断为前 {MAX_FIELD_CHARS} 个字符"),
            });
        }
    }
    match phone {
        Some(phone) if problems.is_empty() => Judged::Keep { phone, warnings },
        _ => Judged::Reject(problems),
    }
}

/// Whether `n_rows` data rows are past the cap.
fn over_cap(n_rows: u64, max_rows: usize) -> bool {
    n_rows > max_rows as u64
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

/// The parse's running state over the data rows.
struct RowState<'s> {
    sink: &'s mut dyn RowSink,
    n_good: u64,
    n_rows: u64,
    bad: Vec<BadRow>,
    warnings: Vec<BadRow>,
    // First row of each number: normalised numbers are digits, keyed as one u64
    // ([`phone::number_key`]); dial tokens (too long for that) by their text.
    first_seen: HashMap<u64, u32>,
    first_seen_tokens: HashMap<String, u32>,
    // Blank rows since the last row with data: at the end, the trailing empty rows.
    blank_run: u64,
    total: u64,
    values: FieldValuesBuilder,
}

impl RowState<'_> {
    /// One data row under `head`.
    fn data_row(&mut self, index: u32, row: &[DataRef<'_>], head: &Header, project: &Project, limits: Limits, options: &ParseOptions<'_>) -> Result<(), ImportError> {
        let row_number = index + 1;
        if row.iter().all(is_blank) {
            self.blank_run += 1;
            return Ok(());
        }
        // Rows missing from the sheet's XML between two data rows are blank too.
        self.blank_run = 0;
        self.n_rows += 1;
        if over_cap(self.n_rows, limits.max_rows) {
            return Err(ImportError::TooManyRows { n_rows: (self.total as usize).max(self.n_rows as usize), max: limits.max_rows });
        }
        if let Some(progress) = options.progress
            && self.n_rows.is_multiple_of(5000)
        {
            progress(u64::from(index + 1 - head.row_number), self.total);
        }
        let (phone, warnings) = match judge_row(row_number, row, head, project, limits, &mut self.values) {
            Judged::Keep { phone, warnings } => (phone, warnings),
            Judged::Reject(problems) => {
                self.values.finish();
                self.bad.extend(problems);
                return Ok(());
            }
        };
        let fields = self.values.finish();
        // The number's first row, recorded now if this row is the first (one hash per row:
        // only a row without other problems claims its number).
        let first = match phone::number_key(&phone) {
            Some(key) => *self.first_seen.entry(key).or_insert(row_number),
            None => *self.first_seen_tokens.entry(phone.clone()).or_insert(row_number),
        };
        if first != row_number {
            self.bad.push(BadRow {
                row: row_number,
                column: head.headers[head.phone_col].clone(),
                reason: format!("{phone} repeats row {first}: the number is imported once, delete this row"),
                reason_zh: format!("{phone} 与第 {first} 行重复：同一号码只导入一次，请删除该行"),
            });
            return Ok(());
        }
        self.n_good += 1;
        self.warnings.extend(warnings);
        self.sink.keep(GoodRow { row_number, phone, fields });
        Ok(())
    }
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
    let Some((sheet, Header { headers, warnings: mut header_warnings, field_columns, phone_col, .. }, titles)) = found else {
        return Err(no_header.unwrap_or(ImportError::Empty { file_name: file_name.to_string() }));
    };
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
    Ok(ImportReport {
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
    })
}

/// A title row skipped above the header, as a report line.
fn title_warning(row_number: u32, cells: &[Data]) -> String {
    let text: Vec<String> = cells.iter().map(|c| header_text(&cell_ref(c))).filter(|t| !t.is_empty()).collect();
    let text = text.join(" ");
    format!("row {row_number} {text:?} is above the header row and was skipped as a title (第 {row_number} 行在标题行之上，作为表头说明已跳过)")
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
    use calamine::CellErrorType;
    use expect_test::{expect, Expect};
    use rust_xlsxwriter::Workbook;

    use super::*;
    use crate::store::{FieldSpec, FieldSpecKind};

    /// Each number cell's value as stored, or why it is refused.
    fn check_numbers(values: &[f64], expect: Expect) {
        let out: String = values
            .iter()
            .map(|v| match number_text(*v) {
                Ok(text) => format!("{v:e} => {text}\n"),
                Err(err) => format!("{v:e} => err {err}\n"),
            })
            .collect();
        expect.assert_eq(&out);
    }

    #[test]
    fn number_cells_keep_at_most_fifteen_digits() {
        check_numbers(
            &[13800138000.0, 1062345678.0, 42.0, 12.5, 0.0, -3.0, 999_999_999_999_999.0, 1e15, 98765432109876543210.0, 123456789012345678.0, 0.1 + 0.2, 1234567890.12345],
            expect![[r#"
                1.3800138e10 => 13800138000
                1.062345678e9 => 1062345678
                4.2e1 => 42
                1.25e1 => 12.5
                0e0 => 0
                -3e0 => -3
                9.99999999999999e14 => 999999999999999
                1e15 => err the number 1000000000000000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                9.876543210987654e19 => err the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                1.2345678901234568e17 => err the number 123456789012345680 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                3.0000000000000004e-1 => err the number 0.30000000000000004 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                1.23456789012345e9 => 1234567890.12345
            "#]],
        );
    }

    /// Each cell judged three ways: as a custom field value, as a number project's phone,
    /// as a token project's phone (tokens of 20).
    fn check_cells(cells: &[DataRef<'_>], expect: Expect) {
        let show = |judged: Result<String, CellError>| match judged {
            Ok(text) => format!("ok {text:?}"),
            Err(err) => format!("err {err} / {}", err.zh()),
        };
        let out: String = cells
            .iter()
            .map(|cell| {
                format!(
                    "{cell:?}\n  field: {}\n  phone: {}\n  token: {}\n",
                    show(cell_text(cell)),
                    show(phone_from_cell(cell)),
                    show(token_from_cell(cell, DEFAULT_TOKEN_LENGTH))
                )
            })
            .collect();
        expect.assert_eq(&out);
    }

    #[test]
    fn untrusted_cells_are_refused() {
        check_cells(
            &[
                DataRef::SharedString("1.39001E+10"),
                DataRef::Float(98765432109876543210.0),
                DataRef::Float(13800138000.5),
                DataRef::Error(CellErrorType::NA),
            ],
            expect![[r#"
                SharedString("1.39001E+10")
                  field: err "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value / “1.39001E+10”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整内容
                  phone: err "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number / “1.39001E+10”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整号码
                  token: err "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value / “1.39001E+10”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整内容
                Float(9.876543210987654e19)
                  field: err the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again / 数字 98765432109876540000 超过 15 位有效数字：Excel 已丢失精度（只保留 15 位，这些数字并非原样录入）；请把该列设为文本格式后重新填写
                  phone: err the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again / 数字 98765432109876540000 超过 15 位有效数字：Excel 已丢失精度（只保留 15 位，这些数字并非原样录入）；请把该列设为文本格式后重新填写
                  token: err the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again / 数字 98765432109876540000 超过 15 位有效数字：Excel 已丢失精度（只保留 15 位，这些数字并非原样录入）；请把该列设为文本格式后重新填写
                Float(13800138000.5)
                  field: ok "13800138000.5"
                  phone: err the number 13800138000.5 is not a whole number, so it is not a phone number: type the number as text / 数字 13800138000.5 不是整数，不是电话号码：请以文本格式填写号码
                  token: err "13800138000.5" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 13 characters / “13800138000.5”不是加密号码：本项目的加密号码为 20 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 13 个字符
                Error(NA)
                  field: err the cell holds the Excel error #N/A: fix the formula or type the value / 单元格是 Excel 错误值 #N/A：请修正公式或直接填写内容
                  phone: err the cell holds the Excel error #N/A: fix the formula or type the value / 单元格是 Excel 错误值 #N/A：请修正公式或直接填写内容
                  token: err the cell holds the Excel error #N/A: fix the formula or type the value / 单元格是 Excel 错误值 #N/A：请修正公式或直接填写内容
            "#]],
        );
    }

    #[test]
    fn trusted_cells_are_kept_as_typed() {
        check_cells(
            &[
                DataRef::SharedString("'13800138000"),
                DataRef::SharedString(" ＇00123 "),
                DataRef::Float(13800138000.0),
                DataRef::Float(1062345678.0),
                DataRef::SharedString("a207a92e2b93892f5f4c"),
                DataRef::SharedString("'A207A92E2B93892F5F4C"),
                DataRef::SharedString("1234567890123456E789"),
                DataRef::SharedString("3E5"),
                DataRef::Empty,
            ],
            expect![[r#"
                SharedString("'13800138000")
                  field: ok "13800138000"
                  phone: ok "13800138000"
                  token: err "13800138000" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 11 characters / “13800138000”不是加密号码：本项目的加密号码为 20 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 11 个字符
                SharedString(" ＇00123 ")
                  field: ok "00123"
                  phone: err "00123" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678) / “00123”不是可拨打的号码：请填写 11 位手机号（1[3-9]开头）或带区号的固话（如 010-62345678）
                  token: err "00123" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 5 characters / “00123”不是加密号码：本项目的加密号码为 20 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 5 个字符
                Float(13800138000.0)
                  field: ok "13800138000"
                  phone: ok "13800138000"
                  token: err "13800138000" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 11 characters / “13800138000”不是加密号码：本项目的加密号码为 20 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 11 个字符
                Float(1062345678.0)
                  field: ok "1062345678"
                  phone: ok "01062345678"
                  token: err "1062345678" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 10 characters / “1062345678”不是加密号码：本项目的加密号码为 20 位十六进制（0-9、A-F），如 A207A92E2B93892F5F4C，此处为 10 个字符
                SharedString("a207a92e2b93892f5f4c")
                  field: ok "a207a92e2b93892f5f4c"
                  phone: err "a207a92e2b93892f5f4c" contains characters that are not digits: keep only the number / “a207a92e2b93892f5f4c”含有非数字字符：只保留号码
                  token: ok "A207A92E2B93892F5F4C"
                SharedString("'A207A92E2B93892F5F4C")
                  field: ok "A207A92E2B93892F5F4C"
                  phone: err "A207A92E2B93892F5F4C" contains characters that are not digits: keep only the number / “A207A92E2B93892F5F4C”含有非数字字符：只保留号码
                  token: ok "A207A92E2B93892F5F4C"
                SharedString("1234567890123456E789")
                  field: ok "1234567890123456E789"
                  phone: err "1234567890123456E789" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number / “1234567890123456E789”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整号码
                  token: ok "1234567890123456E789"
                SharedString("3E5")
                  field: ok "3E5"
                  phone: err "3E5" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number / “3E5”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整号码
                  token: err "3E5" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value / “3E5”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整内容
                Empty
                  field: ok ""
                  phone: err phone is empty: fill in the number or delete the row / 号码为空：请填写号码或删除该行
                  token: err dial token is empty: fill it in or delete the row / 加密号码为空：请填写或删除该行
            "#]],
        );
    }

    #[test]
    fn dial_tokens_are_exactly_the_projects_length() {
        let judge = |text: &str, length: usize| match token_from_cell(&DataRef::SharedString(text), length) {
            Ok(token) => format!("{text} /{length} => ok {token}\n"),
            Err(err) => format!("{text} /{length} => err {err}\n"),
        };
        let out: String = [
            ("A207A92E2B93892F5F4C", 20),
            // The manual's sample sheet also shows 19-digit ones: a project set to 19 takes them.
            ("F84C0F0BD048800BC62", 20),
            ("F84C0F0BD048800BC62", 19),
            ("A207A92E2B93892F5F4C", 19),
            ("A207 A92E 2B93 892F 5F4C", 20),
            ("G207A92E2B93892F5F4C", 20),
        ]
        .iter()
        .map(|(text, length)| judge(text, *length))
        .collect();
        expect![[r#"
            A207A92E2B93892F5F4C /20 => ok A207A92E2B93892F5F4C
            F84C0F0BD048800BC62 /20 => err "F84C0F0BD048800BC62" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 19 characters
            F84C0F0BD048800BC62 /19 => ok F84C0F0BD048800BC62
            A207A92E2B93892F5F4C /19 => err "A207A92E2B93892F5F4C" is not an encrypted dial token: this project's tokens are exactly 19 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 20 characters
            A207 A92E 2B93 892F 5F4C /20 => ok A207A92E2B93892F5F4C
            G207A92E2B93892F5F4C /20 => err "G207A92E2B93892F5F4C" is not an encrypted dial token: this project's tokens are exactly 20 hex digits (0-9, A-F) such as A207A92E2B93892F5F4C, this has 20 characters
        "#]]
        .assert_eq(&out);
    }

    /// A sheet's rows as text cells (`""` = empty).
    fn text_rows(rows: &[&[&str]]) -> Vec<Vec<Data>> {
        rows.iter()
            .map(|row| row.iter().map(|c| if c.is_empty() { Data::Empty } else { Data::String(c.to_string()) }).collect())
            .collect()
    }

    /// Each row judged under the header `header` for `project` (tokens of 20): what is
    /// stored, or every reason it is not, and the warnings.
    fn check_rows(project: &Project, header: &[&str], rows: &[Vec<Data>], expect: Expect) {
        let header: Vec<DataRef<'_>> = header.iter().map(|h| DataRef::SharedString(h)).collect();
        let head = read_header(&header, 1, "Sheet1", project, &ParseOptions::default()).unwrap();
        let limits = Limits { max_rows: MAX_ROWS, token_length: DEFAULT_TOKEN_LENGTH };
        let mut values = FieldValuesBuilder::default();
        let mut out = String::new();
        for (idx, row) in rows.iter().enumerate() {
            let cells: Vec<DataRef<'_>> = row.iter().map(cell_ref).collect();
            let row_number = idx as u32 + 2;
            match judge_row(row_number, &cells, &head, project, limits, &mut values) {
                Judged::Keep { phone, warnings } => {
                    let fields: Vec<String> = values
                        .finish()
                        .iter()
                        .map(|v| match v.chars().count() {
                            n if n > 20 => format!("{}…({n} chars)", v.chars().take(2).collect::<String>()),
                            _ => v.to_string(),
                        })
                        .collect();
                    out.push_str(&format!("row {row_number}: keep {phone} {fields:?}\n"));
                    for w in warnings {
                        out.push_str(&format!("  warn {} {}: {} / {}\n", w.row, w.column, w.reason, w.reason_zh));
                    }
                }
                Judged::Reject(problems) => {
                    values.finish();
                    for p in problems {
                        out.push_str(&format!("row {row_number}: reject {} {}: {}\n", p.row, p.column, p.reason));
                    }
                }
            }
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn rows_are_kept_or_refused_whole() {
        let mut rows = text_rows(&[&["'13800138000", "'00123", "A"], &["1.39001E+10", "张三", "A"], &["13900139000", "1.23457E+17", "B"], &["", "", "A"]]);
        rows.push(vec![Data::Float(13700137000.0), Data::Float(110101199001011234.0), Data::String("A".into())]);
        rows.push(vec![Data::Float(13600136000.0), Data::String("长".repeat(MAX_FIELD_CHARS + 500)), Data::String("B".into())]);
        check_rows(
            &project(),
            &["手机号码", "姓名", "level"],
            &rows,
            expect![[r#"
                row 2: keep 13800138000 ["00123", "A"]
                row 3: reject 3 手机号码: "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                row 4: reject 4 姓名: "1.23457E+17" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value
                row 5: reject 5 手机号码: phone is empty: fill in the number or delete the row
                row 6: reject 6 姓名: the number 110101199001011230 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                row 7: keep 13600136000 ["长长…(1000 chars)", "B"]
                  warn 7 姓名: the value has 1500 characters, more than the 1000 a field holds: it was cut to its first 1000 / 内容有 1500 个字符，超过字段上限 1000：已截断为前 1000 个字符
            "#]],
        );
    }

    #[test]
    fn token_rows() {
        let mut project = project();
        project.phone_mode = PhoneMode::Token;
        let mut rows = text_rows(&[&["A207A92E2B93892F5F4C", "甲", "A"], &["9.87654E+19", "乙", "A"]]);
        rows.push(vec![Data::Float(98765432109876543210.0), Data::String("丙".into()), Data::String("A".into())]);
        check_rows(
            &project,
            &["电话号", "姓名", "level"],
            &rows,
            expect![[r#"
                row 2: keep A207A92E2B93892F5F4C ["甲", "A"]
                row 3: reject 3 电话号: "9.87654E+19" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value
                row 4: reject 4 电话号: the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
            "#]],
        );
    }

    /// The header row picked among a sheet's first non-blank rows (1-based), or none.
    fn check_headers(sheets: &[&[&[&str]]], expect: Expect) {
        let out: String = sheets
            .iter()
            .map(|rows| {
                let held: Vec<(u32, Vec<Data>)> = text_rows(rows).into_iter().enumerate().map(|(i, r)| (i as u32, r)).collect();
                let first_cells: Vec<&str> = rows.iter().map(|r| r.first().copied().unwrap_or_default()).collect();
                match pick_header(&held, &project(), false) {
                    Some(at) => format!("{first_cells:?} => row {}\n", at + 1),
                    None => format!("{first_cells:?} => none\n"),
                }
            })
            .collect();
        expect.assert_eq(&out);
    }

    #[test]
    fn the_header_is_found_below_title_rows() {
        check_headers(
            &[
                &[&["手机号码", "姓名"], &["13800138000", "张三"]],
                &[&["2024年5月客户名单"], &["手机号码", "姓名"]],
                // A title that itself holds a phone word loses to the real header.
                &[&["客户电话名单"], &["客户手机号", "姓名"]],
                &[&["客户电话名单"], &["导出时间：2024-05-31"], &["联系电话", "姓名"]],
                &[&["客户手机号"], &["13800138000"]],
                &[&["说明"], &["请在下一页填写"]],
                &[&["请在“名单”工作表填写号码"]],
                &[&["本表为营销活动客户名单及联系电话汇总"]],
            ],
            expect![[r#"
                ["手机号码", "13800138000"] => row 1
                ["2024年5月客户名单", "手机号码"] => row 2
                ["客户电话名单", "客户手机号"] => row 2
                ["客户电话名单", "导出时间：2024-05-31", "联系电话"] => row 3
                ["客户手机号", "13800138000"] => row 1
                ["说明", "请在下一页填写"] => none
                ["请在“名单”工作表填写号码"] => none
                ["本表为营销活动客户名单及联系电话汇总"] => none
            "#]],
        );
    }

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

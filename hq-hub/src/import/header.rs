//! The header row of a sheet: which of its first rows it is (titles above it are skipped
//! and reported), the phone column (by header: 手机 / 电话 / 号码 / phone …) and the
//! columns of the project's custom fields (by title or variable name).

use calamine::{Data, DataRef};

use super::cells::{cell_ref, header_text};
use super::{ImportError, ParseOptions};
use crate::store::Project;

/// Headers that name the phone column outright (compared after [`header_key`]).
pub(super) const PHONE_HEADERS: &[&str] = &[
    "手机", "手机号", "手机号码", "电话", "电话号", "电话号码", "号码", "联系电话", "联系方式", "客户电话", "客户号码",
    "phone", "phonenumber", "phone_number", "mobile", "mobilephone", "tel", "telephone",
];

/// Words that mark a phone column inside a longer header.
pub(super) const PHONE_WORDS: &[&str] = &["手机", "电话", "号码", "phone", "mobile"];

/// Longest header (as compared) a phone word counts in: past that it is a sentence, such
/// as an instructions sheet's "请在“名单”工作表填写号码", not a column name.
pub(super) const PHONE_WORD_HEADER_CHARS: usize = 12;

/// Whether a header (as compared) holds a phone word and reads as a column name.
pub(super) fn has_phone_word(key: &str) -> bool {
    key.chars().count() <= PHONE_WORD_HEADER_CHARS
        && !key.contains(['，', '。', '；', '！', '？', '“', '”'])
        && PHONE_WORDS.iter().any(|w| key.contains(w))
}

/// Characters spreadsheets smuggle into headers: byte-order marks, zero-width spaces and
/// joiners, soft hyphens. They are dropped when comparing (and reported).
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{00ad}') || (c.is_control() && !c.is_whitespace())
}

/// A header as compared: trimmed, lower case, without spaces (also full-width and line
/// breaks), invisible characters, the `*` marking required columns and `:`/`：` suffixes.
pub(super) fn header_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace() && !is_invisible(*c) && !matches!(c, '*' | '＊' | ':' | '：'))
        .flat_map(char::to_lowercase)
        .collect()
}


/// What the header row decided.
pub(super) struct Header {
    pub(super) row_number: u32,
    pub(super) headers: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) field_columns: Vec<Option<usize>>,
    pub(super) phone_col: usize,
}

pub(super) fn invisible_warning(idx: usize, shown: &str) -> String {
    format!("column {}: header {shown:?} holds special (invisible) characters; they were ignored (标题含特殊字符，已忽略)", idx + 1)
}

/// How well a row looks like the header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum HeaderMatch {
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
pub(super) fn field_columns(keys: &[String], project: &Project) -> Vec<Option<usize>> {
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
pub(super) fn phone_column(keys: &[String], fields: &[Option<usize>]) -> Option<(usize, HeaderMatch)> {
    let taken = |idx: usize| fields.contains(&Some(idx));
    if let Some(idx) = (0..keys.len()).find(|idx| !taken(*idx) && PHONE_HEADERS.contains(&keys[*idx].as_str())) {
        return Some((idx, HeaderMatch::Exact));
    }
    let idx = (0..keys.len()).find(|idx| !taken(*idx) && has_phone_word(&keys[*idx]))?;
    let filled = keys.iter().filter(|k| !k.is_empty()).count();
    Some((idx, if filled > 1 { HeaderMatch::Word } else { HeaderMatch::WordAlone }))
}

/// How well `cells` look like the header row.
pub(super) fn header_match(cells: &[DataRef<'_>], project: &Project) -> HeaderMatch {
    let keys: Vec<String> = cells.iter().map(|c| header_key(&header_text(c))).collect();
    phone_column(&keys, &field_columns(&keys, project)).map_or(HeaderMatch::None, |(_, how)| how)
}

/// Of the first rows of a sheet (non-blank, in order, with their indexes), the index of the
/// header row: the first that names a phone column outright, else the first with a phone
/// word among other headers, else the first with a phone word at all; with a chosen phone
/// column and none of these, the first row.
pub(super) fn pick_header(rows: &[(u32, Vec<Data>)], project: &Project, chosen_column: bool) -> Option<usize> {
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
pub(super) fn read_header(cells: &[DataRef<'_>], row_number: u32, sheet: &str, project: &Project, options: &ParseOptions<'_>) -> Result<Header, ImportError> {
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
pub(super) fn no_phone_column(sheet: &str, header_row: u32, headers: &[String]) -> ImportError {
    let shown: Vec<String> = headers.iter().filter(|h| !h.is_empty()).map(|h| format!("{h:?}")).collect();
    ImportError::NoPhoneColumn {
        sheet: sheet.to_string(),
        header_row,
        headers: if shown.is_empty() { "none".to_string() } else { shown.join(", ") },
    }
}

/// A title row skipped above the header, as a report line.
pub(super) fn title_warning(row_number: u32, cells: &[Data]) -> String {
    let text: Vec<String> = cells.iter().map(|c| header_text(&cell_ref(c))).filter(|t| !t.is_empty()).collect();
    let text = text.join(" ");
    format!("row {row_number} {text:?} is above the header row and was skipped as a title (第 {row_number} 行在标题行之上，作为表头说明已跳过)")
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;
    use crate::import::tests::{project, text_rows};

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
}

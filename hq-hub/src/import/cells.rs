//! One cell of a call list, judged: what is stored of it, or why it cannot be trusted
//! ([`CellError`]). Nothing is invented: a number past Excel's [`EXCEL_DIGITS`] significant
//! digits, text in scientific notation and a phone cell that is not a whole number are
//! refused; a leading apostrophe is dropped; dial tokens are exactly the project's length.

use calamine::{Data, DataRef};

use super::EXCEL_DIGITS;
use crate::phone::{self, PhoneError};
use crate::store::BadRow;

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

    pub(super) fn bad_row(&self, row: u32, column: &str) -> BadRow {
        BadRow { row, column: column.to_string(), reason: self.to_string(), reason_zh: self.zh() }
    }
}


/// A whole-workbook cell (black / white list sheets are read as a range, and the first
/// rows of a sheet are held while the header is looked for) as the borrowed form the
/// streamed call-list import works on.
pub(super) fn cell_ref(cell: &Data) -> DataRef<'_> {
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
pub(super) fn cell_owned(cell: &DataRef<'_>) -> Data {
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
pub(super) fn text_value(raw: &str) -> &str {
    let text = raw.trim();
    match text.strip_prefix(['\'', '＇', '‘', '’']) {
        Some(rest) => rest.trim(),
        None => text,
    }
}

/// Whether `text` is how Excel displays a long number (`1.39001E+10`, `1E-05`): scientific
/// notation with a signed exponent. Plain codes such as `3E5` are left alone in fields.
pub(super) fn is_excel_scientific(text: &str) -> bool {
    phone::is_scientific(text) && text.split_once(['e', 'E']).is_some_and(|(_, exp)| exp.starts_with(['+', '-']))
}

/// A number cell as text, if Excel kept every digit of it: at most [`EXCEL_DIGITS`]
/// significant digits, and a whole number below 10^15 (past that its last digits are
/// zeros Excel put there). Whole numbers without `.0`; others as the file holds them.
pub(super) fn number_text(value: f64) -> Result<String, CellError> {
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
pub(super) fn cell_text(cell: &DataRef<'_>) -> Result<String, CellError> {
    let mut text = String::new();
    write_cell(cell, &mut text).map(|()| text)
}

/// A customer field cell's value appended to `out` (the import writes each value straight
/// into the row's one buffer), or why it cannot be trusted.
pub(super) fn write_cell(cell: &DataRef<'_>, out: &mut String) -> Result<(), CellError> {
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

pub(super) fn write_text(raw: &str, out: &mut String) -> Result<(), CellError> {
    let text = text_value(raw);
    if is_excel_scientific(text) {
        return Err(CellError::Scientific { shown: raw.trim().to_string() });
    }
    out.push_str(text);
    Ok(())
}

/// A header cell's text: never refused (a header is a name, not data).
pub(super) fn header_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::SharedString(s) => s.trim().to_string(),
        DataRef::String(s) => s.trim().to_string(),
        DataRef::Float(f) => number_text(*f).unwrap_or_else(|_| format!("{f}")),
        DataRef::Error(e) => e.to_string(),
        other => cell_text(other).unwrap_or_default(),
    }
}

pub(super) fn is_blank(cell: &DataRef<'_>) -> bool {
    match cell {
        DataRef::Empty => true,
        DataRef::SharedString(s) => s.trim().is_empty(),
        DataRef::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The phone cell of a number project as a dialable number.
pub(super) fn phone_from_cell(cell: &DataRef<'_>) -> Result<String, CellError> {
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
pub(super) fn token_from_cell(cell: &DataRef<'_>, length: usize) -> Result<String, CellError> {
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
pub(super) fn cut_point(text: &str, max: usize) -> Option<(usize, usize)> {
    // A UTF-8 character is at least one byte: short values need no counting.
    if text.len() <= max {
        return None;
    }
    let (cut, _) = text.char_indices().nth(max)?;
    Some((cut, text.chars().count()))
}

#[cfg(test)]
mod tests {
    use calamine::CellErrorType;
    use expect_test::{expect, Expect};

    use super::*;
    use crate::store::DEFAULT_TOKEN_LENGTH;

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
}

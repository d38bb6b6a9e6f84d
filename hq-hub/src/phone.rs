//! Phone numbers as they come out of spreadsheets, made dialable.
//!
//! People paste numbers in every shape: some cells carry spaces, dashes, brackets, a `+86` /
//! `0086` prefix or full-width digits typed with a Chinese input method. [`normalize`] turns
//! all of those into one canonical form, or says precisely why it cannot:
//! - a Chinese mobile number: 11 digits, `1[3-9]…`;
//! - a landline with its area code: `010`/`02x` + 8 digits, or a 4-digit area code
//!   (`0[3-9]xx`) + 7 or 8 digits, local part starting with 2-9.
//!
//! Text in scientific notation (`1.39001E+10`, what Excel shows for a long number) is
//! refused, never expanded: Excel kept only the digits shown, so `13900100000` would be a
//! number nobody typed.

/// Why a cell is not a dialable number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The cell is empty.
    #[error("phone is empty: fill in the number or delete the row")]
    Empty,
    /// Letters or symbols other than spaces, dashes, brackets and a leading +.
    #[error("{0:?} contains characters that are not digits: keep only the number")]
    NotDigits(String),
    /// Digits, but neither a mobile nor a landline with area code.
    #[error("{0:?} is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)")]
    NotDialable(String),
    /// Scientific notation: the digits Excel did not show are gone.
    #[error("{0:?} is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number")]
    Scientific(String),
}

impl PhoneError {
    /// The reason in Simplified Chinese, for the console's import report.
    pub fn zh(&self) -> String {
        match self {
            PhoneError::Empty => "号码为空：请填写号码或删除该行".to_string(),
            PhoneError::NotDigits(raw) => format!("“{raw}”含有非数字字符：只保留号码"),
            PhoneError::NotDialable(raw) => {
                format!("“{raw}”不是可拨打的号码：请填写 11 位手机号（1[3-9]开头）或带区号的固话（如 010-62345678）")
            }
            PhoneError::Scientific(raw) => {
                format!("“{raw}”是科学计数法：Excel 已丢失精度（只保留了显示的几位数字）；请把该列设为文本格式并填写完整号码")
            }
        }
    }
}

/// Turns a cell's text into a dialable number.
pub fn normalize(raw: &str) -> Result<String, PhoneError> {
    // Nearly every cell of a real call list is already a bare 11-digit mobile: answer it
    // with its one allocation, skipping the full-width and separator handling below.
    let bare = raw.trim_ascii();
    if is_mobile(bare) {
        return Ok(bare.to_string());
    }
    let shown = raw.trim().to_string();
    let mut text = String::with_capacity(raw.len());
    for c in raw.chars() {
        // Full-width forms (U+FF01..U+FF5E) map onto ASCII by a fixed offset.
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            other => other,
        };
        text.push(c);
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(PhoneError::Empty);
    }
    if is_scientific(text) {
        return Err(PhoneError::Scientific(shown));
    }
    let mut digits = String::with_capacity(text.len());
    let mut plus = false;
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '\u{3000}' | '\u{A0}' | '\t' | '-' | '\u{2013}' | '\u{2014}' | '(' | ')' | '.' => {}
            _ => return Err(PhoneError::NotDigits(shown)),
        }
    }
    // An Excel number stored as text sometimes keeps its ".0"; the loop above dropped the
    // dot, so drop the zero that followed it.
    if text.ends_with(".0") && !digits.is_empty() {
        digits.pop();
    }
    let national = if let Some(rest) = digits.strip_prefix("0086") {
        Some(rest.to_string())
    } else if plus {
        match digits.strip_prefix("86") {
            Some(rest) => Some(rest.to_string()),
            None => return Err(PhoneError::NotDialable(shown)),
        }
    } else if digits.len() == 13 && digits.starts_with("86") && is_mobile(&digits[2..]) {
        Some(digits[2..].to_string())
    } else {
        None
    };
    match national {
        // After a country code, a landline loses its leading 0 (+86 10 1234 5678).
        Some(rest) if is_mobile(&rest) => Ok(rest),
        Some(rest) => classify(&format!("0{}", rest.trim_start_matches('0')), &shown),
        None => classify(&digits, &shown),
    }
}

/// Whether `text` is a number in scientific notation (`1.39001E+10`, `1.38e10`): a
/// mantissa of digits with at most one point, an `e`, an optional sign and digits.
pub fn is_scientific(text: &str) -> bool {
    let Some((mantissa, exponent)) = text.trim().split_once(['e', 'E']) else { return false };
    let mantissa = mantissa.strip_prefix(['+', '-']).unwrap_or(mantissa);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A normalised number (ASCII digits only, at most 18) as one `u64`, for duplicate checks
/// that hash 8 bytes instead of a string. A leading `1` is prepended before parsing so that
/// `010…` and `10…` stay distinct. `None` for anything else (dial tokens, for example).
pub fn number_key(number: &str) -> Option<u64> {
    let bytes = number.as_bytes();
    if bytes.is_empty() || bytes.len() > 18 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(1u64, |key, digit| key * 10 + u64::from(digit - b'0')))
}

fn is_mobile(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]) && bytes.iter().all(u8::is_ascii_digit)
}

fn is_landline(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if !bytes.iter().all(u8::is_ascii_digit) || bytes.len() < 10 || bytes[0] != b'0' {
        return false;
    }
    // Beijing (010) and the 02x cities have 3-digit area codes and 8-digit local numbers;
    // everywhere else has a 4-digit area code and a 7- or 8-digit local number.
    let (area_len, local_lens): (usize, &[usize]) = match bytes[1] {
        b'1' if bytes[2] == b'0' => (3, &[8]),
        b'2' => (3, &[8]),
        b'3'..=b'9' => (4, &[7, 8]),
        _ => return false,
    };
    let local = &bytes[area_len..];
    local_lens.contains(&local.len()) && (b'2'..=b'9').contains(&local[0])
}

fn classify(digits: &str, shown: &str) -> Result<String, PhoneError> {
    if is_mobile(digits) || is_landline(digits) {
        Ok(digits.to_string())
    } else {
        Err(PhoneError::NotDialable(shown.to_string()))
    }
}

/// Hides the middle four digits (隐藏电话号码中间四位): `138****8000`. One rule for HQ and
/// the site, kept in `sync-protocol` beside [`sync_protocol::ProjectDef::hide_middle_digits`].
pub use sync_protocol::mask_middle_digits as mask_middle;

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;

    fn check(inputs: &[&str], expect: Expect) {
        let mut out = String::new();
        for input in inputs {
            let result = match normalize(input) {
                Ok(number) => format!("ok {number}"),
                Err(err) => format!("err {err}"),
            };
            out.push_str(&format!("{input:?} => {result}\n"));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn mobiles() {
        check(
            &[
                "13800138000",
                "13800138000.0",
                " 138 0013 8000 ",
                "138-0013-8000",
                "+86 138 0013 8000",
                "+8613800138000",
                "008613800138000",
                "8613800138000",
                "１３８００１３８０００",
                "＋８６　１３８００１３８０００",
                "(+86) 13800138000",
                "19912345678",
            ],
            expect![[r#"
                "13800138000" => ok 13800138000
                "13800138000.0" => ok 13800138000
                " 138 0013 8000 " => ok 13800138000
                "138-0013-8000" => ok 13800138000
                "+86 138 0013 8000" => ok 13800138000
                "+8613800138000" => ok 13800138000
                "008613800138000" => ok 13800138000
                "8613800138000" => ok 13800138000
                "１３８００１３８０００" => ok 13800138000
                "＋８６\u{3000}１３８００１３８０００" => ok 13800138000
                "(+86) 13800138000" => ok 13800138000
                "19912345678" => ok 19912345678
            "#]],
        );
    }

    #[test]
    fn landlines() {
        check(
            &[
                "010-62345678",
                "(010) 6234 5678",
                "021 62345678",
                "0755-2345678",
                "0755-23456789",
                "+86 10 62345678",
                "0086-755-23456789",
                "01062345678",
            ],
            expect![[r#"
                "010-62345678" => ok 01062345678
                "(010) 6234 5678" => ok 01062345678
                "021 62345678" => ok 02162345678
                "0755-2345678" => ok 07552345678
                "0755-23456789" => ok 075523456789
                "+86 10 62345678" => ok 01062345678
                "0086-755-23456789" => ok 075523456789
                "01062345678" => ok 01062345678
            "#]],
        );
    }

    #[test]
    fn rejected() {
        check(
            &[
                "",
                "   ",
                "13x",
                "1380013800",
                "138001380001",
                "12800138000",
                "1.38E10",
                "1.39001E+10",
                "1.3800138e+10",
                "１.３８E+10",
                "010-0234567",
                "12345",
                "+1 415 555 0100",
                "A207A92E2B93892F5F4C",
                "138 0013 8000 转 2",
            ],
            expect![[r#"
                "" => err phone is empty: fill in the number or delete the row
                "   " => err phone is empty: fill in the number or delete the row
                "13x" => err "13x" contains characters that are not digits: keep only the number
                "1380013800" => err "1380013800" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "138001380001" => err "138001380001" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "12800138000" => err "12800138000" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "1.38E10" => err "1.38E10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                "1.39001E+10" => err "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                "1.3800138e+10" => err "1.3800138e+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                "１.３８E+10" => err "１.３８E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                "010-0234567" => err "010-0234567" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "12345" => err "12345" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "+1 415 555 0100" => err "+1 415 555 0100" is not a dialable number: use an 11-digit mobile (1[3-9]…) or a landline with its area code (e.g. 010-62345678)
                "A207A92E2B93892F5F4C" => err "A207A92E2B93892F5F4C" contains characters that are not digits: keep only the number
                "138 0013 8000 转 2" => err "138 0013 8000 转 2" contains characters that are not digits: keep only the number
            "#]],
        );
    }

    #[test]
    fn number_keys_keep_leading_zeros() {
        assert_eq!(number_key("13800138000"), Some(113_800_138_000));
        assert_ne!(number_key("01062345678"), number_key("1062345678"));
        assert_eq!(number_key("A207A92E2B93892F5F4C"), None);
        assert_eq!(number_key(""), None);
        assert_eq!(number_key("999999999999999999"), Some(1_999_999_999_999_999_999));
        assert_eq!(number_key("9999999999999999999"), None);
    }

    #[test]
    fn masking() {
        let out: Vec<String> = ["13800138000", "075523456789", "12345", ""].iter().map(|p| mask_middle(p)).collect();
        expect![[r#"["138****8000", "0755****6789", "*****", ""]"#]].assert_eq(&format!("{out:?}"));
    }
}

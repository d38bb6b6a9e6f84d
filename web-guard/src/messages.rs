//! Error messages in the UI's language, for both servers.
//!
//! Handlers and stores word their refusals in English (what the API document, the logs and
//! scripts read); a server's [`Catalog`] turns each into Chinese when the caller's UI is
//! Chinese, gettext-style: an entry is the English wording with `{}` where a value goes and
//! the Chinese wording with `{0}`, `{1}`… placing those values. A value that is a field's
//! variable name (`calling_windows`) is shown as the field's label on the page (定时外呼),
//! in either language. axum's own rejections (a body, query or path that does not
//! deserialize) are described by [`Catalog::rejection`] from serde's wording, naming the
//! field by its label and the expected kind of value in words rather than as a Rust type.
//!
//! Why one catalogue per server rather than a language argument threaded through every store
//! error: the stores are shared by the link, the CLI and the web, and most of their errors
//! never reach a person; the web is the one place that knows the caller's language.

/// A field's label in both languages, by its variable name.
#[derive(Debug, Clone, Copy)]
pub struct Label {
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

/// One server's translations: English patterns with their Chinese, and field labels.
#[derive(Debug, Clone, Copy)]
pub struct Catalog {
    /// `(English with {} for each value, Chinese with {0}, {1}…)`; the first match wins.
    pub entries: &'static [(&'static str, &'static str)],
    pub labels: &'static [Label],
}

/// Whether `text` holds a CJK character (Chinese text or full-width punctuation).
pub fn has_cjk(text: &str) -> bool {
    text.chars().any(|c| matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}'))
}

/// The values of `message` in the places of `pattern`'s `{}`, if it matches.
fn captures<'a>(pattern: &str, message: &'a str) -> Option<Vec<&'a str>> {
    let literals: Vec<&str> = pattern.split("{}").collect();
    let mut rest = message.strip_prefix(literals[0])?;
    let mut values = Vec::new();
    for (idx, literal) in literals.iter().enumerate().skip(1) {
        let last = idx == literals.len() - 1;
        let at = if last {
            if literal.is_empty() { rest.len() } else { rest.strip_suffix(literal).map(str::len)? }
        } else {
            rest.find(literal)?
        };
        values.push(&rest[..at]);
        rest = &rest[at + literal.len()..];
    }
    (rest.is_empty() || literals.len() == 1 && message == pattern).then_some(values)
}

impl Catalog {
    /// The label of variable `key` (`rules[0].agent` is read as `agent`).
    pub fn label(&self, key: &str, zh: bool) -> Option<&'static str> {
        let key = key.trim_matches(|c| c == '`' || c == '"' || c == '\'');
        let key = key.rsplit(['.', ']']).find(|part| !part.is_empty()).unwrap_or(key);
        let key = key.split('[').next().unwrap_or(key);
        self.labels.iter().find(|label| label.key == key).map(|label| if zh { label.zh } else { label.en })
    }

    /// `value`, or the label of the field it names.
    fn value(&self, value: &str, zh: bool) -> String {
        match self.label(value, zh) {
            Some(label) if zh => format!("“{label}”"),
            Some(label) => label.to_string(),
            None => value.trim_matches('`').to_string(),
        }
    }

    /// The Chinese of an English message, if the catalogue knows its wording.
    pub fn to_zh(&self, message: &str) -> Option<String> {
        let message = message.trim();
        self.entries.iter().find_map(|(en, zh)| {
            let values = captures(en, message)?;
            let mut out = zh.to_string();
            for (idx, value) in values.iter().enumerate() {
                // A value may itself be a known sentence (a store error inside a wrapper), or
                // carry its own Chinese after " / " (`reason / 原因`).
                let own_zh = value.rsplit_once(" / ").map(|(_, zh)| zh).filter(|zh| has_cjk(zh));
                let shown = match own_zh {
                    Some(zh) => zh.to_string(),
                    None => self.to_zh(value).unwrap_or_else(|| self.value(value, true)),
                };
                out = out.replace(&format!("{{{idx}}}"), &shown);
            }
            Some(out)
        })
    }

    /// `message` for a caller whose UI is Chinese (`zh`) or English: Chinese through the
    /// catalogue (a message already in Chinese is kept; one the catalogue does not know is
    /// kept behind a Chinese lead and logged, so it can be added); English with a leading
    /// `variable:` named by its label.
    pub fn localize(&self, message: &str, zh: bool) -> String {
        if zh {
            // A message may quote Chinese data (a field's title) in English words: the
            // catalogue is asked first.
            if let Some(text) = self.to_zh(message) {
                return text;
            }
            // serde's wording may quote the (Chinese) value it refused.
            if is_serde(message) {
                return self.rejection(message, true);
            }
            if has_cjk(message) {
                return message.to_string();
            }
            tracing::warn!(message, "no Chinese wording for this message; add it to the web catalogue");
            return format!("操作未完成：{message}");
        }
        if is_serde(message) {
            return self.rejection(message, false);
        }
        match message.split_once(": ") {
            Some((head, rest)) if !head.contains(' ') => match self.label(head, false) {
                Some(label) => format!("{label}: {rest}"),
                None => message.to_string(),
            },
            _ => message.to_string(),
        }
    }

    /// What a body, query or path that did not deserialize means, in the caller's language,
    /// from axum's text of the rejection (serde's wording after axum's lead).
    pub fn rejection(&self, detail: &str, zh: bool) -> String {
        let mut text = detail.trim();
        for lead in [
            "Failed to deserialize the JSON body into the target type: ",
            "Failed to parse the request body as JSON: ",
            "Failed to deserialize query string: ",
            "Failed to deserialize form body: ",
            "Failed to deserialize form: ",
            "Invalid URL: ",
        ] {
            if let Some(rest) = text.strip_prefix(lead) {
                text = rest;
            }
        }
        let text = match text.rfind(" at line ") {
            Some(at) if text[at..].contains(" column ") => &text[..at],
            _ => text,
        };
        describe(self, text, zh)
    }
}

/// Whether `message` is serde's wording (a handler read a value itself and passed the error on).
fn is_serde(message: &str) -> bool {
    ["invalid type: ", "invalid value: ", "missing field `", "unknown variant `", "unknown field `", "data did not match any variant"]
        .iter()
        .any(|wording| message.contains(wording))
}

/// serde's (or axum's path parser's) sentence `text` as a person would say it.
fn describe(catalog: &Catalog, text: &str, zh: bool) -> String {
    let field = |key: &str| catalog.value(key, zh);
    if let Some(values) = captures("missing field `{}`", text).or_else(|| captures("{}: missing field `{}`", text).map(|v| v[1..].to_vec())) {
        let name = field(values[0]);
        return if zh { format!("请填写{name}") } else { format!("{name} is missing: fill it in") };
    }
    if let Some(values) = captures("Cannot parse `{}` with value `{}` to a `{}`", text) {
        return wrong_kind(&field(values[0]), values[1], values[2], zh);
    }
    if let Some(values) = captures("Cannot parse `{}` to a `{}`", text) {
        return wrong_kind(if zh { "路径中的编号" } else { "The id in the path" }, values[0], values[1], zh);
    }
    // `path: sentence`, or a sentence without a path (a top-level value).
    let (path, sentence) = match text.split_once(": ") {
        Some((path, sentence)) if !path.contains(' ') => (Some(path), sentence),
        _ => (None, text),
    };
    let name = match path {
        Some(path) => field(path),
        None if zh => "请求内容".to_string(),
        None => "The request".to_string(),
    };
    for pattern in ["invalid type: {}, expected {}", "invalid value: {}, expected {}"] {
        if let Some(values) = captures(pattern, sentence) {
            return wrong_kind(&name, got(values[0]), values[1], zh);
        }
    }
    if let Some(values) = captures("unknown variant `{}`, expected {}", sentence) {
        let choices = values[1].replace("one of ", "").replace('`', "");
        // The choices are the API's keys, not words a person reads on the page.
        return if zh {
            format!("{name}的取值“{}”无效：请从页面上的选项中选择", values[0])
        } else {
            format!("{name}: \"{}\" is not one of {choices}", values[0])
        };
    }
    if let Some(values) = captures("unknown field `{}`, expected {}", sentence).or_else(|| captures("unknown field `{}`, there are no fields", sentence).map(|mut v| {
        v.push("");
        v
    })) {
        return if zh { format!("请求中有未知的字段“{}”", values[0]) } else { format!("Unknown field \"{}\" in the request", values[0]) };
    }
    if let Some(values) = captures("invalid length {}, expected {}", sentence) {
        return if zh { format!("{name}的项数不对（收到 {}）", values[0]) } else { format!("{name} has the wrong number of items ({})", values[0]) };
    }
    let number = ["invalid digit found in string", "cannot parse integer from empty string", "number too large to fit in target type", "number too small to fit in target type", "invalid float literal"];
    if number.contains(&sentence) {
        return if zh { format!("{name}应为数字，请检查输入") } else { format!("{name} must be a number: check what was typed") };
    }
    if zh {
        format!("{name}的格式不对，请检查输入")
    } else {
        format!("{name} is not in the right format: {sentence}")
    }
}

/// serde's description of what it got (`string "3"`, `integer `-1``) as the value alone.
fn got(description: &str) -> &str {
    let value = description.split_once(' ').map_or(description, |(_, value)| value);
    value.trim_matches(|c| c == '"' || c == '`')
}

/// "`name` must be `want` (got `value`)", with Rust's type names said in words.
fn wrong_kind(name: &str, value: &str, want: &str, zh: bool) -> String {
    let want = want.trim_matches('`');
    let unsigned = ["u8", "u16", "u32", "u64", "u128", "usize", "a nonnegative integer"];
    let signed = ["i8", "i16", "i32", "i64", "i128", "isize", "an integer"];
    let (want_zh, want_en) = if unsigned.contains(&want) {
        ("不小于 0 的整数", "a whole number, 0 or more")
    } else if signed.contains(&want) {
        ("整数", "a whole number")
    } else if ["f32", "f64", "a number"].contains(&want) {
        ("数字", "a number")
    } else if ["a string", "string", "a borrowed string", "char"].contains(&want) {
        ("文字", "text")
    } else if ["a boolean", "bool"].contains(&want) {
        ("是或否", "yes or no (true / false)")
    } else if want.starts_with("a sequence") || want.starts_with("a tuple") {
        ("列表", "a list")
    } else if want.starts_with("struct") || want.starts_with("a map") || want.starts_with("internally tagged") {
        ("一组字段", "a set of fields")
    } else if want.starts_with("enum") || want.starts_with("variant") {
        ("可选值之一", "one of the choices")
    } else {
        ("正确的格式", "the right format")
    };
    let value = if value.is_empty() { "\"\"" } else { value };
    if zh {
        format!("{name}应为{want_zh}（收到 {value}）")
    } else {
        format!("{name} must be {want_en} (got {value})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: Catalog = Catalog {
        entries: &[
            ("rule {}: choose the agent", "规则 {0}：请选择坐席"),
            ("{} is too long", "{0}过长"),
            ("batch {} is unknown at this site", "本职场没有批次 {0}"),
            ("cannot save: {}", "无法保存：{0}"),
        ],
        labels: &[
            Label { key: "calling_windows", zh: "定时外呼", en: "Calling windows" },
            Label { key: "category_id", zh: "项目分类", en: "Category" },
        ],
    };

    #[test]
    fn patterns_place_their_values() {
        assert_eq!(CATALOG.to_zh("rule 3: choose the agent").as_deref(), Some("规则 3：请选择坐席"));
        assert_eq!(CATALOG.to_zh("calling_windows is too long").as_deref(), Some("“定时外呼”过长"));
        assert_eq!(CATALOG.to_zh("cannot save: batch 4 is unknown at this site").as_deref(), Some("无法保存：本职场没有批次 4"));
        assert_eq!(CATALOG.to_zh("rule 3: choose the agent, now"), None);
        assert_eq!(CATALOG.localize("已经是中文", true), "已经是中文");
        assert!(CATALOG.localize("something new", true).starts_with("操作未完成"));
        assert_eq!(CATALOG.localize("calling_windows: 25:00 is not a time", false), "Calling windows: 25:00 is not a time");
    }

    #[test]
    fn rejections_name_the_field_by_its_label() {
        let zh = |detail: &str| CATALOG.rejection(detail, true);
        let en = |detail: &str| CATALOG.rejection(detail, false);
        let typed = "Failed to deserialize the JSON body into the target type: category_id: invalid type: string \"3\", expected i64 at line 1 column 20";
        assert_eq!(zh(typed), "“项目分类”应为整数（收到 3）");
        assert_eq!(en(typed), "Category must be a whole number (got 3)");
        let missing = "Failed to deserialize the JSON body into the target type: missing field `category_id` at line 1 column 2";
        assert_eq!(zh(missing), "请填写“项目分类”");
        let variant = "Failed to deserialize the JSON body into the target type: action: unknown variant `jump`, expected `start` or `pause` at line 1 column 17";
        assert_eq!(zh(variant), "action的取值“jump”无效：请从页面上的选项中选择");
        let nested = "Failed to deserialize the JSON body into the target type: calling_windows[0]: invalid type: integer `5`, expected a string at line 1 column 9";
        assert_eq!(zh(nested), "“定时外呼”应为文字（收到 5）");
        assert_eq!(zh("Cannot parse `category_id` with value `abc` to a `u64`"), "“项目分类”应为不小于 0 的整数（收到 abc）");
        assert_eq!(zh("Failed to deserialize query string: invalid digit found in string"), "请求内容应为数字，请检查输入");
        for message in [typed, missing, nested] {
            assert!(has_cjk(&zh(message)), "{message}");
        }
    }
}

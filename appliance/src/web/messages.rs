//! The site UI's refusals in Chinese, and its fields' labels ([`web_guard::messages`]).
//!
//! The store and the JSON API word their refusals in English (the API document, the logs
//! and scripts read them so); this catalogue says each in Chinese for a caller whose UI is
//! Chinese, and names a field by its label on the page (最大并发) rather than its variable
//! (`max_concurrency`), in either language. `tests/tests/ui_messages.rs` walks every route
//! with bad input and fails on any message this catalogue misses.

use web_guard::messages::{Catalog, Label};

use super::i18n::Lang;

/// `message` in the caller's language.
pub fn localize(lang: Lang, message: &str) -> String {
    CATALOG.localize(message, lang == Lang::Zh)
}

const fn label(key: &'static str, zh: &'static str, en: &'static str) -> Label {
    Label { key, zh, en }
}

pub static CATALOG: Catalog = Catalog { entries: ENTRIES, labels: LABELS };

/// Field variables as the pages label them (the manual's words).
static LABELS: &[Label] = &[
    label("username", "账号", "Username"),
    label("password", "密码", "Password"),
    label("name", "姓名", "Name"),
    label("extension", "分机号", "Extension"),
    label("role_id", "角色", "Role"),
    label("user_id", "账号", "Account"),
    label("modules", "模块权限", "Modules"),
    label("ratio", "外呼比例", "Ratio"),
    label("max_concurrency", "最大并发", "Max concurrency"),
    label("ring_seconds", "振铃时长", "Ring time"),
    label("dial_mode", "外呼方式", "Dial mode"),
    label("caller", "主叫号码", "Caller number"),
    label("cool_down", "话后处理时长", "Wrap-up time"),
    label("queue_timeout", "排队超时", "Queue timeout"),
    label("hold_music", "等待音乐", "Hold music"),
    label("agents", "任务坐席", "Task agents"),
    label("priority", "任务优先级", "Task priority"),
    label("rules", "归属规则", "Attribution rules"),
    label("conditions", "归属条件", "Conditions"),
    label("all_match", "匹配方式", "Match"),
    label("agent", "坐席", "Agent"),
    label("state", "坐席状态", "Agent state"),
    label("values", "字段值", "Values"),
    label("title", "回访标题", "Callback title"),
    label("note", "备注", "Note"),
    label("due_at", "回访时间", "Callback time"),
    label("phone", "电话号码", "Phone"),
    label("attempt_id", "通话编号", "Call no."),
    label("callback_id", "回访编号", "Callback no."),
    label("batch_id", "任务编号", "Task no."),
    label("project_id", "项目", "Project"),
    label("row_id", "客户编号", "Customer no."),
    label("outcome", "呼叫结果", "Outcome"),
    label("result", "业务结果", "Business result"),
    label("fields", "客户资料", "Customer fields"),
    label("record", "业务记录", "Business record"),
    label("from", "开始时间", "From"),
    label("to", "结束时间", "To"),
    label("after", "翻页位置", "Page cursor"),
    label("before", "翻页位置", "Page cursor"),
    label("after_batch", "翻页位置", "Page cursor"),
    label("after_row", "翻页位置", "Page cursor"),
    label("status", "状态", "Status"),
    label("limit", "每页条数", "Page size"),
    label("sha256", "录音编号", "Recording id"),
    label("line", "线路", "Line"),
    label("number", "号码", "Number"),
    label("id", "编号", "No."),
    label("routing", "分配方式", "Routing"),
    label("answer_mode", "接听方式", "Answer mode"),
    label("pacing", "外呼节奏", "Pacing"),
    label("abandon_cap_percent", "放弃率上限", "Abandon-rate cap"),
    label("popup_timing", "弹屏时机", "Popup timing"),
    label("popup_page", "弹屏设置", "Popup page"),
    label("disabled", "停用", "Disabled"),
    label("callback", "预约回访", "Callback"),
    label("scope", "回访人", "Who calls back"),
    label("minutes", "宽限时间（分钟）", "Grace period (minutes)"),
    label("record_fields", "表单字段", "Form fields"),
    label("label", "字段名称", "Field label"),
    label("kind", "字段类型", "Field kind"),
    label("options", "选项", "Options"),
    label("required", "必填", "Required"),
];

/// English wordings of the site's refusals with their Chinese; `{}` is a value.
static ENTRIES: &[(&str, &str)] = &[
    // Sessions.
    ("wrong username or password", "账号或密码错误"),
    ("sign in first", "请先登录"),
    ("sign in first (不可回接 for one-click projects)", "请先签入（一键外呼项目请选择“不可回接”）"),
    ("you cannot change your own role; ask another site admin", "不能修改自己的角色：请让另一位职场管理员修改"),
    ("call {} has no recording", "通话 {0} 没有录音"),
    ("callback {} does not exist", "回访 {0} 不存在"),
    // Tasks.
    ("batch {} is unknown at this site", "本职场没有任务 {0}"),
    ("project {} has no task at this site", "本职场没有项目 {0} 的任务"),
    ("the task priority must be 2 to 100", "任务优先级须为 2 到 100"),
    ("batch {} is not dialable yet: {}", "任务 {0} 还不能外呼：{1}"),
    ("batch {} was ended by HQ and cannot be started", "任务 {0} 已被总控结束，不能启动"),
    ("batch {}: project {} has not arrived from HQ yet", "任务 {0}：项目 {1} 尚未从总控同步到本职场"),
    ("account {} is not an agent of this site", "账号 {0} 不是本职场的坐席"),
    ("dial mode {} is unknown; use predictive or one_click", "外呼方式 {0} 无效：请选择预测外呼或一键外呼"),
    ("predictive ratio 1:{} is out of range; choose 1:1 to 1:10", "外呼比例 1:{0} 超出范围：请选择 1:1 到 1:10"),
    ("max concurrency {} is out of range; choose 1 to 1000", "最大并发 {0} 超出范围：请填 1 到 1000"),
    ("ring duration {} s is out of range; choose 5 to 120 (advice: 35-40)", "振铃时长 {0} 秒超出范围：请填 5 到 120（建议 35-40）"),
    ("cool-down {} s is out of range; choose 0 to 60 (advice: 3-5)", "话后处理时长 {0} 秒超出范围：请填 0 到 60（建议 3-5）"),
    ("queue timeout {} s is out of range; choose 5 to 300 (advice: 35-40)", "排队超时 {0} 秒超出范围：请填 5 到 300（建议 35-40）"),
    ("routing rule {} is unknown; use longest_idle", "分配方式 {0} 无效：请选择“空闲最久优先”"),
    ("pacing {} is unknown; use fixed, progressive or adaptive", "外呼节奏 {0} 无效：请从页面上的选项中选择"),
    ("abandon-rate cap {} % is out of range; choose above 0 and at most 20 (regulators use 3)", "放弃率上限 {0}% 超出范围：须大于 0 且不超过 20（监管通常要求 3）"),
    ("answer mode {} is unknown; use auto or ring", "接听方式 {0} 无效：请从页面上的选项中选择"),
    ("popup timing {} is unknown; use answer or ring", "弹屏时机 {0} 无效：请选择接通弹屏或振铃弹屏"),
    ("popup page {} is unknown; each project has one page, \"default\"", "弹屏设置 {0} 无效：每个项目只有一个默认详情页"),
    ("caller {} is not one of the site's lines", "主叫号码 {0} 不是本职场的线路"),
    ("state {} is unknown; use one of available, one_click_only, break, away, signed_out", "坐席状态 {0} 无效：请从页面上的状态按钮中选择"),
    ("username must be 1 to 32 characters", "账号须为 1 到 32 个字符"),
    ("password for {} must be at least 6 characters", "账号 {0} 的密码至少 6 位"),
    ("agent {} needs an extension", "坐席 {0} 需要绑定分机"),
    ("extension {} must be 2 to 8 digits", "分机号 {0} 须为 2 到 8 位数字"),
    ("password of extension {} must be at least 6 characters", "分机 {0} 的密码至少 6 位"),
    // Accounts, extensions, roles.
    ("username \"{}\" is already taken; choose another", "账号“{0}”已被使用：请换一个"),
    ("extension \"{}\" does not exist; create the extension first", "分机“{0}”不存在：请先创建分机"),
    ("extension \"{}\" already exists", "分机“{0}”已存在"),
    ("role name \"{}\" is already taken", "角色名称“{0}”已被使用"),
    ("role name must be 1 to 32 characters", "角色名称须为 1 到 32 个字符"),
    ("role {} does not exist", "角色 {0} 不存在"),
    ("account {} does not exist", "账号 {0} 不存在"),
    ("permission module \"{}\" does not exist", "权限模块“{0}”不存在"),
    ("you cannot disable your own account; ask another site admin", "不能停用自己的账号：请由另一位职场管理员操作"),
    ("you cannot reset your own password here; ask another site admin", "不能在此重置自己的密码：请由另一位职场管理员操作"),
    // Attribution.
    ("rule {}: add at least one field = value", "规则 {0}：请至少添加一个“字段 = 值”"),
    ("rule {}: field {} needs a name and at least one value", "规则 {0}：字段{1}须有名称和至少一个值"),
    ("rule {}: choose the agent", "规则 {0}：请选择坐席"),
    // Callbacks, records, customers.
    ("callback title must be 1 to 60 characters", "回访标题须为 1 到 60 个字符"),
    ("callback note must be at most 1000 characters", "回访备注最多 1000 个字符"),
    ("callback {} is {}, not new", "回访 {0} 已处理，不是新回访"),
    ("call {} does not exist", "通话 {0} 不存在"),
    ("call {} was not yours; only the agent who took it can save its record", "通话 {0} 不是您接听的：只有接听的坐席可以保存业务记录"),
    ("the project's definition has not arrived from HQ", "项目定义尚未从总控同步到本职场"),
    ("field {} is not an editable customer field", "字段{0}不是可编辑的客户资料字段"),
    ("field {} is required", "字段{0}为必填"),
    ("field {} is longer than 2000 characters", "字段{0}超过 2000 个字符"),
    ("no number is left to dial in project {} for you", "项目 {0} 中已没有可供您拨打的号码"),
    ("project {} has no started one-click task you work; ask the site admin to start it", "项目 {0} 没有您参与的已启动一键外呼任务：请联系职场管理员启动"),
    // The form of calls under no project.
    ("the form needs 1 to 20 fields", "表单须有 1 到 20 个字段"),
    ("field {}: the label must be 1 to 30 characters", "第 {0} 个字段：字段名称须为 1 到 30 个字符"),
    ("field {}: the label \"{}\" is used twice", "第 {0} 个字段：字段名称“{1}”重复"),
    ("field {} \"{}\": kind \"{}\" is unknown; use text or single_choice", "第 {0} 个字段“{1}”：字段类型“{2}”无效：请选择文本或单选"),
    ("field {} \"{}\": a single choice needs 1 to 20 options of 1 to 30 characters, none twice", "第 {0} 个字段“{1}”：单选须有 1 到 20 个选项，每个 1 到 30 个字符，不可重复"),
];

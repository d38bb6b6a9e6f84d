//! The web UI's words in Simplified Chinese (default) and English, chosen by the `lang`
//! cookie. One struct per language keeps every page's text checked at compile time.

/// Which language a request is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The language named by a `Cookie` header (`lang=en` switches to English).
    pub fn from_cookie_header(header: Option<&str>) -> Lang {
        match super::cookie(header, "lang") {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

/// Every word the pages show.
pub struct Text {
    pub html_lang: &'static str,
    pub product: &'static str,
    pub switch_lang: &'static str,
    pub switch_lang_code: &'static str,
    pub login: &'static str,
    pub logout: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub name: &'static str,
    pub submit: &'static str,
    pub create: &'static str,
    pub nav_tasks: &'static str,
    pub nav_extensions: &'static str,
    pub nav_agents: &'static str,
    pub nav_status: &'static str,
    pub extension: &'static str,
    pub registered: &'static str,
    pub not_registered: &'static str,
    pub agents: &'static str,
    pub agent_state: &'static str,
    pub batch: &'static str,
    pub task_name: &'static str,
    pub project: &'static str,
    pub numbers: &'static str,
    pub dialed: &'static str,
    pub connected: &'static str,
    pub abandon_today: &'static str,
    pub abandon_30_days: &'static str,
    pub status: &'static str,
    pub actions: &'static str,
    pub ratio: &'static str,
    pub max_concurrency: &'static str,
    pub ring_seconds: &'static str,
    pub start_task: &'static str,
    pub stop_task: &'static str,
    pub no_tasks: &'static str,
    pub st_receiving: &'static str,
    pub st_not_started: &'static str,
    pub st_running: &'static str,
    pub st_paused: &'static str,
    pub st_ended: &'static str,
    pub link: &'static str,
    pub link_online: &'static str,
    pub link_offline: &'static str,
    pub link_connecting: &'static str,
    pub link_not_enrolled: &'static str,
    pub since: &'static str,
    pub lines_dialing: &'static str,
    pub lines_queued: &'static str,
    pub lines_talking: &'static str,
    pub unsynced: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub state_available: &'static str,
    pub state_one_click: &'static str,
    pub state_break: &'static str,
    pub state_away: &'static str,
    pub state_signed_out: &'static str,
    pub current_state: &'static str,
    pub waiting_for_calls: &'static str,
    pub popup_title: &'static str,
    /// The mark on the popup of a call the customer placed.
    pub popup_inbound: &'static str,
    pub phone: &'static str,
    pub script: &'static str,
    pub business_record: &'static str,
    pub save: &'static str,
    pub required_mark: &'static str,
    pub choose: &'static str,
    pub saved: &'static str,
    pub popup_must_save: &'static str,
    pub bad_login: &'static str,
}

pub static ZH: Text = Text {
    html_lang: "zh-CN",
    product: "职场外呼平台",
    switch_lang: "English",
    switch_lang_code: "en",
    login: "登录",
    logout: "退出",
    username: "账号",
    password: "密码",
    name: "姓名",
    submit: "提交",
    create: "新增",
    nav_tasks: "下发任务管理",
    nav_extensions: "分机管理",
    nav_agents: "坐席账号",
    nav_status: "坐席队列监控",
    extension: "分机",
    registered: "已注册",
    not_registered: "未注册",
    agents: "坐席",
    agent_state: "工号状态",
    batch: "批次",
    task_name: "名称",
    project: "项目",
    numbers: "号码总数",
    dialed: "呼出量",
    connected: "接通量",
    abandon_today: "今日放弃率",
    abandon_30_days: "30天放弃率",
    status: "状态",
    actions: "操作",
    ratio: "预测比例 1:",
    max_concurrency: "最大并发",
    ring_seconds: "振铃时长(秒)",
    start_task: "启动任务",
    stop_task: "停止任务",
    no_tasks: "还没有总控下发的任务：总部在“数据下发”把批次下发到本职场后，任务会出现在这里。",
    st_receiving: "接收中",
    st_not_started: "未启动",
    st_running: "外呼中",
    st_paused: "暂停",
    st_ended: "已结束",
    link: "总控连接",
    link_online: "在线",
    link_offline: "离线",
    link_connecting: "连接中",
    link_not_enrolled: "未注册到总控",
    since: "自",
    lines_dialing: "振铃中",
    lines_queued: "排队中",
    lines_talking: "通话中",
    unsynced: "待上传记录",
    sign_in: "账号签入",
    sign_out: "签出",
    state_available: "可回接",
    state_one_click: "不可回接",
    state_break: "小休",
    state_away: "离开",
    state_signed_out: "已签出",
    current_state: "当前状态",
    waiting_for_calls: "等待系统转入电话…",
    popup_title: "弹屏信息",
    popup_inbound: "呼入",
    phone: "客户号码",
    script: "话术",
    business_record: "记录业务结果",
    save: "保存",
    required_mark: "必填",
    choose: "请选择",
    saved: "已保存",
    popup_must_save: "未保存情况下无法关闭弹屏",
    bad_login: "账号或密码错误",
};

pub static EN: Text = Text {
    html_lang: "en",
    product: "Site outbound platform",
    switch_lang: "中文",
    switch_lang_code: "zh",
    login: "Log in",
    logout: "Log out",
    username: "Username",
    password: "Password",
    name: "Name",
    submit: "Submit",
    create: "Add",
    nav_tasks: "Tasks",
    nav_extensions: "Extensions",
    nav_agents: "Agent accounts",
    nav_status: "Queue monitor",
    extension: "Extension",
    registered: "registered",
    not_registered: "not registered",
    agents: "Agents",
    agent_state: "Work state",
    batch: "Batch",
    task_name: "Name",
    project: "Project",
    numbers: "Numbers",
    dialed: "Dialed",
    connected: "Connected",
    abandon_today: "Abandoned today",
    abandon_30_days: "Abandoned, 30 days",
    status: "Status",
    actions: "Actions",
    ratio: "Predictive ratio 1:",
    max_concurrency: "Max concurrency",
    ring_seconds: "Ring duration (s)",
    start_task: "Start task",
    stop_task: "Stop task",
    no_tasks: "No task received from HQ yet: tasks appear here once HQ dispatches a batch to this site.",
    st_receiving: "receiving",
    st_not_started: "not started",
    st_running: "dialing",
    st_paused: "paused",
    st_ended: "ended",
    link: "HQ link",
    link_online: "online",
    link_offline: "offline",
    link_connecting: "connecting",
    link_not_enrolled: "not enrolled with HQ",
    since: "since",
    lines_dialing: "ringing",
    lines_queued: "queued",
    lines_talking: "talking",
    unsynced: "records waiting to sync",
    sign_in: "Sign in",
    sign_out: "Sign out",
    state_available: "Available",
    state_one_click: "One-click only",
    state_break: "Break",
    state_away: "Away",
    state_signed_out: "Signed out",
    current_state: "Current state",
    waiting_for_calls: "Waiting for the system to put a call through…",
    popup_title: "Customer",
    popup_inbound: "Inbound call",
    phone: "Phone",
    script: "Script",
    business_record: "Business result",
    save: "Save",
    required_mark: "required",
    choose: "Choose",
    saved: "Saved",
    popup_must_save: "Save the result to close this popup",
    bad_login: "Wrong username or password",
};

/// Defines [`WorkText`] with its Chinese and English values side by side, so a word is
/// never added to one language and forgotten in the other.
macro_rules! work_text {
    ($($name:ident: $zh:expr, $en:expr;)*) => {
        /// The words of the working-day pages (task settings, attribution, data, desk tools).
        pub struct WorkText { $(pub $name: &'static str,)* }
        pub static WORK_ZH: WorkText = WorkText { $($name: $zh,)* };
        pub static WORK_EN: WorkText = WorkText { $($name: $en,)* };
    };
}

work_text! {
    nav_attribution: "归属分配", "Attribution";
    nav_data: "项目数据资料", "Project data";
    nav_roles: "角色权限", "Roles";
    nav_reports: "统计报表", "Reports";
    nav_desk: "坐席工作台", "Desk";
    nav_settings: "分机设置", "Extension settings";
    nav_records: "外呼通话记录", "Call records";
    nav_callbacks: "回访安排", "Callbacks";
    nav_customers: "客户管理", "My customers";
    task_settings: "任务参数", "Task parameters";
    task_agents: "任务坐席", "Task agents";
    task_agents_hint: "不勾选任何坐席表示全部坐席执行该任务", "No agent ticked means every agent works this task";
    task_is_project: "任务按项目设置：本项目的全部批次（包括总控以后下发的批次）都按这里的坐席和参数外呼，优先级高的先呼，同级按导入先后", "The task is the project's: every batch of this project, those HQ dispatches later included, is dialed with these agents and parameters, higher priority first, equal priority by import";
    save_agents: "保存坐席", "Save agents";
    task_priority: "任务优先级", "Task priority";
    task_priority_hint: "多个任务共用坐席时，优先级高的任务先得到空闲坐席（2-100），同级则等待最久的先得；留空则取本任务批次的最高优先级", "When tasks share agents, the higher priority task gets a free agent first (2-100), equal priority the one waiting longest; empty follows the highest priority of the task's batches";
    task_priority_auto: "按批次", "from its batches";
    save_priority: "保存优先级", "Save priority";
    task_batches: "本任务的批次（按外呼顺序）", "This task's batches (in dial order)";
    batch_priority: "优先级", "Priority";
    task_settings_link: "任务设置", "Task settings";
    dial_mode: "外呼方式", "Dial mode";
    mode_predictive: "预测外呼", "Predictive";
    mode_one_click: "一键外呼", "One-click";
    caller: "主叫号码", "Caller number";
    any_line: "任意线路", "Any line";
    lines: "线路", "lines";
    cool_down: "冷却时长(秒)", "Cool-down (s)";
    queue_timeout: "队列超时(秒)", "Queue timeout (s)";
    routing: "转接规则", "Routing rule";
    routing_longest_idle: "最大空闲时间", "Longest idle";
    pacing: "外呼节奏", "Pacing";
    pacing_fixed: "固定比例（手册）", "Fixed ratio (manual)";
    pacing_progressive: "逐一外呼（每空闲坐席一路）", "Progressive (one per free agent)";
    pacing_adaptive: "自适应（放弃率上限内）", "Adaptive (under the abandon cap)";
    abandon_cap: "放弃率上限(%)", "Abandon-rate cap (%)";
    answer_mode: "接听方式", "Answer mode";
    answer_auto: "自动接听", "Auto answer";
    answer_ring: "振铃接听", "Ring";
    hq_bound: "总控设定，不可修改", "set by HQ, read-only";
    suggested: "建议最大并发", "Suggested max concurrency";
    caller_lines: "主叫线路数", "Caller's lines";
    settings_link: "参数设置", "Parameters";
    rules: "归属规则", "Attribution rules";
    field: "字段", "Field";
    values: "值(多个用逗号分隔)", "Values (comma separated)";
    assign_to: "分配于", "Assign to";
    match_mode: "匹配关系", "Match";
    match_any: "任意满足关系", "Any match";
    match_all: "同时满足关系", "All match";
    add_rule: "新增", "Add";
    save_rules: "保存设定", "Save rules";
    allocate: "立即分配", "Allocate now";
    attributed: "归属数量", "Attributed";
    not_found: "未找到归属数量", "Not found";
    rules_hint: "同一台账配置了相同字段的多个值时只需满足任意值；同一字段的相同值赋予不同台账时取第一个有效配置", "Several values of one field: any matches. One value given to several agents: the first valid rule wins";
    choose_project: "选择项目", "Project";
    customers: "客户资料", "Customer data";
    business: "业务资料", "Business data";
    callbacks: "回访安排", "Callbacks";
    filter: "查询", "Filter";
    export_results: "导出业务结果", "Export results";
    export_recordings: "导出录音", "Export recordings";
    owner: "归属坐席", "Owner";
    agent: "坐席", "Agent";
    time: "时间", "Time";
    outcome: "结果", "Outcome";
    talk_seconds: "通话时长(秒)", "Talk (s)";
    recording: "录音", "Recording";
    download: "下载", "Download";
    edit: "编辑", "Edit";
    phone_tail: "号码后四位", "Last digits";
    from: "开始时间", "From";
    to: "结束时间", "To";
    title: "回访标题", "Title";
    due_at: "计划执行时间", "Planned time";
    done_at: "实际执行时间", "Actual time";
    note: "回访备注", "Note";
    created_by: "创建人", "Created by";
    created_at: "创建时间", "Created";
    cb_state: "进度状态", "Progress";
    cb_new: "新建未执行", "New";
    cb_waiting: "等待执行", "Waiting";
    cb_done: "完成", "Done";
    cb_cancelled: "已取消", "Cancelled";
    arm: "定时执行", "Timed execution";
    dial: "拨打", "Call";
    call_back_now: "当下回访(拨打)", "Call back now";
    schedule_callback: "约定回访", "Schedule callback";
    add_callback: "新增回访", "Add callback";
    batch_id: "批次", "Batch";
    row_id: "客户编号", "Customer id";
    roles: "角色管理", "Roles";
    role: "角色", "Role";
    modules: "权限模块", "Modules";
    staff: "职场账号", "Staff accounts";
    default_role: "默认权限", "Default";
    apply_role: "应用角色权限模块", "Apply role";
    my_projects: "我的项目", "My projects";
    project_id: "编号", "Id";
    my_numbers: "我的号码", "My numbers";
    one_click: "一键外呼", "One-click dial";
    running: "自动", "Running";
    paused: "暂停", "Paused";
    calling: "正在呼叫", "Calling";
    callback_due: "回访时间到", "Callback due";
    ended_busy: "未接通：对方忙", "Not connected: the line is busy";
    ended_noanswer: "未接通：无人接听", "Not connected: no answer";
    ended_rejected: "未接通：对方拒接", "Not connected: the customer declined";
    ended_failed: "未接通：呼叫失败（空号、停机或线路故障）", "Not connected: the call failed (number not in service or line fault)";
    ended_abandoned: "客户已挂机", "The customer hung up";
    ended_phonemissed: "您的话机没有接起这通电话：请确认话机已注册且未占线，再拨一次", "Your phone did not take the call: check that it is registered and not busy, then dial again";
    ended_noline: "没有空闲线路，请稍后再拨", "No free line; dial again in a moment";
    popup_timing: "弹屏时机", "Popup timing";
    timing_answer: "接通时", "On answer";
    timing_ring: "振铃时", "On ring";
    popup_page: "弹屏设置", "Popup page";
    page_default: "项目默认弹屏", "Project's default popup";
    saved_ok: "已保存", "Saved";
    status: "状态", "Status";
    st_new: "未呼", "new";
    st_dialing: "呼叫中", "dialing";
    st_done: "已呼", "dialed";
    none: "暂无数据", "Nothing here";
    calls_now: "当前话务", "Calls now";
    poor_calls: "通话质量差的通话（MOS 评分低于 3.6 或丢包率高于 3%）", "Calls of poor quality (MOS under 3.6 or over 3 % packet loss)";
    leg_customer: "客户侧 丢包率 / MOS 评分", "Customer side: loss / MOS";
    leg_agent: "坐席侧 丢包率 / MOS 评分", "Agent side: loss / MOS";
    trunks: "中继线路", "Trunks and lines";
    announcements: "总部公告", "Notices from HQ";
    hold_music: "等待音乐", "Hold music";
    hold_music_none: "无（本机默认等待音）", "None (the box's own hold audio)";
    hold_music_pending: "文件传输中", "file on its way";
    trunk_name: "线路", "Line";
    trunk_health: "健康检查", "Health check";
    trunk_alive: "正常", "answering";
    trunk_dead: "无应答", "not answering";
    trunk_registration: "注册", "Registration";
    trunk_registered: "已注册", "registered";
    trunk_unregistered: "未注册", "not registered";
    trunk_calls: "通话/线路数", "Calls / channels";
    offered: "转接中", "Offered";
    kind: "类型", "Kind";
    kind_admin: "职场管理员", "Site admin";
    kind_agent: "坐席", "Agent";
    seconds: "时长(秒)", "Seconds";
    on_call: "通话中", "on a call";
    ringing_title: "振铃弹屏", "Ringing";
    monitor_hint: "每秒自动刷新，无需重新加载页面", "Updates every second without reloading";
    kind_manual: "坐席外呼", "Agent's own call";
    kind_inbound: "呼入", "Inbound call";
    out_connected: "接通", "connected";
    out_busy: "忙", "busy";
    out_no_answer: "未接", "no answer";
    out_rejected: "拒接", "rejected";
    out_failed: "失败", "failed";
    out_abandoned: "队列放弃", "abandoned";
    out_agent_missed: "坐席未接", "agent missed";
    hq_black: "总控黑名单", "HQ black list";
    hq_white: "总控白名单", "HQ white list";
    hq_lists: "总控黑白名单", "HQ's lists";
    hq_lists_note: "由总控设置，职场只读。黑名单号码在本职场不会以任何方式拨打（预测外呼、一键外呼、回访），断网时也一样。", "Set by HQ, read-only here. A number on the black list is never dialed at this site by any path (predictive, one-click, callback), even while the link to HQ is down.";
    list_version: "版本", "Version";
    front_panel: "前面板", "Front panel";
    front_panel_hint: "本机前面板此刻显示的内容（未接面板时也在此显示）", "What the box's front panel shows now (also shown here when no panel is attached)";
    recordings: "录音", "Recordings";
    retention: "录音保留", "Kept for";
    retention_days: "{days} 天（总控已收到的录音到期后从本机删除，最旧的先删）", "{days} days (recordings HQ holds are deleted here when older, oldest first)";
    retention_forever: "永久保留（总控未设置保留天数）", "For ever (HQ has set no retention)";
    recording_on: "正常录音", "Recording calls";
    recording_stopped: "已停止录音：磁盘剩余 {free} MB，低于下限 {floor} MB；通话照常进行，但不再录音", "Recording stopped: {free} MB free on the disk, under the floor of {floor} MB; calls go on but are not recorded";
}

impl Lang {
    /// The working-day pages' words.
    pub fn work(self) -> &'static WorkText {
        match self {
            Lang::Zh => &WORK_ZH,
            Lang::En => &WORK_EN,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_cookie_header(super::cookie_header(&parts.headers)))
    }
}

/// The API's error messages. Templates hold `{field}`, `{max}`, `{got}` and `{detail}`.
pub struct ErrorText {
    pub no_such_route: &'static str,
    pub bad_request: &'static str,
    pub bad_json: &'static str,
    pub wrong_shape: &'static str,
    pub not_json: &'static str,
    pub method_not_allowed: &'static str,
    pub too_large: &'static str,
    pub failed: &'static str,
    pub too_long: &'static str,
    pub empty: &'static str,
    pub too_many: &'static str,
    pub too_big: &'static str,
    pub wrong_login: &'static str,
    /// Whether these are the Chinese messages (the catalogue's language switch).
    pub zh: bool,
}

pub static ERRORS_ZH: ErrorText = ErrorText {
    no_such_route: "没有这个接口：请查看 /api/openapi.json",
    bad_request: "请求有误：{detail}",
    bad_json: "请求内容不是有效的 JSON：请检查括号、引号和逗号",
    wrong_shape: "请求体的字段不符合要求：{detail}",
    not_json: "请求内容须为 JSON 格式",
    method_not_allowed: "此接口不支持该请求方法",
    too_large: "请求体过大",
    failed: "请求失败（{detail}），请重试或查看设备日志",
    too_long: "字段“{field}”过长：最多 {max} 个字符（当前 {got} 个）",
    empty: "字段“{field}”不能为空",
    too_many: "字段“{field}”的项目过多：最多 {max} 项（当前 {got} 项）",
    too_big: "字段“{field}”的数值过大：最大 {max}",
    wrong_login: "账号或密码错误",
    zh: true,
};

pub static ERRORS_EN: ErrorText = ErrorText {
    no_such_route: "no such API route: see /api/openapi.json",
    bad_request: "bad request: {detail}",
    bad_json: "the body is not valid JSON: check the brackets, quotes and commas",
    wrong_shape: "the body's fields are not as expected: {detail}",
    not_json: "the body must be JSON (Content-Type: application/json)",
    method_not_allowed: "this route does not take that method",
    too_large: "the body is too large",
    failed: "the request failed ({detail}): try again, or see the box's log",
    too_long: "field \"{field}\" is too long: at most {max} characters (got {got})",
    empty: "field \"{field}\" must not be empty",
    too_many: "field \"{field}\" has too many items: at most {max} (got {got})",
    too_big: "field \"{field}\" is too large: at most {max}",
    wrong_login: "wrong username or password",
    zh: false,
};

impl ErrorText {
    /// The label of field variable `field` as the pages show it.
    fn label<'a>(&self, field: &'a str) -> &'a str {
        super::messages::CATALOG.label(field, self.zh).unwrap_or(field)
    }

    /// The message of an over-long text field.
    pub fn too_long(&self, field: &str, max: usize, got: usize) -> String {
        self.too_long.replace("{field}", self.label(field)).replace("{max}", &max.to_string()).replace("{got}", &got.to_string())
    }

    /// The message of a list with too many items.
    pub fn too_many(&self, field: &str, max: usize, got: usize) -> String {
        self.too_many.replace("{field}", self.label(field)).replace("{max}", &max.to_string()).replace("{got}", &got.to_string())
    }

    /// The message of a number above what the field takes.
    pub fn too_big(&self, field: &str, max: u64) -> String {
        self.too_big.replace("{field}", self.label(field)).replace("{max}", &max.to_string())
    }

    /// The message of an empty required field.
    pub fn empty(&self, field: &str) -> String {
        self.empty.replace("{field}", self.label(field))
    }

    /// The message of an error the framework raised (`detail` is its own text).
    pub fn framework(&self, status: axum::http::StatusCode, detail: &str) -> String {
        use axum::http::StatusCode;
        let template = match status {
            StatusCode::NOT_FOUND => return self.no_such_route.to_string(),
            StatusCode::METHOD_NOT_ALLOWED => return self.method_not_allowed.to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => return self.not_json.to_string(),
            StatusCode::PAYLOAD_TOO_LARGE => return self.too_large.to_string(),
            status if status.is_client_error() && !detail.is_empty() => {
                return super::messages::CATALOG.rejection(detail, self.zh);
            }
            _ => self.failed,
        };
        template.replace("{detail}", status.as_str())
    }
}

impl Lang {
    /// The API's error messages.
    pub fn errors(self) -> &'static ErrorText {
        match self {
            Lang::Zh => &ERRORS_ZH,
            Lang::En => &ERRORS_EN,
        }
    }
}

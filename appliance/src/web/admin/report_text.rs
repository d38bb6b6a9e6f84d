//! The words of the site's report pages (S6-S9) and their export, Chinese and English, in
//! one struct per language so a missing word is a compile error.

use crate::web::i18n::Lang;

macro_rules! report_text {
    ($($name:ident: $zh:expr, $en:expr;)*) => {
        /// Every word the report pages and the leaderboard export show.
        pub struct ReportText { $(pub $name: &'static str,)* }
        static ZH: ReportText = ReportText { $($name: $zh,)* };
        static EN: ReportText = ReportText { $($name: $en,)* };
    };
}

report_text! {
    stats: "统计报表", "Statistics";
    batches: "项目任务批次", "Task batches";
    tasks: "项目任务统计", "Task statistics";
    hq: "项目任务报表", "Task report";
    agents: "项目任务榜单", "Agent leaderboard";
    project: "外呼项目", "Project";
    batch: "批次", "Batch";
    all_batches: "全部批次", "All batches";
    time: "时间选项", "Time";
    today: "今日", "Today";
    yesterday: "昨日", "Yesterday";
    last7: "近7天", "Last 7 days";
    month: "近一月", "Last month";
    custom: "指定时间段", "Custom range";
    from: "开始日期", "From";
    to: "结束日期", "To";
    show: "查询", "Show";
    export: "数据导出", "Export";
    total: "总计", "Total";
    no_data: "所选时间内没有通话：可换个时间范围查看", "No calls in the chosen time: try another time range";
    no_defs: "总部尚未下发该项目的报表定义；报表字段由总控设置，职场只读。", "HQ has not sent this project's report definitions yet; HQ sets the columns, the site only reads them.";
    hq_note: "报表字段为总控设置，职场只读（版本 ", "HQ sets these columns; read-only at the site (version ";
    hq_note_end: "）", ")";
    by_project: "各项目执行情况", "By project";
    by_day: "每日统计", "By day";
    by_batch: "外呼任务统计", "By batch";
    dials: "外呼数", "Dials";
    dials_total: "外呼总数", "Dials";
    dial_connected: "外呼接通数", "Dials connected";
    connect_rate: "接通率", "Connect rate";
    ext_connected: "分机接通数", "Extension connected";
    ext_rate: "分机接通率", "Extension rate";
    agents_reached: "接入坐席数", "Put through to agents";
    talk_seconds: "通话时长(秒)", "Talk seconds";
    ext_talk_seconds: "分机通话时长(秒)", "Extension talk seconds";
    numbers: "号码总数", "Numbers";
    system_dials: "系统呼出量", "System dials";
    called_connected: "被叫接通量(率)", "Called party answered (rate)";
    called_missed: "被叫未接量(率)", "Called party not answered (rate)";
    customer_connected: "用户接通(率)", "Customer answered (rate)";
    ext_connected_rate: "分机接通(率)", "Extension connected (rate)";
    ivr_hangup: "IVR挂断(率)", "IVR hang-up (rate)";
    queue_hangup: "队列挂断(率)", "Queue hang-up (rate)";
    ext_hangup: "分机挂断(率)", "Extension hang-up (rate)";
    agent_account: "员工账号", "Agent account";
    success_rate: "成功率", "Success rate";
    result_field: "本次业务结果", "Result";
    no_agent: "（未接入坐席）", "(no agent)";
    this_site: "本职场", "This site";
    phone: "号码", "Number";
    nth: "第几次外呼", "Attempt no.";
    called_at: "外呼时间", "Called at";
    outcome: "外呼结果", "Outcome";
    agent: "坐席", "Agent";
    page: "页", "Page";
    prev: "上一页", "Previous";
    next: "下一页", "Next";
    of_total: "共", "of";
    no_batch: "该项目没有批次", "The project has no batch";
    range: "统计时间", "Period";
    zone_note: "（北京时间）", "(China time)";
    out_connected: "接通", "Connected";
    out_busy: "忙", "Busy";
    out_no_answer: "无应答", "No answer";
    out_rejected: "拒接", "Rejected";
    out_failed: "失败", "Failed";
    out_abandoned: "队列放弃", "Abandoned in queue";
    out_agent_missed: "坐席未接", "Agent missed";
    side_customer: "客户挂断", "Customer";
    side_agent: "坐席挂断", "Agent";
    side_system: "系统挂断", "System";
    side_none: "未知", "Unknown";
    outbound: "呼出", "Outbound";
    inbound: "呼入", "Inbound";
}

impl ReportText {
    pub fn of(lang: Lang) -> &'static ReportText {
        match lang {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    /// An attempt's stored outcome in words.
    pub fn outcome(&self, outcome: &str) -> &'static str {
        match outcome {
            "connected" => self.out_connected,
            "busy" => self.out_busy,
            "no_answer" => self.out_no_answer,
            "rejected" => self.out_rejected,
            "abandoned" => self.out_abandoned,
            "agent_missed" => self.out_agent_missed,
            _ => self.out_failed,
        }
    }

    /// A weekday 1 (Monday) - 7 in words.
    pub fn weekday(&self, day: i64) -> String {
        let zh = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
        let en = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let names = if self.today == "今日" { zh } else { en };
        names.get((day - 1).clamp(0, 6) as usize).copied().unwrap_or_default().to_string()
    }
}

//! The console's words: Simplified Chinese by default, English when the `lang` cookie says
//! `en`. Wording follows the operator manual's chapter 一 (总控).
//!
//! Same scheme as the appliance's: a typed `Text` with one field per word and one static per
//! language, so a missing or misspelt word is a compile error rather than a `??` on a page.
//! Unlike the appliance, which keeps two hand-written statics, the `words!` macro below emits
//! the struct and both statics from `(field, Chinese, English)` rows, so each word sits next to
//! its translation and a new word cannot be added to one language only.

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// From the `lang` cookie's value; anything unknown is Chinese.
    pub fn from_cookie(value: Option<&str>) -> Lang {
        match value {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// Declares `Text` with one field per row and the two languages' statics from the same rows,
/// so a word and its translation sit side by side and neither language can miss a field.
macro_rules! words {
    ($(($field:ident, $zh:literal, $en:literal),)*) => {
        /// Every word the console shows, one field per word.
        #[derive(Debug)]
        pub struct Text {
            $(pub $field: &'static str,)*
        }

        static ZH: Text = Text { $($field: $zh,)* };
        static EN: Text = Text { $($field: $en,)* };

        /// `(field, Chinese, English)` for the checks below.
        #[cfg(test)]
        const ROWS: &[(&str, &str, &str)] = &[$((stringify!($field), $zh, $en),)*];
    };
}

// `(field, Chinese, English)`, one row per word.
words! {
    (app_title, "外呼总控", "Outpost HQ"),
    (nav_sites, "职场管理", "Sites"),
    (nav_projects, "职场数据管理", "Projects"),
    (nav_files, "文件管理", "Files"),
    (nav_batches, "下发任务管理", "Batches"),
    (nav_logout, "退出", "Log out"),
    (nav_lang_other, "English", "中文"),
    (nav_lists, "黑白名单设置", "Black / white lists"),
    (nav_accounts, "账号权限管理", "Accounts"),
    (nav_voice, "语音库", "Voice library"),
    (nav_notices, "公告管理", "Notices"),
    (voice_title, "语音库", "Voice library"),
    (voice_note, "上传的语音文件下发到所有职场，可在任务参数“等待音乐”中选用；删除后职场不再使用。", "Uploaded voice files go to every site, where a task can choose one as its hold music; a deleted file is no longer used."),
    (voice_name, "语音名称", "Name"),
    (voice_name_hint, "不填则使用文件名", "the file name if empty"),
    (voice_kind, "类型", "Kind"),
    (voice_hold_music, "等待音乐", "Hold music"),
    (voice_prompt, "提示音", "Prompt"),
    (voice_file, "语音文件（WAV）", "Voice file (WAV)"),
    (voice_format_hint, "格式：WAV，单声道 8000 Hz，G.711 µ-law / A-law 或 16 位 PCM。其他格式请先转换，例如", "Format: WAV, mono 8000 Hz, G.711 µ-law / A-law or 16-bit PCM. Convert anything else first, e.g."),
    (voice_upload, "上传", "Upload"),
    (voice_size, "大小", "Size"),
    (voice_seconds, "时长（秒）", "Length (s)"),
    (voice_uploaded_at, "上传时间", "Uploaded"),
    (voice_uploaded_by, "上传人", "By"),
    (voice_delete, "删除", "Delete"),
    (voice_confirm_delete, "删除后各职场将不再使用该语音，确定删除？", "Sites will stop using this voice file. Delete it?"),
    (notices_title, "公告管理", "Notices"),
    (notices_note, "公告发布到所有职场；修改后职场显示新内容，撤回或过期后职场不再显示。", "Notices go to every site; an edit replaces the text there, and a withdrawn or expired notice is no longer shown."),
    (notices_subject, "标题", "Title"),
    (notices_body, "内容", "Text"),
    (notices_expires_at, "过期时间", "Expires"),
    (notices_expires_hint, "不填则一直显示，直到撤回", "empty: shown until withdrawn"),
    (notices_post, "发布公告", "Post"),
    (notices_state, "状态", "State"),
    (notices_live, "生效中", "Live"),
    (notices_expired, "已过期", "Expired"),
    (notices_withdrawn, "已撤回", "Withdrawn"),
    (notices_no_expiry, "不过期", "Never"),
    (notices_published_at, "发布时间", "Posted"),
    (notices_version, "版本", "Version"),
    (notices_created_by, "发布人", "By"),
    (notices_edit, "修改", "Edit"),
    (notices_save, "保存", "Save"),
    (notices_withdraw, "撤回", "Withdraw"),
    (notices_confirm_withdraw, "撤回后各职场将不再显示该公告，确定撤回？", "Sites will stop showing this notice. Withdraw it?"),
    (common_no_module, "当前账号的角色没有该模块的权限，请联系管理员开通", "Your role does not include this module: ask an admin to add it"),
    (lists_title, "黑白名单设置", "Black and white lists"),
    (lists_note, "黑名单号码在下发时被剔除，任何职场都不会拨打；白名单号码不会被数据过滤剔除。", "Blacklisted numbers are removed at dispatch and never dialed by any site; white-listed numbers are never removed by the data filter."),
    (lists_black, "黑名单", "Black list"),
    (lists_white, "白名单", "White list"),
    (lists_phones, "号码（每行一个）", "Numbers (one per line)"),
    (lists_phone, "号码", "Number"),
    (lists_remark, "备注", "Note"),
    (lists_add, "添加", "Add"),
    (lists_remove, "移除", "Remove"),
    (lists_import, "导入名单（xlsx）", "Import a list (xlsx)"),
    (lists_import_hint, "自动识别“手机号码”“电话”等号码列；无标题时读取第一列", "The phone column is found by its header; without a header the first column is read"),
    (accounts_title, "账号权限管理", "Accounts and permissions"),
    (accounts_roles, "角色管理", "Roles"),
    (accounts_groups, "分组部门", "Groups"),
    (accounts_accounts, "账号管理", "Accounts"),
    (accounts_role_name, "角色名称", "Role name"),
    (accounts_modules, "模块权限", "Modules"),
    (accounts_new_role, "新增角色", "Add role"),
    (accounts_group_name, "分组名称", "Group name"),
    (accounts_new_group, "新增分组", "Add group"),
    (accounts_role, "角色", "Role"),
    (accounts_group, "分组部门", "Group"),
    (accounts_no_group, "不分组", "No group"),
    (accounts_scope, "数据权限（可查看的职场）", "Data permission (sites)"),
    (accounts_admin, "管理员", "Admin"),
    (accounts_password_hint, "至少 8 位", "at least 8 characters"),
    (accounts_new_account, "新增子账号", "Add sub-admin"),
    (setup_params, "项目参数", "Project parameters"),
    (setup_params_note, "总控配置的参数对所有参与此项目的职场生效，职场端无法更改；未配置的参数由各职场自行配置。", "A value HQ sets binds every participating site (read-only there); an unset value is each site's own."),
    (setup_site_decides, "不限定（职场自行配置）", "Not set (each site decides)"),
    (setup_dial_mode, "外呼方式", "Dial mode"),
    (setup_predictive, "预测外呼", "Predictive"),
    (setup_one_click, "一键外呼", "One-click"),
    (setup_popup, "弹屏时机", "Popup timing"),
    (setup_on_answer, "接通弹屏", "On answer"),
    (setup_on_ring, "振铃弹屏", "On ring"),
    (setup_status, "项目状态", "Project status"),
    (setup_running, "启动", "Running"),
    (setup_paused, "暂停", "Paused"),
    (setup_ring, "振铃时长（秒）", "Ring duration (s)"),
    (setup_ring_hint, "建议 35-40 秒；0 表示不限制，职场端可自行配置", "35-40 s advised; 0 leaves it to each site"),
    (setup_ratio, "外呼比例", "Predictive ratio"),
    (setup_max_concurrency, "最大并发", "Max concurrency"),
    (setup_windows, "定时外呼", "Calling windows"),
    (setup_windows_hint, "每行一个时间段，如 09:00-12:00；非外呼时段暂停取号", "One window per line, e.g. 09:00-12:00; outside them no number is taken"),
    (setup_token_length, "加密号码位数", "Dial token length"),
    (setup_token_length_hint, "加密号码项目导入时号码列须为该位数的十六进制（8 到 64 位，默认 20）", "Token projects import only hex tokens of exactly this many digits (8 to 64, default 20)"),
    (setup_sites, "预参与职场", "Participating sites"),
    (setup_sites_note, "先提交参与职场，再设置项目管理员管辖的职场（两者不能同时设置）。", "Submit the participating sites first, then the project admins' sites (the two are set separately)."),
    (setup_admins, "项目管理员", "Project admins"),
    (setup_admins_first, "请先提交“预参与职场”，再设置项目管理员。", "Submit the participating sites first, then set the project admins."),
    (setup_admin_account, "管理员账号", "Admin account"),
    (setup_admin_sites, "管理职场", "Sites managed"),
    (setup_no_site_in_scope, "该账号的数据权限内没有参与职场", "No participating site lies in this account's data permission"),
    (setup_admins_note, "只展示参与职场中在该账号数据权限内的职场；不勾选任何职场即不是本项目管理员。", "Only participating sites inside the account's data permission are offered; an account with no site ticked is not an admin here."),
    (setup_attribution, "归属设置", "Attribution rules"),
    (setup_attribution_first, "归属分配需要客户资料中的归属字段（如“指定团队”“指定坐席”）和参与职场。", "Attribution needs a customer field to match (e.g. team or agent) and participating sites."),
    (setup_rule_field, "字段", "Field"),
    (setup_rule_value, "值为", "Value"),
    (setup_rule_site, "分配于职场", "Site"),
    (setup_rule_agent, "坐席", "Agent"),
    (setup_rule_agent_hint, "工号（可空）", "extension (optional)"),
    (setup_attribution_note, "值为空的行不保存；使用归属分配时，必须使用“自动批次”下发。", "Rows without a value are not saved; attributed numbers go out as auto batches."),
    (setup_save_rules, "保存设定", "Save rules"),
    (login_title, "总控登录", "HQ login"),
    (login_username, "账号", "Username"),
    (login_password, "密码", "Password"),
    (login_submit, "登录", "Log in"),
    (common_id, "编号", "No."),
    (common_name, "名称", "Name"),
    (common_actions, "操作", "Actions"),
    (common_submit, "提交", "Submit"),
    (common_back, "返回", "Back"),
    (common_failed, "操作失败", "Failed"),
    (common_none, "暂无数据", "Nothing yet"),
    (common_created_at, "创建时间", "Created"),
    (sites_title, "职场", "Sites"),
    (sites_new, "新增职场", "New site"),
    (sites_name, "职场名称", "Site name"),
    (sites_status, "连接状态", "Link"),
    (sites_online, "在线", "online"),
    (sites_offline, "离线", "offline"),
    (sites_since, "自", "since"),
    (sites_never, "从未连接", "never connected"),
    (sites_enrolled, "已接入", "Enrolled"),
    (sites_not_enrolled, "未接入", "Not enrolled"),
    (sites_gen_code, "生成接入码", "Generate enrollment code"),
    (sites_code_title, "一次性接入码", "One-time enrollment code"),
    (sites_code_note, "接入码只显示这一次，只能使用一次；生成新接入码后，该职场之前的接入码作废。请在有效期内交给技术员在设备上输入。已有设备接入的职场需先退役原设备。", "This code is shown only once and works once; it replaces the site's earlier codes. Give it to the technician to type on the box before it expires. A site that already has a box must retire it first."),
    (sites_code_expires, "有效期至", "Valid until"),
    (sites_box, "接入设备", "Box"),
    (sites_box_enrolled_at, "接入时间", "enrolled"),
    (sites_box_certificate, "证书指纹", "certificate"),
    (sites_box_unknown, "下次连接时记录", "recorded at its next connection"),
    (sites_last_seen, "最后连接", "last seen"),
    (sites_retire, "退役", "Retire"),
    (sites_retire_confirm, "退役后该设备的证书将被拒绝，在线连接立即断开；之后可用新接入码接入新设备。确定退役？", "The box's certificate will be refused and its live connection closed; a new box can then enroll with a new code. Retire it?"),
    (sites_retire_yes, "确认退役", "Yes, retire it"),
    (sites_link_settings, "链路设置（下发到每个职场）", "Link settings (sent to every site)"),
    (sites_upload_cap, "录音上传限速（字节/秒）", "Recording upload cap (bytes/s)"),
    (sites_upload_cap_hint, "留空为不限速；最低 8000。", "Leave empty for no cap; at least 8000."),
    (projects_categories, "项目分类", "Project categories"),
    (projects_add_category, "添加", "Add"),
    (projects_category_prompt, "请输入新的项目分类名称", "New category name"),
    (projects_category_note, "项目分类仅支持添加，已创建的分类不支持修改名称、删除等操作。", "Categories can only be added; once created they cannot be renamed or deleted."),
    (projects_list, "子项目", "Sub-projects"),
    (projects_new, "创建项目", "Create sub-project"),
    (projects_category, "项目分类", "Category"),
    (projects_name, "任务名称", "Name"),
    (projects_script, "话术说明", "Script"),
    (projects_script_hint, "填写展示给职场坐席的话术内容", "What agents see as their script"),
    (projects_hide, "隐藏电话号码中间四位", "Hide the middle four digits"),
    (projects_hide_hint, "勾选后，展示的客户号码将被隐藏中间4位，未勾选则默认展示完整号码", "When ticked, customer numbers are shown with the middle four digits hidden"),
    (projects_customer_fields, "客户资料设置", "Customer fields"),
    (projects_record_fields, "业务记录设置", "Business-record fields"),
    (projects_field_title, "标题", "Title"),
    (projects_field_key, "变量名称", "Variable name"),
    (projects_field_kind, "字段类型", "Type"),
    (projects_kind_text, "文本框", "Text"),
    (projects_template, "模板", "Template"),
    (projects_no_template, "不使用模板", "No template"),
    (projects_template_hint, "从同一分类的子项目复制客户资料字段、业务记录字段和详情页", "Copies customer fields, business-record fields and the popup page from a sub-project of the same category"),
    (projects_phone_mode, "号码列", "Phone column"),
    (projects_phone_number, "电话号码", "Phone numbers"),
    (projects_phone_token, "加密号码（原样外呼）", "Encrypted dial tokens (dialed as-is)"),
    (projects_field_default, "默认值", "Default"),
    (projects_field_mode, "详情页设置", "Popup"),
    (projects_mode_default, "默认", "Default"),
    (projects_mode_required, "必填", "Required"),
    (projects_mode_read_only, "只读", "Read-only"),
    (projects_mode_hidden, "隐藏", "Hidden"),
    (files_bad_rows_download, "下载错误行", "Download bad rows"),
    (files_download, "下载", "Download"),
    (files_remark, "备注", "Remark"),
    (filter_title, "数据过滤", "Data filter"),
    (filter_scope, "选择归属数据域", "Data scope"),
    (filter_scope_mine, "本账号操作的数据", "This account's data"),
    (filter_scope_all, "总控所有账号的数据", "All HQ accounts' data"),
    (filter_days, "数据有效天数（最大 30 天）", "Valid days (at most 30)"),
    (filter_condition, "数据过滤条件", "Condition"),
    (filter_called, "已呼", "Called"),
    (filter_not_called, "未呼", "Not called"),
    (filter_connected, "已接通", "Connected"),
    (filter_not_connected, "未接通", "Not connected"),
    (filter_repeat, "数据重复次数", "Repeat count"),
    (filter_column, "号码匹配数据第 X 列（留空自动识别）", "Phone in column X (empty = auto-detected)"),
    (filter_submit, "开始过滤", "Start filtering"),
    (dispatch_kind, "下发任务参数", "Batch kind"),
    (dispatch_kind_shared, "共享批次", "Shared batch"),
    (dispatch_kind_exclusive, "独享批次", "Exclusive batches"),
    (dispatch_kind_auto, "自动批次", "Auto batch"),
    (dispatch_update_existing, "更新已有数据", "Update existing data"),
    (dispatch_parts, "独享批次（名称、数量、职场）", "Exclusive batches (name, count, site)"),
    (dispatch_count, "数量", "Count"),
    (batches_change_priority, "调优先级", "Change priority"),
    (batches_delete, "删除", "Delete"),
    (batches_numbers_link, "查看号码", "View numbers"),
    (batches_one_click, "一键启停", "One-click start / pause"),
    (batches_start_all, "一键启动", "Start"),
    (batches_pause_all, "一键暂停", "Pause"),
    (batches_all_projects, "全部项目", "All projects"),
    (batches_description, "描述", "Description"),
    (batches_ended, "已结束", "Ended"),
    (projects_kind_multi, "多选", "Multiple choice"),
    (projects_kind_number, "数字", "Number"),
    (projects_kind_date, "日期", "Date"),
    (projects_kind_choice, "单项选择", "Single choice"),
    (projects_field_options, "选项（一个选项内容为一行）", "Options (one per line)"),
    (projects_fields_hint, "空行将被忽略。变量名称只用小写字母、数字和下划线，以字母开头。", "Empty rows are ignored. Variable names use lower-case letters, digits and '_', starting with a letter."),
    (projects_manage, "项目管理", "Manage"),
    (projects_system_field, "系统字段", "System field"),
    (projects_phone, "电话号码", "Phone"),
    (projects_yes, "是", "yes"),
    (projects_no, "否", "no"),
    (files_title, "文件管理", "Files"),
    (files_upload, "上传", "Upload"),
    (files_upload_hint, "导入的数据文件格式仅支持xlsx", "Only .xlsx files can be imported"),
    (files_import, "导入", "Import"),
    (files_file_name, "文件名", "File name"),
    (files_project, "子项目", "Sub-project"),
    (files_source, "来源", "Source"),
    (files_source_upload, "本地上传", "Local upload"),
    (files_source_system, "系统生成", "System generated"),
    (files_status, "状态", "Status"),
    (files_status_unprocessed, "未处理", "Unprocessed"),
    (files_status_done, "完成", "Done"),
    (files_time, "导入时间", "Imported"),
    (files_creator, "创建人", "Creator"),
    (files_dispatch, "数据下发", "Dispatch"),
    (files_report, "导入结果", "Import report"),
    (files_n_rows, "数据行数", "Rows"),
    (files_n_good, "成功导入", "Imported"),
    (files_n_bad, "错误行", "Bad rows"),
    (files_n_filtered, "过滤掉的行", "Rows filtered out"),
    (files_filtered_download, "下载过滤明细", "Download filtered rows"),
    (files_phone_column, "号码列", "Phone column"),
    (files_sheet, "读取的工作表", "Sheet read"),
    (files_warnings, "已修改的内容", "Values changed"),
    (files_unmatched, "未匹配的客户资料字段（内容留空）", "Customer fields no column matched (left empty)"),
    (files_row, "行号", "Row"),
    (files_column, "列", "Column"),
    (files_reason, "原因", "Reason"),
    (dispatch_title, "数据下发", "Dispatch"),
    (dispatch_name, "批次名称", "Batch name"),
    (dispatch_priority, "优先级", "Priority"),
    (dispatch_priority_hint, "0~100，数字越大优先级越高；1 为暂停", "0-100, higher dials first; 1 pauses"),
    (dispatch_sites, "参与职场", "Sites"),
    (dispatch_submit, "导入生成下发任务", "Create and dispatch"),
    (dispatch_done, "下发成功", "Dispatched"),
    (batches_title, "下发任务管理", "Batches"),
    (batches_batch, "批次", "Batch"),
    (batches_numbers, "号码总数", "Numbers"),
    (batches_dialed, "呼出量", "Dialed"),
    (batches_connected, "接通量 (率)", "Connected (rate)"),
    (batches_not_connected, "未接量 (率)", "Not connected (rate)"),
    (batches_agent_missed, "坐席未接量 (率)", "Agent missed (rate)"),
    (batches_abandoned, "放弃量 (率)", "Abandoned (rate)"),
    (batches_agent_connected, "坐席接通量 (率)", "Agent connected (rate)"),
    (batches_account, "下发账号", "Dispatched by"),
    (batches_site, "下发职场", "Site"),
    (batches_priority, "优先级", "Priority"),
    (batches_records, "业务记录", "Business records"),
    (records_title, "业务记录", "Business records"),
    (records_attempt, "通话编号", "Call"),
    (records_phone, "电话号码", "Phone"),
    (records_agent, "提交人", "Submitted by"),
    (records_saved_at, "提交时间", "Submitted at"),
    // 职场通话记录 / 录音管理 (web::calls).
    (nav_calls, "职场通话记录", "Call records"),
    (calls_title, "职场通话记录", "Call records"),
    (calls_note, "按条件查找各职场已同步的通话；号码可填完整号码或后四位。", "Find any call the sites have synced; type a whole number or its last four digits."),
    (calls_from, "开始时间", "From"),
    (calls_to, "结束时间", "To"),
    (calls_time_hint, "北京时间，如 2026-12-01 或 2026-12-01 08:30", "China time, e.g. 2026-12-01 or 2026-12-01 08:30"),
    (calls_site, "职场", "Site"),
    (calls_project, "子项目", "Sub-project"),
    (calls_batch, "批次编号", "Batch no."),
    (calls_agent, "坐席", "Agent"),
    (calls_direction, "呼叫方向", "Direction"),
    (calls_outcome, "呼叫结果", "Outcome"),
    (calls_hangup, "挂断方", "Hung up by"),
    (calls_talk, "通话时长（秒）", "Talk time (s)"),
    (calls_talk_min, "最短", "min"),
    (calls_talk_max, "最长", "max"),
    (calls_result, "业务结果", "Business result"),
    (calls_result_key, "字段变量名", "field key"),
    (calls_result_value, "字段值", "value"),
    (calls_phone, "电话号码", "Phone"),
    (calls_phone_hint, "完整号码或后四位", "whole number or last four"),
    (calls_any, "全部", "Any"),
    (calls_search, "查询", "Search"),
    (calls_first_page, "第一页", "First page"),
    (calls_next_page, "下一页", "Next page"),
    (calls_export_xlsx, "导出通话记录（xlsx）", "Export calls (xlsx)"),
    (calls_export_zip, "导出录音（zip）", "Export recordings (zip)"),
    (calls_started, "开始时间", "Started"),
    (calls_answered, "接通时间", "Answered"),
    (calls_ended, "结束时间", "Ended"),
    (calls_kind, "呼叫类型", "Kind"),
    (calls_recording, "录音", "Recording"),
    (calls_record, "业务记录", "Business record"),
    (calls_no_record, "没有业务记录", "No business record"),
    (calls_none_found, "没有符合条件的通话", "No call matches"),
    (calls_detail, "通话详情", "Call"),
    (calls_attempt, "通话编号", "Call no."),
    (calls_held, "总控已有", "held at HQ"),
    (calls_not_held, "尚未上传", "not uploaded yet"),
    (calls_no_recording, "该通话没有录音", "This call was not recorded"),
    (calls_download, "下载录音", "Download recording"),
    (calls_fetching, "正在从职场取回录音，请稍候……", "Fetching the recording from the site…"),
    (calls_fetch_offline, "职场离线：录音将在职场重新连线后上传，届时可在此播放", "The site is offline: the recording is uploaded once the site reconnects, and can be played here then"),
    (calls_fetch_slow, "职场两分钟内未上传该录音，请稍后刷新页面重试", "The site has not uploaded the recording within two minutes; reload the page later to try again"),
    (calls_fetch_failed, "取回录音失败", "Fetching the recording failed"),
    (calls_no_recordings_module, "当前角色没有录音管理模块，不能播放录音", "Your role lacks the recordings module, so recordings cannot be played"),
    (calls_site_offline, "离线", "offline"),
    (dir_outbound, "呼出", "Outbound"),
    (dir_inbound, "呼入", "Inbound"),
    (kind_predictive, "预测外呼", "Predictive"),
    (kind_one_click, "一键外呼", "One-click"),
    (kind_callback, "回访", "Callback"),
    (kind_manual, "坐席外呼", "Agent's own call"),
    (kind_inbound, "呼入", "Inbound"),
    (kind_ivr, "语音导航", "IVR"),
    (kind_unknown, "未记录", "Not recorded"),
    (out_connected, "接通", "Connected"),
    (out_busy, "忙", "Busy"),
    (out_no_answer, "未接", "No answer"),
    (out_rejected, "拒接", "Rejected"),
    (out_failed, "失败", "Failed"),
    (out_abandoned, "队列放弃", "Abandoned"),
    (out_agent_missed, "坐席未接", "Agent missed"),
    (out_unknown, "未知", "Unknown"),
    (hangup_customer, "客户", "Customer"),
    (hangup_agent, "坐席", "Agent"),
    (hangup_system, "系统", "System"),
}

/// Picks the UI words for one language.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    /// Every word of the console in this language; templates read `tr.text().field`.
    pub fn text(&self) -> &'static Text {
        match self.lang {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    pub fn is_en(&self) -> bool {
        self.lang == Lang::En
    }

    pub fn html_lang(&self) -> &'static str {
        self.lang.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields whose English text is deliberately Chinese (and Chinese text deliberately not):
    /// the language switch names the other language in that language.
    const SWITCH_FIELDS: &[&str] = &["nav_lang_other"];

    fn has_cjk(text: &str) -> bool {
        text.chars().any(|c| matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}'))
    }

    /// No word is empty in either language, every Chinese word is Chinese and no English word
    /// is, save the language switch.
    #[test]
    fn both_languages_are_complete_and_distinct() {
        assert!(ROWS.len() > 250, "only {} words", ROWS.len());
        for (field, zh, en) in ROWS {
            assert!(!zh.trim().is_empty(), "{field}: empty Chinese text");
            assert!(!en.trim().is_empty(), "{field}: empty English text");
            let switch = SWITCH_FIELDS.contains(field);
            assert_eq!(has_cjk(zh), !switch, "{field}: Chinese text {zh:?}");
            assert_eq!(has_cjk(en), switch, "{field}: English text {en:?}");
        }
    }

    /// `Tr` serves the static of its language: the rows reach the right struct.
    #[test]
    fn tr_picks_the_language() {
        assert_eq!(Tr { lang: Lang::Zh }.text().app_title, "外呼总控");
        assert_eq!(Tr { lang: Lang::En }.text().app_title, "Outpost HQ");
        assert_eq!(Tr { lang: Lang::En }.text().nav_lang_other, "中文");
    }
}

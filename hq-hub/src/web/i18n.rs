//! The console's message catalogue: Simplified Chinese by default, English when the `lang`
//! cookie says `en`. Wording follows the operator manual's chapter 一 (总控).

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

/// `(key, Chinese, English)`.
const CATALOGUE: &[(&str, &str, &str)] = &[
    ("app.title", "外呼总控", "Outpost HQ"),
    ("nav.sites", "职场管理", "Sites"),
    ("nav.projects", "职场数据管理", "Projects"),
    ("nav.files", "文件管理", "Files"),
    ("nav.batches", "下发任务管理", "Batches"),
    ("nav.logout", "退出", "Log out"),
    ("nav.lang_other", "English", "中文"),
    ("nav.lists", "黑白名单设置", "Black / white lists"),
    ("nav.accounts", "账号权限管理", "Accounts"),
    ("nav.voice", "语音库", "Voice library"),
    ("nav.notices", "公告管理", "Notices"),
    ("voice.title", "语音库", "Voice library"),
    ("voice.note", "上传的语音文件下发到所有职场，可在任务参数“等待音乐”中选用；删除后职场不再使用。", "Uploaded voice files go to every site, where a task can choose one as its hold music; a deleted file is no longer used."),
    ("voice.name", "语音名称", "Name"),
    ("voice.name_hint", "不填则使用文件名", "the file name if empty"),
    ("voice.kind", "类型", "Kind"),
    ("voice.hold_music", "等待音乐", "Hold music"),
    ("voice.prompt", "提示音", "Prompt"),
    ("voice.file", "语音文件（WAV）", "Voice file (WAV)"),
    ("voice.format_hint", "格式：WAV，单声道 8000 Hz，G.711 µ-law / A-law 或 16 位 PCM。其他格式请先转换，例如", "Format: WAV, mono 8000 Hz, G.711 µ-law / A-law or 16-bit PCM. Convert anything else first, e.g."),
    ("voice.upload", "上传", "Upload"),
    ("voice.size", "大小", "Size"),
    ("voice.seconds", "时长（秒）", "Length (s)"),
    ("voice.uploaded_at", "上传时间", "Uploaded"),
    ("voice.uploaded_by", "上传人", "By"),
    ("voice.delete", "删除", "Delete"),
    ("voice.confirm_delete", "删除后各职场将不再使用该语音，确定删除？", "Sites will stop using this voice file. Delete it?"),
    ("notices.title", "公告管理", "Notices"),
    ("notices.note", "公告发布到所有职场；修改后职场显示新内容，撤回或过期后职场不再显示。", "Notices go to every site; an edit replaces the text there, and a withdrawn or expired notice is no longer shown."),
    ("notices.subject", "标题", "Title"),
    ("notices.body", "内容", "Text"),
    ("notices.expires_at", "过期时间", "Expires"),
    ("notices.expires_hint", "不填则一直显示，直到撤回", "empty: shown until withdrawn"),
    ("notices.post", "发布公告", "Post"),
    ("notices.state", "状态", "State"),
    ("notices.live", "生效中", "Live"),
    ("notices.expired", "已过期", "Expired"),
    ("notices.withdrawn", "已撤回", "Withdrawn"),
    ("notices.no_expiry", "不过期", "Never"),
    ("notices.published_at", "发布时间", "Posted"),
    ("notices.version", "版本", "Version"),
    ("notices.created_by", "发布人", "By"),
    ("notices.edit", "修改", "Edit"),
    ("notices.save", "保存", "Save"),
    ("notices.withdraw", "撤回", "Withdraw"),
    ("notices.confirm_withdraw", "撤回后各职场将不再显示该公告，确定撤回？", "Sites will stop showing this notice. Withdraw it?"),
    ("common.no_module", "当前账号的角色没有该模块的权限，请联系管理员开通", "Your role does not include this module: ask an admin to add it"),
    ("lists.title", "黑白名单设置", "Black and white lists"),
    ("lists.note", "黑名单号码在下发时被剔除，任何职场都不会拨打；白名单号码不会被数据过滤剔除。", "Blacklisted numbers are removed at dispatch and never dialed by any site; white-listed numbers are never removed by the data filter."),
    ("lists.black", "黑名单", "Black list"),
    ("lists.white", "白名单", "White list"),
    ("lists.phones", "号码（每行一个）", "Numbers (one per line)"),
    ("lists.phone", "号码", "Number"),
    ("lists.remark", "备注", "Note"),
    ("lists.add", "添加", "Add"),
    ("lists.remove", "移除", "Remove"),
    ("lists.import", "导入名单（xlsx）", "Import a list (xlsx)"),
    ("lists.import_hint", "自动识别“手机号码”“电话”等号码列；无标题时读取第一列", "The phone column is found by its header; without a header the first column is read"),
    ("accounts.title", "账号权限管理", "Accounts and permissions"),
    ("accounts.roles", "角色管理", "Roles"),
    ("accounts.groups", "分组部门", "Groups"),
    ("accounts.accounts", "账号管理", "Accounts"),
    ("accounts.role_name", "角色名称", "Role name"),
    ("accounts.modules", "模块权限", "Modules"),
    ("accounts.new_role", "新增角色", "Add role"),
    ("accounts.group_name", "分组名称", "Group name"),
    ("accounts.new_group", "新增分组", "Add group"),
    ("accounts.role", "角色", "Role"),
    ("accounts.group", "分组部门", "Group"),
    ("accounts.no_group", "不分组", "No group"),
    ("accounts.scope", "数据权限（可查看的职场）", "Data permission (sites)"),
    ("accounts.admin", "管理员", "Admin"),
    ("accounts.password_hint", "至少 8 位", "at least 8 characters"),
    ("accounts.new_account", "新增子账号", "Add sub-admin"),
    ("setup.params", "项目参数", "Project parameters"),
    ("setup.params_note", "总控配置的参数对所有参与此项目的职场生效，职场端无法更改；未配置的参数由各职场自行配置。", "A value HQ sets binds every participating site (read-only there); an unset value is each site's own."),
    ("setup.site_decides", "不限定（职场自行配置）", "Not set (each site decides)"),
    ("setup.dial_mode", "外呼方式", "Dial mode"),
    ("setup.predictive", "预测外呼", "Predictive"),
    ("setup.one_click", "一键外呼", "One-click"),
    ("setup.popup", "弹屏时机", "Popup timing"),
    ("setup.on_answer", "接通弹屏", "On answer"),
    ("setup.on_ring", "振铃弹屏", "On ring"),
    ("setup.status", "项目状态", "Project status"),
    ("setup.running", "启动", "Running"),
    ("setup.paused", "暂停", "Paused"),
    ("setup.ring", "振铃时长（秒）", "Ring duration (s)"),
    ("setup.ring_hint", "建议 35-40 秒；0 表示不限制，职场端可自行配置", "35-40 s advised; 0 leaves it to each site"),
    ("setup.ratio", "外呼比例", "Predictive ratio"),
    ("setup.max_concurrency", "最大并发", "Max concurrency"),
    ("setup.windows", "定时外呼", "Calling windows"),
    ("setup.windows_hint", "每行一个时间段，如 09:00-12:00；非外呼时段暂停取号", "One window per line, e.g. 09:00-12:00; outside them no number is taken"),
    ("setup.token_length", "加密号码位数", "Dial token length"),
    ("setup.token_length_hint", "加密号码项目导入时号码列须为该位数的十六进制（8 到 64 位，默认 20）", "Token projects import only hex tokens of exactly this many digits (8 to 64, default 20)"),
    ("setup.sites", "预参与职场", "Participating sites"),
    ("setup.sites_note", "先提交参与职场，再设置项目管理员管辖的职场（两者不能同时设置）。", "Submit the participating sites first, then the project admins' sites (the two are set separately)."),
    ("setup.admins", "项目管理员", "Project admins"),
    ("setup.admins_first", "请先提交“预参与职场”，再设置项目管理员。", "Submit the participating sites first, then set the project admins."),
    ("setup.admin_account", "管理员账号", "Admin account"),
    ("setup.admin_sites", "管理职场", "Sites managed"),
    ("setup.no_site_in_scope", "该账号的数据权限内没有参与职场", "No participating site lies in this account's data permission"),
    ("setup.admins_note", "只展示参与职场中在该账号数据权限内的职场；不勾选任何职场即不是本项目管理员。", "Only participating sites inside the account's data permission are offered; an account with no site ticked is not an admin here."),
    ("setup.attribution", "归属设置", "Attribution rules"),
    ("setup.attribution_first", "归属分配需要客户资料中的归属字段（如“指定团队”“指定坐席”）和参与职场。", "Attribution needs a customer field to match (e.g. team or agent) and participating sites."),
    ("setup.rule_field", "字段", "Field"),
    ("setup.rule_value", "值为", "Value"),
    ("setup.rule_site", "分配于职场", "Site"),
    ("setup.rule_agent", "坐席", "Agent"),
    ("setup.rule_agent_hint", "工号（可空）", "extension (optional)"),
    ("setup.attribution_note", "值为空的行不保存；使用归属分配时，必须使用“自动批次”下发。", "Rows without a value are not saved; attributed numbers go out as auto batches."),
    ("setup.save_rules", "保存设定", "Save rules"),
    ("login.title", "总控登录", "HQ login"),
    ("login.username", "账号", "Username"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Log in"),
    ("common.id", "编号", "No."),
    ("common.name", "名称", "Name"),
    ("common.actions", "操作", "Actions"),
    ("common.submit", "提交", "Submit"),
    ("common.confirm", "确定", "OK"),
    ("common.back", "返回", "Back"),
    ("common.failed", "操作失败", "Failed"),
    ("common.none", "暂无数据", "Nothing yet"),
    ("common.created_at", "创建时间", "Created"),
    ("sites.title", "职场", "Sites"),
    ("sites.new", "新增职场", "New site"),
    ("sites.name", "职场名称", "Site name"),
    ("sites.status", "连接状态", "Link"),
    ("sites.online", "在线", "online"),
    ("sites.offline", "离线", "offline"),
    ("sites.since", "自", "since"),
    ("sites.never", "从未连接", "never connected"),
    ("sites.enrolled", "已接入", "Enrolled"),
    ("sites.not_enrolled", "未接入", "Not enrolled"),
    ("sites.gen_code", "生成接入码", "Generate enrollment code"),
    ("sites.code_title", "一次性接入码", "One-time enrollment code"),
    ("sites.code_note", "接入码只显示这一次，只能使用一次；生成新接入码后，该职场之前的接入码作废。请在有效期内交给技术员在设备上输入。已有设备接入的职场需先退役原设备。", "This code is shown only once and works once; it replaces the site's earlier codes. Give it to the technician to type on the box before it expires. A site that already has a box must retire it first."),
    ("sites.code_expires", "有效期至", "Valid until"),
    ("sites.box", "接入设备", "Box"),
    ("sites.box_enrolled_at", "接入时间", "enrolled"),
    ("sites.box_certificate", "证书指纹", "certificate"),
    ("sites.box_unknown", "下次连接时记录", "recorded at its next connection"),
    ("sites.last_seen", "最后连接", "last seen"),
    ("sites.retire", "退役", "Retire"),
    ("sites.retire_confirm", "退役后该设备的证书将被拒绝，在线连接立即断开；之后可用新接入码接入新设备。确定退役？", "The box's certificate will be refused and its live connection closed; a new box can then enroll with a new code. Retire it?"),
    ("sites.retire_yes", "确认退役", "Yes, retire it"),
    ("sites.retire_admin_only", "只有管理员可以退役职场设备", "Only an admin may retire a site's box"),
    ("sites.link_settings", "链路设置（下发到每个职场）", "Link settings (sent to every site)"),
    ("sites.upload_cap", "录音上传限速（字节/秒）", "Recording upload cap (bytes/s)"),
    ("sites.upload_cap_hint", "留空为不限速；最低 8000。", "Leave empty for no cap; at least 8000."),
    ("projects.categories", "项目分类", "Project categories"),
    ("projects.add_category", "添加", "Add"),
    ("projects.category_prompt", "请输入新的项目分类名称", "New category name"),
    ("projects.category_note", "项目分类仅支持添加，已创建的分类不支持修改名称、删除等操作。", "Categories can only be added; once created they cannot be renamed or deleted."),
    ("projects.list", "子项目", "Sub-projects"),
    ("projects.new", "创建项目", "Create sub-project"),
    ("projects.category", "项目分类", "Category"),
    ("projects.name", "任务名称", "Name"),
    ("projects.script", "话术说明", "Script"),
    ("projects.script_hint", "填写展示给职场坐席的话术内容", "What agents see as their script"),
    ("projects.hide", "隐藏电话号码中间四位", "Hide the middle four digits"),
    ("projects.hide_hint", "勾选后，展示的客户号码将被隐藏中间4位，未勾选则默认展示完整号码", "When ticked, customer numbers are shown with the middle four digits hidden"),
    ("projects.customer_fields", "客户资料设置", "Customer fields"),
    ("projects.record_fields", "业务记录设置", "Business-record fields"),
    ("projects.field_title", "标题", "Title"),
    ("projects.field_key", "变量名称", "Variable name"),
    ("projects.field_kind", "字段类型", "Type"),
    ("projects.kind_text", "文本框", "Text"),
    ("projects.template", "模板", "Template"),
    ("projects.no_template", "不使用模板", "No template"),
    ("projects.template_hint", "从同一分类的子项目复制客户资料字段、业务记录字段和详情页", "Copies customer fields, business-record fields and the popup page from a sub-project of the same category"),
    ("projects.phone_mode", "号码列", "Phone column"),
    ("projects.phone_number", "电话号码", "Phone numbers"),
    ("projects.phone_token", "加密号码（原样外呼）", "Encrypted dial tokens (dialed as-is)"),
    ("projects.field_default", "默认值", "Default"),
    ("projects.field_mode", "详情页设置", "Popup"),
    ("projects.mode_default", "默认", "Default"),
    ("projects.mode_required", "必填", "Required"),
    ("projects.mode_read_only", "只读", "Read-only"),
    ("projects.mode_hidden", "隐藏", "Hidden"),
    ("files.bad_rows_download", "下载错误行", "Download bad rows"),
    ("files.download", "下载", "Download"),
    ("files.remark", "备注", "Remark"),
    ("filter.title", "数据过滤", "Data filter"),
    ("filter.scope", "选择归属数据域", "Data scope"),
    ("filter.scope_mine", "本账号操作的数据", "This account's data"),
    ("filter.scope_all", "总控所有账号的数据", "All HQ accounts' data"),
    ("filter.projects", "选择过滤项目（不选为全部）", "Projects (none chosen = all)"),
    ("filter.days", "数据有效天数（最大 30 天）", "Valid days (at most 30)"),
    ("filter.condition", "数据过滤条件", "Condition"),
    ("filter.called", "已呼", "Called"),
    ("filter.not_called", "未呼", "Not called"),
    ("filter.connected", "已接通", "Connected"),
    ("filter.not_connected", "未接通", "Not connected"),
    ("filter.repeat", "数据重复次数", "Repeat count"),
    ("filter.column", "号码匹配数据第 X 列（留空自动识别）", "Phone in column X (empty = auto-detected)"),
    ("filter.submit", "开始过滤", "Start filtering"),
    ("dispatch.kind", "下发任务参数", "Batch kind"),
    ("dispatch.kind_shared", "共享批次", "Shared batch"),
    ("dispatch.kind_exclusive", "独享批次", "Exclusive batches"),
    ("dispatch.kind_auto", "自动批次", "Auto batch"),
    ("dispatch.update_existing", "更新已有数据", "Update existing data"),
    ("dispatch.parts", "独享批次（名称、数量、职场）", "Exclusive batches (name, count, site)"),
    ("dispatch.count", "数量", "Count"),
    ("batches.change_priority", "调优先级", "Change priority"),
    ("batches.delete", "删除", "Delete"),
    ("batches.numbers_link", "查看号码", "View numbers"),
    ("batches.one_click", "一键启停", "One-click start / pause"),
    ("batches.start_all", "一键启动", "Start"),
    ("batches.pause_all", "一键暂停", "Pause"),
    ("batches.all_projects", "全部项目", "All projects"),
    ("batches.description", "描述", "Description"),
    ("batches.ended", "已结束", "Ended"),
    ("projects.kind_multi", "多选", "Multiple choice"),
    ("projects.kind_number", "数字", "Number"),
    ("projects.kind_date", "日期", "Date"),
    ("projects.kind_choice", "单项选择", "Single choice"),
    ("projects.field_options", "选项（一个选项内容为一行）", "Options (one per line)"),
    ("projects.fields_hint", "空行将被忽略。变量名称只用小写字母、数字和下划线，以字母开头。", "Empty rows are ignored. Variable names use lower-case letters, digits and '_', starting with a letter."),
    ("projects.manage", "项目管理", "Manage"),
    ("projects.system_field", "系统字段", "System field"),
    ("projects.custom_field", "自定义字段", "Custom field"),
    ("projects.phone", "电话号码", "Phone"),
    ("projects.yes", "是", "yes"),
    ("projects.no", "否", "no"),
    ("files.title", "文件管理", "Files"),
    ("files.upload", "上传", "Upload"),
    ("files.upload_hint", "导入的数据文件格式仅支持xlsx", "Only .xlsx files can be imported"),
    ("files.import", "导入", "Import"),
    ("files.file_name", "文件名", "File name"),
    ("files.project", "子项目", "Sub-project"),
    ("files.source", "来源", "Source"),
    ("files.source_upload", "本地上传", "Local upload"),
    ("files.source_system", "系统生成", "System generated"),
    ("files.status", "状态", "Status"),
    ("files.status_unprocessed", "未处理", "Unprocessed"),
    ("files.status_done", "完成", "Done"),
    ("files.time", "导入时间", "Imported"),
    ("files.creator", "创建人", "Creator"),
    ("files.dispatch", "数据下发", "Dispatch"),
    ("files.report", "导入结果", "Import report"),
    ("files.n_rows", "数据行数", "Rows"),
    ("files.n_good", "成功导入", "Imported"),
    ("files.n_bad", "错误行", "Bad rows"),
    ("files.n_filtered", "过滤掉的行", "Rows filtered out"),
    ("files.filtered_download", "下载过滤明细", "Download filtered rows"),
    ("files.phone_column", "号码列", "Phone column"),
    ("files.sheet", "读取的工作表", "Sheet read"),
    ("files.warnings", "已修改的内容", "Values changed"),
    ("files.unmatched", "未匹配的客户资料字段（内容留空）", "Customer fields no column matched (left empty)"),
    ("files.row", "行号", "Row"),
    ("files.column", "列", "Column"),
    ("files.reason", "原因", "Reason"),
    ("dispatch.title", "数据下发", "Dispatch"),
    ("dispatch.shared", "共享批次：所选职场同时外呼该文件的全部数据", "Shared batch: the chosen sites dial all of this file's rows"),
    ("dispatch.name", "批次名称", "Batch name"),
    ("dispatch.priority", "优先级", "Priority"),
    ("dispatch.priority_hint", "0~100，数字越大优先级越高；1 为暂停", "0-100, higher dials first; 1 pauses"),
    ("dispatch.sites", "参与职场", "Sites"),
    ("dispatch.submit", "导入生成下发任务", "Create and dispatch"),
    ("dispatch.done", "下发成功", "Dispatched"),
    ("batches.title", "下发任务管理", "Batches"),
    ("batches.batch", "批次", "Batch"),
    ("batches.numbers", "号码总数", "Numbers"),
    ("batches.dialed", "呼出量", "Dialed"),
    ("batches.connected", "接通量 (率)", "Connected (rate)"),
    ("batches.not_connected", "未接量 (率)", "Not connected (rate)"),
    ("batches.agent_missed", "坐席未接量 (率)", "Agent missed (rate)"),
    ("batches.abandoned", "放弃量 (率)", "Abandoned (rate)"),
    ("batches.agent_connected", "坐席接通量 (率)", "Agent connected (rate)"),
    ("batches.account", "下发账号", "Dispatched by"),
    ("batches.site", "下发职场", "Site"),
    ("batches.priority", "优先级", "Priority"),
    ("batches.records", "业务记录", "Business records"),
    ("records.title", "业务记录", "Business records"),
    ("records.attempt", "通话编号", "Call"),
    ("records.phone", "电话号码", "Phone"),
    ("records.agent", "提交人", "Submitted by"),
    ("records.saved_at", "提交时间", "Submitted at"),
];

/// Looks up UI strings for one language.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    /// The text for `key`; an unknown key shows itself, which the catalogue test forbids.
    pub fn t(&self, key: &str) -> &'static str {
        for (k, zh, en) in CATALOGUE {
            if *k == key {
                return match self.lang {
                    Lang::Zh => zh,
                    Lang::En => en,
                };
            }
        }
        tracing::warn!(key, "missing UI string");
        "??"
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

    /// Every `tr.t("…")` in a template names a catalogue entry, and keys are unique.
    #[test]
    fn templates_use_only_known_keys() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut n_uses = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("tr.t(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                assert!(CATALOGUE.iter().any(|(k, _, _)| *k == key), "{}: unknown key {key:?}", path.display());
                n_uses += 1;
            }
        }
        assert!(n_uses > 50, "only {n_uses} catalogue uses found");
        for (idx, (key, _, _)) in CATALOGUE.iter().enumerate() {
            assert!(!CATALOGUE[..idx].iter().any(|(k, _, _)| k == key), "duplicate key {key}");
        }
    }
}

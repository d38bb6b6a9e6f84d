//! The words of the edit-after-create pages (项目编辑, 查看号码, 账号 / 角色编辑), in the
//! console's scheme: one typed struct, one static per language, each word next to its
//! translation. Kept apart from `i18n` so these pages' words travel with them.

use super::Tr;

macro_rules! words {
    ($(($field:ident, $zh:literal, $en:literal),)*) => {
        /// Every word of the edit pages, one field per word.
        #[derive(Debug)]
        pub struct EditText {
            $(pub $field: &'static str,)*
        }

        static ZH: EditText = EditText { $($field: $zh,)* };
        static EN: EditText = EditText { $($field: $en,)* };

        #[cfg(test)]
        const ROWS: &[(&str, &str, &str)] = &[$((stringify!($field), $zh, $en),)*];
    };
}

words! {
    (edit_link, "编辑", "Edit"),
    (edit_title, "编辑子项目", "Edit sub-project"),
    (edit_basic, "基本信息", "Basics"),
    (edit_name, "子项目名称", "Sub-project name"),
    (edit_rename_note, "改名后，已有通话记录仍显示原项目名称。", "After a rename, existing call records keep showing the old name."),
    (edit_customer_fields, "客户资料设置", "Customer fields"),
    (edit_record_fields, "业务记录设置", "Business-record fields"),
    (edit_popup, "详情页设置", "Popup page"),
    (edit_script, "话术", "Script"),
    (edit_hide, "隐藏电话号码中间四位", "Hide the middle four digits"),
    (edit_popup_note, "每个字段在弹屏中的默认值、必填、只读、隐藏在字段表中设置；保存后随新版本下发到各参与职场。", "Each field's default, required, read-only and hidden flags are set in the field tables; saving sends a new version to every participating site."),
    (edit_col_title, "字段标题", "Title"),
    (edit_col_kind, "字段类型", "Type"),
    (edit_col_options, "选项（每行一个）", "Options (one per line)"),
    (edit_col_default, "默认", "Default"),
    (edit_col_required, "必填", "Required"),
    (edit_col_read_only, "只读", "Read-only"),
    (edit_col_hidden, "隐藏", "Hidden"),
    (edit_col_filterable, "筛选条件", "Filter"),
    (edit_col_listed, "列表显示", "In lists"),
    (edit_col_order, "排序", "Order"),
    (edit_up, "上移", "Up"),
    (edit_down, "下移", "Down"),
    (edit_delete, "删除", "Delete"),
    (edit_add_field, "新增字段", "Add a field"),
    (edit_kind_text, "文本", "Text"),
    (edit_kind_single, "单选", "Single choice"),
    (edit_kind_multiple, "多选", "Multiple choice"),
    (edit_kind_number, "数字", "Number"),
    (edit_kind_date, "日期", "Date"),
    (edit_save, "保存并下发", "Save and send to sites"),
    (edit_saved, "已保存，新版本已下发到职场", "Saved; the new version was sent to the sites"),
    (edit_delete_rows_warning, "该项目已有 {n} 行客户资料，删除此字段后这些资料中的该字段将不再显示。确定删除？", "This project has {n} customer rows; after deleting this field its values in them are no longer shown. Delete?"),
    (edit_delete_records_warning, "该项目已有 {n} 条业务记录，删除此字段后这些记录中的该字段将不再显示。确定删除？", "This project has {n} business records; after deleting this field its values in them are no longer shown. Delete?"),
    (edit_usage, "现有数据", "Data so far"),
    (edit_usage_rows, "行客户资料", "customer rows"),
    (edit_usage_records, "条业务记录", "business records"),
    (edit_archive, "归档", "Archive"),
    (edit_unarchive, "取消归档", "Bring back"),
    (edit_archived, "已归档", "Archived"),
    (edit_archive_note, "归档后项目移出工作列表，数据、批次和报表保留，可随时取消归档。", "An archived project leaves the working list; its data, batches and reports stay, and it can be brought back at any time."),
    (edit_archive_confirm, "确定归档该子项目？", "Archive this sub-project?"),
    (edit_back, "返回子项目", "Back to the sub-project"),
    (numbers_title, "查看号码", "Numbers"),
    (numbers_search, "号码搜索", "Search a number"),
    (numbers_search_masked_hint, "号码已隐藏中间四位：可按完整号码或后四位搜索", "Numbers hide their middle four digits: search by the whole number or its last four"),
    (numbers_search_hint, "可输入号码的任意部分", "Any part of the number"),
    (numbers_search_button, "搜索", "Search"),
    (numbers_row, "序号", "Row"),
    (numbers_phone, "号码", "Number"),
    (numbers_attempts, "呼叫次数", "Dials"),
    (numbers_last, "最近结果", "Last outcome"),
    (numbers_never, "未呼", "Not dialed"),
    (numbers_none, "没有符合条件的号码。换一个搜索词，或清空搜索查看全部。", "No number matches. Try another search, or clear it to see all."),
    (numbers_next, "下一页", "Next page"),
    (numbers_first, "第一页", "First page"),
    (numbers_batch, "批次", "Batch"),
    (account_edit_title, "编辑账号", "Edit account"),
    (account_status, "状态", "Status"),
    (account_active, "正常", "Active"),
    (account_disabled, "已停用", "Disabled"),
    (account_disable, "停用账号", "Disable account"),
    (account_enable, "启用账号", "Enable account"),
    (account_disable_confirm, "停用后该账号立即退出且不能再登录。确定停用？", "The account is logged out at once and cannot log in. Disable it?"),
    (account_reset, "重置密码", "Reset password"),
    (account_reset_confirm, "重置后旧密码立即失效。确定重置？", "The old password stops working at once. Reset it?"),
    (account_new_password, "新密码（只显示这一次，请转交账号使用人）：", "New password (shown only once; pass it on to the account's user):"),
    (account_save, "保存", "Save"),
    (account_saved, "已保存", "Saved"),
    (account_admin_note, "管理员账号拥有全部权限，不能在此修改或停用。", "Admin accounts hold every module and cannot be edited or disabled here."),
    (role_edit_title, "编辑角色", "Edit role"),
    (accounts_back, "返回账号权限管理", "Back to accounts"),
    (dispatch_left, "文件共有可下发号码 {total} 行，独占批次已分配 {asked} 行，剩余 {n} 行留在文件中", "The file has {total} rows to dispatch; the exclusive batches take {asked}, {n} stay in the file"),
    (dispatch_auto_note, "自动分配：按归属设置的规则把号码分到职场和坐席，未匹配规则的号码留在文件中。", "Auto: rows go to sites and agents by the attribution rules; rows no rule matches stay in the file."),
    (add_row, "添加一行", "Add a row"),
    (list_from, "开始日期", "From"),
    (list_to, "结束日期", "To"),
    (list_filter, "筛选", "Filter"),
    (dispatch_to_batches, "查看下发任务管理", "Open the batches"),
    (pool_link, "号码池", "Pool"),
    (pool_title, "共享批次号码池", "Shared batch pool"),
    (pool_total, "号码总数", "Numbers"),
    (pool_pooled, "池中未租出", "In the pool"),
    (pool_leased, "已租给职场", "Leased to sites"),
    (pool_dialed, "已外呼", "Dialed"),
    (pool_returned, "已交回", "Returned"),
    (pool_twice, "重复外呼", "Dialed twice"),
    (pool_site, "职场", "Site"),
    (pool_link_state, "连接", "Link"),
    (pool_online, "在线", "Online"),
    (pool_offline, "离线", "Offline"),
    (pool_leases, "未结租约（号码数 · 租出时长）", "Open leases (numbers · age)"),
    (pool_no_leases, "无", "None"),
    (pool_recalling, "回收中", "Being recovered"),
    (pool_recalled, "已回收，不再租出", "Recovered, no more leases"),
    (pool_away, "职场离线且持有号码", "Away with numbers"),
    (pool_actions, "操作", "Actions"),
    (pool_recover, "批次数据回收", "Recover the batch"),
    (pool_recover_lease, "回收", "Recover"),
    (pool_confirm_recover, "回收该职场未外呼的号码？职场先停止外呼这些号码，交回后它们回到号码池，可再下发给其他职场。", "Take back this site's undialed numbers? The site stops dialing them first; once it hands them back they return to the pool for other sites."),
    (batch_confirm_recover, "回收该批次未外呼的号码？职场先停止外呼这些号码，并报告交回了哪些；已外呼的不受影响。交回后可在号码池页面把剩余号码再次下发。", "Take back this batch's undialed numbers? The site stops dialing them first and reports which it hands back; numbers already dialed stay. Once back, the pool page dispatches the remainder again."),
    (pool_redispatch, "剩余号码再次下发", "Dispatch the remainder again"),
    (pool_confirm_redispatch, "把号码池中未外呼的号码作为新批次下发到所选职场？每个号码仍只外呼一次。", "Dispatch the pool's undialed numbers as a new batch of the chosen site? Each number is still dialed once."),
    (pool_reclaim, "强制收回", "Force back"),
    (pool_confirm_reclaim, "强制收回该职场的全部租约？职场离线期间可能已经外呼过其中的号码：收回后这些号码可能被重复外呼。", "Force back all of this site's leases? The site may have dialed some of these numbers while offline: once forced back, those numbers may be dialed twice."),
    (pool_settings, "租约设置", "Lease settings"),
    (pool_save, "保存", "Save"),
    (pool_f_hours, "每次租出（小时外呼量）", "Lease size (hours of dialing)"),
    (pool_f_lifetime, "租约有效期（秒）", "Lease lifetime (seconds)"),
    (pool_f_block, "每次最少租出号码数", "Smallest lease (numbers)"),
    (pool_note, "共享批次的号码由各职场共同外呼，每个号码只外呼一次：总控按职场近期外呼速度分块租出，职场离线也可继续外呼已租到的号码。", "A shared batch's numbers are dialed once across its sites: HQ leases them in blocks sized to each site's recent rate, and a site keeps dialing what it holds while offline."),
    (pool_age_hours, "小时", "h"),
    (pool_age_minutes, "分钟", "min"),
}

impl Tr {
    /// The edit pages' words in this language.
    pub fn edit(&self) -> &'static EditText {
        if self.is_en() { &EN } else { &ZH }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_cjk(text: &str) -> bool {
        text.chars().any(|c| matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}'))
    }

    /// Both languages have every word, Chinese in Chinese and English in English.
    #[test]
    fn both_languages_are_complete_and_distinct() {
        for (field, zh, en) in ROWS {
            assert!(has_cjk(zh), "{field}: Chinese text {zh:?}");
            assert!(!has_cjk(en) && !en.trim().is_empty(), "{field}: English text {en:?}");
        }
    }
}

//! The console's app shell: the side navigation (the manual's module names, grouped as its
//! navigation bar is) and the breadcrumbs every page shows through `base.html`.
//!
//! The navigation shows a page only when the signed-in role may open it, and it decides that
//! with the very rule the router enforces: each item's path is looked up in the route table
//! ([`super::guard::routes`]) and its [`Access`] asked about the caller's scope. A module the
//! role lacks is therefore neither shown nor reachable, and the two cannot drift apart.
//!
//! The guard computes the caller's menu once per request and runs the handler inside a task
//! local ([`PAGE`]) holding it, so `base.html` reads it through [`page`] instead of every one
//! of the thirty view structs carrying it. A page rendered outside a guarded request (the
//! login page) gets an empty menu, never a fuller one.

use std::sync::OnceLock;

use axum::http::Method;

use super::guard::Access;
use super::i18n::Text;
use super::Tr;
use crate::store::Scope;

/// One link of the side navigation: its path, and its name among the console's words.
struct Item {
    path: &'static str,
    label: fn(&'static Text) -> &'static str,
}

/// A group of links under a heading, as the manual's navigation bar groups them.
struct Group {
    zh: &'static str,
    en: &'static str,
    items: &'static [Item],
}

const fn item(path: &'static str, label: fn(&'static Text) -> &'static str) -> Item {
    Item { path, label }
}

/// The console's modules in the manual's words (综合管理后台 and the modules beside it).
const MENU: &[Group] = &[
    Group {
        zh: "CTI 管理",
        en: "CTI",
        items: &[
            item("/", |t| t.nav_home),
            item("/lists", |t| t.nav_lists),
            item("/voice", |t| t.nav_voice),
        ],
    },
    Group {
        zh: "综合管理后台",
        en: "Back office",
        items: &[
            item("/projects", |t| t.nav_projects),
            item("/files", |t| t.nav_files),
            item("/batches", |t| t.nav_batches),
            item("/data/customers", |t| t.nav_customer_data),
            item("/data/records", |t| t.nav_business_data),
            item("/reports", |t| t.nav_reports),
        ],
    },
    Group {
        zh: "职场",
        en: "Sites",
        items: &[
            item("/sites", |t| t.nav_sites),
            item("/monitor", |t| t.nav_monitor),
            item("/calls", |t| t.nav_calls),
        ],
    },
    Group {
        zh: "系统",
        en: "System",
        items: &[item("/announcements", |t| t.nav_notices), item("/accounts", |t| t.nav_accounts)],
    },
];

/// What the base template needs of the request: which menu items the caller may open and
/// where the page sits in the menu.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Indexes into [`MENU`] (group, item) the caller may open, in menu order.
    open: Vec<(usize, usize)>,
    /// The menu item the request's path belongs to.
    here: Option<(usize, usize)>,
}

tokio::task_local! {
    /// The menu of the request being handled (set by the guard around the handler).
    pub static PAGE: Page;
}

/// The access rule of each menu item's page, from the route table (built once).
fn rules() -> &'static Vec<Option<Access>> {
    static RULES: OnceLock<Vec<Option<Access>>> = OnceLock::new();
    RULES.get_or_init(|| {
        let table = super::guard::routes();
        MENU.iter()
            .flat_map(|group| group.items)
            .map(|item| table.iter().find(|r| r.method == Method::GET && r.path == item.path).map(|r| r.access))
            .collect()
    })
}

impl Page {
    /// The menu of a caller with `scope` on the page at `path`.
    pub fn new(scope: &Scope, path: &str) -> Page {
        let rules = rules();
        let mut open = Vec::new();
        let mut flat = 0;
        for (g, group) in MENU.iter().enumerate() {
            for i in 0..group.items.len() {
                // An item missing from the route table is a bug: hide it rather than show a 404.
                if rules[flat].is_some_and(|rule| rule.allows(scope)) {
                    open.push((g, i));
                }
                flat += 1;
            }
        }
        let here = MENU
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group.items.iter().enumerate().map(move |(i, item)| ((g, i), item.path)))
            .filter(|(_, p)| path == *p || (*p != "/" && path.starts_with(p) && path[p.len()..].starts_with('/')))
            .max_by_key(|(_, p)| p.len())
            .map(|(at, _)| at);
        Page { open, here }
    }
}

/// One group of the side navigation as the template shows it.
pub struct NavGroup {
    pub label: &'static str,
    pub items: Vec<NavItem>,
}

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

/// The breadcrumb before the page's own title: the group and the module the page belongs to.
pub struct Crumbs {
    pub group: &'static str,
    pub href: &'static str,
    pub label: &'static str,
}

/// The current request's menu (empty outside a guarded request).
fn current() -> Page {
    PAGE.try_with(Page::clone).unwrap_or_default()
}

/// The side navigation of the current request in `tr`'s language; groups with nothing the
/// caller may open are left out.
pub fn nav(tr: &Tr) -> Vec<NavGroup> {
    let page = current();
    let mut groups: Vec<NavGroup> = Vec::new();
    for &(g, i) in &page.open {
        let group = &MENU[g];
        let item = &group.items[i];
        let label = if tr.is_en() { group.en } else { group.zh };
        if groups.last().is_none_or(|last| last.label != label) {
            groups.push(NavGroup { label, items: Vec::new() });
        }
        if let Some(last) = groups.last_mut() {
            last.items.push(NavItem {
                href: item.path,
                label: (item.label)(tr.text()),
                active: page.here == Some((g, i)),
            });
        }
    }
    groups
}

/// Where the current page sits in the menu, for the breadcrumbs.
pub fn crumbs(tr: &Tr) -> Option<Crumbs> {
    let (g, i) = current().here?;
    let (group, item) = (&MENU[g], &MENU[g].items[i]);
    let group = if tr.is_en() { group.en } else { group.zh };
    Some(Crumbs { group, href: item.path, label: (item.label)(tr.text()) })
}

/// A time as both consoles show it, to the minute: `2026-12-07 15:36` (China time, as
/// [`super::format_time`], which keeps the seconds for exports and file names).
pub fn minute(unix: i64) -> String {
    let full = super::format_time(unix);
    // "YYYY-MM-DD HH:MM:SS" is ASCII; anything else (an out-of-range time) is shown whole.
    if full.len() == 19 { full[..16].to_string() } else { full }
}

/// The shell's own words: the questions of the confirmations and the names of the actions
/// they guard, in the page's language.
pub struct Words {
    pub confirm_priority_zero: &'static str,
    pub confirm_delete_batch: &'static str,
    pub confirm_delete_file: &'static str,
    pub delete: &'static str,
    pub pause: &'static str,
    pub tab_fields: &'static str,
    pub empty_batches: &'static str,
    pub empty_files: &'static str,
    pub empty_projects: &'static str,
    pub empty_records: &'static str,
    pub empty_roles: &'static str,
    pub empty_accounts: &'static str,
    pub empty_across: &'static str,
    pub empty_announcements: &'static str,
    pub empty_list: &'static str,
    pub empty_report_projects: &'static str,
    pub empty_sites: &'static str,
    pub empty_voice: &'static str,
    pub empty_record_fields: &'static str,
    pub empty_admins: &'static str,
}

const WORDS_ZH: Words = Words {
    confirm_priority_zero: "优先级 0 会永久结束这个批次：职场不再拨打其中的号码，之后也不能再恢复。确定结束？",
    confirm_delete_batch: "删除这个批次？职场会停止拨打并移除其中未拨的号码，删除后不能恢复。",
    confirm_delete_file: "删除这个文件？已下发的批次不受影响，但文件不能再下发或下载，删除后不能恢复。",
    delete: "删除",
    pause: "暂停",
    tab_fields: "字段设置",
    empty_batches: "还没有批次。在「文件管理」导入名单后，点击「数据下发」把号码下发到职场。",
    empty_files: "还没有文件。在子项目页面的「文件管理」标签上传 .xlsx 名单。",
    empty_projects: "还没有子项目。先在上方添加项目分类，再在下方「创建项目」。",
    empty_records: "这个批次还没有业务记录：坐席在职场保存的记录会同步到这里。",
    empty_roles: "还没有角色：在下方填写角色名称、勾选模块权限后创建。",
    empty_accounts: "还没有子账号：在下方填写账号、密码并选择角色后创建。",
    empty_across: "没有符合条件的数据：换个子项目、职场或时间范围再查询。",
    empty_announcements: "还没有公告：在上方填写标题和内容后发布，职场会在页面顶部看到。",
    empty_list: "名单为空：在上方粘贴号码添加，或导入 .xlsx 名单。",
    empty_report_projects: "还没有子项目：在「职场数据管理」创建子项目后，报表会列在这里。",
    empty_sites: "还没有职场：在上方填写名称创建职场，再用注册码登记盒子。",
    empty_voice: "语音库为空：在上方上传等待音乐或提示音，职场会自动同步。",
    empty_record_fields: "还没有业务记录字段：点击「编辑子项目」添加坐席要填写的字段。",
    empty_admins: "没有可设置的项目管理员：先在「账号权限管理」创建子账号。",
};

const WORDS_EN: Words = Words {
    confirm_priority_zero: "Priority 0 ends this batch for ever: its sites stop dialing its numbers and it cannot be resumed. End it?",
    confirm_delete_batch: "Delete this batch? Its site stops dialing it and drops its undialed numbers; this cannot be undone.",
    confirm_delete_file: "Delete this file? Batches already dispatched stay, but the file can no longer be dispatched or downloaded; this cannot be undone.",
    delete: "Delete",
    pause: "Pause",
    tab_fields: "Fields",
    empty_batches: "No batches yet. Import a call list under Files, then use Dispatch to send its numbers to sites.",
    empty_files: "No files yet. Upload an .xlsx call list on a project's Files tab.",
    empty_projects: "No projects yet. Add a category above, then create a project below.",
    empty_records: "No business records in this batch yet: records agents save at the site arrive here.",
    empty_roles: "No roles yet: name one below and tick its modules.",
    empty_accounts: "No sub-accounts yet: create one below with a username, a password and a role.",
    empty_across: "Nothing matches: try another sub-project, site or time range.",
    empty_announcements: "No announcements yet: post one above; sites see it at the top of their pages.",
    empty_list: "The list is empty: paste numbers above to add them, or import an .xlsx list.",
    empty_report_projects: "No sub-projects yet: create one under Site data and its reports are listed here.",
    empty_sites: "No sites yet: create one above, then enroll its box with the enrollment code.",
    empty_voice: "The voice library is empty: upload hold music or a prompt above; sites sync it by themselves.",
    empty_record_fields: "No business-record fields yet: add the fields agents fill in with Edit sub-project.",
    empty_admins: "No account can be a project admin yet: create a sub-account under Accounts first.",
};

/// The shell's words in `tr`'s language (templates: `crate::web::shell::words(tr)`).
pub fn words(tr: &Tr) -> &'static Words {
    if tr.is_en() { &WORDS_EN } else { &WORDS_ZH }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::Account;

    /// Every menu item is a page of the router: a renamed route must not leave a dead link.
    #[test]
    fn every_item_is_a_routed_page() {
        let missing: Vec<_> =
            MENU.iter().flat_map(|g| g.items).zip(rules()).filter(|(_, r)| r.is_none()).map(|(i, _)| i.path).collect();
        assert!(missing.is_empty(), "menu items without a GET route: {missing:?}");
    }

    /// An admin sees every item, and a page under an item's path marks that item.
    #[test]
    fn admin_sees_all_and_the_page_marks_its_item() {
        let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
        let page = Page::new(&admin, "/projects/7");
        assert_eq!(page.open.len(), MENU.iter().map(|g| g.items.len()).sum::<usize>());
        let here = page.here.map(|(g, i)| MENU[g].items[i].path);
        assert_eq!(here, Some("/projects"));
        // "/" matches only itself, not every path.
        assert_eq!(Page::new(&admin, "/nowhere").here, None);
    }

    #[test]
    fn times_show_to_the_minute_in_china_time() {
        assert_eq!(minute(1_795_523_415), "2026-11-24 20:30");
        assert_eq!(minute(0), "1970-01-01 08:00");
    }
}

//! The site UI's app shell: the side navigation (the manual's 职场管理员 and 坐席 menus) and
//! the breadcrumbs every page shows through `base.html`.
//!
//! The navigation shows a page only when the signed-in account may open it, decided by the
//! very rule the router enforces: each item's path is looked up in the route table
//! ([`super::routes::route_table`]) and its guard's [`Access`] asked about the account's
//! kind and modules. A module the role lacks is neither shown nor reachable.
//!
//! The account's kind and modules are read once per request, by the guard that admits it
//! ([`super::guard`] calls [`note`]); [`scope`] wraps every request in a task-local slot for
//! them, so `base.html` reads them through [`menu`] instead of every page's handler passing
//! them on. A page rendered without a signed-in guard (the login page) gets no menu.

use std::cell::RefCell;
use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::guard::Access;
use super::i18n::{Text, WorkText};
use super::page::Nav;
use crate::store::{Module, Role};

tokio::task_local! {
    /// The account kind and modules of the request being handled, once a guard read them.
    static SIGNED: RefCell<Option<(Role, Vec<Module>)>>;
}

/// Middleware: gives the request its (empty) slot for [`note`].
pub(super) async fn scope(request: Request, next: Next) -> Response {
    SIGNED.scope(RefCell::new(None), next.run(request)).await
}

/// Records the signed-in account's kind and modules for the page's menu.
pub(super) fn note(role: Role, modules: &[Module]) {
    // Outside `scope` (a unit test calling a guard directly) there is no menu to fill.
    let _ = SIGNED.try_with(|slot| *slot.borrow_mut() = Some((role, modules.to_vec())));
}

/// An item's name: from the site's words or the newer work words.
#[derive(Clone, Copy)]
enum Label {
    T(fn(&'static Text) -> &'static str),
    W(fn(&'static WorkText) -> &'static str),
    D(fn(&'static super::desk::words::DeskWords) -> &'static str),
}

/// One link: the `Nav::active` key of its pages, its path and its name.
struct Item {
    key: &'static str,
    path: &'static str,
    label: Label,
}

struct Group {
    zh: &'static str,
    en: &'static str,
    items: &'static [Item],
}

const fn t(key: &'static str, path: &'static str, label: fn(&'static Text) -> &'static str) -> Item {
    Item { key, path, label: Label::T(label) }
}

const fn d(key: &'static str, path: &'static str, label: fn(&'static super::desk::words::DeskWords) -> &'static str) -> Item {
    Item { key, path, label: Label::D(label) }
}

const fn w(key: &'static str, path: &'static str, label: fn(&'static WorkText) -> &'static str) -> Item {
    Item { key, path, label: Label::W(label) }
}

/// The site admin's menu (职场管理) and the agent's (呼叫中心坐席), grouped as the manual's.
const MENU: &[Group] = &[
    Group {
        zh: "项目管理",
        en: "Projects",
        items: &[
            t("tasks", "/admin/tasks", |t| t.nav_tasks),
            w("attribution", "/admin/attribution", |w| w.nav_attribution),
            w("data", "/admin/data", |w| w.nav_data),
            w("reports", "/admin/reports", |w| w.nav_reports),
            d("callback-settings", "/admin/callback-settings", |d| d.grace_title),
        ],
    },
    Group {
        zh: "话务管理",
        en: "Telephony",
        items: &[t("extensions", "/admin/extensions", |t| t.nav_extensions), t("status", "/admin/status", |t| t.nav_status)],
    },
    Group {
        zh: "账号权限",
        en: "Accounts",
        items: &[t("agents", "/admin/agents", |t| t.nav_agents), w("roles", "/admin/roles", |w| w.nav_roles)],
    },
    Group {
        zh: "呼叫中心坐席",
        en: "Agent desk",
        items: &[
            w("desk", "/desk", |w| w.nav_desk),
            w("settings", "/desk/settings", |w| w.nav_settings),
            w("records", "/desk/records", |w| w.nav_records),
            w("callbacks", "/desk/callbacks", |w| w.nav_callbacks),
            w("customers", "/desk/customers", |w| w.nav_customers),
        ],
    },
];

/// The guard of each item's page, from the route table (built once).
fn rules() -> &'static Vec<Option<Access>> {
    static RULES: OnceLock<Vec<Option<Access>>> = OnceLock::new();
    RULES.get_or_init(|| {
        let table = super::routes::route_table();
        MENU.iter()
            .flat_map(|group| group.items)
            .map(|item| table.iter().find(|r| r.method == "GET" && r.path == item.path).map(|r| r.access))
            .collect()
    })
}

/// One group of the side navigation as the template shows it.
pub struct MenuGroup {
    pub label: &'static str,
    pub items: Vec<MenuItem>,
}

pub struct MenuItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

/// The breadcrumb before the page's own title: the group and the module of the page.
pub struct Crumbs {
    pub group: &'static str,
    pub href: &'static str,
    pub label: &'static str,
}

fn label(item: &Item, t: &'static Text, w: &'static WorkText) -> &'static str {
    match item.label {
        Label::T(f) => f(t),
        Label::W(f) => f(w),
        Label::D(f) => f(if t.html_lang == "en" { &super::desk::words::DESK_EN } else { &super::desk::words::DESK_ZH }),
    }
}

/// The items an account of `role` holding `modules` may open, as (group, item) indexes.
fn open(role: Role, modules: &[Module]) -> Vec<(usize, usize)> {
    let rules = rules();
    let mut open = Vec::new();
    let mut flat = 0;
    for (g, group) in MENU.iter().enumerate() {
        for i in 0..group.items.len() {
            if rules[flat].is_some_and(|rule| rule.admits(Some(role), modules)) {
                open.push((g, i));
            }
            flat += 1;
        }
    }
    open
}

/// The side navigation of the current request (empty before a guard admitted an account).
pub(super) fn menu(t: &'static Text, nav: &Nav) -> Vec<MenuGroup> {
    let Ok(Some((role, modules))) = SIGNED.try_with(|slot| slot.borrow().clone()) else { return Vec::new() };
    let en = t.html_lang == "en";
    let mut groups: Vec<MenuGroup> = Vec::new();
    for (g, i) in open(role, &modules) {
        let (group, item) = (&MENU[g], &MENU[g].items[i]);
        let heading = if en { group.en } else { group.zh };
        if groups.last().is_none_or(|last| last.label != heading) {
            groups.push(MenuGroup { label: heading, items: Vec::new() });
        }
        if let Some(last) = groups.last_mut() {
            last.items.push(MenuItem { href: item.path, label: label(item, t, nav.w), active: item.key == nav.active });
        }
    }
    groups
}

/// Where the page sits in the menu (by its `Nav::active` key), for the breadcrumbs.
pub(super) fn crumbs(t: &'static Text, nav: &Nav) -> Option<Crumbs> {
    let group = MENU.iter().find(|g| g.items.iter().any(|i| i.key == nav.active))?;
    let item = group.items.iter().find(|i| i.key == nav.active)?;
    let heading = if t.html_lang == "en" { group.en } else { group.zh };
    Some(Crumbs { group: heading, href: item.path, label: label(item, t, nav.w) })
}

/// The shell's own words: the questions of the confirmations, in the page's language.
pub struct Words {
    pub confirm_stop_task: &'static str,
    pub stop: &'static str,
}

const WORDS_ZH: Words =
    Words { confirm_stop_task: "停止这个任务？本职场将不再拨打它的号码，直到再次启动。", stop: "停止" };

const WORDS_EN: Words = Words {
    confirm_stop_task: "Stop this task? This site stops dialing its numbers until it is started again.",
    stop: "Stop",
};

/// What each list says when it has no row: what it will hold, and what to do.
pub struct EmptyWords {
    pub agents: &'static str,
    pub extensions: &'static str,
    pub rules: &'static str,
    pub allocate: &'static str,
    pub roles: &'static str,
    pub accounts: &'static str,
    pub status_agents: &'static str,
    pub status_trunks: &'static str,
    pub status_calls: &'static str,
    pub status_poor_calls: &'static str,
    pub customers: &'static str,
    pub business: &'static str,
    pub hq_lists: &'static str,
    pub callbacks: &'static str,
    pub desk_projects: &'static str,
    pub desk_records: &'static str,
    pub desk_callbacks: &'static str,
    pub desk_customers: &'static str,
    pub my_numbers: &'static str,
}

const EMPTY_ZH: EmptyWords = EmptyWords {
    agents: "还没有坐席账号：在上方填写账号、姓名和密码，选择分机后添加。",
    extensions: "还没有分机：在上方填写分机号和密码添加，每个坐席账号都要绑定一个分机。",
    rules: "还没有归属规则：在下方选择字段、填写值并指定坐席后添加。",
    allocate: "还没有可分配的批次：总部下发的批次到达本职场后会出现在这里。",
    roles: "还没有角色：在上方填写名称、勾选模块后添加。",
    accounts: "还没有其他账号：在“坐席管理”中添加坐席，或在上方添加员工账号。",
    status_agents: "没有坐席签入：坐席在工作台签入后会显示在这里。",
    status_trunks: "没有配置中继线路：请在盒子的配置文件中添加中继。",
    status_calls: "当前没有通话：任务启动后，正在进行的通话会显示在这里。",
    status_poor_calls: "最近的通话质量良好：MOS 评分低于 3.6 或丢包率高于 3% 的通话会显示在这里，请检查相应中继或坐席网络。",
    customers: "所选项目和日期内没有客户资料：总部下发批次后名单会出现在这里，也可换个日期查看。",
    business: "没有符合条件的业务记录：坐席通话后保存的记录会出现在这里，可调整筛选条件或日期。",
    hq_lists: "总部黑白名单为空：总部添加的号码会同步到这里。",
    callbacks: "还没有回访安排：可在上方为坐席添加回访。",
    desk_projects: "您还没有参与的项目：管理员把您加入任务后会出现在这里。",
    desk_records: "没有符合条件的通话记录：您的通话结束后会出现在这里，可调整筛选条件或日期。",
    desk_callbacks: "还没有回访安排：在通话弹屏保存记录时可以同时安排回访。",
    desk_customers: "没有您的客户资料：分配给您的名单会出现在这里，也可换个日期查看。",
    my_numbers: "您没有未呼的号码：管理员分配给您的号码会出现在这里。",
};

const EMPTY_EN: EmptyWords = EmptyWords {
    agents: "No agent accounts yet: fill in the form above and pick an extension to add one.",
    extensions: "No extensions yet: add one above; every agent account needs an extension.",
    rules: "No attribution rules yet: choose a field, type its values and pick an agent below.",
    allocate: "No batches to allocate yet: batches appear here when HQ's dispatch reaches this site.",
    roles: "No roles yet: name one above and tick its modules.",
    accounts: "No other accounts yet: add agents under Agents, or a staff account above.",
    status_agents: "No agent is signed in: agents appear here once they sign in on the desk.",
    status_trunks: "No trunk is configured: add one in the box's configuration file.",
    status_calls: "No calls right now: calls in progress appear here once a task runs.",
    status_poor_calls: "Recent calls sounded fine: a call under MOS 3.6 or over 3 % packet loss appears here; then check its trunk or the agent's network.",
    customers: "No customers for this project and these dates: they appear when HQ dispatches a batch; try other dates.",
    business: "No business records match: records agents save after calls appear here; try other filters or dates.",
    hq_lists: "HQ's black and white lists are empty: numbers HQ adds are synced here.",
    callbacks: "No callbacks yet: add one for an agent above.",
    desk_projects: "You are in no project yet: projects appear here once an admin adds you to a task.",
    desk_records: "No calls match: your calls appear here once they end; try other filters or dates.",
    desk_callbacks: "No callbacks yet: schedule one from the call popup when you save a record.",
    desk_customers: "No customers of yours: numbers assigned to you appear here; try other dates.",
    my_numbers: "You have no undialed numbers: numbers assigned to you appear here.",
};

/// The lists' empty states in `t`'s language (templates: `crate::web::shell::empty(t)`).
pub(super) fn empty(t: &'static Text) -> &'static EmptyWords {
    if t.html_lang == "en" { &EMPTY_EN } else { &EMPTY_ZH }
}

/// The shell's words in `t`'s language (templates: `crate::web::shell::words(t)`).
pub(super) fn words(t: &'static Text) -> &'static Words {
    if t.html_lang == "en" { &WORDS_EN } else { &WORDS_ZH }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every menu item is a page of the router: a renamed route must not leave a dead link.
    #[test]
    fn every_item_is_a_routed_page() {
        let missing: Vec<_> =
            MENU.iter().flat_map(|g| g.items).zip(rules()).filter(|(_, r)| r.is_none()).map(|(i, _)| i.path).collect();
        assert!(missing.is_empty(), "menu items without a GET route: {missing:?}");
    }

    /// An admin without the accounts module sees neither 坐席账号 nor 角色权限, and no desk
    /// page; an agent sees only desk pages its modules open.
    #[test]
    fn items_follow_kind_and_modules() {
        let paths = |open: Vec<(usize, usize)>| open.into_iter().map(|(g, i)| MENU[g].items[i].path).collect::<Vec<_>>();
        let admin = paths(open(Role::Admin, &[Module::Tasks, Module::Monitor]));
        assert_eq!(admin, ["/admin/tasks", "/admin/callback-settings", "/admin/status"]);
        let agent = paths(open(Role::Agent, &[Module::Records]));
        assert_eq!(agent, ["/desk", "/desk/settings", "/desk/records"]);
    }
}

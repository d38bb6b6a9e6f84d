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

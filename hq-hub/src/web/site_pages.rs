//! HQ's 职场管理 page (the sites, their boxes and enrolment codes) and its form twins of the
//! sites' API, split from `pages` by subject.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::api::mint_code;
use super::pages::{failed, message, or_message, render, NameForm};
use super::{blocking, format_time, limits, Admin, ApiError, AppState, PageUser, Tr};
use crate::store::Site;

pub(super) struct SiteRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) enrolled: bool,
    pub(super) online: bool,
    pub(super) since: String,
    /// When the box holding the site enrolled.
    pub(super) box_enrolled_at: String,
    /// The start of its certificate's SHA-256 (what the box logs when it enrolls), and the whole.
    pub(super) box_short: String,
    pub(super) box_certificate: String,
    pub(super) needs_upgrade: bool,
    /// Days the site keeps recordings; empty for ever.
    pub(super) retention_days: String,
}

#[derive(Template)]
#[template(path = "sites.html")]
struct SitesPage {
    tr: Tr,
    user: String,
    sites: Vec<SiteRow>,
    is_admin: bool,
    /// The cap in bytes/s, empty when there is none.
    upload_cap: String,
}

/// The first six bytes of a colon-separated fingerprint: enough to tell boxes apart at a glance.
fn short_fingerprint(full: &str) -> String {
    let pairs: Vec<&str> = full.split(':').collect();
    if pairs.len() <= 6 { full.to_string() } else { format!("{}…", pairs[..6].join(":")) }
}

pub(super) fn site_rows(sites: Vec<Site>) -> Vec<SiteRow> {
    sites
        .into_iter()
        .map(|s| {
            let certificate = s.box_certificate.unwrap_or_default();
            SiteRow {
                id: s.id,
                name: s.name,
                enrolled: s.enrolled,
                online: s.online,
                since: s.link_since.map(super::shell::minute).unwrap_or_default(),
                box_enrolled_at: s.box_enrolled_at.map(super::shell::minute).unwrap_or_default(),
                box_short: short_fingerprint(&certificate),
                box_certificate: certificate,
                needs_upgrade: s.needs_upgrade,
                retention_days: s.recording_retention_days.map(|days| days.to_string()).unwrap_or_default(),
            }
        })
        .collect()
}

pub async fn sites_page(State(state): State<AppState>, user: PageUser) -> Response {
    let sites = match blocking(&state, |store| store.list_sites()).await {
        Ok(Ok(mut sites)) => {
            sites.retain(|s| user.scope.site(s.id));
            sites
        }
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let upload_cap = match blocking(&state, |store| store.link_settings()).await {
        Ok(Ok(settings)) => settings.recording_upload_bytes_per_sec.map(|cap| cap.to_string()).unwrap_or_default(),
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let is_admin = user.scope.is_admin();
    render(&SitesPage { tr: user.tr, user: user.account.username, sites: site_rows(sites), is_admin, upload_cap })
}

/// Retires the box holding a site (the form twin of `POST /api/sites/{id}/retire`, admins only).
pub async fn retire_site(State(state): State<AppState>, Admin(user): Admin, Path(id): Path<i64>) -> Response {
    let by = user.account.username.clone();
    let result = blocking(&state, move |store| store.retire_site_box(id, &by).map_err(ApiError::from)).await;
    match or_message(result.and_then(|r| r), &user, "/sites") {
        Ok(_) => Redirect::to("/sites").into_response(),
        Err(page) => page,
    }
}

pub async fn create_site(State(state): State<AppState>, Admin(user): Admin, Form(form): Form<NameForm>) -> Response {
    if let Err(too_long) = limits::name(&form.name) {
        return failed(&user, too_long.text(user.tr), "/sites");
    }
    let result = blocking(&state, move |store| store.create_site(&form.name).map_err(ApiError::from)).await;
    match or_message(result.and_then(|r| r), &user, "/sites") {
        Ok(_) => Redirect::to("/sites").into_response(),
        Err(page) => page,
    }
}

pub async fn site_code(State(state): State<AppState>, admin: Admin, Path(id): Path<i64>) -> Response {
    let result = mint_code(&state, &admin, id).await;
    let Admin(user) = admin;
    match or_message(result, &user, "/sites") {
        Ok(code) => {
            let text = format!(
                "{}\n\n{}: {}\n\n{}",
                code.code,
                user.tr.text().sites_code_expires,
                format_time(code.expires_at),
                user.tr.text().sites_code_note
            );
            message(user.tr, &user.account.username, user.tr.text().sites_code_title, text, "/sites")
        }
        Err(page) => page,
    }
}

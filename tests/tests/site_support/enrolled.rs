//! A box enrolled at a real hub, as the scenarios that go through HQ set it up: its own
//! trunk toward a SIPp carrier, its admin signed in on its API, an agent whose SIPp phone is
//! registered; and the customer sheet HQ imports and dispatches to such boxes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, ensure};
use demo::setup::Api;
use serde_json::{Value, json};
use tests::{Sipp, free_udp_port};
use tokio_util::sync::CancellationToken;

/// The agent a box is given: extension, its SIP password, login, password, name.
pub struct Desk<'a> {
    pub extension: &'a str,
    pub sip_password: &'a str,
    pub agent: &'a str,
    pub agent_password: &'a str,
    pub name: &'a str,
}

/// A running box already enrolled at HQ (its `dir` went through `enroll_site`).
pub struct EnrolledSite {
    pub appliance: appliance::Appliance,
    pub url: String,
    pub admin: Api,
    pub admin_password: String,
    /// Where its one trunk sends calls: start a SIPp carrier here.
    pub carrier_port: u16,
    pub phone: Sipp,
}

impl EnrolledSite {
    /// Starts the box in `dir` with `lines` lines on its trunk, signs its admin in, adds the
    /// desk's extension and agent and registers a SIPp phone answering `phone_calls` calls.
    pub async fn start(dir: &Path, shutdown: &CancellationToken, lines: u32, desk: &Desk<'_>, phone_calls: u32) -> anyhow::Result<EnrolledSite> {
        let carrier_port = free_udp_port();
        let admin_password = appliance::init_admin(dir, "siteadmin")?;
        let carrier = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), carrier_port);
        let appliance = appliance::start(appliance::ApplianceConfig::on_loopback(dir, carrier, lines), shutdown.clone()).await?;
        let url = format!("http://{}", appliance.http_addr);
        let admin = Api::login(&url, "siteadmin", &admin_password).await?;
        admin.post::<Value>("/api/extensions", &json!({"extension": desk.extension, "password": desk.sip_password})).await?;
        admin
            .post::<Value>(
                "/api/agents",
                &json!({"username": desk.agent, "password": desk.agent_password, "name": desk.name, "extension": desk.extension}),
            )
            .await?;
        let phone = super::agent_phone_for(appliance.sip_addr, desk.extension, desk.sip_password, phone_calls).await?;
        Ok(EnrolledSite { appliance, url, admin, admin_password, carrier_port, phone })
    }
}

/// A customer sheet as HQ imports it: 手机号码, 客户姓名, 推荐套餐, one row per phone.
pub fn write_sheet(path: &Path, phones: &[String]) -> anyhow::Result<()> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, title) in ["手机号码", "客户姓名", "推荐套餐"].iter().enumerate() {
        sheet.write_string(0, col as u16, *title)?;
    }
    for (idx, phone) in phones.iter().enumerate() {
        let row = idx as u32 + 1;
        sheet.write_string(row, 0, phone)?;
        sheet.write_string(row, 1, format!("客户{row}"))?;
        sheet.write_string(row, 2, "5G畅享129元")?;
    }
    workbook.save(path)?;
    Ok(())
}

/// HQ's admin imports `phones` into the project (a sheet named `name` in `dir`) and
/// dispatches them as batch `name` with `extra` fields added to the dispatch (priority,
/// sites, kind, lease settings); answers the import's file id.
pub async fn import_and_dispatch(hq: &Api, dir: &Path, project_id: u64, name: &str, phones: &[String], extra: Value) -> anyhow::Result<u64> {
    let sheet = dir.join(format!("{name}.xlsx"));
    write_sheet(&sheet, phones)?;
    let import: Value = hq.upload(&format!("/api/projects/{project_id}/files"), &sheet).await?;
    ensure!(import["n_good"] == json!(phones.len()), "{import}");
    let file_id = import["file_id"].as_u64().context("file id")?;
    let mut body = json!({"name": name});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    hq.post::<Value>(&format!("/api/files/{file_id}/dispatch"), &body).await?;
    Ok(file_id)
}

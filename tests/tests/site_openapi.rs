//! Schemathesis (PyPI) against the site appliance's OpenAPI document: every operation the
//! document lists is called with generated inputs on a seeded loopback appliance, logged in
//! as the site admin and then as an agent; no answer may be a server error (5xx), and every
//! answer's status, media type, headers and body must be what the document says.
//!
//! The tool and the bounded run are the harness's ([`tests::schemathesis`]). Left out:
//! `/api/logout` (it would end the session the run uses) and the monitor's event stream
//! (it never ends, so each case would wait for the request timeout), and the agent's too.
//! Schemathesis' checks that the API refuses what the document does not allow and takes all
//! it allows are not run: the document does not state the length and format rules the
//! handlers enforce (they answer 400 naming the field).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;

use tests::{SchemathesisRun, free_udp_port};

mod site_support;

use site_support::*;

/// A session cookie (`sid=...`) from the login call.
async fn login(url: &str, username: &str, password: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let login = http.post(format!("{url}/api/login")).json(&json!({"username": username, "password": password})).send().await?;
    ensure!(login.status().is_success(), "login as {username}: {}", login.status());
    Ok(login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|pair| pair.starts_with("sid=")))
        .context("the login sets sid")?
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_answers_match_the_document() -> anyhow::Result<()> {
    let exe = tests::schemathesis(Path::new(env!("CARGO_TARGET_TMPDIR"))).await?;
    // Nothing answers on the carrier's port: no call is ever connected.
    let site = start_site_with_agent(free_udp_port(), 41, 3).await?;
    let url = site.url.clone();
    // Something behind the ids 1 and the lists: a role, a staff account, rules, an
    // allocation.
    let role = post(&site.admin, format!("{url}/api/roles"), json!({"name": "值班长", "modules": ["data", "monitor"]})).await?;
    post(&site.admin, format!("{url}/api/staff"), json!({"username": "lead", "password": "lead-pass", "role_id": role["role_id"]})).await?;
    post(
        &site.admin,
        format!("{url}/api/projects/7/rules"),
        json!({"rules": [{"conditions": [["plan", ["融合128元"]]], "agent": "agent1"}]}),
    )
    .await?;
    post(&site.admin, format!("{url}/api/tasks/41/allocate"), json!({})).await?;

    // The site admin first, then the agent for the desk's routes (to the admin they are
    // all 403). Each run has a session of its own, as a browser's login gets it; the
    // agent's run leaves out their endless event stream too.
    let runs = [
        ("siteadmin", site.admin_password.as_str(), &["/api/logout", "/api/monitor/events"][..]),
        ("agent1", AGENT_PASSWORD, &["/api/logout", "/api/monitor/events", "/api/agent/events"][..]),
    ];
    let dir = tempfile::tempdir()?;
    let mut outcomes = Vec::new();
    for (username, password, exclude_paths) in runs {
        let cookie = login(&url, username, password).await?;
        let run = SchemathesisRun {
            document: format!("{url}/api/openapi.json"),
            cookie: &cookie,
            checks: "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            exclude_paths,
            workdir: dir.path(),
        };
        let outcome = run.run(&exe).await?;
        // Shown with --nocapture: which operations ran and how many cases each.
        eprintln!("as {username}:\n{}", outcome.stdout);
        outcomes.push(outcome);
    }
    site.shutdown.cancel();
    for outcome in outcomes {
        outcome.ensure_clean()?;
    }
    Ok(())
}

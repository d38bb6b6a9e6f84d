//! Every error a person can meet in either UI speaks the UI's language and names fields by
//! their labels. Both servers' route tables (the same tables `hq-hub/tests/guard.rs` and
//! `appliance/tests/guard.rs` walk) are called with what a person or a page can get wrong:
//! no session, a role without the module, a malformed or unknown id in the path, no body,
//! broken JSON, an empty JSON object, every documented field of the body with a value of the
//! wrong type (field names from the server's own OpenAPI document), a form post with
//! nothing in it, and a query of garbage.
//!
//! - `every_error_is_chinese`: in Chinese (the default), an answer with an error status must
//!   not be a sentence without Chinese, must not hold an English sentence, a variable name
//!   (`calling_windows`) or a Rust type (`u32`), and must not be serde's wording.
//! - `every_error_is_english_when_asked`: with `lang=en`, no error is Chinese only.
//!
//! Every failure is listed at once (method, path, case, status, message).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use tests::{RunningHub, free_udp_port};

mod site_support;

/// What one case sends.
#[derive(Clone, Debug)]
enum Body {
    None,
    Raw(&'static str, String),
    Json(Value),
    Form(Vec<(String, String)>),
}

/// The bodies a state-changing route is called with; `doc` is the server's OpenAPI document.
fn bodies(doc: &Value, method: &str, pattern: &str) -> Vec<(String, Body)> {
    let mut out = vec![
        ("no body".to_string(), Body::None),
        ("broken JSON".to_string(), Body::Raw("application/json", "{\"x\":".into())),
        ("a JSON string".to_string(), Body::Raw("application/json", "\"text\"".into())),
        ("empty JSON".to_string(), Body::Json(json!({}))),
        ("a form".to_string(), Body::Form(vec![("name".into(), String::new()), ("priority".into(), "abc".into())])),
    ];
    for (field, wrong) in wrong_fields(doc, method, pattern) {
        out.push((format!("{field} of the wrong type"), Body::Json(wrong)));
    }
    // Values of the right type that the server must refuse: everything empty or zero, and
    // everything too large or too long.
    out.push(("every field empty".to_string(), Body::Json(typed_body(doc, method, pattern, false))));
    out.push(("every field too large".to_string(), Body::Json(typed_body(doc, method, pattern, true))));
    out
}

/// The route's documented body with every field empty / zero, or too large / too long.
fn typed_body(doc: &Value, method: &str, pattern: &str, large: bool) -> Value {
    let operation = &doc["paths"][pattern][method.to_lowercase()];
    let schema = resolve(doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
    let mut body = serde_json::Map::new();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let property = resolve(doc, property);
        let kind = property["type"].as_str().or_else(|| property["type"][0].as_str()).unwrap_or("object");
        let value = match (kind, large) {
            ("string", false) => json!(""),
            ("string", true) => json!("长".repeat(5000)),
            ("integer" | "number", false) => json!(0),
            ("integer" | "number", true) => json!(99_999_999_999i64),
            ("boolean", _) => json!(false),
            ("array", false) => json!([]),
            ("array", true) => json!(vec!["长".repeat(100); 600]),
            _ => continue,
        };
        body.insert(name.clone(), value);
    }
    Value::Object(body)
}

/// The schema `node` refers to, resolved once.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => node,
    }
}

/// For each top-level field of the route's JSON body: the body with only that field, holding
/// a value of another type than documented.
fn wrong_fields(doc: &Value, method: &str, pattern: &str) -> Vec<(String, Value)> {
    let operation = &doc["paths"][pattern][method.to_lowercase()];
    let schema = resolve(doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
    let Some(properties) = schema["properties"].as_object() else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            let property = resolve(doc, property);
            let kind = property["type"].as_str().or_else(|| property["type"][0].as_str()).unwrap_or("object");
            let wrong = if kind == "string" { json!(12345) } else { json!("不是这种值") };
            (name.clone(), json!({ name.clone(): wrong }))
        })
        .collect()
}

/// A route's path with each `{param}` replaced by `value`.
fn fill(pattern: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close - 1];
        out.push_str(match name {
            "code" => "xx",
            "list" => "grey",
            _ => value,
        });
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// The text a person reads in an error answer: the JSON `error`, the page's `<main>` text,
/// or the plain body.
fn message(text: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return value["error"].as_str().map_or_else(|| value.to_string(), str::to_string);
    }
    let body = match (text.find("<main"), text.find("</main>")) {
        (Some(start), Some(end)) if start < end => &text[start..end],
        _ => text,
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn has_cjk(text: &str) -> bool {
    web_guard::messages::has_cjk(text)
}

/// Lowercase words a Chinese message may hold: technical terms, and this test's own input.
const ALLOWED_WORDS: &[&str] = &["json", "xlsx", "wav", "zip", "api", "openapi", "http", "https", "hex", "abc", "text", "grey"];

/// Why a Chinese message is not acceptable, if it is not.
fn not_chinese(message: &str) -> Option<&'static str> {
    if message.trim().is_empty() {
        return Some("empty");
    }
    if !has_cjk(message) {
        return Some("no Chinese");
    }
    // Four English words in a row, separated by spaces only, make an English sentence
    // (paths, MIME types and a term in Chinese text do not).
    for stretch in message.split(|c: char| !(c.is_ascii_alphabetic() || c == ' ' || c == '\'')) {
        let words = stretch.split(' ').filter(|w| w.len() > 1 || *w == "a").count();
        if words >= 4 {
            return Some("an English sentence");
        }
    }
    for (word, why) in [("invalid type", "serde's wording"), ("expected", "serde's wording"), ("missing field", "serde's wording"), ("deserialize", "serde's wording")] {
        if message.contains(word) {
            return Some(why);
        }
    }
    let tokens = message.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    for token in tokens {
        if ["u8", "u16", "u32", "u64", "i32", "i64", "usize", "bool", "String", "Option", "Vec"].contains(&token) {
            return Some("a Rust type");
        }
        // A lowercase word in Chinese text is a variable (`teams`), save the few terms a
        // Chinese user meets as they are and the values this test itself typed.
        let word = token.len() >= 3 && token.chars().all(|c| c.is_ascii_lowercase());
        if word && !ALLOWED_WORDS.contains(&token) {
            return Some("a variable name");
        }
        let snake = token.contains('_') && token.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()) && token.len() > 2;
        if snake && !token.starts_with('_') {
            return Some("a variable name");
        }
    }
    None
}

/// Why an English message is not acceptable, if it is not.
fn not_english(message: &str) -> Option<&'static str> {
    if message.trim().is_empty() {
        return Some("empty");
    }
    (!message.chars().any(|c| c.is_ascii_alphabetic())).then_some("Chinese only")
}

/// One server under test: its address, clients and routes.
struct Server {
    base: String,
    /// (who, client): the admin, a caller with no session, a caller without modules.
    callers: Vec<(&'static str, reqwest::Client)>,
    routes: Vec<(String, String)>,
    doc: Value,
}

/// Calls every route with every case and returns the failures `judge` finds.
async fn walk(server: &Server, judge: fn(&str) -> Option<&'static str>) -> Result<BTreeSet<String>> {
    let mut failures = BTreeSet::new();
    let mut answered = 0;
    for (method, pattern) in &server.routes {
        // Event streams never end; logging out would end the caller's session mid-walk.
        if pattern.ends_with("/events") || pattern.contains("/stream") || pattern.contains("logout") {
            continue;
        }
        let method: Method = method.parse()?;
        let mut cases: Vec<(String, String, Body)> = vec![];
        for value in ["abc", "999999", "99999999999999999999"] {
            if pattern.contains('{') {
                cases.push((format!("path {value}"), fill(pattern, value), Body::Json(json!({}))));
            }
        }
        let path = fill(pattern, "1");
        if method == Method::GET {
            let query = "?after=abc&from=abc&to=abc&site=abc&project=abc&project_id=abc&limit=abc&batch=abc&talk_min=abc&page=abc";
            cases.push(("a garbage query".into(), format!("{path}{query}"), Body::None));
            cases.push(("no body".into(), path.clone(), Body::None));
        } else {
            for (name, body) in bodies(&server.doc, method.as_str(), pattern) {
                cases.push((name, path.clone(), body));
            }
        }
        for (who, client) in &server.callers {
            for (case, path, body) in &cases {
                let mut request = client.request(method.clone(), format!("{}{path}", server.base));
                request = match body {
                    Body::None => request,
                    Body::Raw(kind, text) => request.header(reqwest::header::CONTENT_TYPE, *kind).body(text.clone()),
                    Body::Json(value) => request.json(value),
                    Body::Form(pairs) => request.form(pairs),
                };
                let response = request.send().await.with_context(|| format!("{method} {path}"))?;
                let status = response.status();
                if status.is_success() || status.is_redirection() || status == StatusCode::NOT_FOUND && !path.starts_with("/api/") {
                    continue;
                }
                answered += 1;
                let text = message(&response.text().await.unwrap_or_default());
                if std::env::var_os("UI_MESSAGES_DUMP").is_some() {
                    println!("{method} {path} [{who}, {case}] {status}: {text}");
                }
                if let Some(why) = judge(&text) {
                    failures.insert(format!("{method} {pattern} [{who}, {case}] {status} ({why}): {text}"));
                }
            }
        }
    }
    ensure!(answered > 100, "only {answered} error answers: the walk reached too little");
    Ok(failures)
}

/// A reqwest client that sends `lang` and, if `username` is given, the session it logged
/// in with, as one `Cookie` header on every request.
async fn client_logged_in(base: &str, lang: &str, username: Option<(&str, &str)>) -> Result<reqwest::Client> {
    let build = |cookie: String| -> Result<reqwest::Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, cookie.parse()?);
        Ok(reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?)
    };
    let mut cookie = format!("lang={lang}");
    if let Some((username, password)) = username {
        let answer = build(cookie.clone())?
            .post(format!("{base}/api/login"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await?;
        ensure!(answer.status().is_success(), "login {username}: {}", answer.status());
        for set in answer.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = set.to_str()?.split(';').next().unwrap_or_default();
            cookie.push_str("; ");
            cookie.push_str(pair);
        }
    }
    build(cookie)
}

/// The hub with a site, a project, a file and a batch; the admin, nobody, and a sub-admin
/// whose role has no module.
async fn hub_server(hub: &RunningHub, lang: &str) -> Result<Server> {
    let base = hub.url.clone();
    let admin = client_logged_in(&base, lang, Some(("admin", &hub.password))).await?;
    let post = |path: &str, body: Value| {
        let request = admin.post(format!("{base}{path}")).json(&body);
        async move {
            let answer = request.send().await?;
            let status = answer.status();
            let value: Value = answer.json().await.unwrap_or(Value::Null);
            ensure!(status.is_success(), "{status} {value}");
            anyhow::Ok(value)
        }
    };
    let site = post("/api/sites", json!({ "name": "杭州一号职场" })).await?["id"].as_i64().context("site")?;
    let category = post("/api/categories", json!({ "name": "信用卡" })).await?["id"].as_i64().context("category")?;
    let project = post("/api/projects", json!({ "category_id": category, "name": "分期推荐" })).await?["id"].as_i64().context("project")?;
    admin.put(format!("{base}/api/projects/{project}/sites")).json(&json!({ "site_ids": [site] })).send().await?;
    let role = post("/api/roles", json!({ "name": "无模块", "modules": [] })).await?["id"].as_i64().context("role")?;
    post("/api/accounts", json!({ "username": "nomod", "password": "sub-secret-1", "role_id": role, "site_ids": [site] })).await?;
    let nomod = client_logged_in(&base, lang, Some(("nomod", "sub-secret-1"))).await?;
    let nobody = client_logged_in(&base, lang, None).await?;
    let doc: Value = admin.get(format!("{base}/api/openapi.json")).send().await?.json().await?;
    let routes = hq_hub::routes().into_iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    Ok(Server { base, callers: vec![("admin", admin), ("no session", nobody), ("no module", nomod)], routes, doc })
}

/// The site box with its admin, nobody, and an agent (who holds no admin module).
async fn site_server(site: &site_support::Site, lang: &str) -> Result<Server> {
    let base = site.url.clone();
    let admin = client_logged_in(&base, lang, Some(("siteadmin", &site.admin_password))).await?;
    let nobody = client_logged_in(&base, lang, None).await?;
    let agent = client_logged_in(&base, lang, Some(("agent1", site_support::AGENT_PASSWORD))).await?;
    let doc: Value = site.admin.get(format!("{base}/api/openapi.json")).send().await?.json().await?;
    let routes = appliance::web::routes::route_table().into_iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    Ok(Server { base, callers: vec![("admin", admin), ("no session", nobody), ("agent", agent)], routes, doc })
}

fn report(failures: &BTreeSet<String>) -> String {
    failures.iter().cloned().collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_chinese() -> Result<()> {
    let hub = RunningHub::start().await?;
    let hub_failures = walk(&hub_server(&hub, "zh").await?, not_chinese).await?;
    let site = site_support::start_site_with_agent(free_udp_port(), 41, 3).await?;
    let site_failures = walk(&site_server(&site, "zh").await?, not_chinese).await?;
    ensure!(
        hub_failures.is_empty() && site_failures.is_empty(),
        "{} hub and {} site answers are not Chinese:\n{}\n{}",
        hub_failures.len(),
        site_failures.len(),
        report(&hub_failures),
        report(&site_failures)
    );
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_english_when_asked() -> Result<()> {
    let hub = RunningHub::start().await?;
    let hub_failures = walk(&hub_server(&hub, "en").await?, not_english).await?;
    let site = site_support::start_site_with_agent(free_udp_port(), 41, 3).await?;
    let site_failures = walk(&site_server(&site, "en").await?, not_english).await?;
    ensure!(
        hub_failures.is_empty() && site_failures.is_empty(),
        "{} hub and {} site answers are Chinese only:\n{}\n{}",
        hub_failures.len(),
        site_failures.len(),
        report(&hub_failures),
        report(&site_failures)
    );
    hub.stop().await
}

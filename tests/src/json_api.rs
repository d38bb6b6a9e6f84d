//! A JSON API client holding its session cookie, for the console scenarios that set up
//! their data through the hub's API before driving the browser.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Signed in to one server's `/api` (GET, POST and PUT answer JSON).
pub struct JsonApi {
    pub base: String,
    pub http: reqwest::Client,
}

impl JsonApi {
    /// Signs in as `username`; every request waits at most `timeout`.
    pub async fn login(base: &str, username: &str, password: &str, timeout: Duration) -> anyhow::Result<JsonApi> {
        let http = reqwest::Client::builder().cookie_store(true).timeout(timeout).build()?;
        let api = JsonApi { base: base.to_string(), http };
        api.send(reqwest::Method::POST, "/api/login", json!({ "username": username, "password": password })).await?;
        Ok(api)
    }

    /// One request; a status other than 2xx is an error with the answer's text.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path, Value::Null).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::PUT, path, body).await
    }

    /// The status of a GET, whatever it is.
    pub async fn status(&self, path: &str) -> anyhow::Result<u16> {
        Ok(self.http.get(format!("{}{path}", self.base)).send().await?.status().as_u16())
    }
}

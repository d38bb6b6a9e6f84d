//! Simulated agents: each logs into the appliance's agent desk API, goes 可回接, listens to
//! its popup stream (SSE) and saves a random business result after a short "talk".
//!
//! They use the same JSON API and event stream as the browser desk, so a demo run exercises
//! the path a person's browser takes; their voice side is a [`crate::phone`] registered as
//! the same extension.

use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// One simulated agent's login and behaviour.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Base URL of the appliance's web UI, e.g. `http://127.0.0.1:8090`.
    pub appliance_url: String,
    pub username: String,
    pub password: String,
    /// How long the agent takes to fill in the business form after the popup.
    pub wrap_up: (Duration, Duration),
}

/// What the popup event carries (the fields the agent needs to save a result).
#[derive(Debug, Deserialize)]
pub struct Popup {
    pub attempt_id: u64,
    pub phone: String,
    #[serde(default)]
    pub record_fields: Vec<RecordField>,
}

#[derive(Debug, Deserialize)]
pub struct RecordField {
    pub key: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

/// Runs one agent until `shutdown`; reconnects its event stream if the appliance drops it.
pub async fn run_agent(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(3600))
        .build()?;
    let login = client
        .post(format!("{}/api/login", config.appliance_url))
        .json(&serde_json::json!({"username": config.username, "password": config.password}))
        .send()
        .await
        .context("logging the simulated agent in")?;
    if !login.status().is_success() {
        bail!(
            "agent {} cannot log in: {}",
            config.username,
            login.text().await.unwrap_or_default()
        );
    }
    set_state(&client, &config, "available").await?;

    while !shutdown.is_cancelled() {
        let stream = client
            .get(format!("{}/api/agent/events", config.appliance_url))
            .send()
            .await;
        let mut response = match stream {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::warn!(agent = %config.username, status = %response.status(), "event stream refused");
                sleep_or_cancel(Duration::from_secs(2), &shutdown).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(agent = %config.username, %error, "event stream failed");
                sleep_or_cancel(Duration::from_secs(2), &shutdown).await;
                continue;
            }
        };
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                chunk = response.chunk() => chunk,
            };
            let chunk = match chunk {
                Ok(Some(chunk)) => chunk,
                // The appliance closed the stream (restart): open a new one.
                Ok(None) | Err(_) => break,
            };
            for (event, data) in parser.push(&chunk) {
                if event != "popup" {
                    continue;
                }
                let popup: Popup = match serde_json::from_str(&data) {
                    Ok(popup) => popup,
                    Err(error) => {
                        tracing::warn!(agent = %config.username, %error, "unreadable popup event");
                        continue;
                    }
                };
                let wait = {
                    let mut rng = rand::rng();
                    rng.random_range(config.wrap_up.0..=config.wrap_up.1)
                };
                sleep_or_cancel(wait, &shutdown).await;
                if let Err(error) = save_result(&client, &config, &popup).await {
                    tracing::warn!(agent = %config.username, %error, "saving the business result failed");
                }
            }
        }
    }
    Ok(())
}

async fn set_state(
    client: &reqwest::Client,
    config: &AgentConfig,
    state: &str,
) -> anyhow::Result<()> {
    let response = client
        .post(format!("{}/api/agent/state", config.appliance_url))
        .json(&serde_json::json!({"state": state}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "agent {} cannot go {state}: {}",
            config.username,
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn save_result(
    client: &reqwest::Client,
    config: &AgentConfig,
    popup: &Popup,
) -> anyhow::Result<()> {
    let mut values = serde_json::Map::new();
    {
        let mut rng = rand::rng();
        for field in &popup.record_fields {
            let value = if !field.options.is_empty() {
                field.options[rng.random_range(0..field.options.len())].clone()
            } else if field.required || field.kind == "text" {
                "演示坐席自动填写".to_string()
            } else {
                continue;
            };
            values.insert(field.key.clone(), serde_json::Value::String(value));
        }
    }
    let response = client
        .post(format!(
            "{}/api/attempts/{}/record",
            config.appliance_url, popup.attempt_id
        ))
        .json(&serde_json::json!({"values": values}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "record for attempt {} refused: {}",
            popup.attempt_id,
            response.text().await.unwrap_or_default()
        );
    }
    tracing::info!(agent = %config.username, attempt = popup.attempt_id, phone = %popup.phone, "business result saved");
    Ok(())
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// Incremental parser of a `text/event-stream` body: feeds bytes, yields `(event, data)`.
#[derive(Default)]
pub struct SseParser {
    buffer: String,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut done = Vec::new();
        while let Some(newline) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=newline).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let event = if self.event.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut self.event)
                    };
                    done.push((event, self.data.join("\n")));
                }
                self.event.clear();
                self.data.clear();
            } else if let Some(value) = line.strip_prefix("event:") {
                self.event = value.trim_start().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_string());
            }
            // Comments (":keep-alive") and unknown fields are ignored, as the SSE spec says.
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nevent: pop").is_empty());
        let events = parser.push(b"up\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            vec![
                ("popup".to_string(), "{\"a\":1}".to_string()),
                ("message".to_string(), "x\ny".to_string())
            ]
        );
    }
}

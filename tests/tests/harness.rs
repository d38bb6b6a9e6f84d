//! Self-test of the end-to-end harness against the real programs it drives: Chromium through
//! chromedriver on a hand-written HTTP page, and SIPp's built-in UAC against its built-in UAS.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use tests::{Browser, Sipp, free_udp_port, wait_until};

/// The page served to the browser. The `#late` element appears only after a script delay,
/// so finding it exercises waiting, not just a lookup.
const PAGE: &str = r#"<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>harness</title></head>
<body>
<h1 id="greeting">坐席工作台</h1>
<script>
setTimeout(function () {
  var late = document.createElement("p");
  late.id = "late";
  late.textContent = "popup ready";
  document.body.appendChild(late);
}, 400);
</script>
</body>
</html>
"#;

/// Serves `PAGE` to every connection with a hand-written HTTP/1.1 response.
async fn serve_page(listener: TcpListener) {
    loop {
        let Ok((mut stream, _peer)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            // Read the request head; its content does not matter, every path gets the page.
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n")
                && request.len() < 64 * 1024
            {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n_read) => request.extend_from_slice(&chunk[..n_read]),
                }
            }
            let (status, body) = if request.starts_with(b"GET / ") {
                ("200 OK", PAGE)
            } else {
                // favicon.ico and anything else.
                ("404 Not Found", "not found")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[tokio::test]
async fn browser_finds_a_late_element_and_takes_a_screenshot() -> anyhow::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(serve_page(listener));

    let browser = Browser::start().await?;
    browser.goto(&format!("http://{address}/")).await?;
    let greeting = browser
        .wait_for("#greeting", Duration::from_secs(10))
        .await?;
    assert_eq!(greeting.text().await?, "坐席工作台");
    let late = browser.wait_for("#late", Duration::from_secs(10)).await?;
    assert_eq!(late.text().await?, "popup ready");

    // An element that never appears must time out with an error naming it.
    let missing = browser
        .wait_for("#never", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no element matches `#never`"),
        "{missing}"
    );

    let shots = tempfile::tempdir()?;
    let path = browser
        .screenshot(shots.path().join("nested/page.png"))
        .await?;
    let png = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot is not a PNG"
    );
    // A blank page compresses to well under a kilobyte; rendered text makes it larger.
    assert!(
        png.len() > 1000,
        "screenshot suspiciously small: {} bytes",
        png.len()
    );

    browser.close().await?;
    server.abort();
    Ok(())
}

/// Processes (not zombies) in process group `group`, read from /proc.
fn live_processes_in_group(group: u32) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Format: pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if *state != "Z" && pgrp.parse::<u32>().ok() == Some(group) {
            found.push(format!("{head})"));
        }
    }
    found
}

#[tokio::test]
async fn dropping_a_browser_kills_chromedriver_and_chromium() -> anyhow::Result<()> {
    let browser = Browser::start().await?;
    browser.goto("about:blank").await?;
    let group = browser
        .chromedriver_pid()
        .context("chromedriver is running")?;
    let before = live_processes_in_group(group);
    assert!(
        before.iter().any(|process| process.contains("chrom")),
        "expected chromedriver and Chromium in group {group}: {before:?}"
    );
    drop(browser);
    let gone = wait_until(Duration::from_secs(10), || async {
        live_processes_in_group(group).is_empty()
    })
    .await;
    assert!(
        gone.is_ok(),
        "still running after drop: {:?}",
        live_processes_in_group(group)
    );
    Ok(())
}

#[tokio::test]
async fn sipp_uac_completes_three_calls_against_sipp_uas() -> anyhow::Result<()> {
    let uas_port = free_udp_port();
    let uas = Sipp::built_in("uas")
        .local_port(uas_port)
        .calls(3)
        .timeout(Duration::from_secs(30))
        .spawn()?;
    // The UAS must be listening before the UAC's first INVITE; SIPp retransmits INVITEs
    // over UDP, so a short head start is enough and a slow start only costs a retransmit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uac = Sipp::built_in("uac")
        .local_port(free_udp_port())
        .remote(SocketAddr::from((Ipv4Addr::LOCALHOST, uas_port)))
        .calls(3)
        .timeout(Duration::from_secs(30))
        .spawn()?;

    let uac_result = uac.wait(Duration::from_secs(40)).await;
    uac_result.ensure_success()?;
    assert_eq!(uac_result.successful_calls(), Some(3), "{uac_result}");
    assert_eq!(uac_result.failed_calls(), Some(0), "{uac_result}");
    let uas_result = uas.wait(Duration::from_secs(40)).await;
    uas_result.ensure_success()?;
    Ok(())
}

#[tokio::test]
async fn sipp_reports_failure_when_nobody_answers() -> anyhow::Result<()> {
    // Nothing listens on this port: the UAC's INVITEs go unanswered until the global
    // timeout, which -timeout_error turns into a failing exit code.
    let silent_port = free_udp_port();
    let uac = Sipp::built_in("uac")
        .local_port(free_udp_port())
        .remote(SocketAddr::from((Ipv4Addr::LOCALHOST, silent_port)))
        .calls(1)
        .timeout(Duration::from_secs(2))
        .spawn()?;
    let result = uac.wait(Duration::from_secs(20)).await;
    assert!(
        !result.timed_out,
        "sipp ignored its own -timeout:\n{result}"
    );
    assert!(
        !result.succeeded(),
        "a call nobody answered counted as success:\n{result}"
    );
    assert!(
        result.hit_global_timeout(),
        "expected SIPp's own timeout:\n{result}"
    );
    let error = result.ensure_success().unwrap_err().to_string();
    assert!(error.contains("the -timeout was reached"), "{error}");
    Ok(())
}

#[tokio::test]
async fn sipp_killed_after_wait_timeout_is_reported_as_such() {
    // A UAS with no caller waits for ever; the harness must kill it and say so.
    let uas = Sipp::built_in("uas")
        .local_port(free_udp_port())
        .spawn()
        .expect("sipp starts");
    let result = uas.wait(Duration::from_millis(500)).await;
    assert!(result.timed_out);
    assert_eq!(result.exit_code, None);
    assert!(!result.succeeded());
}

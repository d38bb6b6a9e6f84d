//! A real softphone as the agent: Debian's baresip registers as extension 1001 (digest),
//! auto-answers the bridged call (`answermode=auto`), and sends a 440 Hz tone (`ausine`),
//! which must show up on the agent channel of the recording. SIPp plays the carrier.

mod calls;
mod common;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hardware::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, Outcome, Telephony,
    TelephonyConfig, TrunkConfig,
};

use calls::channel_peaks;
use common::{Sipp, free_udp_port};

const EXTENSION: &str = "1001";
const PASSWORD: &str = "baresip-s3cret";

/// baresip registering as the extension with `box_sip` from 127.0.0.1:`phone_port`, its
/// configuration and log (`baresip.log`) in `dir`.
fn start_baresip(
    dir: &std::path::Path,
    phone_port: u16,
    box_sip: std::net::SocketAddr,
) -> anyhow::Result<tokio::process::Child> {
    // baresip's whole configuration lives in a temporary directory (-f). Debian's baresip
    // 1.0 has no null audio device: `aubridge` is a player that needs no hardware, and
    // `ausine` only makes 48 kHz stereo, which baresip resamples to the call's 8 kHz mono.
    let config_dir = dir.join("baresip");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(
        config_dir.join("config"),
        format!(
            "poll_method\tepoll\n\
             sip_listen\t127.0.0.1:{phone_port}\n\
             module_path\t/usr/lib/baresip/modules\n\
             module\t\tg711.so\n\
             module\t\tausine.so\n\
             module\t\taubridge.so\n\
             module_app\taccount.so\n\
             audio_player\taubridge,outpost\n\
             audio_alert\taubridge,outpost\n\
             audio_source\tausine,440\n\
             ausrc_srate\t48000\n\
             ausrc_channels\t2\n\
             rtp_ports\t{}-{}\n",
            30000 + (phone_port % 1000) * 20,
            30000 + (phone_port % 1000) * 20 + 18,
        ),
    )?;
    std::fs::write(
        config_dir.join("accounts"),
        format!(
            "<sip:{EXTENSION}@{box_sip};transport=udp>;auth_pass={PASSWORD};answermode=auto;regint=300;audio_codecs=PCMA,PCMU\n"
        ),
    )?;
    let log = std::fs::File::create(dir.join("baresip.log"))?;
    tokio::process::Command::new("/usr/bin/baresip")
        .arg("-f")
        .arg(&config_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("start /usr/bin/baresip (Debian package baresip-core)")
}

#[tokio::test]
async fn baresip_registers_auto_answers_and_is_recorded() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("hardware=debug")
        .try_init();
    let dir = tempfile::tempdir()?;
    let carrier_port = free_udp_port();
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![TrunkConfig::on_loopback("carrier", carrier_port, 1)],
        extensions: vec![ExtensionConfig {
            extension: EXTENSION.into(),
            password: PASSWORD.into(),
        }],
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let box_sip = telephony.local_sip_addr();

    let phone_port = free_udp_port();
    let mut phone = start_baresip(dir.path(), phone_port, box_sip)?;
    let baresip_log =
        || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();

    let registered = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            if let LineEvent::ExtensionRegistered { extension, contact } = event {
                return Some((extension, contact));
            }
        }
        None
    })
    .await;
    let Ok(Some((extension, contact))) = registered else {
        bail!("baresip did not register within 15 s\n{}", baresip_log());
    };
    assert_eq!(extension, EXTENSION);
    assert_eq!(contact.port(), phone_port);

    let carrier = Sipp::start(
        "carrier",
        "carrier_answer.xml",
        carrier_port,
        free_udp_port(),
        &["-d".into(), "4000".into()],
        dir.path(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    telephony.dial(DialRequest {
        call: CallId(1),
        trunk: "carrier".into(),
        number: "13800138000".into(),
        caller_id: "02155550000".into(),
        ring_timeout: Duration::from_secs(15),
    });
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(25), async {
        while let Some(event) = events.recv().await {
            if matches!(event, LineEvent::Answered { .. }) {
                telephony.bridge(CallId(1), EXTENSION, Duration::from_secs(10), true);
            }
            let done = matches!(event, LineEvent::Ended { .. });
            seen.push(event);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    if !matches!(ended, Ok(true)) {
        bail!("the call did not end: {seen:?}\n{}", baresip_log());
    }
    assert!(
        seen.iter().any(
            |event| matches!(event, LineEvent::Bridged { extension, .. } if extension == EXTENSION)
        ),
        "baresip did not answer: {seen:?}\n{}",
        baresip_log()
    );
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = seen.last()
    else {
        unreachable!("loop ends on Ended")
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Answered, Some(HangupSide::Customer))
    );
    let recording = recording.as_ref().context("bridged call recorded")?;
    let (customer_peak, agent_peak) = channel_peaks(&recording.path)?;
    assert!(
        customer_peak > 1000,
        "carrier audio missing (peak {customer_peak})"
    );
    assert!(
        agent_peak > 1000,
        "baresip's 440 Hz tone missing (peak {agent_peak})\n{}",
        baresip_log()
    );
    carrier.finish(Duration::from_secs(10)).await?;
    let _ = phone.start_kill();
    Ok(())
}

//! A simulated agent phone: a real SIP UA on loopback that registers with the appliance.
//!
//! Built on `sip-core` and one tokio UDP socket:
//! - REGISTERs its extension with the appliance, answering the 401 digest challenge, and
//!   refreshes at half the granted expiry (retrying every 10 s while refused or unanswered);
//! - auto-answers INVITEs: 180, then after [`PhoneConfig::answer_delay`] 200 with an SDP
//!   answer, and sends G.711 audio (a tone with a little noise, 20 ms packets) while the call
//!   lasts;
//! - answers BYE with 200 and stops the audio; a CANCEL while ringing gets 200 + 487;
//! - on shutdown unregisters (Expires: 0).
//!
//! Run it with [`run_phone`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sip_core::auth::{Challenge, Credentials};
use sip_core::transaction::{new_branch, new_call_id, new_tag};
use sip_core::{Message, Method, Request, Response};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How the simulated phone behaves.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The appliance's SIP address (`Telephony::local_sip_addr`).
    pub registrar: SocketAddr,
    /// The phone's own SIP socket; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The extension (also the digest user name).
    pub extension: String,
    pub password: String,
    /// Registration lifetime asked for.
    pub register_expires: Duration,
    /// Ringing time before the phone picks up by itself.
    pub answer_delay: Duration,
    /// Frequency of the agent's "voice" tone.
    pub tone_hz: f64,
}

impl PhoneConfig {
    /// A phone for `extension` registering with `registrar`, with quick defaults for the demo.
    pub fn new(registrar: SocketAddr, extension: &str, password: &str) -> PhoneConfig {
        PhoneConfig {
            registrar,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            extension: extension.to_string(),
            password: password.to_string(),
            register_expires: Duration::from_secs(300),
            answer_delay: Duration::from_millis(500),
            tone_hz: 520.0,
        }
    }
}

struct PhoneCall {
    invite: Request,
    source: SocketAddr,
    to_tag: String,
    answer_at: Option<Instant>,
    last_response: Vec<u8>,
    media_stop: Option<CancellationToken>,
    forget_at: Option<Instant>,
}

struct Registration {
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The challenge answered already for the current CSeq, so a second 401 is a refusal.
    answered_cseq: Option<u32>,
    next_at: Instant,
}

/// Runs the phone until `shutdown` is cancelled.
pub async fn run_phone(config: PhoneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .with_context(|| format!("phone {} cannot bind {}", config.extension, config.bind))?;
    let local = socket.local_addr()?;
    info!(extension = %config.extension, %local, "simulated phone started");
    let mut registration = Registration {
        call_id: new_call_id(&local.ip().to_string()),
        from_tag: new_tag(),
        cseq: 0,
        answered_cseq: None,
        next_at: Instant::now(),
    };
    let mut calls: HashMap<String, PhoneCall> = HashMap::new();
    let mut buffer = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                for call in calls.values() {
                    if let Some(stop) = &call.media_stop {
                        stop.cancel();
                    }
                }
                registration.cseq += 1;
                let unregister = register_request(&config, local, &registration, Duration::ZERO, None);
                let _ = socket.send_to(&unregister.to_bytes(), config.registrar).await;
                return Ok(());
            }
            received = socket.recv_from(&mut buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                match sip_core::parse(&buffer[..n_bytes]) {
                    Ok(Message::Response(response)) => on_response(&socket, local, &config, &mut registration, &response),
                    Ok(Message::Request(request)) => on_request(&socket, local, config.answer_delay, &mut calls, request, source),
                    Err(error) => warn!(%source, %error, "phone ignored a bad packet"),
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= registration.next_at {
                    registration.cseq += 1;
                    registration.answered_cseq = None;
                    // Retry soon unless a 200 reschedules to the refresh time.
                    registration.next_at = now + Duration::from_secs(10);
                    let request = register_request(&config, local, &registration, config.register_expires, None);
                    send(&socket, &request.to_bytes(), config.registrar);
                }
                for call in calls.values_mut() {
                    if call.answer_at.is_some_and(|answer_at| now >= answer_at) {
                        call.answer_at = None;
                        if let Err(error) = answer(&socket, local, &config, call).await {
                            warn!(extension = %config.extension, %error, "phone cannot answer; declining with 488");
                            let refusal = Response::to_request(&call.invite, 488, "Not Acceptable Here", Some(&call.to_tag)).to_bytes();
                            send(&socket, &refusal, call.source);
                            call.last_response = refusal;
                            call.forget_at = Some(now + Duration::from_secs(32));
                        }
                    }
                }
                calls.retain(|_, call| call.forget_at.is_none_or(|forget_at| now < forget_at));
            }
        }
    }
}

fn send(socket: &UdpSocket, bytes: &[u8], destination: SocketAddr) {
    crate::peer::send(socket, bytes, destination, "phone");
}

fn register_request(
    config: &PhoneConfig,
    local: SocketAddr,
    registration: &Registration,
    expires: Duration,
    authorization: Option<String>,
) -> Request {
    let uri = format!("sip:{}", config.registrar);
    let address_of_record = format!("<sip:{}@{}>", config.extension, config.registrar.ip());
    let mut request = Request::new(Method::Register, uri)
        .with_header(
            "Via",
            format!("SIP/2.0/UDP {local};branch={};rport", new_branch()),
        )
        .with_header("Max-Forwards", "70")
        .with_header(
            "From",
            format!("{address_of_record};tag={}", registration.from_tag),
        )
        .with_header("To", address_of_record)
        .with_header("Call-ID", registration.call_id.clone())
        .with_header("CSeq", format!("{} REGISTER", registration.cseq))
        .with_header("Contact", format!("<sip:{}@{local}>", config.extension))
        .with_header("Expires", expires.as_secs().to_string())
        .with_header("User-Agent", "Outpost demo phone");
    if let Some(authorization) = authorization {
        request.headers.push("Authorization", authorization);
    }
    request
}

fn on_response(
    socket: &UdpSocket,
    local: SocketAddr,
    config: &PhoneConfig,
    registration: &mut Registration,
    response: &Response,
) {
    let Ok(cseq) = response.cseq() else { return };
    if cseq.method != Method::Register
        || response.call_id() != registration.call_id
        || cseq.number != registration.cseq
    {
        return;
    }
    match response.status {
        200..=299 => {
            // Refresh at half the granted time (at least every 30 s in the demo's short runs).
            let granted = response
                .headers
                .get("Contact")
                .and_then(|contact| sip_core::NameAddr::parse(contact).ok())
                .and_then(|contact| {
                    contact
                        .param("expires")
                        .and_then(|expires| expires.parse::<u64>().ok())
                })
                .unwrap_or(config.register_expires.as_secs());
            registration.next_at = Instant::now() + Duration::from_secs((granted / 2).max(1));
            info!(extension = %config.extension, granted, "phone registered");
        }
        401 if registration.answered_cseq != Some(cseq.number) => {
            let Some(challenge) = response
                .headers
                .get("WWW-Authenticate")
                .and_then(|value| Challenge::parse(value).ok())
            else {
                warn!(extension = %config.extension, "registrar challenge unusable");
                return;
            };
            registration.cseq += 1;
            registration.answered_cseq = Some(registration.cseq);
            let credentials = Credentials {
                username: config.extension.clone(),
                password: config.password.clone(),
            };
            let uri = format!("sip:{}", config.registrar);
            let authorization = challenge.answer(&credentials, "REGISTER", &uri, &new_tag(), 1);
            let request = register_request(
                config,
                local,
                registration,
                config.register_expires,
                Some(authorization),
            );
            send(socket, &request.to_bytes(), config.registrar);
        }
        status => {
            warn!(extension = %config.extension, status, "registration refused; retrying in 10 s")
        }
    }
}

fn on_request(
    socket: &UdpSocket,
    local: SocketAddr,
    answer_delay: Duration,
    calls: &mut HashMap<String, PhoneCall>,
    request: Request,
    source: SocketAddr,
) {
    let call_id = request.call_id().to_string();
    match request.method {
        Method::Invite => {
            if let Some(call) = calls.get(&call_id) {
                send(socket, &call.last_response, source);
                return;
            }
            let to_tag = new_tag();
            let ringing = Response::to_request(&request, 180, "Ringing", Some(&to_tag))
                .with_header("Contact", format!("<sip:phone@{local}>"))
                .to_bytes();
            send(socket, &ringing, source);
            debug!(%call_id, "phone ringing");
            calls.insert(
                call_id,
                PhoneCall {
                    invite: request,
                    source,
                    to_tag,
                    answer_at: Some(Instant::now() + answer_delay),
                    last_response: ringing,
                    media_stop: None,
                    forget_at: None,
                },
            );
        }
        Method::Ack => {}
        Method::Bye => {
            send(
                socket,
                &Response::to_request(&request, 200, "OK", None).to_bytes(),
                source,
            );
            if let Some(call) = calls.get_mut(&call_id) {
                if let Some(stop) = call.media_stop.take() {
                    stop.cancel();
                }
                call.forget_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        Method::Cancel => {
            send(
                socket,
                &Response::to_request(&request, 200, "OK", None).to_bytes(),
                source,
            );
            if let Some(call) = calls.get_mut(&call_id)
                && call.answer_at.take().is_some()
            {
                let terminated = Response::to_request(
                    &call.invite,
                    487,
                    "Request Terminated",
                    Some(&call.to_tag),
                )
                .to_bytes();
                send(socket, &terminated, call.source);
                call.last_response = terminated;
                call.forget_at = Some(Instant::now() + Duration::from_secs(32));
            }
        }
        _ => send(
            socket,
            &Response::to_request(&request, 200, "OK", None).to_bytes(),
            source,
        ),
    }
}

async fn answer(
    socket: &UdpSocket,
    local: SocketAddr,
    config: &PhoneConfig,
    call: &mut PhoneCall,
) -> anyhow::Result<()> {
    let (bytes, stop) = crate::peer::answer_with_tone(
        socket,
        local,
        &call.invite,
        &call.to_tag,
        call.source,
        &config.extension,
        config.tone_hz,
    )
    .await?;
    call.last_response = bytes;
    call.media_stop = Some(stop);
    Ok(())
}

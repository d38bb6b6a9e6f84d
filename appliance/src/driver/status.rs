//! The lines' live figures for the status page, the queue monitor and the panel: the cores'
//! counts, every call on the lines (numbers masked) and every trunk's health.

use super::Driver;
use super::inbox::{LineStatus, LiveCall, TrunkView};
use crate::store::mask_phone;

impl Driver {
    pub(super) fn status(&self) -> LineStatus {
        let mut status = LineStatus {
            registered_extensions: self.telephony.registered_extensions(),
            running_tasks: self.tasks.iter().filter(|(_, run)| !run.stopping).map(|(id, _)| *id).collect(),
            ..LineStatus::default()
        };
        status.agents_idle = self.agents.values().filter(|slot| slot.ready()).count() as u32;
        for run in self.tasks.values() {
            status.agents_counted += run.dialer.idle_agents();
            let stats = run.dialer.stats();
            status.ringing += stats.ringing;
            status.queued += stats.queued;
            status.offered += stats.offered;
            status.talking += stats.talking;
        }
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .map(|call| LiveCall {
                attempt_id: call.attempt_id,
                batch_id: call.batch_id,
                state: if call.bridged && call.answered {
                    "talking"
                } else if call.agent.is_some() && call.answered {
                    "offered"
                } else if call.answered {
                    "queued"
                } else {
                    "ringing"
                },
                phone: mask_phone(&call.phone),
                agent: call.agent.and_then(|id| self.agents.get(&id)).map(|slot| slot.username.clone()),
                seconds: call.dialed_at.elapsed().as_secs(),
                kind: if call.inbound.is_some() {
                    "inbound"
                } else if call.manual.is_some() {
                    "manual"
                } else {
                    "predictive"
                },
            })
            .collect();
        calls.sort_by_key(|call| call.attempt_id);
        // Agents' own calls and customers' calls are outside the cores' figures; count them in too.
        for call in calls.iter().filter(|call| call.kind != "predictive") {
            match call.state {
                "talking" => status.talking += 1,
                "ringing" => status.ringing += 1,
                "queued" => status.queued += 1,
                _ => status.offered += 1,
            }
        }
        status.calls = calls;
        let health = self.telephony.trunk_status();
        status.trunks = self
            .trunks
            .iter()
            .map(|(name, channels)| {
                let now = health.iter().find(|trunk| &trunk.name == name);
                TrunkView {
                    name: name.clone(),
                    alive: now.is_none_or(|trunk| trunk.alive),
                    registered: now.and_then(|trunk| trunk.registered),
                    active_calls: now.map_or(0, |trunk| trunk.active_calls),
                    channels: *channels,
                }
            })
            .collect();
        if self.trunks.is_empty() {
            status.problem = Some("no trunk is configured: add [[trunks]] to appliance.toml".to_string());
        } else if status.trunks.iter().all(|trunk| !trunk.alive) {
            status.problem = Some(
                "no trunk answers its health check: check the carrier link and the trunk addresses in appliance.toml"
                    .to_string(),
            );
        }
        status
    }
}

//! The running tasks' dialer cores: one `dialer::Dialer` per dialable task, kept in line
//! with the store, told which agents are ready, and drained of their actions (dial a wave of
//! numbers on the free channels, route an answered call to an agent's phone, drop a call
//! whose queue time is up).

use std::collections::BTreeMap;
use std::time::Duration;

use dialer::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode};
use hardware::{CallId, DialRequest};
use tokio::time::Instant;

use super::{AGENT_RING_TIMEOUT, AgentSlot, CallInfo, Driver, TaskRun, caller_id_of};
use crate::store::{TaskExtras, TaskParams};

impl Driver {
    fn pacing(&self, params: TaskParams, extras: &TaskExtras) -> PacingConfig {
        // Never more calls than the caller's lines have channels (S2: "never above the
        // caller's line count"), or numbers would be wasted on calls that cannot be placed.
        let channels: u32 = self
            .trunks
            .iter()
            .filter(|(name, _)| extras.caller.is_empty() || *name == extras.caller)
            .map(|(_, channels)| *channels)
            .sum();
        let mode = match extras.pacing.as_str() {
            "progressive" => PacingMode::Progressive,
            "adaptive" => PacingMode::Adaptive { abandon_cap: extras.abandon_cap_percent / 100.0 },
            // The manual's mode, and what a task that never chose one does.
            _ => PacingMode::FixedRatio { ratio: params.ratio },
        };
        PacingConfig {
            mode,
            max_concurrency: params.max_concurrency.min(channels.max(1)),
            cool_down: Duration::from_secs(u64::from(extras.cool_down)),
            queue_timeout: Duration::from_secs(u64::from(extras.queue_timeout)),
            abandon_threshold: Duration::from_secs(2),
        }
    }

    /// Brings the running cores in line with the store's dialable tasks.
    pub(super) fn reconcile_tasks(&mut self) {
        let dialable = match self.store.dialable_tasks() {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "cannot read the dialable tasks");
                return;
            }
        };
        let now = self.now();
        for (batch_id, params) in &dialable {
            let (extras, task_agents) = match self.store.task_settings(*batch_id) {
                Ok(Some(settings)) => (settings.extras, settings.agents),
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(%error, batch_id, "cannot read the task's settings");
                    continue;
                }
            };
            let pacing = self.pacing(*params, &extras);
            let ready: Vec<AgentId> =
                self.agents.iter().filter(|(_, agent)| agent.ready()).map(|(id, _)| *id).collect();
            match self.tasks.get_mut(batch_id) {
                Some(run) => {
                    if run.params != *params || run.extras != extras || run.stopping {
                        run.dialer.set_config(pacing, now);
                        run.params = *params;
                        run.extras = extras;
                        run.stopping = false;
                    }
                    if run.agents != task_agents {
                        // Agents joining or leaving the task's queue (S1) while it runs.
                        let before: Vec<bool> = ready.iter().map(|id| run.takes(*id)).collect();
                        run.agents = task_agents;
                        for (agent_id, took) in ready.iter().zip(before) {
                            match (took, run.takes(*agent_id)) {
                                (false, true) => run.dialer.agent_available(now, *agent_id),
                                (true, false) => run.dialer.agent_unavailable(now, *agent_id),
                                _ => {}
                            }
                        }
                    }
                }
                None => {
                    tracing::info!(batch_id, ?params, ?extras, "task starts dialing");
                    let mut dialer = Dialer::new(pacing, now);
                    let run_agents = task_agents;
                    for agent_id in &ready {
                        if run_agents.is_empty() || run_agents.contains(agent_id) {
                            dialer.agent_available(now, *agent_id);
                        }
                    }
                    self.tasks.insert(
                        *batch_id,
                        TaskRun { dialer, params: *params, extras, agents: run_agents, stopping: false },
                    );
                }
            }
        }
        for (batch_id, run) in self.tasks.iter_mut() {
            if !run.stopping && !dialable.iter().any(|(id, _)| id == batch_id) {
                tracing::info!(batch_id, "task stops dialing; calls in progress carry on");
                run.stopping = true;
            }
        }
        let calls = &self.calls;
        self.tasks.retain(|batch_id, run| !run.stopping || calls.values().any(|c| c.batch_id == *batch_id));
    }

    /// Tells the cores (all but `except`) when an agent's readiness changed.
    pub(super) fn announce(&mut self, agent_id: AgentId, was_ready: bool, except: Option<u64>) {
        let Some(slot) = self.agents.get(&agent_id) else { return };
        let ready = slot.ready();
        if ready == was_ready {
            return;
        }
        let now = self.now();
        for (batch_id, run) in self.tasks.iter_mut() {
            if Some(*batch_id) == except || !run.takes(agent_id) {
                continue;
            }
            if ready {
                run.dialer.agent_available(now, agent_id);
            } else {
                run.dialer.agent_unavailable(now, agent_id);
            }
        }
    }

    /// Drains every core's actions until none has anything to do.
    pub(super) fn drain_actions(&mut self) {
        loop {
            let now = self.now();
            let mut acted = false;
            let batch_ids: Vec<u64> = self.tasks.keys().copied().collect();
            // Dials are gathered per task and placed together: one store transaction for a
            // wave of numbers instead of one disk flush per call.
            let mut dials: BTreeMap<u64, Vec<CallKey>> = BTreeMap::new();
            for batch_id in batch_ids {
                let Some(run) = self.tasks.get_mut(&batch_id) else { continue };
                let Some(action) = run.dialer.poll_action(now) else { continue };
                acted = true;
                match action {
                    Action::Dial { call } => dials.entry(batch_id).or_default().push(call),
                    Action::Route { call, agent } => self.route(batch_id, call, agent),
                    Action::Drop { call } => {
                        if let Some(call_id) = self.by_key.get(&(batch_id, call)) {
                            tracing::info!(batch_id, call, "queue timeout: call dropped");
                            self.telephony.hangup(*call_id);
                        }
                    }
                }
            }
            for (batch_id, keys) in dials {
                self.dial_many(batch_id, keys);
            }
            if !acted {
                return;
            }
        }
    }

    pub(super) fn free_trunk(&self, caller: &str) -> Option<String> {
        self.trunks.iter().filter(|(name, _)| caller.is_empty() || name == caller).find_map(|(name, channels)| {
            let in_use = self.calls.values().filter(|call| call.trunk == *name).count() as u32;
            (in_use < *channels).then(|| name.clone())
        })
    }

    /// Places the cores' dials of one task: as many as the task's lines have free channels,
    /// numbers taken in one transaction; the rest are told "no number" so the core retries.
    fn dial_many(&mut self, batch_id: u64, keys: Vec<CallKey>) {
        let now = self.now();
        let Some(run) = self.tasks.get_mut(&batch_id) else { return };
        let (ring_seconds, caller, stopping) = (run.params.ring_seconds, run.extras.caller.clone(), run.stopping);
        let free: usize = self
            .trunks
            .iter()
            .filter(|(name, _)| caller.is_empty() || *name == caller)
            .map(|(name, channels)| {
                let in_use = self.calls.values().filter(|call| call.trunk == *name).count() as u32;
                channels.saturating_sub(in_use) as usize
            })
            .sum();
        let wanted = if stopping { 0 } else { keys.len().min(free) };
        let claimed = if wanted == 0 {
            Vec::new()
        } else {
            match self.store.claim_next_numbers(batch_id, wanted) {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, batch_id, "cannot take numbers");
                    Vec::new()
                }
            }
        };
        let mut claimed = claimed.into_iter();
        for key in keys {
            let next = claimed.next();
            let trunk = next.as_ref().and_then(|_| self.free_trunk(&caller));
            let (Some(number), Some(trunk)) = (next, trunk) else {
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_no_number(now, key);
                }
                continue;
            };
            let call_id = CallId(self.next_call);
            self.next_call += 1;
            tracing::debug!(batch_id, attempt = number.attempt_id, call = call_id.0, %trunk, "dialing");
            self.calls.insert(
                call_id,
                CallInfo {
                    batch_id,
                    key,
                    attempt_id: number.attempt_id,
                    trunk: trunk.clone(),
                    answered: false,
                    answered_at: None,
                    agent: None,
                    bridged: false,
                    manual: None,
                    phone_missed: false,
                    phone: number.phone.clone(),
                    dialed_at: Instant::now(),
                },
            );
            self.by_key.insert((batch_id, key), call_id);
            self.telephony.dial(DialRequest {
                call: call_id,
                caller_id: caller_id_of(&trunk),
                trunk,
                number: number.phone,
                ring_timeout: Duration::from_secs(u64::from(ring_seconds)),
            });
        }
    }

    fn route(&mut self, batch_id: u64, key: CallKey, agent_id: AgentId) {
        let now = self.now();
        let call_id = self.by_key.get(&(batch_id, key)).copied();
        let extension = self.agents.get(&agent_id).map(|slot| slot.extension.clone());
        let (Some(call_id), Some(extension)) = (call_id, extension) else {
            if let Some(run) = self.tasks.get_mut(&batch_id) {
                run.dialer.call_agent_missed(now, key, agent_id);
            }
            return;
        };
        let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
        if let Some(slot) = self.agents.get_mut(&agent_id) {
            slot.call = Some(call_id);
        }
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.agent = Some(agent_id);
        }
        // The other tasks' cores must not route to this agent meanwhile.
        self.announce(agent_id, was_ready, Some(batch_id));
        tracing::info!(batch_id, call = call_id.0, %extension, "offering the call to an agent");
        let auto_answer = self.tasks.get(&batch_id).is_none_or(|run| run.extras.answer_mode != "ring");
        self.telephony.bridge(call_id, &extension, AGENT_RING_TIMEOUT, auto_answer);
    }
}

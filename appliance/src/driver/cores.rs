//! The running tasks' dialer cores: one `dialer::Dialer` per dialable task (a project's task,
//! drawing numbers from all its batches), kept in line with the store, told which agents
//! the site-wide `dialer::arbiter::Arbiter` gives them, and drained of their actions (dial a
//! wave of numbers on the free channels, route an answered call to an agent's phone, drop a
//! call whose queue time is up).

use std::collections::BTreeMap;
use std::time::Duration;

use dialer::arbiter::{AgentUse, Grant};
use dialer::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode};
use hardware::{CallId, DialRequest};
use tokio::time::Instant;

use super::{AGENT_RING_TIMEOUT, CallInfo, Driver, TaskRun, caller_id_of};
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

    /// Brings the running cores in line with the store's dialable tasks (one per project,
    /// S1) and tells the arbiter which tasks dial and who works them.
    pub(super) fn reconcile_tasks(&mut self) {
        let (dialable, priorities) = match (self.store.dialable_tasks(), self.store.dialable_task_priorities()) {
            (Ok(list), Ok(priorities)) => (list, priorities),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot read the dialable tasks");
                return;
            }
        };
        self.tell_needs();
        let now = self.now();
        for (task_id, params) in &dialable {
            let (extras, task_agents) = match self.store.project_task_settings(*task_id) {
                Ok(Some(settings)) => (settings.extras, settings.agents),
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(%error, task_id, "cannot read the task's settings");
                    continue;
                }
            };
            let pacing = self.pacing(*params, &extras);
            match self.tasks.get_mut(task_id) {
                Some(run) => {
                    if run.params != *params || run.extras != extras || run.stopping {
                        run.dialer.set_config(pacing, now);
                        run.params = *params;
                        run.extras = extras;
                        run.stopping = false;
                    }
                    // Agents joining or leaving the task (S1) while it runs: the arbiter
                    // hears of it below.
                    run.agents = task_agents;
                }
                None => {
                    tracing::info!(task_id, ?params, ?extras, "task starts dialing");
                    let dialer = Dialer::new(pacing, now);
                    self.tasks.insert(
                        *task_id,
                        TaskRun {
                            dialer,
                            params: *params,
                            extras,
                            agents: task_agents,
                            stopping: false,
                            no_number_at: None,
                        },
                    );
                }
            }
            let priority = priorities.get(task_id).copied().unwrap_or(2);
            let open = self.tasks.get(task_id).is_some_and(|run| !run.starved(now));
            self.arbiter.set_task(now, *task_id, priority, open);
        }
        for (task_id, run) in self.tasks.iter_mut() {
            if !run.stopping && !dialable.iter().any(|(id, _)| id == task_id) {
                tracing::info!(task_id, "task stops dialing; calls in progress carry on");
                run.stopping = true;
                self.arbiter.set_task(now, *task_id, 0, false);
            }
        }
        let calls = &self.calls;
        let arbiter = &mut self.arbiter;
        self.tasks.retain(|task_id, run| {
            let keep = !run.stopping || calls.values().any(|c| c.task == *task_id);
            if !keep {
                arbiter.remove_task(now, *task_id);
            }
            keep
        });
        let agent_ids: Vec<AgentId> = self.agents.keys().copied().collect();
        for agent_id in agent_ids {
            self.sync_agent_tasks(agent_id);
        }
        self.apply_grants();
    }

    /// Tells the arbiter which running tasks the agent works. A stopped task whose calls are
    /// still in flight stays among them: a customer who answers after the stop must still
    /// reach an agent, and the arbiter gives a closed task only the agents its calls need.
    pub(super) fn sync_agent_tasks(&mut self, agent_id: AgentId) {
        let now = self.now();
        let calls = &self.calls;
        let tasks: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(id, run)| (!run.stopping || calls.values().any(|call| call.task == **id)) && run.takes(agent_id))
            .map(|(id, _)| *id)
            .collect();
        self.arbiter.set_agent_tasks(now, agent_id, tasks);
    }

    /// Tells the arbiter what the agent is doing now, and the cores what it decided: each
    /// idle 可回接 agent is counted by one task's core at a time.
    pub(super) fn announce(&mut self, agent_id: AgentId) {
        let Some(slot) = self.agents.get(&agent_id) else { return };
        let on_task_call = slot.call.and_then(|call| self.calls.get(&call)).is_some_and(|info| info.manual.is_none() && info.inbound.is_none());
        let state = if slot.ready() {
            AgentUse::Ready
        } else if on_task_call {
            AgentUse::OnTaskCall
        } else {
            AgentUse::Away
        };
        self.tell_needs();
        let now = self.now();
        self.arbiter.agent_state(now, agent_id, state);
        self.apply_grants();
    }

    /// Tells the arbiter how many idle agents each task's calls in flight need, so an agent
    /// back from a call goes to the task that dialed for them before another may dial again.
    pub(super) fn tell_needs(&mut self) {
        let now = self.now();
        for (task_id, run) in &self.tasks {
            self.arbiter.set_task_needs(now, *task_id, run.dialer.agents_needed());
        }
    }

    /// Carries the arbiter's decisions to the cores.
    pub(super) fn apply_grants(&mut self) {
        let now = self.now();
        while let Some(grant) = self.arbiter.poll_grant() {
            match grant {
                Grant::Give { agent, task } => {
                    if let Some(run) = self.tasks.get_mut(&task) {
                        run.dialer.agent_available(now, agent);
                    }
                }
                Grant::Take { agent, task } => {
                    if let Some(run) = self.tasks.get_mut(&task) {
                        run.dialer.agent_unavailable(now, agent);
                    }
                }
                Grant::Leave { agent, task } => {
                    if let Some(run) = self.tasks.get_mut(&task) {
                        run.dialer.agent_left(now, agent);
                    }
                }
            }
        }
    }

    /// Drains every core's actions until none has anything to do; a task whose answered
    /// customer waits with none of its agents free borrows an idle agent of another task.
    pub(super) fn drain_actions(&mut self) {
        loop {
            let now = self.now();
            let mut acted = false;
            let task_ids: Vec<u64> = self.tasks.keys().copied().collect();
            // Dials are gathered per task and placed together: one store transaction for a
            // wave of numbers instead of one disk flush per call.
            let mut dials: BTreeMap<u64, Vec<CallKey>> = BTreeMap::new();
            for task_id in task_ids {
                let Some(run) = self.tasks.get_mut(&task_id) else { continue };
                let Some(action) = run.dialer.poll_action(now) else { continue };
                acted = true;
                match action {
                    Action::Dial { call } => dials.entry(task_id).or_default().push(call),
                    Action::Route { call, agent } => self.route(task_id, call, agent),
                    Action::Drop { call } => {
                        if let Some(call_id) = self.by_key.get(&(task_id, call)) {
                            tracing::info!(task_id, call, "queue timeout: call dropped");
                            self.telephony.hangup(*call_id);
                        }
                    }
                }
            }
            for (task_id, keys) in dials {
                self.dial_many(task_id, keys);
            }
            if !acted {
                self.tell_needs();
                let waiting: Vec<(u64, bool)> = self
                    .tasks
                    .iter()
                    .map(|(id, run)| {
                        let stats = run.dialer.stats();
                        (*id, stats.queued > 0 && stats.agents_free == 0)
                    })
                    .collect();
                for (task_id, waits) in waiting {
                    self.arbiter.set_customer_waiting(now, task_id, waits);
                }
                if !self.arbiter.has_grants() {
                    return;
                }
                self.apply_grants();
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
    /// numbers taken from all the project's batches in one transaction; the rest are told
    /// "no number" so the core retries. A number owned by an agent (S4) is taken only while
    /// that agent is free and given to this task, and its call is reserved for them.
    fn dial_many(&mut self, task_id: u64, keys: Vec<CallKey>) {
        let now = self.now();
        let Some(run) = self.tasks.get(&task_id) else { return };
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
        let owners = self.free_owners(task_id);
        let names: Vec<String> = owners.keys().cloned().collect();
        let wanted = if stopping { 0 } else { keys.len().min(free) };
        let claimed = if wanted == 0 {
            Vec::new()
        } else {
            match self.store.claim_next_numbers_for_task(task_id, wanted, &names) {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, task_id, "cannot take numbers");
                    Vec::new()
                }
            }
        };
        let mut claimed = claimed.into_iter();
        for key in keys {
            let next = claimed.next();
            let trunk = next.as_ref().and_then(|_| self.free_trunk(&caller));
            let (Some(number), Some(trunk)) = (next, trunk) else {
                if let Some(run) = self.tasks.get_mut(&task_id) {
                    run.dialer.call_no_number(now, key);
                    run.no_number_at = Some(now);
                }
                continue;
            };
            let owner = number.owner.as_ref().and_then(|name| owners.get(name)).copied();
            if let Some(run) = self.tasks.get_mut(&task_id) {
                run.no_number_at = None;
                if let Some(agent) = owner {
                    run.dialer.reserve_call(now, key, agent);
                }
            }
            let call_id = CallId(self.next_call);
            self.next_call += 1;
            tracing::debug!(task_id, batch = number.batch_id, attempt = number.attempt_id, call = call_id.0, %trunk, "dialing");
            self.calls.insert(
                call_id,
                CallInfo {
                    task: task_id,
                    batch_id: number.batch_id,
                    key,
                    attempt_id: number.attempt_id,
                    trunk: trunk.clone(),
                    answered: false,
                    answered_at: None,
                    agent: None,
                    owner,
                    bridged: false,
                    manual: None,
                    phone_missed: false,
                    phone: number.phone.clone(),
                    dialed_at: Instant::now(),
                    inbound: None,
                },
            );
            self.by_key.insert((task_id, key), call_id);
            self.telephony.dial(DialRequest {
                call: call_id,
                caller_id: caller_id_of(&trunk),
                trunk,
                number: number.phone,
                ring_timeout: Duration::from_secs(u64::from(ring_seconds)),
            });
        }
    }

    /// Agents (by username) whose owned numbers this task may dial now: given to this task
    /// by the arbiter, ready, and with no owned call of theirs on the lines already.
    fn free_owners(&self, task_id: u64) -> BTreeMap<String, AgentId> {
        self.agents
            .iter()
            .filter(|(id, slot)| {
                slot.ready()
                    && self.arbiter.holder(**id) == Some(task_id)
                    && !self.calls.values().any(|call| call.owner == Some(**id))
            })
            .map(|(id, slot)| (slot.username.clone(), *id))
            .collect()
    }

    fn route(&mut self, task_id: u64, key: CallKey, agent_id: AgentId) {
        let now = self.now();
        let call_id = self.by_key.get(&(task_id, key)).copied();
        let extension = self.agents.get(&agent_id).map(|slot| slot.extension.clone());
        let (Some(call_id), Some(extension)) = (call_id, extension) else {
            if let Some(run) = self.tasks.get_mut(&task_id) {
                run.dialer.call_agent_missed(now, key, agent_id);
            }
            return;
        };
        if let Some(slot) = self.agents.get_mut(&agent_id) {
            slot.call = Some(call_id);
        }
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.agent = Some(agent_id);
        }
        // The arbiter keeps the agent with this task while the call lasts.
        self.announce(agent_id);
        tracing::info!(task_id, call = call_id.0, %extension, "offering the call to an agent");
        let auto_answer = self.tasks.get(&task_id).is_none_or(|run| run.extras.answer_mode != "ring");
        self.telephony.bridge(call_id, &extension, AGENT_RING_TIMEOUT, auto_answer);
    }
}

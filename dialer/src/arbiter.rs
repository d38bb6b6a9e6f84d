//! The site-wide arbiter between tasks that share agents. An agent may work several tasks;
//! each task has its own [`Dialer`](crate::Dialer), which paces on the agents it is told are
//! available. If every core were told of every idle agent, two predictive tasks would each
//! dial `ratio x idle` for the same agents and the site would run at twice the ratio, with
//! the abandons that brings. The arbiter gives each idle 可回接 agent's capacity to one task
//! at a time, so the cores' counts of idle agents add up to the site's.
//!
//! Rules:
//! - an agent who becomes ready (可回接 and free) is given first to a task whose calls in
//!   flight need more idle agents than it holds (it dialed for an agent who then took a
//!   call or went to after-call work: giving them to another task would let it dial for
//!   the same agent again, and the site's calls not yet with an agent would pass the
//!   ratio); else to one of their open tasks: the highest task priority first, then the
//!   task that has waited longest since it was last given an agent (so equal tasks take
//!   turns);
//! - an agent on a call of the task that holds them stays with it; a task never loses an
//!   idle agent to another task (it may have dialed for them already), except when it
//!   closes (stopped, or no number left) or the agent leaves it;
//! - an agent who is away (小休, 离开, 不可回接, in after-call work, or on a call of their
//!   own) is held by no task.
//!
//! Sans-IO like the core: feed it with `set_*` / `agent_*` and drain [`Arbiter::poll_grant`];
//! the driver turns each [`Grant`] into `agent_available` / `agent_unavailable` on the core.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{AgentId, Time};

/// A task, by the driver's id for it (the appliance uses the project id).
pub type TaskId = u64;

/// A change of which task holds an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Tell this task's core the agent is available.
    Give { agent: AgentId, task: TaskId },
    /// Tell this task's core the agent is unavailable.
    Take { agent: AgentId, task: TaskId },
    /// The agent, taken from this task when they went away (after-call work), came back
    /// to another task: tell this core not to expect them back (`Dialer::agent_left`).
    Leave { agent: AgentId, task: TaskId },
}

/// What an agent is doing, as the arbiter needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentUse {
    /// 可回接 and free: capacity to give.
    Ready,
    /// On a call of the task holding them (offered or talking): they stay with it.
    OnTaskCall,
    /// Anything else: held by no task.
    Away,
}

#[derive(Debug, Clone)]
struct TaskSlot {
    priority: u32,
    open: bool,
    /// When the task was last given an agent, or opened: the longest-waiting rule's key.
    waiting_since: Time,
    /// An answered customer of this task waits and none of its agents is free.
    customer_waiting: bool,
    /// Idle agents its calls in flight need (`Dialer::agents_needed`).
    needed: u32,
}

#[derive(Debug, Clone)]
struct AgentSlot {
    tasks: BTreeSet<TaskId>,
    state: AgentUse,
    holder: Option<TaskId>,
    /// The task that held them when they went away: its core may expect them back.
    last: Option<TaskId>,
}

/// The site-wide arbiter.
#[derive(Debug, Clone, Default)]
pub struct Arbiter {
    tasks: BTreeMap<TaskId, TaskSlot>,
    agents: BTreeMap<AgentId, AgentSlot>,
    grants: VecDeque<Grant>,
}

impl Arbiter {
    pub fn new() -> Arbiter {
        Arbiter::default()
    }

    /// Adds or updates a task. `open` is whether it dials (started, numbers left); a task
    /// that closes lets its idle agents go to the others; one that opens takes idle agents
    /// no task holds.
    pub fn set_task(&mut self, now: Time, task: TaskId, priority: u32, open: bool) {
        let slot = self.tasks.entry(task).or_insert(TaskSlot { priority, open: false, waiting_since: now, customer_waiting: false, needed: 0 });
        let opened = open && !slot.open;
        let closed = !open && slot.open;
        if opened {
            slot.waiting_since = now;
        }
        slot.priority = priority;
        slot.open = open;
        if closed {
            self.release_idle_of(now, task);
        }
        if opened || closed {
            self.place_unheld(now);
        }
    }

    /// How many idle agents the task's calls in flight need (`Dialer::agents_needed`), told
    /// before the arbiter places agents. A task holding fewer is given ready agents first;
    /// a closed task holding more than it needs lets the rest go.
    pub fn set_task_needs(&mut self, now: Time, task: TaskId, needed: u32) {
        let Some(slot) = self.tasks.get_mut(&task) else { return };
        slot.needed = needed;
        if !slot.open {
            self.release_idle_of(now, task);
        }
    }

    /// The task is gone: every agent it held is taken from it.
    pub fn remove_task(&mut self, now: Time, task: TaskId) {
        self.set_task(now, task, 0, false);
        for (agent, slot) in self.agents.iter_mut() {
            if slot.holder == Some(task) {
                slot.holder = None;
                self.grants.push_back(Grant::Take { agent: *agent, task });
            }
        }
        self.tasks.remove(&task);
        self.place_unheld(now);
    }

    /// Which tasks the agent works. An agent taken out of the task holding them is given
    /// to another if idle.
    pub fn set_agent_tasks(&mut self, now: Time, agent: AgentId, tasks: impl IntoIterator<Item = TaskId>) {
        let tasks: BTreeSet<TaskId> = tasks.into_iter().collect();
        let slot = self.agents.entry(agent).or_insert(AgentSlot {
            tasks: BTreeSet::new(),
            state: AgentUse::Away,
            holder: None,
            last: None,
        });
        slot.tasks = tasks;
        if let Some(holder) = slot.holder
            && !slot.tasks.contains(&holder)
        {
            slot.holder = None;
            self.grants.push_back(Grant::Take { agent, task: holder });
        }
        if self.agents.get(&agent).is_some_and(|slot| slot.state == AgentUse::Ready && slot.holder.is_none()) {
            self.choose(now, agent);
        }
    }

    /// The agent's state changed. Ready re-chooses the task (the longest-waiting task of
    /// the highest priority gets them, which may be the one they had); away releases them.
    pub fn agent_state(&mut self, now: Time, agent: AgentId, state: AgentUse) {
        let Some(slot) = self.agents.get_mut(&agent) else { return };
        let before = slot.state;
        slot.state = state;
        match state {
            AgentUse::Away => {
                let holder = self.holder(agent);
                self.release(agent);
                if let Some(slot) = self.agents.get_mut(&agent) {
                    slot.last = holder.or(slot.last);
                }
            }
            AgentUse::OnTaskCall => {}
            AgentUse::Ready if before != AgentUse::Ready => self.choose(now, agent),
            AgentUse::Ready => {}
        }
    }

    /// Whether an answered customer of `task` waits with none of its agents free. A task
    /// with a customer waiting has waited longest of all: it is lent a ready agent of a
    /// task with nobody waiting (the lowest priority first) and more idle agents than its
    /// own calls in flight need, so a customer is not lost while a spare agent sits idle in
    /// another task.
    pub fn set_customer_waiting(&mut self, now: Time, task: TaskId, waiting: bool) {
        let Some(slot) = self.tasks.get_mut(&task) else { return };
        let became = waiting && !slot.customer_waiting;
        slot.customer_waiting = waiting;
        if !became {
            return;
        }
        let donor = self
            .agents
            .iter()
            .filter(|(_, agent)| agent.state == AgentUse::Ready && agent.tasks.contains(&task))
            .filter_map(|(id, agent)| {
                let holder = agent.holder?;
                let held_by = self.tasks.get(&holder)?;
                // Only an agent the lender's calls in flight do not need: lending one it
                // dialed for would let both tasks pace on them.
                let spare = self.held_ready(holder) > held_by.needed;
                (holder != task && !held_by.customer_waiting && spare).then_some((*id, holder, held_by.priority))
            })
            .min_by_key(|(id, _, priority)| (*priority, *id));
        if let Some((agent, from, _)) = donor {
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.holder = Some(task);
            }
            if let Some(slot) = self.tasks.get_mut(&task) {
                slot.waiting_since = now;
            }
            self.grants.push_back(Grant::Take { agent, task: from });
            self.grants.push_back(Grant::Give { agent, task });
        }
    }

    /// The task holding the agent, if any.
    pub fn holder(&self, agent: AgentId) -> Option<TaskId> {
        self.agents.get(&agent).and_then(|slot| slot.holder)
    }

    /// Whether changes wait to be drained.
    pub fn has_grants(&self) -> bool {
        !self.grants.is_empty()
    }

    /// The next change to carry out, or `None`.
    pub fn poll_grant(&mut self) -> Option<Grant> {
        self.grants.pop_front()
    }

    fn release(&mut self, agent: AgentId) {
        if let Some(slot) = self.agents.get_mut(&agent)
            && let Some(task) = slot.holder.take()
        {
            self.grants.push_back(Grant::Take { agent, task });
        }
    }

    /// Ready agents the task holds.
    fn held_ready(&self, task: TaskId) -> u32 {
        self.agents.values().filter(|slot| slot.holder == Some(task) && slot.state == AgentUse::Ready).count() as u32
    }

    /// Whether the task's calls in flight need more idle agents than it holds.
    fn short(&self, id: TaskId, task: &TaskSlot) -> bool {
        task.needed > self.held_ready(id)
    }

    fn best_task(&self, agent: AgentId) -> Option<TaskId> {
        let slot = self.agents.get(&agent)?;
        slot.tasks
            .iter()
            .filter_map(|id| self.tasks.get(id).map(|task| (*id, task, self.short(*id, task))))
            .filter(|(_, task, short)| task.open || *short)
            .min_by_key(|(id, task, short)| (!short, std::cmp::Reverse(task.priority), task.waiting_since, *id))
            .map(|(id, _, _)| id)
    }

    fn choose(&mut self, now: Time, agent: AgentId) {
        let best = self.best_task(agent);
        let current = self.holder(agent);
        if let Some(slot) = self.agents.get_mut(&agent)
            && let Some(last) = slot.last.take()
            && Some(last) != best
        {
            self.grants.push_back(Grant::Leave { agent, task: last });
        }
        if best == current {
            if let Some(task) = best.and_then(|id| self.tasks.get_mut(&id)) {
                task.waiting_since = now;
            }
            return;
        }
        self.release(agent);
        if let Some(task) = best {
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.holder = Some(task);
            }
            if let Some(slot) = self.tasks.get_mut(&task) {
                slot.waiting_since = now;
            }
            self.grants.push_back(Grant::Give { agent, task });
        }
    }

    /// A closing task lets its idle agents go (it will not dial for them any more), but
    /// those its calls in flight still need.
    fn release_idle_of(&mut self, now: Time, task: TaskId) {
        let needed = self.tasks.get(&task).map_or(0, |slot| slot.needed) as usize;
        let idle: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, slot)| slot.holder == Some(task) && slot.state == AgentUse::Ready)
            .map(|(id, _)| *id)
            .skip(needed)
            .collect();
        for agent in idle {
            self.release(agent);
            self.choose(now, agent);
        }
    }

    /// Ready agents no task holds (their tasks were closed) go to an open one.
    fn place_unheld(&mut self, now: Time) {
        let unheld: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, slot)| slot.state == AgentUse::Ready && slot.holder.is_none())
            .map(|(id, _)| *id)
            .collect();
        for agent in unheld {
            self.choose(now, agent);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn drain(arbiter: &mut Arbiter) -> Vec<Grant> {
        std::iter::from_fn(|| arbiter.poll_grant()).collect()
    }

    #[test]
    fn each_ready_agent_is_held_by_one_task_and_equal_tasks_take_turns() {
        let t = Duration::from_secs;
        let mut arbiter = Arbiter::new();
        arbiter.set_task(t(0), 1, 2, true);
        arbiter.set_task(t(1), 2, 2, true);
        for agent in 1..=4 {
            arbiter.set_agent_tasks(t(2), agent, [1, 2]);
            arbiter.agent_state(t(2 + agent), agent, AgentUse::Ready);
        }
        let grants = drain(&mut arbiter);
        assert_eq!(
            grants,
            vec![
                Grant::Give { agent: 1, task: 1 },
                Grant::Give { agent: 2, task: 2 },
                Grant::Give { agent: 3, task: 1 },
                Grant::Give { agent: 4, task: 2 },
            ],
            "one task per agent, turn about"
        );
        // An agent on a call of task 1 stays with it; ready again, they go to the task
        // that waited longest (task 2 was last served at 6 s, task 1 at 5 s: task 1).
        arbiter.agent_state(t(10), 1, AgentUse::OnTaskCall);
        assert!(drain(&mut arbiter).is_empty());
        arbiter.agent_state(t(20), 1, AgentUse::Ready);
        assert_eq!(drain(&mut arbiter), vec![], "task 1 (served at 5 s) keeps agent 1 before task 2 (6 s)");
        arbiter.agent_state(t(21), 3, AgentUse::Away);
        arbiter.agent_state(t(22), 3, AgentUse::Ready);
        assert_eq!(
            drain(&mut arbiter),
            vec![
                Grant::Take { agent: 3, task: 1 },
                Grant::Leave { agent: 3, task: 1 },
                Grant::Give { agent: 3, task: 2 }
            ],
            "task 2 waited longer than task 1 (served again at 20 s); task 1 stops expecting agent 3"
        );
    }

    #[test]
    fn higher_priority_first_and_a_closing_task_lets_its_idle_agents_go() {
        let t = Duration::from_secs;
        let mut arbiter = Arbiter::new();
        arbiter.set_task(t(0), 1, 2, true);
        arbiter.set_task(t(0), 2, 5, true);
        arbiter.set_agent_tasks(t(1), 7, [1, 2]);
        arbiter.agent_state(t(1), 7, AgentUse::Ready);
        assert_eq!(drain(&mut arbiter), vec![Grant::Give { agent: 7, task: 2 }]);
        arbiter.set_task(t(2), 2, 5, false);
        assert_eq!(
            drain(&mut arbiter),
            vec![Grant::Take { agent: 7, task: 2 }, Grant::Give { agent: 7, task: 1 }]
        );
        // Reopened, it does not steal the idle agent task 1 may have dialed for.
        arbiter.set_task(t(3), 2, 5, true);
        assert!(drain(&mut arbiter).is_empty());
        arbiter.set_agent_tasks(t(4), 7, [2]);
        assert_eq!(
            drain(&mut arbiter),
            vec![Grant::Take { agent: 7, task: 1 }, Grant::Give { agent: 7, task: 2 }],
            "taken out of task 1, the agent goes to the task they still work"
        );
        arbiter.agent_state(t(5), 7, AgentUse::Away);
        assert_eq!(drain(&mut arbiter), vec![Grant::Take { agent: 7, task: 2 }]);
    }

    #[test]
    fn an_agent_back_from_a_call_goes_to_the_task_that_dialed_for_them() {
        let t = Duration::from_secs;
        let mut arbiter = Arbiter::new();
        arbiter.set_task(t(0), 1, 2, true);
        arbiter.set_task(t(0), 2, 2, true);
        arbiter.set_agent_tasks(t(1), 7, [1, 2]);
        arbiter.agent_state(t(1), 7, AgentUse::Ready);
        assert_eq!(drain(&mut arbiter), vec![Grant::Give { agent: 7, task: 1 }]);
        arbiter.agent_state(t(2), 7, AgentUse::OnTaskCall);
        arbiter.agent_state(t(3), 7, AgentUse::Away);
        assert_eq!(drain(&mut arbiter), vec![Grant::Take { agent: 7, task: 1 }]);
        // Task 2 waited longest, but task 1 still has calls ringing it dialed for agent 7.
        arbiter.set_task_needs(t(4), 1, 1);
        arbiter.agent_state(t(4), 7, AgentUse::Ready);
        assert_eq!(drain(&mut arbiter), vec![Grant::Give { agent: 7, task: 1 }]);
        // Closed with a call still ringing, task 1 keeps the agent it needs, then lets them go.
        arbiter.set_task(t(5), 1, 2, false);
        assert!(drain(&mut arbiter).is_empty(), "a closing task keeps the agent its ringing call needs");
        arbiter.set_task_needs(t(6), 1, 0);
        assert_eq!(drain(&mut arbiter), vec![Grant::Take { agent: 7, task: 1 }, Grant::Give { agent: 7, task: 2 }]);
    }

    #[test]
    fn a_waiting_customer_borrows_only_an_agent_the_lender_does_not_need() {
        let t = Duration::from_secs;
        let mut arbiter = Arbiter::new();
        arbiter.set_task(t(0), 1, 2, true);
        arbiter.set_task(t(0), 2, 2, true);
        arbiter.set_agent_tasks(t(1), 7, [1, 2]);
        arbiter.agent_state(t(1), 7, AgentUse::Ready);
        assert_eq!(drain(&mut arbiter), vec![Grant::Give { agent: 7, task: 1 }]);
        // Task 1 dialed for agent 7: its ringing calls need them.
        arbiter.set_task_needs(t(2), 1, 1);
        arbiter.set_customer_waiting(t(2), 2, true);
        assert!(drain(&mut arbiter).is_empty(), "agent 7 stays with the task ringing for them");
        arbiter.set_customer_waiting(t(3), 2, false);
        arbiter.set_task_needs(t(3), 1, 0);
        arbiter.set_customer_waiting(t(3), 2, true);
        assert_eq!(drain(&mut arbiter), vec![Grant::Take { agent: 7, task: 1 }, Grant::Give { agent: 7, task: 2 }]);
    }
}

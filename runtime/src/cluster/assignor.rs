//! The group leader's assignment of connectors and tasks to workers, as pure functions.
//!
//! [`assign_incremental`] is incremental cooperative rebalancing (KIP-415, Kafka Connect's
//! `compatible` and `sessioned` protocols); [`assign_eager`] the `default` protocol's full
//! round-robin reassignment.
//!
//! The incremental assignor follows Kafka Connect's `IncrementalCooperativeAssignor` in what
//! it promises, in fewer steps:
//!
//! - work nobody runs that the config has (new connectors and tasks) goes to the least loaded
//!   workers; a task goes to a worker with the fewest tasks and, among those, the fewest tasks
//!   of the same connector, so one connector's tasks spread over the workers;
//! - work a worker runs that the config no longer has, and every copy but one of work that
//!   several workers claim, is revoked;
//! - a worker keeps what it runs unless the load is unbalanced: then the most loaded workers
//!   give up work (revocation) until no worker holds more than its share; the revoked work is
//!   assigned in the next round, after its worker has stopped it, so nothing runs twice;
//! - nothing a worker keeps is revoked and nothing it runs is assigned to it again, so a task
//!   that stays on its worker is never stopped by a rebalance;
//! - work of a worker that left the group is held back for `scheduled.rebalance.max.delay.ms`
//!   (the assignment carries the remaining delay, after which the workers join again), so a
//!   worker that restarts finds its work still unassigned; when the delay is over, the work goes
//!   to the least loaded workers (a worker that came back and is empty is the least loaded).
//!   No load-balancing revocation happens while work is held back.
//!
//! Choices that differ from Kafka Connect: of duplicated work the least loaded claimant keeps its
//! copy instead of every claimant stopping it; held-back work is spread by load rather than
//! round-robin over the workers that were empty when the delay began; and there is no
//! exponential back-off between consecutive rebalances that revoke (so two workers can not
//! ping-pong work, revocations only ever move work from a worker above its share).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::membership::{LeaderAssignor, LeaderRound};
use super::protocol::{ConnectAssignment, ConnectorTaskId, CONFIG_MISMATCH, NO_ERROR};

/// `scheduled.rebalance.max.delay.ms` default: how long work of a departed worker is held back.
pub const DEFAULT_SCHEDULED_REBALANCE_MAX_DELAY: Duration = Duration::from_millis(300_000);

/// A set of connector instances and tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    /// Connector instances, by connector name.
    pub connectors: BTreeSet<String>,
    /// Tasks.
    pub tasks: BTreeSet<ConnectorTaskId>,
}

impl Work {
    /// Connector instances and tasks from lists.
    pub fn new(
        connectors: impl IntoIterator<Item = String>,
        tasks: impl IntoIterator<Item = ConnectorTaskId>,
    ) -> Self {
        Self {
            connectors: connectors.into_iter().collect(),
            tasks: tasks.into_iter().collect(),
        }
    }

    /// Every connector of `(name, task count)` pairs with its tasks `0..count`: the work a
    /// config defines.
    pub fn from_task_counts<'a>(connectors: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut work = Self::default();
        for (name, count) in connectors {
            work.connectors.insert(name.to_owned());
            for task in 0..count {
                work.tasks.insert(ConnectorTaskId::new(name, task as i32));
            }
        }
        work
    }

    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        self.connectors.is_empty() && self.tasks.is_empty()
    }

    /// Adds everything of `other`.
    pub fn extend(&mut self, other: &Work) {
        self.connectors.extend(other.connectors.iter().cloned());
        self.tasks.extend(other.tasks.iter().cloned());
    }

    /// Removes everything of `other`.
    pub fn remove_all(&mut self, other: &Work) {
        self.connectors.retain(|c| !other.connectors.contains(c));
        self.tasks.retain(|t| !other.tasks.contains(t));
    }

    /// What `self` has that `other` has not.
    pub fn difference(&self, other: &Work) -> Work {
        let mut d = self.clone();
        d.remove_all(other);
        d
    }

    /// Whether `self` and `other` share anything.
    pub fn intersects(&self, other: &Work) -> bool {
        self.connectors.iter().any(|c| other.connectors.contains(c))
            || self.tasks.iter().any(|t| other.tasks.contains(t))
    }

    fn tasks_of(&self, connector: &str) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.connector == connector)
            .count()
    }
}

/// One member as the leader sees it in JoinGroup: its id and what it runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAllocation {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// What it runs now (its last assignment with revocations applied).
    pub allocation: Work,
}

/// Everything one round of incremental assignment depends on besides the previous state.
#[derive(Debug, Clone)]
pub struct AssignmentInput<'a> {
    /// The members of the new generation.
    pub members: &'a [MemberAllocation],
    /// Every connector and task the config topic defines.
    pub configured: &'a Work,
    /// The generation being assigned.
    pub generation_id: i32,
    /// The last generation this leader completed (joined and synced); previous state computed
    /// for another generation is not trusted (the leader failed to hand it out).
    pub last_completed_generation_id: i32,
    /// `scheduled.rebalance.max.delay.ms`: how long work of a departed worker is held back.
    pub max_delay: Duration,
    /// The time now.
    pub now: Instant,
}

/// What the leader remembers between rounds (Kafka Connect keeps it in the assignor).
#[derive(Debug, Clone, Default)]
pub struct AssignorState {
    /// The generation this state was computed for.
    generation_id: Option<i32>,
    /// Everything assigned after the last round, work held back included.
    previous: Work,
    /// What the last round revoked.
    previous_revocation: Work,
    /// The members of the last round.
    previous_members: BTreeSet<String>,
    /// When held-back work is to be reassigned.
    scheduled_rebalance: Option<Instant>,
}

impl AssignorState {
    /// When held-back work will be reassigned, if some is held back.
    pub fn scheduled_rebalance(&self) -> Option<Instant> {
        self.scheduled_rebalance
    }
}

/// One member's part of a round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAssignment {
    /// What to start, in addition to what it keeps.
    pub assigned: Work,
    /// What to stop.
    pub revoked: Work,
    /// Everything it runs once it has applied this round.
    pub after: Work,
}

/// A round's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalAssignment {
    /// Per member id.
    pub members: BTreeMap<String, MemberAssignment>,
    /// How long until the workers should join again for held-back work (zero: no such work).
    pub delay: Duration,
}

impl IncrementalAssignment {
    /// Whether the round starts or stops nothing anywhere.
    pub fn is_quiet(&self) -> bool {
        self.members
            .values()
            .all(|m| m.assigned.is_empty() && m.revoked.is_empty())
    }
}

/// One round of incremental cooperative assignment: the new assignment and the state to keep
/// for the next round.
pub fn assign_incremental(
    input: &AssignmentInput<'_>,
    state: &AssignorState,
) -> (IncrementalAssignment, AssignorState) {
    let configured = input.configured;
    let mut previous = if state.generation_id == Some(input.last_completed_generation_id) {
        state.previous.clone()
    } else {
        Work::default()
    };
    let mut active = Work::default();
    for member in input.members {
        active.extend(&member.allocation);
    }
    // A revocation of the last round that a member did not carry out: start from what runs.
    if state.previous_revocation.intersects(&active) {
        previous = active.clone();
    }

    let mut next: BTreeMap<&str, Work> = input
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.allocation.clone()))
        .collect();
    let mut revoked: BTreeMap<&str, Work> = BTreeMap::new();

    // Work the config no longer has.
    for (member, work) in next.iter_mut() {
        let gone = work.difference(configured);
        if !gone.is_empty() {
            work.remove_all(&gone);
            revoked.entry(member).or_default().extend(&gone);
        }
    }
    revoke_duplicates(&mut next, &mut revoked);

    let lost = previous.difference(&active).intersection_with(configured);
    let created = configured.difference(&previous).difference(&active);
    let mut to_assign = created;
    let members: BTreeSet<String> = input.members.iter().map(|m| m.member_id.clone()).collect();
    let mut scheduled = state.scheduled_rebalance;
    let mut delay = Duration::ZERO;
    let mut held = Work::default();
    if lost.is_empty() {
        scheduled = None;
    } else if scheduled.is_none() && members.is_superset(&state.previous_members) {
        // Nobody left: members missed their last assignment; hand the work out again.
        tracing::debug!(
            connectors = lost.connectors.len(),
            tasks = lost.tasks.len(),
            "work missing although no member left; reassigning it"
        );
        to_assign.extend(&lost);
    } else if input.max_delay.is_zero() {
        to_assign.extend(&lost);
        scheduled = None;
    } else {
        match scheduled {
            Some(at) if input.now >= at => {
                tracing::info!(
                    connectors = lost.connectors.len(),
                    tasks = lost.tasks.len(),
                    "delay for departed workers is over; reassigning their work"
                );
                to_assign.extend(&lost);
                scheduled = None;
            }
            Some(at) => {
                delay = (at - input.now).min(input.max_delay);
                held = lost;
            }
            None => {
                tracing::info!(
                    connectors = lost.connectors.len(),
                    tasks = lost.tasks.len(),
                    delay_ms = input.max_delay.as_millis() as u64,
                    "workers left; holding their work back in case they return"
                );
                delay = input.max_delay;
                scheduled = Some(input.now + delay);
                held = lost;
            }
        }
    }

    if scheduled.is_none() && !configured.is_empty() {
        revoke_for_balance(configured, &mut next, &mut revoked);
    }
    assign_least_loaded(&to_assign, &mut next);

    let mut members_out = BTreeMap::new();
    let mut all_after = Work::default();
    let mut all_revoked = Work::default();
    for member in input.members {
        let id = member.member_id.as_str();
        let after = next.remove(id).unwrap_or_default();
        let assigned = after.difference(&member.allocation);
        let member_revoked = revoked.remove(id).unwrap_or_default();
        all_after.extend(&after);
        all_revoked.extend(&member_revoked);
        members_out.insert(
            member.member_id.clone(),
            MemberAssignment {
                assigned,
                revoked: member_revoked,
                after,
            },
        );
    }
    all_after.extend(&held);
    let next_state = AssignorState {
        generation_id: Some(input.generation_id),
        previous: all_after,
        previous_revocation: all_revoked,
        previous_members: members,
        scheduled_rebalance: scheduled,
    };
    (
        IncrementalAssignment {
            members: members_out,
            delay,
        },
        next_state,
    )
}

impl Work {
    fn intersection_with(&self, other: &Work) -> Work {
        Work {
            connectors: self
                .connectors
                .intersection(&other.connectors)
                .cloned()
                .collect(),
            tasks: self.tasks.intersection(&other.tasks).cloned().collect(),
        }
    }
}

/// Of work several members claim, the least loaded claimant keeps its copy.
fn revoke_duplicates<'a>(
    next: &mut BTreeMap<&'a str, Work>,
    revoked: &mut BTreeMap<&'a str, Work>,
) {
    let mut connector_holders: BTreeMap<String, Vec<&'a str>> = BTreeMap::new();
    let mut task_holders: BTreeMap<ConnectorTaskId, Vec<&'a str>> = BTreeMap::new();
    for (&member, work) in next.iter() {
        for c in &work.connectors {
            connector_holders.entry(c.clone()).or_default().push(member);
        }
        for t in &work.tasks {
            task_holders.entry(t.clone()).or_default().push(member);
        }
    }
    for (connector, mut holders) in connector_holders {
        if holders.len() < 2 {
            continue;
        }
        holders.sort_by_key(|m| (next[m].connectors.len(), *m));
        for &member in &holders[1..] {
            tracing::info!(connector = %connector, member = %member, "connector claimed by several workers; revoking a copy");
            next.get_mut(member)
                .expect("holder")
                .connectors
                .remove(&connector);
            revoked
                .entry(member)
                .or_default()
                .connectors
                .insert(connector.clone());
        }
    }
    for (task, mut holders) in task_holders {
        if holders.len() < 2 {
            continue;
        }
        holders.sort_by_key(|m| (next[m].tasks.len(), *m));
        for &member in &holders[1..] {
            tracing::info!(task = %task, member = %member, "task claimed by several workers; revoking a copy");
            next.get_mut(member).expect("holder").tasks.remove(&task);
            revoked
                .entry(member)
                .or_default()
                .tasks
                .insert(task.clone());
        }
    }
}

/// Each member's share of `total` items: the `total % n` most loaded get one more than the
/// rest, so those that already hold more give up as little as possible.
fn shares(total: usize, loads: &[(&str, usize)]) -> BTreeMap<String, usize> {
    let n = loads.len();
    let base = total / n;
    let extra = total % n;
    let mut order: Vec<(&str, usize)> = loads.to_vec();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    order
        .into_iter()
        .enumerate()
        .map(|(i, (m, _))| (m.to_owned(), base + usize::from(i < extra)))
        .collect()
}

/// Revokes from members above their share until none is.
fn revoke_for_balance<'a>(
    configured: &Work,
    next: &mut BTreeMap<&'a str, Work>,
    revoked: &mut BTreeMap<&'a str, Work>,
) {
    if next.is_empty() || next.values().all(Work::is_empty) {
        return;
    }
    let loads: Vec<(&str, usize)> = next.iter().map(|(m, w)| (*m, w.connectors.len())).collect();
    let connector_shares = shares(configured.connectors.len(), &loads);
    let loads: Vec<(&str, usize)> = next.iter().map(|(m, w)| (*m, w.tasks.len())).collect();
    let task_shares = shares(configured.tasks.len(), &loads);
    for (member, work) in next.iter_mut() {
        let share = connector_shares[*member];
        while work.connectors.len() > share {
            let connector = work
                .connectors
                .iter()
                .next_back()
                .cloned()
                .expect("non-empty");
            work.connectors.remove(&connector);
            revoked
                .entry(member)
                .or_default()
                .connectors
                .insert(connector);
        }
        let share = task_shares[*member];
        while work.tasks.len() > share {
            // The task of the connector this member runs most of, so what stays spreads.
            let task = work
                .tasks
                .iter()
                .max_by_key(|t| (work.tasks_of(&t.connector), t.task))
                .cloned()
                .expect("non-empty");
            work.tasks.remove(&task);
            revoked.entry(member).or_default().tasks.insert(task);
        }
        if revoked.get(member).is_some_and(|r| !r.is_empty()) {
            tracing::debug!(member = %member, "revoking work to balance the load");
        }
    }
}

/// Gives each connector to a member with the fewest connectors, each task to a member with the
/// fewest tasks and then the fewest tasks of that connector (ties: member id order).
fn assign_least_loaded(to_assign: &Work, next: &mut BTreeMap<&str, Work>) {
    if next.is_empty() {
        return;
    }
    for connector in &to_assign.connectors {
        let (_, work) = next
            .iter_mut()
            .min_by_key(|(m, w)| (w.connectors.len(), **m))
            .expect("members");
        work.connectors.insert(connector.clone());
    }
    for task in &to_assign.tasks {
        let (_, work) = next
            .iter_mut()
            .min_by_key(|(m, w)| (w.tasks.len(), w.tasks_of(&task.connector), **m))
            .expect("members");
        work.tasks.insert(task.clone());
    }
}

/// The eager (`default` protocol) assignment: everything anew, round-robin over the members in
/// id order, each connector followed by its tasks, as Kafka Connect's `EagerAssignor` does.
pub fn assign_eager(member_ids: &[String], configured: &Work) -> BTreeMap<String, Work> {
    let mut ids: Vec<&String> = member_ids.iter().collect();
    ids.sort();
    ids.dedup();
    let mut out: BTreeMap<String, Work> = ids
        .iter()
        .map(|m| ((*m).clone(), Work::default()))
        .collect();
    if ids.is_empty() {
        return out;
    }
    let mut next = ids.iter().cycle();
    for connector in &configured.connectors {
        let member = next.next().expect("cycle");
        out.get_mut(*member)
            .expect("member")
            .connectors
            .insert(connector.clone());
        for task in configured
            .tasks
            .iter()
            .filter(|t| &t.connector == connector)
        {
            let member = next.next().expect("cycle");
            out.get_mut(*member)
                .expect("member")
                .tasks
                .insert(task.clone());
        }
    }
    out
}

/// The leader's assignor a worker hands to
/// [`GroupMember::join`](super::membership::GroupMember::join): eager or incremental by the
/// group's protocol, with the state incremental rounds carry from one to the next.
#[derive(Debug, Clone)]
pub struct ConnectAssignor {
    /// Every connector and task the config topic defines, as the leader has read it.
    pub configured: Work,
    /// The `connect-configs` offset `configured` was read at.
    pub config_offset: i64,
    /// `scheduled.rebalance.max.delay.ms`.
    pub max_delay: Duration,
    state: AssignorState,
}

impl ConnectAssignor {
    /// An assignor for `configured` (read at `config_offset`).
    pub fn new(configured: Work, config_offset: i64, max_delay: Duration) -> Self {
        Self {
            configured,
            config_offset,
            max_delay,
            state: AssignorState::default(),
        }
    }
}

impl LeaderAssignor for ConnectAssignor {
    fn assign(&mut self, round: &LeaderRound<'_>) -> BTreeMap<String, ConnectAssignment> {
        let leader_url = round
            .members
            .iter()
            .find(|m| m.member_id == round.leader_id)
            .map(|m| m.metadata.url.clone())
            .unwrap_or_default();
        let max_offset = round
            .members
            .iter()
            .map(|m| m.metadata.config_offset)
            .max()
            .unwrap_or(self.config_offset);
        let blank = ConnectAssignment {
            version: round.protocol.version(),
            error: NO_ERROR,
            leader: round.leader_id.to_owned(),
            leader_url,
            config_offset: max_offset,
            ..ConnectAssignment::default()
        };
        if self.config_offset < max_offset {
            // Kafka Connect's answer when the leader is behind: everyone reads the config topic
            // to its end and joins again.
            tracing::info!(
                leader_offset = self.config_offset,
                max_offset,
                "leader is behind the config topic; asking every member to catch up"
            );
            return round
                .members
                .iter()
                .map(|m| {
                    let a = ConnectAssignment {
                        error: CONFIG_MISMATCH,
                        ..blank.clone()
                    };
                    (m.member_id.clone(), a)
                })
                .collect();
        }
        if !round.protocol.is_cooperative() {
            let ids: Vec<String> = round.members.iter().map(|m| m.member_id.clone()).collect();
            return assign_eager(&ids, &self.configured)
                .into_iter()
                .map(|(id, work)| {
                    let a = ConnectAssignment {
                        connectors: work.connectors.into_iter().collect(),
                        tasks: work.tasks.into_iter().collect(),
                        ..blank.clone()
                    };
                    (id, a)
                })
                .collect();
        }
        let members: Vec<MemberAllocation> = round
            .members
            .iter()
            .map(|m| MemberAllocation {
                member_id: m.member_id.clone(),
                allocation: m
                    .metadata
                    .allocation
                    .as_ref()
                    .map(|a| Work::new(a.connectors.clone(), a.tasks.clone()))
                    .unwrap_or_default(),
            })
            .collect();
        let input = AssignmentInput {
            members: &members,
            configured: &self.configured,
            generation_id: round.generation_id,
            last_completed_generation_id: round.last_completed_generation_id,
            max_delay: self.max_delay,
            now: Instant::now(),
        };
        let (out, state) = assign_incremental(&input, &self.state);
        self.state = state;
        let delay = out.delay.as_millis().min(i32::MAX as u128) as i32;
        out.members
            .into_iter()
            .map(|(id, m)| {
                let a = ConnectAssignment {
                    connectors: m.assigned.connectors.into_iter().collect(),
                    tasks: m.assigned.tasks.into_iter().collect(),
                    revoked_connectors: m.revoked.connectors.into_iter().collect(),
                    revoked_tasks: m.revoked.tasks.into_iter().collect(),
                    delay,
                    ..blank.clone()
                };
                (id, a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAX_DELAY: Duration = Duration::from_secs(300);

    /// A group whose members apply every round, as workers do.
    struct Cluster {
        members: Vec<MemberAllocation>,
        state: AssignorState,
        generation: i32,
        now: Instant,
    }

    impl Cluster {
        fn new(ids: &[&str]) -> Self {
            Self {
                members: ids
                    .iter()
                    .map(|id| MemberAllocation {
                        member_id: (*id).to_owned(),
                        allocation: Work::default(),
                    })
                    .collect(),
                state: AssignorState::default(),
                generation: 0,
                now: Instant::now(),
            }
        }

        fn round(&mut self, configured: &Work) -> IncrementalAssignment {
            self.generation += 1;
            let input = AssignmentInput {
                members: &self.members,
                configured,
                generation_id: self.generation,
                last_completed_generation_id: self.generation - 1,
                max_delay: MAX_DELAY,
                now: self.now,
            };
            let (out, state) = assign_incremental(&input, &self.state);
            self.state = state;
            for member in &mut self.members {
                let m = &out.members[&member.member_id];
                member.allocation.remove_all(&m.revoked);
                member.allocation.extend(&m.assigned);
                assert_eq!(member.allocation, m.after, "{}", member.member_id);
            }
            out
        }

        /// Rounds until one changes nothing (at most `max`).
        fn settle(&mut self, configured: &Work, max: usize) -> usize {
            for n in 1..=max {
                if self.round(configured).is_quiet() {
                    return n;
                }
            }
            panic!("no quiet round within {max} rounds");
        }

        fn get(&self, id: &str) -> &Work {
            &self
                .members
                .iter()
                .find(|m| m.member_id == id)
                .unwrap()
                .allocation
        }

        fn leave(&mut self, id: &str) -> Work {
            let i = self.members.iter().position(|m| m.member_id == id).unwrap();
            self.members.remove(i).allocation
        }

        fn join(&mut self, id: &str) {
            self.members.push(MemberAllocation {
                member_id: id.to_owned(),
                allocation: Work::default(),
            });
        }
    }

    fn spread(counts: impl Iterator<Item = usize>) -> usize {
        let counts: Vec<usize> = counts.collect();
        counts.iter().max().unwrap() - counts.iter().min().unwrap()
    }

    /// Everything configured runs exactly once, and the counts are balanced.
    fn assert_balanced_and_complete(cluster: &Cluster, configured: &Work) {
        let mut all = Work::default();
        let mut total_tasks = 0;
        let mut total_connectors = 0;
        for m in &cluster.members {
            all.extend(&m.allocation);
            total_tasks += m.allocation.tasks.len();
            total_connectors += m.allocation.connectors.len();
        }
        assert_eq!(&all, configured);
        assert_eq!(total_tasks, configured.tasks.len(), "a task runs twice");
        assert_eq!(
            total_connectors,
            configured.connectors.len(),
            "a connector runs twice"
        );
        assert!(
            spread(
                cluster
                    .members
                    .iter()
                    .map(|m| m.allocation.connectors.len())
            ) <= 1
        );
        assert!(spread(cluster.members.iter().map(|m| m.allocation.tasks.len())) <= 1);
    }

    #[test]
    fn a_first_round_assigns_everything_balanced_and_spread() {
        let configured = Work::from_task_counts([("a", 6), ("b", 3), ("c", 1)]);
        let mut cluster = Cluster::new(&["w1", "w2", "w3"]);
        let out = cluster.round(&configured);
        assert!(out.members.values().all(|m| m.revoked.is_empty()));
        assert_eq!(out.delay, Duration::ZERO);
        assert_balanced_and_complete(&cluster, &configured);
        for id in ["w1", "w2", "w3"] {
            assert_eq!(cluster.get(id).tasks_of("a"), 2, "{id}");
            assert_eq!(cluster.get(id).tasks_of("b"), 1, "{id}");
        }
        assert!(
            cluster.round(&configured).is_quiet(),
            "a balanced group is left alone"
        );
    }

    #[test]
    fn a_new_member_gets_work_revoked_from_the_most_loaded() {
        let configured = Work::from_task_counts([("a", 4), ("b", 4)]);
        let mut cluster = Cluster::new(&["w1", "w2"]);
        cluster.settle(&configured, 2);
        let before_w1 = cluster.get("w1").clone();
        let before_w2 = cluster.get("w2").clone();
        cluster.join("w3");
        let first = cluster.round(&configured);
        // Revocation first, nothing for the newcomer yet (the old owners must stop first).
        assert!(first.members["w3"].assigned.is_empty());
        let revoked: usize = first.members.values().map(|m| m.revoked.tasks.len()).sum();
        assert_eq!(revoked, 2, "8 tasks over 3 workers: 3, 3, 2");
        assert!(first.members["w1"]
            .revoked
            .tasks
            .is_subset(&before_w1.tasks));
        assert!(first.members["w2"]
            .revoked
            .tasks
            .is_subset(&before_w2.tasks));
        let second = cluster.round(&configured);
        assert!(second.members.values().all(|m| m.revoked.is_empty()));
        assert_eq!(second.members["w3"].assigned.tasks.len(), 2);
        assert_balanced_and_complete(&cluster, &configured);
        // What w1 and w2 kept was never stopped.
        for id in ["w1", "w2"] {
            let before = if id == "w1" { &before_w1 } else { &before_w2 };
            let kept = cluster.get(id);
            assert!(kept.tasks.is_subset(&before.tasks), "{id} only lost work");
        }
        assert!(cluster.round(&configured).is_quiet());
    }

    #[test]
    fn duplicated_work_is_revoked_from_all_but_one() {
        let configured = Work::from_task_counts([("a", 2)]);
        let mut cluster = Cluster::new(&["w1", "w2"]);
        let both = Work::new(["a".to_owned()], [ConnectorTaskId::new("a", 0)]);
        cluster.members[0].allocation = both.clone();
        cluster.members[1].allocation = both;
        let out = cluster.round(&configured);
        let revoked_a0 = out
            .members
            .values()
            .filter(|m| m.revoked.tasks.contains(&ConnectorTaskId::new("a", 0)))
            .count();
        let revoked_a = out
            .members
            .values()
            .filter(|m| m.revoked.connectors.contains("a"))
            .count();
        assert_eq!((revoked_a0, revoked_a), (1, 1));
        let holders = cluster
            .members
            .iter()
            .filter(|m| m.allocation.tasks.contains(&ConnectorTaskId::new("a", 0)))
            .count();
        assert_eq!(holders, 1);
        cluster.settle(&configured, 3);
        assert_balanced_and_complete(&cluster, &configured);
    }

    #[test]
    fn deleted_connectors_are_revoked() {
        let mut cluster = Cluster::new(&["w1", "w2"]);
        cluster.settle(&Work::from_task_counts([("a", 2), ("b", 2)]), 2);
        let configured = Work::from_task_counts([("a", 2)]);
        let out = cluster.round(&configured);
        let revoked: usize = out.members.values().map(|m| m.revoked.tasks.len()).sum();
        assert_eq!(revoked, 2);
        assert!(out
            .members
            .values()
            .any(|m| m.revoked.connectors.contains("b")));
        cluster.settle(&configured, 3);
        assert_balanced_and_complete(&cluster, &configured);
    }

    #[test]
    fn work_of_a_departed_member_is_held_for_the_delay_then_reassigned() {
        {
            let configured = Work::from_task_counts([("a", 3), ("b", 3)]);
            let mut cluster = Cluster::new(&["w1", "w2", "w3"]);
            cluster.settle(&configured, 2);
            let gone = cluster.leave("w3");
            assert!(!gone.is_empty());

            let out = cluster.round(&configured);
            assert_eq!(out.delay, MAX_DELAY);
            assert!(out.is_quiet(), "nothing moves while w3 may come back");

            cluster.now += Duration::from_secs(100);
            let out = cluster.round(&configured);
            assert_eq!(out.delay, Duration::from_secs(200), "the remaining delay");
            assert!(out.is_quiet());

            cluster.now += Duration::from_secs(200);
            let out = cluster.round(&configured);
            assert_eq!(out.delay, Duration::ZERO);
            let reassigned = out.members.values().fold(Work::default(), |mut w, m| {
                w.extend(&m.assigned);
                w
            });
            assert_eq!(reassigned, gone);
            assert_balanced_and_complete(&cluster, &configured);
        }
    }

    #[test]
    fn a_member_that_returns_within_the_delay_gets_the_held_work() {
        let configured = Work::from_task_counts([("a", 2), ("b", 2)]);
        let mut cluster = Cluster::new(&["w1", "w2"]);
        cluster.settle(&configured, 2);
        let gone = cluster.leave("w2");
        assert!(cluster.round(&configured).is_quiet());
        // It restarts with a new member id and nothing running.
        cluster.join("w2-again");
        cluster.now += Duration::from_secs(10);
        let out = cluster.round(&configured);
        assert!(out.is_quiet(), "held work waits for the delay");
        assert_eq!(out.delay, MAX_DELAY - Duration::from_secs(10));
        cluster.now += MAX_DELAY;
        cluster.round(&configured);
        assert_eq!(cluster.get("w2-again"), &gone);
        assert_balanced_and_complete(&cluster, &configured);
    }

    #[test]
    fn with_no_delay_lost_work_is_reassigned_at_once() {
        let configured = Work::from_task_counts([("a", 4)]);
        let mut cluster = Cluster::new(&["w1", "w2"]);
        cluster.settle(&configured, 2);
        cluster.leave("w2");
        cluster.generation += 1;
        let input = AssignmentInput {
            members: &cluster.members,
            configured: &configured,
            generation_id: cluster.generation,
            last_completed_generation_id: cluster.generation - 1,
            max_delay: Duration::ZERO,
            now: cluster.now,
        };
        let (out, _) = assign_incremental(&input, &cluster.state);
        assert_eq!(out.delay, Duration::ZERO);
        assert_eq!(out.members["w1"].after, configured);
    }

    #[test]
    fn eager_assignment_is_round_robin_over_sorted_members() {
        let configured = Work::from_task_counts([("a", 2), ("b", 1)]);
        let out = assign_eager(&["w2".into(), "w1".into()], &configured);
        // w1: a, a-1, b-0; w2: a-0, b.
        assert_eq!(
            out["w1"],
            Work::new(
                ["a".to_owned()],
                [ConnectorTaskId::new("a", 1), ConnectorTaskId::new("b", 0)]
            )
        );
        assert_eq!(
            out["w2"],
            Work::new(["b".to_owned()], [ConnectorTaskId::new("a", 0)])
        );
        assert!(assign_eager(&[], &configured).is_empty());
    }

    fn configured_strategy() -> impl Strategy<Value = Work> {
        proptest::collection::btree_map("[a-e]", 0u32..6, 1..5)
            .prop_map(|m| Work::from_task_counts(m.iter().map(|(k, v)| (k.as_str(), *v))))
    }

    fn any_work() -> impl Strategy<Value = Work> {
        (
            proptest::collection::btree_set("[a-f]", 0..4),
            proptest::collection::btree_set(("[a-f]", 0i32..7), 0..10),
        )
            .prop_map(|(c, t)| Work::new(c, t.into_iter().map(|(c, t)| ConnectorTaskId::new(c, t))))
    }

    proptest! {
        /// From any starting point (duplicates, unknown work, missing work), every round keeps
        /// what stays, and the group settles balanced with everything running exactly once.
        #[test]
        fn rounds_settle_balanced_and_never_stop_what_stays(
            configured in configured_strategy(),
            starts in proptest::collection::vec(any_work(), 1..6),
        ) {
            let ids: Vec<String> = (0..starts.len()).map(|i| format!("w{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut cluster = Cluster::new(&refs);
            for (m, w) in cluster.members.iter_mut().zip(starts) {
                m.allocation = w;
            }
            for _ in 0..4 {
                let before: Vec<MemberAllocation> = cluster.members.clone();
                let out = cluster.round(&configured);
                for m in &before {
                    let a = &out.members[&m.member_id];
                    prop_assert!(!a.revoked.intersects(&a.after), "revoked and kept");
                    prop_assert!(!a.assigned.intersects(&m.allocation), "assigned what it runs");
                    prop_assert!(a.revoked.difference(&m.allocation).is_empty(), "revoked what it does not run");
                }
                // After a round, nothing runs twice.
                let mut seen = Work::default();
                for m in &cluster.members {
                    prop_assert!(!seen.intersects(&m.allocation), "duplicate after a round");
                    seen.extend(&m.allocation);
                }
            }
            prop_assert!(cluster.round(&configured).is_quiet(), "not settled after 4 rounds");
            assert_balanced_and_complete(&cluster, &configured);
        }

        /// A first assignment spreads each connector's tasks evenly.
        #[test]
        fn first_round_spreads_each_connector(
            configured in configured_strategy(),
            n in 1usize..6,
        ) {
            let ids: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut cluster = Cluster::new(&refs);
            cluster.round(&configured);
            assert_balanced_and_complete(&cluster, &configured);
            for connector in &configured.connectors {
                let per_member = cluster.members.iter().map(|m| m.allocation.tasks_of(connector));
                prop_assert!(spread(per_member) <= 1, "connector {} unevenly spread", connector);
            }
        }

        /// Eager assignment is balanced and complete.
        #[test]
        fn eager_is_balanced(configured in configured_strategy(), n in 1usize..6) {
            let ids: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let out = assign_eager(&ids, &configured);
            let mut all = Work::default();
            for w in out.values() {
                prop_assert!(!all.intersects(w));
                all.extend(w);
            }
            prop_assert_eq!(all, configured);
            let loads = out.values().map(|w| w.connectors.len() + w.tasks.len());
            prop_assert!(spread(loads) <= 1);
        }
    }
}

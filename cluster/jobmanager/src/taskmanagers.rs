//! The registry of TaskManagers: registration, heartbeats and loss, as a
//! plain state machine over messages and an injected clock (ms), so tests
//! drive it without sockets or sleeps.
//!
//! A TaskManager is lost when its connection drops
//! ([`TaskManagerRegistry::disconnected`]) or when no heartbeat arrived for
//! `heartbeat.timeout` ([`TaskManagerRegistry::expire`]); a lost
//! TaskManager that comes back registers again under a new id, as in
//! Flink, so nothing it held before is trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_rpc::{Registration, TaskManagerId};

/// Most slots one TaskManager may offer.
pub const MAX_SLOTS_PER_TASKMANAGER: u32 = 1024;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefused {
    /// Another Weir version (the wire formats may differ).
    #[error("the TaskManager runs Weir {theirs}, the JobManager {ours}; run the same version")]
    Version {
        /// The TaskManager's version.
        theirs: String,
        /// This JobManager's version.
        ours: String,
    },
    /// No slots, or implausibly many.
    #[error(
        "a TaskManager offers 1 to {MAX_SLOTS_PER_TASKMANAGER} slots (taskmanager.numberOfTaskSlots), not {0}"
    )]
    Slots(u32),
    /// A host name that is empty or too long.
    #[error("taskmanager.host must be 1 to 253 characters")]
    Host,
}

/// Why a TaskManager was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossCause {
    /// No heartbeat for longer than the timeout.
    HeartbeatTimeout {
        /// ms since the last heartbeat (or the registration).
        silent_ms: u64,
    },
    /// Its connection ended.
    Disconnected(String),
}

impl std::fmt::Display for LossCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HeartbeatTimeout { silent_ms } => {
                write!(f, "no heartbeat for {silent_ms} ms (heartbeat.timeout)")
            }
            Self::Disconnected(reason) => write!(f, "its connection ended: {reason}"),
        }
    }
}

/// A registered TaskManager, as `GET /v1/taskmanagers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskManagerInfo {
    /// Its id (`local` for the JobManager's own slots).
    pub id: String,
    /// `taskmanager.host` it registered with.
    pub host: String,
    /// The address its connection comes from (`in-process` for `local`).
    pub address: String,
    /// Slots it offers.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Slots no subtask uses.
    #[serde(rename = "slots-free")]
    pub slots_free: u32,
    /// When it registered, ms since the epoch.
    #[serde(rename = "registered-ms")]
    pub registered_ms: u64,
    /// ms since its last heartbeat.
    #[serde(rename = "last-heartbeat-ago-ms")]
    pub last_heartbeat_ago_ms: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    registration: Registration,
    address: String,
    registered_ms: u64,
    last_heartbeat_ms: u64,
    /// Slots allocated to attempts.
    used: u32,
}

/// The TaskManagers connected to this JobManager.
#[derive(Debug, Clone)]
pub struct TaskManagerRegistry {
    heartbeat_timeout_ms: u64,
    weir_version: String,
    registered: u64,
    entries: BTreeMap<TaskManagerId, Entry>,
}

impl TaskManagerRegistry {
    /// An empty registry that declares a TaskManager lost after
    /// `heartbeat_timeout_ms` without a heartbeat, accepting TaskManagers
    /// of `weir_version` only.
    #[must_use]
    pub fn new(heartbeat_timeout_ms: u64, weir_version: &str) -> Self {
        Self {
            heartbeat_timeout_ms,
            weir_version: weir_version.to_string(),
            registered: 0,
            entries: BTreeMap::new(),
        }
    }

    /// Registers a TaskManager whose connection comes from `address`, at
    /// `now_ms`; returns its new id (`tm-<n>-<host>`).
    ///
    /// # Errors
    /// [`RegistrationRefused`]; the registry is unchanged then.
    pub fn register(
        &mut self,
        registration: Registration,
        address: String,
        now_ms: u64,
    ) -> Result<TaskManagerId, RegistrationRefused> {
        if registration.weir_version != self.weir_version {
            return Err(RegistrationRefused::Version {
                theirs: registration.weir_version,
                ours: self.weir_version.clone(),
            });
        }
        if registration.slots == 0 || registration.slots > MAX_SLOTS_PER_TASKMANAGER {
            return Err(RegistrationRefused::Slots(registration.slots));
        }
        if registration.host.is_empty() || registration.host.len() > 253 {
            return Err(RegistrationRefused::Host);
        }
        self.registered += 1;
        let host: String = registration
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let id = TaskManagerId(format!("tm-{}-{host}", self.registered));
        self.entries.insert(
            id.clone(),
            Entry {
                registration,
                address,
                registered_ms: now_ms,
                last_heartbeat_ms: now_ms,
                used: 0,
            },
        );
        Ok(id)
    }

    /// A heartbeat from `id` at `now_ms`. `false` when `id` is not
    /// registered (it was lost): its connection should be closed.
    pub fn heartbeat(&mut self, id: &TaskManagerId, now_ms: u64) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) => {
                entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(now_ms);
                true
            }
            None => false,
        }
    }

    /// `id`'s connection ended: it is lost. `None` when it was not
    /// registered (already lost by timeout).
    pub fn disconnected(&mut self, id: &TaskManagerId, reason: &str) -> Option<LossCause> {
        self.entries
            .remove(id)
            .map(|_| LossCause::Disconnected(reason.to_string()))
    }

    /// Removes and returns the TaskManagers silent for longer than the
    /// heartbeat timeout at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(TaskManagerId, LossCause)> {
        let timeout = self.heartbeat_timeout_ms;
        let lost: Vec<(TaskManagerId, LossCause)> = self
            .entries
            .iter()
            .filter_map(|(id, e)| {
                let silent_ms = now_ms.saturating_sub(e.last_heartbeat_ms);
                (silent_ms > timeout)
                    .then(|| (id.clone(), LossCause::HeartbeatTimeout { silent_ms }))
            })
            .collect();
        for (id, _) in &lost {
            self.entries.remove(id);
        }
        lost
    }

    /// Whether `id` is registered.
    #[must_use]
    pub fn contains(&self, id: &TaskManagerId) -> bool {
        self.entries.contains_key(id)
    }

    /// Registered TaskManagers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Slots of all registered TaskManagers.
    #[must_use]
    pub fn slots_total(&self) -> u32 {
        self.entries.values().map(|e| e.registration.slots).sum()
    }

    /// Slots of all registered TaskManagers that no attempt holds.
    #[must_use]
    pub fn slots_free(&self) -> u32 {
        self.entries
            .values()
            .map(|e| e.registration.slots.saturating_sub(e.used))
            .sum()
    }

    /// `id`'s address (where its connection comes from, and where its
    /// peers open data streams).
    #[must_use]
    pub fn address(&self, id: &TaskManagerId) -> Option<&str> {
        self.entries.get(id).map(|e| e.address.as_str())
    }

    /// Allocates `needed` slots, spread over the TaskManagers: each next
    /// slot goes to the one with the most free slots (the lowest id among
    /// equals), so a vertex's subtasks spread. Returns the TaskManager of
    /// each slot, in slot order; `None` (nothing allocated) when fewer
    /// slots are free.
    pub fn allocate(&mut self, needed: u32) -> Option<Vec<TaskManagerId>> {
        if self.slots_free() < needed {
            return None;
        }
        let mut slots = Vec::with_capacity(needed as usize);
        for _ in 0..needed {
            let (id, entry) = self
                .entries
                .iter_mut()
                .filter(|(_, e)| e.used < e.registration.slots)
                .max_by(|(a_id, a), (b_id, b)| {
                    let free = |e: &Entry| e.registration.slots - e.used;
                    free(a).cmp(&free(b)).then(b_id.cmp(a_id))
                })?;
            entry.used += 1;
            slots.push(id.clone());
        }
        Some(slots)
    }

    /// Gives back slots [`allocate`](Self::allocate) handed out (those of
    /// TaskManagers lost since are gone with them).
    pub fn release(&mut self, slots: &[TaskManagerId]) {
        for id in slots {
            if let Some(entry) = self.entries.get_mut(id) {
                entry.used = entry.used.saturating_sub(1);
            }
        }
    }

    /// The registered TaskManagers at `now_ms`, by id.
    #[must_use]
    pub fn list(&self, now_ms: u64) -> Vec<TaskManagerInfo> {
        self.entries
            .iter()
            .map(|(id, e)| TaskManagerInfo {
                id: id.0.clone(),
                host: e.registration.host.clone(),
                address: e.address.clone(),
                slots_total: e.registration.slots,
                slots_free: e.registration.slots.saturating_sub(e.used),
                registered_ms: e.registered_ms,
                last_heartbeat_ago_ms: now_ms.saturating_sub(e.last_heartbeat_ms),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(host: &str, slots: u32) -> Registration {
        Registration {
            host: host.into(),
            slots,
            weir_version: "1.0".into(),
        }
    }

    #[test]
    fn registration_heartbeats_and_loss_by_timeout() {
        let mut r = TaskManagerRegistry::new(50, "1.0");
        let a = r
            .register(reg("127.0.0.2", 2), "127.0.0.2:4000".into(), 1000)
            .unwrap();
        let b = r
            .register(reg("127.0.0.3", 3), "127.0.0.3:4000".into(), 1010)
            .unwrap();
        assert_eq!(a.0, "tm-1-127.0.0.2");
        assert_eq!(b.0, "tm-2-127.0.0.3");
        assert_eq!(r.slots_total(), 5);
        // b beats, a stays silent.
        assert!(r.heartbeat(&b, 1040));
        assert!(
            r.expire(1050).is_empty(),
            "exactly the timeout is not lost yet"
        );
        let lost = r.expire(1051);
        assert_eq!(
            lost,
            vec![(a.clone(), LossCause::HeartbeatTimeout { silent_ms: 51 })]
        );
        assert!(!r.contains(&a));
        // A late heartbeat of a lost TaskManager is refused: it must
        // register again.
        assert!(!r.heartbeat(&a, 1052));
        let listed = r.list(1060);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, b.0);
        assert_eq!(listed[0].slots_total, 3);
        assert_eq!(listed[0].last_heartbeat_ago_ms, 20);
        // It comes back under a new id.
        let a2 = r
            .register(reg("127.0.0.2", 2), "127.0.0.2:4001".into(), 1070)
            .unwrap();
        assert_eq!(a2.0, "tm-3-127.0.0.2");
    }

    #[test]
    fn slots_are_spread_over_taskmanagers_and_given_back() {
        let mut r = TaskManagerRegistry::new(50, "1.0");
        let a = r.register(reg("a", 2), "a:1".into(), 0).unwrap();
        let b = r.register(reg("b", 3), "b:1".into(), 0).unwrap();
        // b has the most free slots first, then they alternate.
        let slots = r.allocate(4).unwrap();
        assert_eq!(slots, vec![b.clone(), a.clone(), b.clone(), a.clone()]);
        assert_eq!(r.slots_free(), 1);
        assert_eq!(
            r.allocate(2),
            None,
            "nothing is allocated when it does not fit"
        );
        assert_eq!(r.slots_free(), 1);
        let listed = r.list(0);
        assert_eq!((listed[0].slots_free, listed[1].slots_free), (0, 1));
        r.release(&slots);
        assert_eq!(r.slots_free(), 5);
        // A lost TaskManager's slots go with it; releasing them is harmless.
        let held = r.allocate(5).unwrap();
        r.disconnected(&a, "gone");
        r.release(&held);
        assert_eq!(r.slots_free(), 3);
    }

    #[test]
    fn a_dropped_connection_loses_the_taskmanager_once() {
        let mut r = TaskManagerRegistry::new(50, "1.0");
        let a = r.register(reg("h", 1), "x".into(), 0).unwrap();
        assert_eq!(
            r.disconnected(&a, "reset by peer"),
            Some(LossCause::Disconnected("reset by peer".into()))
        );
        assert_eq!(r.disconnected(&a, "again"), None);
        assert!(r.is_empty());
    }

    #[test]
    fn bad_registrations_are_refused_and_change_nothing() {
        let mut r = TaskManagerRegistry::new(50, "1.0");
        let mut other = reg("h", 1);
        other.weir_version = "0.9".into();
        assert!(matches!(
            r.register(other, "x".into(), 0),
            Err(RegistrationRefused::Version { .. })
        ));
        assert_eq!(
            r.register(reg("h", 0), "x".into(), 0),
            Err(RegistrationRefused::Slots(0))
        );
        assert_eq!(
            r.register(reg("h", 5000), "x".into(), 0),
            Err(RegistrationRefused::Slots(5000))
        );
        assert_eq!(
            r.register(reg("", 1), "x".into(), 0),
            Err(RegistrationRefused::Host)
        );
        assert!(r.is_empty());
        // Odd characters in a host do not reach the id.
        let id = r.register(reg("a b/c", 1), "x".into(), 0).unwrap();
        assert_eq!(id.0, "tm-1-a_b_c");
    }
}

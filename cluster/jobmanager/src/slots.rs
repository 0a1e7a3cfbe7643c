//! Slots and the scheduling of jobs into them.
//!
//! A slot runs one subtask of every operator chain of a job (Flink's slot
//! sharing), so a job needs as many slots as its highest vertex
//! parallelism. Jobs are granted slots first come, first served; a job that
//! does not fit waits (CREATED) with the reason, and a job that could never
//! fit is refused at submission.

use std::collections::{BTreeMap, VecDeque};

/// The slots of this JobManager's local TaskManager and who holds them.
#[derive(Debug, Clone)]
pub struct SlotPool {
    total: u32,
    /// The slots are the registered TaskManagers' and come and go
    /// ([`SlotPool::set_total`]): no job is too large, it waits.
    elastic: bool,
    held: BTreeMap<String, u32>,
    waiting: VecDeque<(String, u32)>,
}

/// Why a job cannot be scheduled at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the job needs {needed} slots but the cluster has only {total} (taskmanager.numberOfTaskSlots); lower its parallelism"
)]
pub struct TooLarge {
    /// Slots the job needs.
    pub needed: u32,
    /// Slots there are.
    pub total: u32,
}

impl SlotPool {
    /// A pool of `total` slots, all free.
    pub fn new(total: u32) -> Self {
        Self {
            total,
            elastic: false,
            held: BTreeMap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// A pool of the slots of remote TaskManagers: empty until
    /// [`set_total`](Self::set_total) says how many they offer; a job that
    /// does not fit waits for more rather than being refused.
    pub fn elastic() -> Self {
        Self {
            elastic: true,
            ..Self::new(0)
        }
    }

    /// The number of slots now (TaskManagers registered or lost). Slots
    /// held beyond it stay held until released.
    pub fn set_total(&mut self, total: u32) {
        self.total = total;
    }

    /// All slots.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Slots no job holds.
    pub fn available(&self) -> u32 {
        self.total.saturating_sub(self.held.values().sum::<u32>())
    }

    /// Queues `job` for `needed` slots.
    ///
    /// # Errors
    /// [`TooLarge`] when the pool could never hold it.
    pub fn request(&mut self, job: &str, needed: u32) -> Result<(), TooLarge> {
        if needed > self.total && !self.elastic {
            return Err(TooLarge {
                needed,
                total: self.total,
            });
        }
        self.waiting.push_back((job.to_string(), needed));
        Ok(())
    }

    /// Grants slots to waiting jobs, oldest first, while the oldest fits
    /// (a large job is not overtaken, so it cannot starve); returns the
    /// jobs granted.
    pub fn schedule(&mut self) -> Vec<String> {
        let mut granted = Vec::new();
        while let Some((job, needed)) = self.waiting.front() {
            if *needed > self.available() {
                break;
            }
            self.held.insert(job.clone(), *needed);
            granted.push(job.clone());
            self.waiting.pop_front();
        }
        granted
    }

    /// Why `job` is still waiting, if it is.
    pub fn waiting_reason(&self, job: &str) -> Option<String> {
        let position = self.waiting.iter().position(|(j, _)| j == job)?;
        let needed = self.waiting[position].1;
        Some(if position == 0 && self.elastic {
            format!(
                "waiting for TaskManagers' slots: needs {needed}, {} of {} free (start more with `weir taskmanager`)",
                self.available(),
                self.total
            )
        } else if position == 0 {
            format!(
                "waiting for slots: needs {needed}, {} of {} free",
                self.available(),
                self.total
            )
        } else {
            format!("waiting for slots behind {position} earlier job(s): needs {needed}")
        })
    }

    /// Gives back the slots `job` holds, or takes it out of the queue.
    pub fn release(&mut self, job: &str) {
        self.held.remove(job);
        self.waiting.retain(|(j, _)| j != job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_wait_in_order_until_slots_free_up() {
        let mut pool = SlotPool::new(4);
        pool.request("a", 3).unwrap();
        pool.request("b", 2).unwrap();
        pool.request("c", 1).unwrap();
        assert_eq!(pool.schedule(), vec!["a".to_string()]);
        assert_eq!(pool.available(), 1);
        // c would fit, but b is first: no overtaking.
        assert_eq!(pool.schedule(), Vec::<String>::new());
        assert_eq!(
            pool.waiting_reason("b").unwrap(),
            "waiting for slots: needs 2, 1 of 4 free"
        );
        assert!(pool.waiting_reason("c").unwrap().contains("behind 1"));
        pool.release("a");
        assert_eq!(pool.schedule(), vec!["b".to_string(), "c".to_string()]);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting_reason("b"), None);
    }

    #[test]
    fn a_job_larger_than_the_pool_is_refused() {
        let mut pool = SlotPool::new(2);
        assert_eq!(
            pool.request("big", 3),
            Err(TooLarge {
                needed: 3,
                total: 2
            })
        );
        assert_eq!(pool.schedule(), Vec::<String>::new());
    }

    #[test]
    fn an_elastic_pool_makes_jobs_wait_for_taskmanagers() {
        let mut pool = SlotPool::elastic();
        pool.request("a", 3).unwrap();
        assert!(pool.schedule().is_empty());
        assert!(
            pool.waiting_reason("a")
                .unwrap()
                .contains("TaskManagers' slots")
        );
        pool.set_total(2);
        assert!(pool.schedule().is_empty());
        pool.set_total(4);
        assert_eq!(pool.schedule(), vec!["a".to_string()]);
        // A TaskManager lost under a running job: nothing underflows.
        pool.set_total(2);
        assert_eq!(pool.available(), 0);
        pool.release("a");
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn releasing_a_waiting_job_dequeues_it() {
        let mut pool = SlotPool::new(1);
        pool.request("a", 1).unwrap();
        pool.request("b", 1).unwrap();
        pool.schedule();
        pool.release("b");
        pool.release("a");
        assert!(pool.schedule().is_empty());
        assert_eq!(pool.available(), 1);
    }
}

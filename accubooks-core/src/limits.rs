//! Bounds on heavy work, so that one organization cannot starve the others.
//!
//! An export holds a pooled connection (and a snapshot) for as long as it
//! runs, and a large batch holds the committer for its whole transaction.
//! Each kind of heavy work has a budget per organization and one in all (a
//! share of the pool); work beyond it is refused at once with
//! [`Overloaded`] (429 with `Retry-After`), never queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::Limits;

/// A kind of heavy work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `GET /api/export/ledger`.
    Export,
    /// A batch of more than `LARGE_BATCH_ENTRIES` entries.
    LargeBatch,
}

impl Work {
    fn noun(self) -> &'static str {
        match self {
            Work::Export => "exports",
            Work::LargeBatch => "large batches",
        }
    }
}

/// Too much heavy work of one kind is running: retry after `retry_after`
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Overloaded {
    /// What is full, for the client.
    pub message: String,
    /// Seconds to wait.
    pub retry_after: u64,
}

/// The budgets of every kind of heavy work.
pub struct WorkLimits {
    export: Arc<Budget>,
    large_batch: Arc<Budget>,
    large_batch_entries: usize,
}

struct Budget {
    work: Work,
    per_organization: usize,
    total: usize,
    retry_after: u64,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_organization: HashMap<String, usize>,
}

/// A running piece of heavy work; its slot is freed when this is dropped.
#[must_use = "the slot is freed when the permit is dropped"]
pub struct WorkPermit {
    budget: Arc<Budget>,
    organization: String,
}

impl WorkLimits {
    /// Budgets from the configuration.
    pub fn new(limits: &Limits) -> Self {
        let budget = |work, per_organization, total, retry_after| {
            Arc::new(Budget {
                work,
                per_organization,
                total,
                retry_after,
                held: Mutex::new(Held::default()),
            })
        };
        WorkLimits {
            export: budget(
                Work::Export,
                limits.exports_per_organization,
                limits.exports_total,
                5,
            ),
            large_batch: budget(
                Work::LargeBatch,
                limits.large_batches_per_organization,
                limits.large_batches_total,
                2,
            ),
            large_batch_entries: limits.large_batch_entries,
        }
    }

    /// Takes a slot of `work` for `organization`, or refuses at once.
    pub fn acquire(&self, work: Work, organization: &str) -> Result<WorkPermit, Overloaded> {
        let budget = match work {
            Work::Export => &self.export,
            Work::LargeBatch => &self.large_batch,
        };
        budget.acquire(organization)
    }

    /// A slot for a batch of `entries` entries: `None` when it is not large.
    pub fn acquire_batch(
        &self,
        organization: &str,
        entries: usize,
    ) -> Result<Option<WorkPermit>, Overloaded> {
        if entries > self.large_batch_entries {
            self.acquire(Work::LargeBatch, organization).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Budget {
    fn acquire(self: &Arc<Self>, organization: &str) -> Result<WorkPermit, Overloaded> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.by_organization.get(organization).copied().unwrap_or(0);
        let message = if mine >= self.per_organization {
            format!(
                "This organization already runs {mine} {}, the most allowed at once; retry when one has finished.",
                self.work.noun()
            )
        } else if held.total >= self.total {
            format!(
                "The server already runs {} {}, the most allowed at once; retry shortly.",
                held.total,
                self.work.noun()
            )
        } else {
            held.total += 1;
            *held
                .by_organization
                .entry(organization.to_owned())
                .or_default() += 1;
            return Ok(WorkPermit {
                budget: Arc::clone(self),
                organization: organization.to_owned(),
            });
        };
        Err(Overloaded {
            message,
            retry_after: self.retry_after,
        })
    }
}

impl Drop for WorkPermit {
    fn drop(&mut self) {
        let mut held = self
            .budget
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.total -= 1;
        if let Some(count) = held.by_organization.get_mut(&self.organization) {
            *count -= 1;
            if *count == 0 {
                held.by_organization.remove(&self.organization);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> WorkLimits {
        let config = crate::Config::from_vars([
            ("EXPORTS_PER_ORGANIZATION", "2"),
            ("EXPORTS_MAX", "3"),
            ("LARGE_BATCH_ENTRIES", "100"),
        ])
        .unwrap();
        WorkLimits::new(&config.limits)
    }

    #[test]
    fn exports_are_bounded_per_organization_and_in_all() {
        let limits = limits();
        let a1 = limits.acquire(Work::Export, "a").unwrap();
        let _a2 = limits.acquire(Work::Export, "a").unwrap();
        let refused = limits.acquire(Work::Export, "a").err().unwrap();
        assert!(refused.message.contains("This organization"), "{refused}");
        assert_eq!(refused.retry_after, 5);
        let _b1 = limits.acquire(Work::Export, "b").unwrap();
        let full = limits.acquire(Work::Export, "c").err().unwrap();
        assert!(full.message.contains("The server"), "{full}");
        drop(a1);
        let _c1 = limits.acquire(Work::Export, "c").unwrap();
        // Batches have their own budget.
        assert!(limits.acquire(Work::LargeBatch, "a").is_ok());
    }

    #[test]
    fn only_large_batches_take_a_slot() {
        let limits = limits();
        assert!(limits.acquire_batch("a", 100).unwrap().is_none());
        let held: Vec<_> = (0..2)
            .map(|_| limits.acquire_batch("a", 101).unwrap().unwrap())
            .collect();
        assert!(limits.acquire_batch("a", 101).is_err());
        assert!(limits.acquire_batch("a", 5).unwrap().is_none());
        drop(held);
        assert!(limits.acquire_batch("a", 101).unwrap().is_some());
    }
}

//! Group commit: concurrent posting requests share one transaction.
//!
//! One commit per request caps posting at the disk's flush rate. Here a
//! single task drains every job queued while the previous transaction was
//! committing and writes them together, with bulk statements, so the flush
//! is shared. Each request is still answered only after the transaction
//! holding its entries has committed. If a group fails for a reason other
//! than the connection (say, a duplicate idempotency key), its jobs are
//! retried one by one so that only the faulty one fails.
//!
//! Balances are updated after locking the touched accounts in ascending id
//! order, so concurrent committers (several server processes on one
//! PostgreSQL) never deadlock. On PostgreSQL two groups are in flight: the
//! accounts are locked only after the group's entries and lines are inserted,
//! so one group's inserts run (on another core) while the previous group
//! holds the locks and waits for its flush.
//!
//! The committer is also where the lock date holds (contract §5): it reads
//! each organization's lock date inside the group's transaction and refuses
//! a job dated on or before it, or, for what comes from outside, posts it on
//! the first open day ([`WhenLocked`]). On PostgreSQL the lock date is
//! copied onto every account of its organization and read by the statement
//! that locks the group's accounts (a locked row is answered in its latest
//! committed version), and a change of the lock date updates those rows, so
//! a posting never commits under a lock date it did not see, at no cost to
//! postings (a shared advisory lock per group, tried first, cost 9 % of the
//! posting rate, and a read after the account locks 12 %).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::effects::Effect;
use super::entries::ValidEntry;
use super::{LedgerError, LedgerResult};
use crate::db::sql::Unique;
use crate::db::{Database, Pool};
use crate::error::Error;
use crate::idempotency::{self, IdempotencyKey, Render};

mod write;

use write::{write_postgres, write_sqlite};

/// The most postings one group carries; larger groups would hold locks longer
/// than they save in flushes.
const MAX_GROUP_LINES: usize = 50_000;

/// Groups written at once on PostgreSQL: one inserting while the other
/// holds the account locks and commits. More would only queue on the locks.
const POSTGRES_GROUPS_IN_FLIGHT: usize = 2;

/// How often an outside posting is moved forward before giving up: each move
/// follows a lock date (or invoice date) that moved meanwhile.
const MAX_REDATES: usize = 4;

/// What the committer does with a job dated on or before its organization's
/// lock date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenLocked {
    /// Refuses it with `409 PERIOD_LOCKED`: a change someone asks for, who
    /// can date it otherwise.
    Refuse,
    /// Posts it on the first open day, its own date kept in the entry's
    /// metadata as `original_date`: what comes from outside and cannot be
    /// refused (a card payment, a recurring occurrence). The same holds when
    /// an effect refuses the date as too early ([`Guard::TooEarly`]).
    PostOnFirstOpenDay,
    /// Posts it on this date although the period is locked through it: the
    /// closing entry of the period its close has just locked.
    CloseThrough(NaiveDate),
}

struct Job {
    entries: Vec<ValidEntry>,
    idempotency: Option<(IdempotencyKey, Render)>,
    effects: Vec<Box<dyn Effect>>,
    when_locked: WhenLocked,
    reply: oneshot::Sender<LedgerResult<Vec<i64>>>,
}

impl Job {
    fn lines(&self) -> usize {
        self.entries.iter().map(|e| e.lines.len()).sum()
    }

    /// Moves the entries dated before `earliest` to it, keeping each one's
    /// first date in its metadata.
    fn redate(&mut self, earliest: NaiveDate) {
        for entry in self.entries.iter_mut().filter(|e| e.date < earliest) {
            let original = entry.date.format("%Y-%m-%d").to_string();
            if !entry.metadata.insert_if_room("original_date", original) {
                tracing::warn!(
                    organization = %entry.organization,
                    "an outside posting moved past the lock date has no room left in its metadata for original_date"
                );
            }
            entry.date = earliest;
        }
    }
}

/// The handle to the committing task. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    sender: mpsc::Sender<Job>,
    /// How many groups have committed: changes after each commit.
    committed: watch::Receiver<u64>,
}

impl Committer {
    /// Starts the committing task on `db`.
    pub fn start(db: Database) -> Self {
        let (sender, receiver) = mpsc::channel(4096);
        let (commits, committed) = watch::channel(0);
        tokio::spawn(run(db, receiver, Arc::new(commits)));
        Committer { sender, committed }
    }

    /// A receiver that sees a change after every group this committer
    /// commits (and so after the events it wrote): what a task that follows
    /// new events waits on instead of polling.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Posts `entries` atomically (all or none) and returns their ids, once
    /// committed. With `idempotency`, the rendered answer is stored in the
    /// same transaction.
    pub async fn post(
        &self,
        entries: Vec<ValidEntry>,
        idempotency: Option<(IdempotencyKey, Render)>,
    ) -> LedgerResult<Vec<i64>> {
        self.post_with_effects(entries, idempotency, Vec::new())
            .await
    }

    /// Like [`Committer::post`], with changes to other records committed in
    /// the same transaction, in order. Effects refer to the job's first
    /// entry; one whose guard does not hold fails the job with a conflict
    /// and nothing of it is written.
    pub async fn post_with_effects(
        &self,
        entries: Vec<ValidEntry>,
        idempotency: Option<(IdempotencyKey, Render)>,
        effects: Vec<Box<dyn Effect>>,
    ) -> LedgerResult<Vec<i64>> {
        self.post_when_locked(entries, idempotency, effects, WhenLocked::Refuse)
            .await
    }

    /// Like [`Committer::post_with_effects`], saying what happens to a job
    /// dated in a locked period.
    pub async fn post_when_locked(
        &self,
        entries: Vec<ValidEntry>,
        idempotency: Option<(IdempotencyKey, Render)>,
        effects: Vec<Box<dyn Effect>>,
        when_locked: WhenLocked,
    ) -> LedgerResult<Vec<i64>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            entries,
            idempotency,
            effects,
            when_locked,
            reply,
        };
        self.sender.send(job).await.map_err(|_| {
            LedgerError::Storage(Error::Setup("the committer has stopped".to_owned()))
        })?;
        answer.await.map_err(|_| {
            LedgerError::Storage(Error::Setup("the committer dropped a job".to_owned()))
        })?
    }
}

async fn run(db: Database, mut receiver: mpsc::Receiver<Job>, commits: Arc<watch::Sender<u64>>) {
    // SQLite has one writer (BEGIN IMMEDIATE): a second group would only wait.
    let in_flight = match db.pool() {
        Pool::Postgres(_) => POSTGRES_GROUPS_IN_FLIGHT,
        Pool::Sqlite(_) => 1,
    };
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = receiver.recv().await {
        // Gather the group once a slot is free, so it takes in every job
        // that arrived while the slots were busy.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut lines = first.lines();
        let mut group = vec![first];
        while lines < MAX_GROUP_LINES {
            match receiver.try_recv() {
                Ok(job) => {
                    lines += job.lines();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let db = db.clone();
        let commits = Arc::clone(&commits);
        tokio::spawn(async move {
            if commit_group(&db, group).await {
                commits.send_modify(|n| *n = n.wrapping_add(1));
            }
            drop(slot);
        });
    }
}

/// Commits a group; answers whether anything of it committed.
async fn commit_group(db: &Database, group: Vec<Job>) -> bool {
    if group.len() > 1 {
        let refs: Vec<&Job> = group.iter().collect();
        match write(db, &refs).await {
            Ok(ids) => {
                for (job, ids) in group.into_iter().zip(ids) {
                    let _ = job.reply.send(Ok(ids));
                }
                return true;
            }
            Err(WriteError::Storage(Error::DatabaseUnavailable(fault))) => {
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(LedgerError::Storage(Error::DatabaseUnavailable(fault))));
                }
                return false;
            }
            // Something in the group is faulty (or dated in a locked
            // period): commit each job on its own below, so that only the
            // faulty one fails.
            Err(_) => {}
        }
    }
    let mut any = false;
    for mut job in group {
        let answer = write_alone(db, &mut job).await;
        any |= answer.is_ok();
        let _ = job.reply.send(answer);
    }
    any
}

/// Commits one job; an outside posting refused as too early is moved to the
/// first date it may have and committed again.
async fn write_alone(db: &Database, job: &mut Job) -> LedgerResult<Vec<i64>> {
    let mut redated = 0;
    loop {
        match write(db, &[&*job]).await {
            Ok(mut ids) => return Ok(ids.pop().expect("one job")),
            Err(WriteError::TooEarly { earliest, .. })
                if job.when_locked == WhenLocked::PostOnFirstOpenDay && redated < MAX_REDATES =>
            {
                job.redate(earliest);
                redated += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

impl From<WriteError> for LedgerError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::IdempotencyRace => idempotency::key_in_use().into(),
            WriteError::AlreadyReversed => LedgerError::Conflict {
                code: "ALREADY_REVERSED",
                message: "This journal entry was already reversed.".to_owned(),
            },
            WriteError::StateChanged => LedgerError::Conflict {
                code: "INVOICE_STATE_CHANGED",
                message: "The invoice is not in a state that allows this (it may have been issued, paid, \
                          credited or voided meanwhile); reload it."
                    .to_owned(),
            },
            WriteError::AccountMissing => LedgerError::Conflict {
                code: "UNKNOWN_ACCOUNT",
                message: "An account of this entry does not exist (any more); reload the chart of accounts."
                    .to_owned(),
            },
            WriteError::OutOfRange => LedgerError::invalid(
                "AMOUNT_OUT_OF_RANGE",
                "This would take an account's balance beyond what the books can hold \
                 (92,233,720,368,547,758.07 in a two-decimal currency); check the amounts.",
            ),
            WriteError::TooEarly { code, message, .. } => LedgerError::Conflict { code, message },
            WriteError::Storage(err) => LedgerError::Storage(err),
        }
    }
}

enum WriteError {
    IdempotencyRace,
    AlreadyReversed,
    StateChanged,
    AccountMissing,
    OutOfRange,
    TooEarly {
        earliest: NaiveDate,
        code: &'static str,
        message: String,
    },
    Storage(Error),
}

/// Why a backend writer rolled a group's transaction back.
enum Refused {
    /// An account a line names is not there: journal_lines has no foreign
    /// key to accounts (migration 0003), the writer's check stands in for it.
    AccountMissing,
    /// An effect's guard did not hold: its record changed meanwhile.
    StateChanged,
    /// A balance (or a day's movement) would leave the range of a 64-bit
    /// count of minor units.
    OutOfRange,
    /// A job is dated before what its organization's lock date (or one of
    /// its effects) allows.
    TooEarly {
        earliest: NaiveDate,
        code: &'static str,
        message: String,
    },
    /// The database refused a statement (or the connection failed).
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(err: sqlx::Error) -> Self {
        Refused::Sql(err)
    }
}

/// Everything one transaction writes, flattened for bulk statements.
struct Plan<'a> {
    entries: Vec<&'a ValidEntry>,
    /// (entry index, line number from 1, account id, amount)
    lines: Vec<(usize, i32, i64, i64)>,
    /// Every account a line names, in ascending id order (the lock order).
    accounts: Vec<i64>,
    /// account id -> net change
    balances: BTreeMap<i64, i64>,
    /// (account id, day) -> net change
    days: BTreeMap<(i64, NaiveDate), i64>,
    /// The distinct organizations of the entries.
    organizations: BTreeSet<&'a str>,
    /// A net change above does not fit in 64 bits: nothing is written.
    overflows: bool,
}

fn plan<'a>(jobs: &[&'a Job]) -> Plan<'a> {
    let mut plan = Plan {
        entries: jobs.iter().flat_map(|j| j.entries.iter()).collect(),
        lines: Vec::with_capacity(jobs.iter().map(|j| j.lines()).sum()),
        accounts: Vec::new(),
        balances: BTreeMap::new(),
        days: BTreeMap::new(),
        organizations: BTreeSet::new(),
        overflows: false,
    };
    for (index, entry) in plan.entries.iter().enumerate() {
        plan.organizations.insert(&entry.organization);
        for (number, line) in (1..).zip(&entry.lines) {
            plan.lines
                .push((index, number, line.account_id, line.amount));
            let balance = plan.balances.entry(line.account_id).or_default();
            let day = plan.days.entry((line.account_id, entry.date)).or_default();
            match (
                balance.checked_add(line.amount),
                day.checked_add(line.amount),
            ) {
                (Some(b), Some(d)) => (*balance, *day) = (b, d),
                _ => plan.overflows = true,
            }
        }
    }
    plan.accounts = plan.balances.keys().copied().collect();
    // Movements that cancel out within the group need no write.
    plan.balances.retain(|_, delta| *delta != 0);
    plan.days.retain(|_, delta| *delta != 0);
    plan
}

async fn write(db: &Database, jobs: &[&Job]) -> Result<Vec<Vec<i64>>, WriteError> {
    let plan = plan(jobs);
    if plan.overflows {
        return Err(WriteError::OutOfRange);
    }
    let outcome = db
        .run_to_completion(|pool| async {
            let ids = match pool {
                Pool::Postgres(pool) => write_postgres(db, &pool, &plan, jobs).await,
                Pool::Sqlite(pool) => write_sqlite(db, &pool, &plan, jobs).await,
            };
            // Connection-class errors must reach the guard, so only they
            // travel as Err; refusals are sorted out below.
            match ids {
                Ok(ids) => Ok(Ok(ids)),
                Err(Refused::Sql(err)) if crate::db::classify(&err).is_some() => Err(err),
                Err(refused) => Ok(Err(refused)),
            }
        })
        .await;
    match outcome {
        Ok(Ok(ids)) => Ok(ids),
        Ok(Err(Refused::StateChanged)) => Err(WriteError::StateChanged),
        Ok(Err(Refused::AccountMissing)) => Err(WriteError::AccountMissing),
        Ok(Err(Refused::OutOfRange)) => Err(WriteError::OutOfRange),
        Ok(Err(Refused::TooEarly {
            earliest,
            code,
            message,
        })) => Err(WriteError::TooEarly {
            earliest,
            code,
            message,
        }),
        // PostgreSQL's bigint arithmetic refuses an overflow itself.
        Ok(Err(Refused::Sql(sqlx::Error::Database(db))))
            if db.code().as_deref() == Some("22003") =>
        {
            Err(WriteError::OutOfRange)
        }
        Ok(Err(Refused::Sql(err))) => match crate::db::sql::unique_violation(&err) {
            Some(Unique::IdempotencyKey) => Err(WriteError::IdempotencyRace),
            Some(Unique::Reversal) => Err(WriteError::AlreadyReversed),
            _ => Err(WriteError::Storage(Error::Query(err))),
        },
        Err(err) => Err(WriteError::Storage(err)),
    }
}

/// Splits the flat list of new ids back into one list per job.
fn split_ids(jobs: &[&Job], ids: &[i64]) -> Vec<Vec<i64>> {
    let mut rest = ids;
    jobs.iter()
        .map(|job| {
            let (mine, others) = rest.split_at(job.entries.len());
            rest = others;
            mine.to_vec()
        })
        .collect()
}

/// The answers to store under idempotency keys, rendered with the new ids.
fn answers<'a>(jobs: &[&'a Job], per_job: &[Vec<i64>]) -> Vec<(&'a IdempotencyKey, u16, String)> {
    jobs.iter()
        .zip(per_job)
        .filter_map(|(job, ids)| {
            let (key, render) = job.idempotency.as_ref()?;
            let (status, body) = render(ids);
            Some((key, status, body))
        })
        .collect()
}

/// The code of a change refused for its date in a locked period.
pub(crate) const PERIOD_LOCKED: &str = "PERIOD_LOCKED";

/// Why a change dated `date` is refused under lock date `lock`.
pub(crate) fn locked_message(lock: NaiveDate, date: NaiveDate) -> String {
    format!(
        "The books are locked through {lock}, so nothing dated {date} can be posted. Date the \
         change after {lock}, or ask an owner to move the lock date back."
    )
}

/// Refuses the first job dated on or before its organization's lock date,
/// given the organizations that have one.
fn check_locks(jobs: &[&Job], locks: &[(String, NaiveDate)]) -> Result<(), Refused> {
    if locks.is_empty() {
        return Ok(());
    }
    for job in jobs {
        for entry in &job.entries {
            let Some(&(_, lock)) = locks.iter().find(|(o, _)| o == entry.organization.as_str())
            else {
                continue;
            };
            let closing = job.when_locked == WhenLocked::CloseThrough(lock) && entry.date == lock;
            if entry.date <= lock && !closing {
                return Err(Refused::TooEarly {
                    earliest: lock.succ_opt().unwrap_or(lock),
                    code: PERIOD_LOCKED,
                    message: locked_message(lock, entry.date),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entries::ValidLine;

    fn entry(date: &str, lines: &[(i64, i64)]) -> ValidEntry {
        ValidEntry {
            organization: crate::organization::OrganizationId::nth(1),
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            memo: String::new(),
            reverses: None,
            lines: lines
                .iter()
                .map(|(account_id, amount)| ValidLine {
                    account_id: *account_id,
                    account_code: account_id.to_string(),
                    currency: "USD".into(),
                    amount: *amount,
                })
                .collect(),
            metadata: Default::default(),
            kind: Default::default(),
        }
    }

    #[test]
    fn a_plan_nets_movements_and_orders_accounts() {
        let job = |entries: Vec<ValidEntry>| Job {
            entries,
            idempotency: None,
            effects: Vec::new(),
            when_locked: WhenLocked::Refuse,
            reply: oneshot::channel().0,
        };
        let a = job(vec![entry("2026-01-01", &[(2, 100), (1, -100)])]);
        let b = job(vec![
            entry("2026-01-01", &[(1, 100), (3, -100)]),
            entry("2026-01-02", &[(3, 5), (2, -5)]),
        ]);
        let plan = plan(&[&a, &b]);
        assert_eq!(plan.entries.len(), 3);
        assert_eq!(plan.lines.len(), 6);
        // Lines are numbered from 1 within their entry.
        assert_eq!(
            plan.lines.iter().map(|l| (l.0, l.1)).collect::<Vec<_>>(),
            vec![(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]
        );
        // Every named account is locked and checked, even one that nets to zero.
        assert_eq!(plan.accounts, vec![1, 2, 3]);
        assert_eq!(
            plan.organizations.into_iter().collect::<Vec<_>>(),
            vec![crate::organization::OrganizationId::nth(1).as_str()]
        );
        // Account 1 nets to zero and is not touched; the rest are in id order.
        assert_eq!(
            plan.balances.into_iter().collect::<Vec<_>>(),
            vec![(2, 95), (3, -95)]
        );
        assert_eq!(plan.days.len(), 4);
        assert_eq!(
            split_ids(&[&a, &b], &[10, 11, 12]),
            vec![vec![10], vec![11, 12]]
        );
    }
}

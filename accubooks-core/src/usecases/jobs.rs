//! The organization's background jobs: listed, read and retried.

use super::{Books, Result, org};
use crate::identity::{Principal, Role};
use crate::jobs::{self, Job, JobStatus, Queue};
use crate::ledger::LedgerError;
use crate::paging::{Page, PageRequest};

fn no_such_job() -> LedgerError {
    LedgerError::NotFound("There is no such job.".to_owned())
}

impl Books<'_> {
    /// One job of the organization.
    pub async fn job(&self, caller: &Principal, id: i64) -> Result<Job> {
        self.run("job", Some(caller), Role::Viewer, async {
            jobs::get_job(self.app.database(), &org(caller), id)
                .await?
                .ok_or_else(|| no_such_job().into())
        })
        .await
    }

    /// A page of the organization's jobs, newest first.
    pub async fn jobs(
        &self,
        caller: &Principal,
        queue: Option<Queue>,
        status: Option<JobStatus>,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Job>>> {
        self.run("jobs", Some(caller), Role::Viewer, async {
            let db = self.app.database();
            Ok(jobs::list_jobs(db, &org(caller), queue, status, &page).await?)
        })
        .await
    }

    /// Queues a dead job again (`409 JOB_NOT_DEAD` for any other).
    pub async fn retry_job(&self, caller: &Principal, id: i64) -> Result<Job> {
        self.run("retry_job", Some(caller), Role::Accountant, async {
            let (job, retried) = jobs::retry_job(self.app.database(), &org(caller), id)
                .await?
                .ok_or_else(no_such_job)?;
            if !retried {
                return Err(LedgerError::Conflict {
                    code: "JOB_NOT_DEAD",
                    message: format!(
                        "Job {id} is {}; only a dead job can be retried.",
                        job.status.as_str()
                    ),
                }
                .into());
            }
            self.app.jobs().wake(job.queue);
            Ok(job)
        })
        .await
    }
}

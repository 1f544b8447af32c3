//! Background work: jobs, and recurring invoices.

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Result, org};
use crate::identity::{Principal, Role};
use crate::invoicing::recurring::{self, NewRecurringInvoice, Preview, RecurringInvoice};
use crate::jobs::{self, Job, JobStatus, Queue};
use crate::ledger::{self, LedgerError};
use crate::paging::{Page, PageRequest};
use crate::payroll::{self, Employee, NewEmployee, NewPayrollRun, PayrollRule, PayrollRun};
use crate::reporting::{self, NewReportJob, ReportJob, ResultFormat};

/// The most occurrences a preview shows: no answer holds more items than a
/// list's largest page (contract §4).
pub const MAX_PREVIEW: usize = crate::paging::MAX_LIMIT as usize;

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

    /// Creates a recurring invoice; its occurrences already due (a start in
    /// the past) are asked for in the same transaction.
    pub async fn create_recurring_invoice(
        &self,
        caller: &Principal,
        new: NewRecurringInvoice,
        key: Option<ClientKey>,
    ) -> Result<Answer<RecurringInvoice>> {
        let keyed = Keyed {
            operation: "create_recurring_invoice",
            target: None,
            input: &new,
        };
        let new = &new;
        let answer = self
            .run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
                let render = |recurring: &RecurringInvoice| stored(recurring);
                let key = key
                    .as_ref()
                    .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
                let (recurring, _asked) = recurring::create_recurring(
                    self.app.ledger(),
                    &org(caller),
                    new.clone(),
                    chrono::Utc::now(),
                    key,
                )
                .await?;
                Ok(recurring)
            })
            .await?;
        self.app.jobs().wake(recurring::QUEUE);
        Ok(answer)
    }

    /// A page of the organization's recurring invoices, oldest first.
    pub async fn recurring_invoices(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<RecurringInvoice>>> {
        self.run("recurring_invoices", Some(caller), Role::Viewer, async {
            Ok(recurring::list_recurring(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// One recurring invoice.
    pub async fn recurring_invoice(&self, caller: &Principal, id: i64) -> Result<RecurringInvoice> {
        self.run("recurring_invoice", Some(caller), Role::Viewer, async {
            Ok(recurring::get_recurring(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// The next `count` (1 to 1000) occurrences not yet asked for.
    pub async fn preview_recurring_invoice(
        &self,
        caller: &Principal,
        id: i64,
        count: usize,
    ) -> Result<Preview> {
        self.run(
            "preview_recurring_invoice",
            Some(caller),
            Role::Viewer,
            async {
                if !(1..=MAX_PREVIEW).contains(&count) {
                    return Err(LedgerError::invalid(
                        "INVALID_FIELD",
                        format!("count is a whole number from 1 to {MAX_PREVIEW}."),
                    )
                    .into());
                }
                Ok(recurring::preview(self.app.database(), &org(caller), id, count).await?)
            },
        )
        .await
    }

    /// Asks for a report as a job; its query is checked now (`422`), and
    /// recorded with the job in one transaction.
    pub async fn create_report_job(
        &self,
        caller: &Principal,
        new: NewReportJob,
        key: Option<ClientKey>,
    ) -> Result<Answer<ReportJob>> {
        let keyed = Keyed {
            operation: "create_report_job",
            target: None,
            input: &new,
        };
        let new = &new;
        let job = self
            .run_keyed(caller, Role::Viewer, key, keyed, |key| async move {
                let render = |job: &ReportJob| stored(job);
                let key = key
                    .as_ref()
                    .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
                let db = self.app.database();
                let storage = self.app.report_storage();
                Ok(reporting::create_report_job(db, &org(caller), new, storage, key).await?)
            })
            .await?;
        self.app.jobs().wake(reporting::QUEUE);
        Ok(job)
    }

    /// A report job.
    pub async fn report_job(&self, caller: &Principal, id: i64) -> Result<ReportJob> {
        self.run("report_job", Some(caller), Role::Viewer, async {
            Ok(reporting::get_report_job(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// The stored result of a report job (`409 REPORT_NOT_READY` before,
    /// `410 REPORT_EXPIRED` once purged after `RETENTION_DAYS`).
    pub async fn report_result(
        &self,
        caller: &Principal,
        id: i64,
    ) -> Result<(ResultFormat, String)> {
        self.run("report_result", Some(caller), Role::Viewer, async {
            let days = self.app.jobs().config().retention_days;
            Ok(reporting::report_result(self.app.database(), &org(caller), id, days).await?)
        })
        .await
    }

    /// Adds an employee.
    pub async fn create_employee(
        &self,
        caller: &Principal,
        new: NewEmployee,
        key: Option<ClientKey>,
    ) -> Result<Answer<Employee>> {
        let keyed = Keyed {
            operation: "create_employee",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |employee: &Employee| stored(employee);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let ledger = self.app.ledger();
            Ok(payroll::create_employee(ledger, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// A page of the organization's employees, by id (accountants and
    /// owners: salaries are not for viewers).
    pub async fn employees(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Employee>>> {
        self.run("employees", Some(caller), Role::Accountant, async {
            Ok(payroll::list_employees(self.app.ledger(), &org(caller), &page).await?)
        })
        .await
    }

    /// The organization's payroll rules (accountants and owners).
    pub async fn payroll_rules(&self, caller: &Principal) -> Result<Vec<PayrollRule>> {
        self.run("payroll_rules", Some(caller), Role::Accountant, async {
            Ok(payroll::get_rules(self.app.database(), &org(caller)).await?)
        })
        .await
    }

    /// Replaces the organization's payroll rules.
    pub async fn put_payroll_rules(
        &self,
        caller: &Principal,
        rules: Vec<PayrollRule>,
    ) -> Result<Vec<PayrollRule>> {
        self.run("put_payroll_rules", Some(caller), Role::Accountant, async {
            Ok(payroll::put_rules(self.app.ledger(), &org(caller), rules).await?)
        })
        .await
    }

    /// Asks for a pay run (`409 PAYROLL_PERIOD_OVERLAP` when another run
    /// pays some of the same employees for part of the period).
    pub async fn create_payroll_run(
        &self,
        caller: &Principal,
        new: NewPayrollRun,
        key: Option<ClientKey>,
    ) -> Result<Answer<PayrollRun>> {
        let keyed = Keyed {
            operation: "create_payroll_run",
            target: None,
            input: &new,
        };
        let new = &new;
        let run = self
            .run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
                let render = |run: &PayrollRun| stored(run);
                let key = key
                    .as_ref()
                    .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
                let ledger = self.app.ledger();
                Ok(payroll::create_run(ledger, &org(caller), new.clone(), key).await?)
            })
            .await?;
        self.app.jobs().wake(payroll::QUEUE);
        Ok(run)
    }

    /// A pay run, with its payslips once posted (accountants and owners).
    pub async fn payroll_run(&self, caller: &Principal, id: i64) -> Result<PayrollRun> {
        self.run("payroll_run", Some(caller), Role::Accountant, async {
            Ok(payroll::get_run(self.app.database(), &org(caller), id).await?)
        })
        .await
    }
}

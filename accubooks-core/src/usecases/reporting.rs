//! Reporting: the reports, the export, and reports asked for as jobs.

use chrono::NaiveDate;

use super::idempotent::{Keyed, stored};
use super::{Answer, ClientKey};
use super::{Books, Result, org};
use crate::identity::{Principal, Role};
use crate::ledger::{
    self, BalanceSheet, EXPORT_TIME_LIMIT, ExportFormat, ExportStream, GeneralLedger,
    IncomeStatement, LedgerKey, TrialBalance,
};
use crate::limits::Work;
use crate::paging::{Page, PageRequest};
use crate::reporting::{self, CashFlowStatement, NewReportJob, ReportJob, ResultFormat};

/// A report's day: the one given, else today (UTC).
pub(crate) fn or_today(date: Option<NaiveDate>) -> NaiveDate {
    date.unwrap_or_else(|| chrono::Utc::now().date_naive())
}

impl Books<'_> {
    /// Every account's debit or credit balance at the end of `as_of`
    /// (default: today, UTC).
    pub async fn trial_balance(
        &self,
        caller: &Principal,
        as_of: Option<NaiveDate>,
    ) -> Result<TrialBalance> {
        self.run("trial_balance", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::trial_balance(db, &org(caller), or_today(as_of)).await?)
        })
        .await
    }

    /// Assets, liabilities and equity at the end of `as_of` (default:
    /// today, UTC), with current earnings.
    pub async fn balance_sheet(
        &self,
        caller: &Principal,
        as_of: Option<NaiveDate>,
    ) -> Result<BalanceSheet> {
        self.run("balance_sheet", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::balance_sheet(db, &org(caller), or_today(as_of)).await?)
        })
        .await
    }

    /// Revenue and expenses from `from` to `to`, inclusive.
    pub async fn income_statement(
        &self,
        caller: &Principal,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<IncomeStatement> {
        self.run("income_statement", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::income_statement(db, &org(caller), from, to).await?)
        })
        .await
    }

    /// Cash in and out from `from` to `to`, inclusive, by counterpart
    /// account, with opening and closing cash (direct method).
    pub async fn cash_flow(
        &self,
        caller: &Principal,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<CashFlowStatement> {
        self.run("cash_flow", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(reporting::cash_flow(db, &org(caller), from, to).await?)
        })
        .await
    }

    /// A page of one account's postings from `from` to `to`, with running
    /// balances.
    pub async fn general_ledger(
        &self,
        caller: &Principal,
        account: &str,
        from: NaiveDate,
        to: NaiveDate,
        page: PageRequest<LedgerKey>,
    ) -> Result<Page<GeneralLedger>> {
        self.run("general_ledger", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::general_ledger(db, &org(caller), account, from, to, &page).await?)
        })
        .await
    }

    /// The books up to the end of `as_of` (default: today, UTC) as an
    /// hledger or beancount journal, with an exact balance assertion per
    /// account, streamed in chunks. Bounded per organization and in all
    /// (`EXPORTS_*`): the slot is held until the stream ends or is dropped.
    /// The time limit here is to the first chunk; the whole export has
    /// [`EXPORT_TIME_LIMIT`] too.
    pub async fn export_ledger(
        &self,
        caller: &Principal,
        format: ExportFormat,
        as_of: Option<NaiveDate>,
    ) -> Result<ExportStream> {
        let work = async {
            let organization = org(caller);
            let slot = self
                .app
                .work_limits()
                .acquire(Work::Export, &organization)?;
            let db = self.app.database();
            let stream = ledger::export_ledger(db, &organization, format, or_today(as_of)).await?;
            Ok(stream.holding(slot))
        };
        self.run_within(
            "export_ledger",
            Some(caller),
            Role::Viewer,
            EXPORT_TIME_LIMIT,
            work,
        )
        .await
    }
}

impl Books<'_> {
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
}

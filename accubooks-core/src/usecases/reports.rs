//! The reports and the export.

use chrono::NaiveDate;

use super::{Books, Result, org};
use crate::identity::{Principal, Role};
use crate::ledger::{
    self, BalanceSheet, EXPORT_TIME_LIMIT, ExportFormat, ExportStream, GeneralLedger,
    IncomeStatement, LedgerKey, TrialBalance,
};
use crate::limits::Work;
use crate::paging::{Page, PageRequest};

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

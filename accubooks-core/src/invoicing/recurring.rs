//! Recurring invoices (contract section 7): templates with a schedule, and
//! the jobs that turn each occurrence into an invoice, exactly once.
//!
//! A template keeps the index and date of its next occurrence not yet asked
//! for. Asking for occurrences (when the template is created, then by the
//! scheduler) records the occurrences that have come due in the
//! organization's time zone as one job per organization (all its templates
//! a pass found due), in the same transaction that advances the templates,
//! keyed `recurring:<template>:<date>` by its oldest occurrence: a second
//! scheduler asking at the same moment inserts nothing new, and an
//! occurrence missed while the server or Redis was down is asked for on the
//! next pass. The job creates each occurrence's invoice, unique per
//! (template, date), and issues it when the template says so, oldest first,
//! so invoice numbers follow the occurrences' dates.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::invoices::{
    INVOICE_DATE_ORDER, check_invoice, create_recurring_invoice, get_invoice, issue_occurrence,
};
use super::schedule::{Frequency, Schedule};
use crate::db::sql::{BeginScoped, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::invoicing::{InvoiceStatus, NewInvoice, NewLine, parse_timezone};
use crate::jobs::{JobFailure, NewJob, Queue, insert_jobs, now_ms};
use crate::ledger::{Ledger, LedgerError, LedgerResult, RenderRecord, parse_date};
use crate::metadata::Metadata;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// The kind of the job that generates one occurrence.
pub const JOB_KIND: &str = "recurring-invoice";
/// The queue of the occurrences' jobs.
pub const QUEUE: Queue = Queue::new("recurring-invoices");

/// Most occurrences one pass of the scheduler asks for per organization,
/// all its templates together (and a new template for itself); a schedule
/// further behind is caught up over the next passes, so one organization's
/// templates cannot fill the queue ahead of everyone else's.
pub const MAX_PER_PASS: usize = 1000;

/// How many years before today (in the organization's time zone) a
/// recurring invoice may start; an earlier start is refused with
/// `422 START_TOO_EARLY`.
pub const MAX_YEARS_BACK: u32 = 5;

/// A schedule as clients write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `weekly`, `monthly`, `quarterly` or `yearly`.
    pub frequency: Frequency,
    /// Every how many periods (1 to 120); default 1.
    #[serde(default = "one")]
    pub interval: u32,
    /// The first occurrence, `YYYY-MM-DD`; later ones are computed from it.
    #[schema(format = Date)]
    pub start: String,
    /// The last day an occurrence may fall on, or null.
    #[serde(default)]
    #[schema(format = Date)]
    pub end: Option<String>,
    /// How many occurrences at most, or null.
    #[serde(default)]
    pub count: Option<u32>,
}

fn one() -> u32 {
    1
}

fn thirty() -> u32 {
    30
}

impl ScheduleSpec {
    /// The checked schedule (`422 INVALID_SCHEDULE` or `INVALID_DATE`).
    pub fn schedule(&self) -> LedgerResult<Schedule> {
        let start = parse_date(&self.start)?;
        let end = self.end.as_deref().map(parse_date).transpose()?;
        Schedule::new(self.frequency, self.interval, start, end, self.count)
    }
}

/// `POST /api/recurring-invoices`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecurringInvoice {
    /// The customer.
    pub customer_id: i64,
    /// ISO 4217 code; defaults to the receivables account's currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// The lines of every occurrence.
    pub lines: Vec<NewLine>,
    /// When it falls due.
    pub schedule: ScheduleSpec,
    /// Days from an occurrence to its invoice's due date (0 to 3650); default 30.
    #[serde(default = "thirty")]
    pub due_days: u32,
    /// Whether each occurrence is issued (posting its receivable) rather
    /// than left a draft.
    #[serde(default)]
    pub auto_issue: bool,
    /// String keys and values copied onto every occurrence's invoice
    /// (contract §5).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// A recurring invoice as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecurringInvoice {
    /// Id.
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The currency, when given.
    pub currency: Option<String>,
    /// The lines of every occurrence.
    pub lines: Vec<NewLine>,
    /// The schedule.
    pub schedule: ScheduleSpec,
    /// Days from an occurrence to its due date.
    pub due_days: u32,
    /// Whether occurrences are issued.
    pub auto_issue: bool,
    /// The metadata every occurrence's invoice gets (`{}` when none).
    pub metadata: Metadata,
    /// Occurrences asked for so far.
    pub occurrences: u32,
    /// The next occurrence not yet asked for; null once the schedule ended.
    pub next_date: Option<NaiveDate>,
}

/// `GET /api/recurring-invoices/{id}/preview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The next occurrences not yet asked for, oldest first.
    pub dates: Vec<NaiveDate>,
}

/// What the template row stores beside its schedule.
#[derive(Serialize, Deserialize)]
struct Template {
    currency: Option<String>,
    lines: Vec<NewLine>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    metadata: Metadata,
}

/// One occurrence of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Occurrence {
    // Field order is the sort order: oldest first, then by template.
    period: NaiveDate,
    recurring_id: i64,
}

/// The payload of an occurrences' job: the occurrences one pass asked for
/// of one organization (all its templates), or, from before invoice
/// numbers followed issue dates, one occurrence.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Payload {
    Many { occurrences: Vec<Occurrence> },
    One(Occurrence),
}

/// The occurrences of `schedule` from the `from`-th that are due on `today`
/// (at most `most`), and the index and date of the next one after them.
fn due_now(
    schedule: &Schedule,
    from: u32,
    today: NaiveDate,
    most: usize,
) -> (Vec<(u32, NaiveDate)>, u32, Option<NaiveDate>) {
    let due: Vec<(u32, NaiveDate)> = schedule.due(from, today).take(most).collect();
    let next = due.last().map_or(from, |(n, _)| n + 1);
    (due, next, schedule.occurrence(next))
}

/// The one job of an organization's occurrences asked for together: it
/// generates (and issues) them one after the other, oldest first across the
/// organization's templates, so their numbers follow their dates. Keyed by
/// its oldest occurrence, which is asked for once only.
fn occurrences_job(mut occurrences: Vec<Occurrence>) -> Option<NewJob> {
    occurrences.sort();
    let first = *occurrences.first()?;
    Some(NewJob {
        queue: QUEUE,
        kind: JOB_KIND,
        unique_key: format!("recurring:{}:{}", first.recurring_id, first.period),
        payload: serde_json::to_value(Payload::Many { occurrences }).unwrap_or_default(),
    })
}

/// Advances template `$id` past `$due` occurrences to `$next`/`$next_date`,
/// in `$tx`, if it is still at `$from`. Evaluates to the occurrences so
/// asked for (none if another pass advanced it first), with `?` on query
/// errors; their job is recorded by the caller, one per organization.
macro_rules! ask_in {
    ($tx:expr, $id:expr, $from:expr, $due:expr, $next:expr, $next_date:expr) => {{
        let advanced = sqlx::query(
            "UPDATE recurring_invoices SET next_index = $1, next_date = $2 \
             WHERE id = $3 AND next_index = $4",
        )
        .bind(i64::from($next))
        .bind($next_date)
        .bind($id)
        .bind(i64::from($from))
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        let mut asked = Vec::new();
        if advanced == 1 {
            asked.extend($due.iter().map(|(_, period)| Occurrence {
                recurring_id: $id,
                period: *period,
            }));
        }
        asked
    }};
}

/// The date of the instant `now` in the organization's time zone (today's,
/// given the time now); UTC's when the zone's name is unknown.
pub(crate) fn day_in(timezone: &str, now: DateTime<Utc>) -> NaiveDate {
    match parse_timezone(timezone) {
        Ok(zone) => now.with_timezone(&zone).date_naive(),
        Err(_) => now.date_naive(),
    }
}

/// Creates a recurring invoice, and in the same transaction asks for its
/// occurrences that are already due (a start in the past is caught up).
///
/// With `idempotency`, the rendered answer is stored in the same transaction.
pub async fn create_recurring(
    ledger: &Ledger,
    organization: &OrganizationId,
    new: NewRecurringInvoice,
    now: DateTime<Utc>,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, RecurringInvoice>)>,
) -> LedgerResult<(RecurringInvoice, usize)> {
    let schedule = new.schedule.schedule()?;
    if new.due_days > 3650 {
        return Err(LedgerError::invalid(
            "INVALID_FIELD",
            "due_days is a whole number of days from 0 to 3650.",
        ));
    }
    // The lines, customer and currency must make a valid invoice.
    check_invoice(
        ledger,
        organization,
        NewInvoice {
            customer_id: new.customer_id,
            due_date: new.schedule.start.clone(),
            currency: new.currency.clone(),
            lines: new.lines.clone(),
            metadata: new.metadata.clone(),
        },
    )
    .await?;
    let db = ledger.database();
    let settings = super::invoices::get_settings(db, organization).await?;
    let today = day_in(&settings.timezone, now);
    let earliest = today
        .checked_sub_months(chrono::Months::new(12 * MAX_YEARS_BACK))
        .unwrap_or(NaiveDate::MIN);
    if parse_date(&new.schedule.start)? < earliest {
        return Err(LedgerError::invalid(
            "START_TOO_EARLY",
            format!(
                "A recurring invoice starts at most {MAX_YEARS_BACK} years ago (on or after \
                 {earliest}); record older invoices as invoices."
            ),
        ));
    }
    let (due, next, next_date) = due_now(&schedule, 0, today, MAX_PER_PASS);
    let template = serde_json::to_string(&Template {
        currency: new.currency.clone(),
        lines: new.lines.clone(),
        metadata: new.metadata.clone(),
    })
    .unwrap_or_default();
    let organization_id = organization.to_owned();
    let spec = new.schedule.clone();
    let start = parse_date(&spec.start)?;
    let end = spec.end.as_deref().map(parse_date).transpose()?;
    let now_ms = now_ms();
    db.run(|pool| async move {
        let created: Result<(RecurringInvoice, usize), sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &organization_id, tx => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO recurring_invoices (organization_id, customer_id, template, \
                     frequency, interval_count, start_date, end_date, max_count, due_days, \
                     auto_issue, next_index, next_date, created_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12) RETURNING id",
                )
                .bind(&organization_id)
                .bind(new.customer_id)
                .bind(&template)
                .bind(frequency_name(spec.frequency))
                .bind(i64::from(spec.interval))
                .bind(start)
                .bind(end)
                .bind(spec.count.map(i64::from))
                .bind(i64::from(new.due_days))
                .bind(new.auto_issue)
                .bind(schedule.occurrence(0))
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                let occurrences = ask_in!(tx, id, 0u32, &due, next, next_date);
                let asked = occurrences.len();
                let jobs: Vec<NewJob> = occurrences_job(occurrences).into_iter().collect();
                insert_jobs!(tx, &organization_id, &jobs, now_ms)?;
                let recurring = RecurringInvoice {
                    id,
                    customer_id: new.customer_id,
                    currency: new.currency.clone(),
                    lines: new.lines.clone(),
                    schedule: spec.clone(),
                    due_days: new.due_days,
                    auto_issue: new.auto_issue,
                    metadata: new.metadata.clone(),
                    occurrences: next,
                    next_date,
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&recurring);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                (recurring, asked)
            }))
        }
        .await;
        idempotency::settle(created)
    })
    .await?
}

fn frequency_name(frequency: Frequency) -> &'static str {
    match frequency {
        Frequency::Weekly => "weekly",
        Frequency::Monthly => "monthly",
        Frequency::Quarterly => "quarterly",
        Frequency::Yearly => "yearly",
    }
}

fn parse_frequency(name: &str) -> Frequency {
    match name {
        "weekly" => Frequency::Weekly,
        "quarterly" => Frequency::Quarterly,
        "yearly" => Frequency::Yearly,
        _ => Frequency::Monthly,
    }
}

type TemplateRow = (
    i64,
    i64,
    String,
    String,
    i64,
    NaiveDate,
    Option<NaiveDate>,
    Option<i64>,
    i64,
    bool,
    i64,
    Option<NaiveDate>,
);

const TEMPLATE_COLUMNS: &str = "id, customer_id, template, frequency, interval_count, start_date, \
     end_date, max_count, due_days, auto_issue, next_index, next_date";

fn from_row(row: TemplateRow) -> RecurringInvoice {
    let (
        id,
        customer_id,
        template,
        frequency,
        interval,
        start,
        end,
        count,
        due_days,
        auto,
        next,
        next_date,
    ) = row;
    let template: Template = serde_json::from_str(&template).unwrap_or(Template {
        currency: None,
        lines: Vec::new(),
        metadata: Metadata::default(),
    });
    let small = |n: i64| u32::try_from(n).unwrap_or(0);
    RecurringInvoice {
        id,
        customer_id,
        currency: template.currency,
        lines: template.lines,
        schedule: ScheduleSpec {
            frequency: parse_frequency(&frequency),
            interval: small(interval),
            start: start.to_string(),
            end: end.map(|d| d.to_string()),
            count: count.map(small),
        },
        due_days: small(due_days),
        auto_issue: auto,
        metadata: template.metadata,
        occurrences: small(next),
        next_date,
    }
}

/// One recurring invoice of the organization.
pub async fn get_recurring(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<RecurringInvoice> {
    let organization = organization.to_owned();
    let row: Option<TemplateRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM recurring_invoices \
                     WHERE organization_id = $1 AND id = $2"
                )))
                .bind(&organization)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    row.map(from_row)
        .ok_or_else(|| LedgerError::NotFound("There is no such recurring invoice.".to_owned()))
}

/// A page of the organization's recurring invoices, oldest first (by id).
pub async fn list_recurring(
    db: &Database,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<RecurringInvoice>>> {
    let organization = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows: Vec<TemplateRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM recurring_invoices \
                     WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                )))
                .bind(&organization)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(page.page(rows.into_iter().map(from_row).collect(), |r| r.id))
}

/// The next `count` occurrences of a recurring invoice not yet asked for.
pub async fn preview(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
    count: usize,
) -> LedgerResult<Preview> {
    let recurring = get_recurring(db, organization, id).await?;
    let schedule = recurring.schedule.schedule()?;
    let dates = (recurring.occurrences..)
        .map_while(|n| schedule.occurrence(n))
        .take(count)
        .collect();
    Ok(Preview { dates })
}

/// Asks for every occurrence that has come due, in each organization's time
/// zone, of every recurring invoice: one job per occurrence. Answers how many
/// jobs were recorded.
pub async fn ask_for_due(db: &Database, now: DateTime<Utc>) -> crate::Result<usize> {
    // No time zone is more than a day ahead of UTC: a template whose next
    // date is after tomorrow (UTC) is not due anywhere.
    let horizon = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX);
    let now_ms = now_ms();
    db.run(|pool| async move {
        let lock = match pool {
            Pool::Postgres(_) => " FOR UPDATE OF t SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        let select = format!(
            "SELECT t.organization_id, t.{}, o.timezone FROM recurring_invoices t \
             JOIN organizations o ON o.id = t.organization_id \
             WHERE t.next_date IS NOT NULL AND t.next_date <= $1 AND t.id IN \
                 (SELECT id FROM (SELECT id, row_number() OVER \
                     (PARTITION BY organization_id ORDER BY id) AS turn FROM recurring_invoices \
                     WHERE next_date IS NOT NULL AND next_date <= $1) due \
                  ORDER BY turn, id LIMIT 200) \
             ORDER BY t.id{lock}",
            TEMPLATE_COLUMNS.replace(", ", ", t.")
        );
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(select.as_str())).bind(horizon).fetch_all(&mut *tx).await?;
            let mut asked = 0;
            let mut asked_of: std::collections::BTreeMap<OrganizationId, Vec<Occurrence>> = std::collections::BTreeMap::new();
            for row in &rows {
                use sqlx::Row;
                let organization: OrganizationId = row.try_get("organization_id")?;
                let timezone: String = row.try_get("timezone")?;
                let template = from_row((
                    row.try_get("id")?,
                    row.try_get("customer_id")?,
                    row.try_get("template")?,
                    row.try_get("frequency")?,
                    row.try_get("interval_count")?,
                    row.try_get("start_date")?,
                    row.try_get("end_date")?,
                    row.try_get("max_count")?,
                    row.try_get("due_days")?,
                    row.try_get("auto_issue")?,
                    row.try_get("next_index")?,
                    row.try_get("next_date")?,
                ));
                let Ok(schedule) = template.schedule.schedule() else { continue };
                let from = template.occurrences;
                let budget = MAX_PER_PASS.saturating_sub(asked_of.get(&organization).map_or(0, Vec::len));
                let (due, next, next_date) = due_now(&schedule, from, day_in(&timezone, now), budget);
                if due.is_empty() {
                    continue;
                }
                let occurrences = ask_in!(tx, template.id, from, &due, next, next_date);
                asked += occurrences.len();
                asked_of.entry(organization).or_default().extend(occurrences);
            }
            for (organization, occurrences) in asked_of {
                let jobs: Vec<NewJob> = occurrences_job(occurrences).into_iter().collect();
                insert_jobs!(tx, &organization, &jobs, now_ms)?;
            }
            tx.commit().await?;
            Ok(asked)
        })
    })
    .await
}

/// The job of an organization's occurrences: generates them one after the
/// other, oldest first (see [`generate_one`]). One that fails stops the
/// job before the later ones, so none is issued ahead of an earlier one;
/// the job's retry starts over, and what was done is not done again.
pub async fn generate(
    ledger: &Ledger,
    organization: &OrganizationId,
    payload: &serde_json::Value,
) -> Result<(), JobFailure> {
    let mut occurrences = match serde_json::from_value(payload.clone()) {
        Ok(Payload::Many { occurrences }) => occurrences,
        Ok(Payload::One(occurrence)) => vec![occurrence],
        Err(_) => return Err(JobFailure::permanent("INVALID_JOB_PAYLOAD")),
    };
    occurrences.sort();
    let mut templates = std::collections::HashMap::new();
    for occurrence in occurrences {
        let template = match templates.entry(occurrence.recurring_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                get_recurring(ledger.database(), organization, occurrence.recurring_id).await?,
            ),
        };
        generate_one(ledger, organization, template, occurrence).await?;
    }
    Ok(())
}

/// One occurrence: creates its invoice (once per template and period,
/// however often it runs) and issues it, dated on the occurrence, if the
/// template says so.
async fn generate_one(
    ledger: &Ledger,
    organization: &OrganizationId,
    template: &RecurringInvoice,
    occurrence: Occurrence,
) -> Result<(), JobFailure> {
    let due = occurrence
        .period
        .checked_add_days(Days::new(u64::from(template.due_days)))
        .ok_or(JobFailure::permanent("INVALID_DATE"))?;
    let invoice = create_recurring_invoice(
        ledger,
        organization,
        template.id,
        occurrence.period,
        NewInvoice {
            customer_id: template.customer_id,
            due_date: due.to_string(),
            currency: template.currency.clone(),
            lines: template.lines.clone(),
            metadata: template.metadata.clone(),
        },
    )
    .await?;
    tracing::info!(
        recurring_id = template.id,
        period = %occurrence.period,
        invoice = invoice.id,
        "recurring invoice generated"
    );
    if !template.auto_issue || invoice.status != InvoiceStatus::Draft {
        return Ok(());
    }
    // Due whatever the books say: in a locked period, or after a later
    // issue of another job of the organization (a template created at the
    // same moment, a pass on another instance), the committer issues it on
    // the first day it may have, so numbers still follow issue dates.
    match issue_occurrence(ledger, organization, invoice.id, occurrence.period).await {
        Ok(_) => {}
        // Issued meanwhile by another run of this job: seen before
        // posting (INVOICE_NOT_DRAFT), or, when the other run committed
        // between this run's check and its posting, by the posting's
        // guard (INVOICE_STATE_CHANGED, the posting rolled back). Two
        // runs overlap when a worker stalls past its lease; matching on
        // the first code only ended such a job `dead` although its
        // invoice was issued, once (found by scripts/chaos, fault
        // jobs_worker_pause). As in payroll: decide from the state.
        Err(LedgerError::Conflict { code, message }) => {
            let now = get_invoice(ledger.database(), organization, invoice.id).await?;
            if now.status != InvoiceStatus::Draft {
                return Ok(());
            }
            // The other run is still issuing later occurrences, moving the
            // organization's last issue date past each date this run moves
            // to (the committer moves it a few times, then gives up): try
            // again once it has finished, rather than die (found by
            // scripts/chaos, fault jobs_worker_pause).
            if code == INVOICE_DATE_ORDER {
                return Err(JobFailure::temporary(INVOICE_DATE_ORDER));
            }
            return Err(LedgerError::Conflict { code, message }.into());
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

/// Registers the occurrences' job and the scheduler that asks for the
/// occurrences come due, at start and every `scan` (`RECURRING_SCAN_MS`).
pub(crate) fn register(
    registry: &mut crate::jobs::JobRegistry,
    ledger: &Ledger,
    scan: std::time::Duration,
) {
    fn run<'a>(
        ledger: &'a Ledger,
        _: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(generate(ledger, &job.organization, &job.payload))
    }
    registry.kind(
        JOB_KIND,
        QUEUE,
        crate::jobs::with_state(ledger.clone(), run),
    );
    registry.periodic(
        "recurring-scheduler",
        std::time::Duration::ZERO,
        scan,
        |env| async move {
            match ask_for_due(env.database(), Utc::now()).await {
                Ok(0) => {}
                Ok(asked) => {
                    tracing::info!(jobs = asked, "recurring invoices came due");
                    env.jobs().wake(QUEUE);
                }
                Err(err) => tracing::warn!(error = %err, "the recurring scheduler failed"),
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn today_follows_the_zone_across_midnight_and_daylight_saving() {
        // 2026-03-08 is the US spring-forward day: 04:30 UTC is still the
        // 7th in New York (23:30 EST), 05:30 UTC the 8th (00:30 EST).
        let at = |h, m| Utc.with_ymd_and_hms(2026, 3, 8, h, m, 0).unwrap();
        let date = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        assert_eq!(day_in("America/New_York", at(4, 30)), date(7));
        assert_eq!(day_in("America/New_York", at(5, 30)), date(8));
        assert_eq!(day_in("Pacific/Kiritimati", at(10, 0)), date(9));
        assert_eq!(day_in("UTC", at(23, 59)), date(8));
    }

    #[test]
    fn a_year_behind_is_caught_up_in_one_pass_and_not_again() {
        let start = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
        let schedule = Schedule::new(Frequency::Weekly, 1, start, None, None).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let (due, next, next_date) = due_now(&schedule, 0, today, MAX_PER_PASS);
        assert_eq!(due.len(), 53);
        assert_eq!(next, 53);
        assert!(next_date.unwrap() > today);
        let (again, same, _) = due_now(&schedule, next, today, MAX_PER_PASS);
        assert!(again.is_empty());
        assert_eq!(same, next);
    }

    fn zone() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "UTC",
            "America/New_York",
            "Europe/London",
            "Australia/Lord_Howe",
            "Asia/Kathmandu",
            "Pacific/Apia",
            "America/St_Johns",
        ])
    }

    proptest! {
        /// Whatever the zone and the moment (DST days included), asking in
        /// passes at any moments generates each occurrence up to the local
        /// today exactly once, in order, with none after it.
        #[test]
        fn passes_ask_for_each_due_occurrence_once(
            zone in zone(),
            start_days in 0u64..3000,
            day in 1u32..=31,
            frequency in prop::sample::select(vec![Frequency::Weekly, Frequency::Monthly, Frequency::Quarterly, Frequency::Yearly]),
            interval in 1u32..4,
            passes in prop::collection::vec(0i64..(86_400 * 400), 1..6),
        ) {
            let base = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
            let start = base.checked_add_days(Days::new(start_days)).unwrap();
            let start = start.with_day(day.min(super::super::schedule::month_end(start).day())).unwrap();
            let schedule = Schedule::new(frequency, interval, start, None, None).unwrap();
            let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let mut moments: Vec<DateTime<Utc>> = passes.iter().map(|s| origin + chrono::Duration::seconds(*s)).collect();
            moments.sort();
            let mut from = 0;
            let mut asked = Vec::new();
            for moment in &moments {
                let today = day_in(zone, *moment);
                let (due, next, _) = due_now(&schedule, from, today, MAX_PER_PASS);
                asked.extend(due.iter().map(|(_, d)| *d));
                from = next;
            }
            let last_today = day_in(zone, *moments.last().unwrap());
            let expected: Vec<NaiveDate> = (0..).map_while(|n| schedule.occurrence(n)).take_while(|d| *d <= last_today).collect();
            prop_assert_eq!(asked, expected);
        }
    }

    use chrono::Datelike;
}

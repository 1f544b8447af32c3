//! Property tests: random sequences of posts, reversals, invoices and
//! payments never unbalance the books, and invoices equal their postings.
//! Runs on SQLite through the core API (the same code paths as HTTP).

use std::time::Duration;

use accubooks_core::identity;
use accubooks_core::identity::Principal;
use accubooks_core::identity::Registration;
use accubooks_core::invoicing;
use accubooks_core::invoicing::{NewCustomer, NewInvoice};
use accubooks_core::ledger::{self, EntryInput, LedgerError, LineInput};
use accubooks_core::money::AmountText;
use accubooks_core::{AccuBooks, Config};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Move `cents` from one of the chart's accounts to another.
    Post {
        cents: u32,
        from: usize,
        to: usize,
        day: u8,
    },
    /// Reverse the n-th posted entry (modulo how many there are).
    Reverse { nth: usize },
    /// Create and issue an invoice.
    Invoice {
        lines: Vec<(u16, u32, u16)>,
        document_rounding: bool,
    },
    /// Pay part of the n-th invoice: `percent` of what is outstanding.
    Pay { nth: usize, percent: u8 },
}

const CODES: [&str; 5] = ["1000", "3000", "4000", "5000", "2000"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..1_000_000, 0usize..5, 0usize..5, 0u8..60).prop_map(|(cents, from, to, day)| Op::Post { cents, from, to, day }),
        1 => (0usize..50).prop_map(|nth| Op::Reverse { nth }),
        2 => (prop::collection::vec((1u16..50_000, 0u32..100_000, 0u16..2_500), 1..5), any::<bool>())
            .prop_map(|(lines, document_rounding)| Op::Invoice { lines, document_rounding }),
        2 => (0usize..50, 1u8..=100).prop_map(|(nth, percent)| Op::Pay { nth, percent }),
    ]
}

fn text(minor: i64) -> AmountText {
    AmountText(accubooks_core::money::format_minor(minor, 2))
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_vars([
        ("ACCUBOOKS_ENV", "test".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/p.db", dir.path().display()),
        ),
        ("REDIS_URL", "redis://127.0.0.1:1".to_owned()),
        (
            "JWT_SECRET",
            "property-s3cr3t-property-s3cr3t-property".to_owned(),
        ),
        (
            "SESSION_SECRET",
            "property-s3cr3t-property-s3cr3t-property".to_owned(),
        ),
    ])
    .unwrap();
    let app = AccuBooks::builder(config).build().await.unwrap();
    while !app.database().is_migrated() || !app.registry().get("database").unwrap().is_available() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let db = app.database();
    let principal: Principal = identity::register(
        db,
        app.password_hashing(),
        Registration {
            email: "p@acme.test".into(),
            password: "property password".into(),
            organization: "Props".into(),
            currency: None,
        },
    )
    .await
    .unwrap();
    let org = accubooks_core::OrganizationId::from(principal.organization);
    let customer = invoicing::create_customer(
        db,
        &org,
        NewCustomer {
            name: "C".into(),
            email: None,
            metadata: Default::default(),
        },
        None,
    )
    .await
    .unwrap();
    let mut entries: Vec<i64> = Vec::new();
    let mut reversed = std::collections::HashSet::new();
    let mut reversals = std::collections::HashSet::new();
    let mut invoices: Vec<i64> = Vec::new();
    for op in ops {
        match op {
            Op::Post {
                cents,
                from,
                to,
                day,
            } => {
                if from == to {
                    continue;
                }
                let input = EntryInput {
                    date: format!("2026-{:02}-{:02}", 1 + day / 28, 1 + day % 28),
                    memo: String::new(),
                    metadata: Default::default(),
                    lines: vec![
                        LineInput {
                            account: CODES[to].into(),
                            debit: Some(text(i64::from(cents))),
                            credit: None,
                        },
                        LineInput {
                            account: CODES[from].into(),
                            debit: None,
                            credit: Some(text(i64::from(cents))),
                        },
                    ],
                };
                let entry = ledger::prepare(app.ledger(), &org, &input).await.unwrap();
                entries.extend(
                    app.ledger()
                        .committer()
                        .post(vec![entry], None)
                        .await
                        .unwrap(),
                );
            }
            Op::Reverse { nth } => {
                if entries.is_empty() {
                    continue;
                }
                let id = entries[nth % entries.len()];
                // Already reversed or itself a reversal: refused, and nothing
                // changes; anything else must post its mirror.
                let refusal = if reversed.contains(&id) {
                    Some("ALREADY_REVERSED")
                } else if reversals.contains(&id) {
                    Some("CANNOT_REVERSE_REVERSAL")
                } else {
                    None
                };
                let reversal = ledger::reverse_entry(app.ledger(), &org, id, None).await;
                match (refusal, reversal) {
                    (None, Ok(mirror)) => {
                        let posted = app
                            .ledger()
                            .committer()
                            .post(vec![mirror], None)
                            .await
                            .unwrap();
                        reversed.insert(id);
                        reversals.extend(posted.iter().copied());
                        entries.extend(posted);
                    }
                    (Some(expected), Err(LedgerError::Conflict { code, .. })) => {
                        assert_eq!(code, expected, "reversing entry {id}");
                    }
                    (expected, outcome) => {
                        panic!("reversing entry {id}: expected {expected:?}, got {outcome:?}")
                    }
                }
            }
            Op::Invoice {
                lines,
                document_rounding,
            } => {
                let rounding = if document_rounding {
                    invoicing::totals::TaxRounding::Document
                } else {
                    invoicing::totals::TaxRounding::Line
                };
                invoicing::put_settings(
                    db,
                    &org,
                    invoicing::SettingsChange {
                        tax_rounding: Some(rounding),
                        timezone: None,
                    },
                )
                .await
                .unwrap();
                let new: NewInvoice = serde_json::from_value(serde_json::json!({
                    "customer_id": customer.id,
                    "due_date": "2026-03-31",
                    "lines": lines.iter().map(|(q, p, r)| serde_json::json!({
                        "description": "item",
                        "quantity": accubooks_core::money::format_minor(i64::from(*q), 2),
                        "unit_price": accubooks_core::money::format_minor(i64::from(*p), 2),
                        "tax_rate": accubooks_core::money::format_minor(i64::from(*r), 4),
                    })).collect::<Vec<_>>(),
                }))
                .unwrap();
                let draft = invoicing::create_invoice(app.ledger(), &org, new, None)
                    .await
                    .unwrap();
                let issued = invoicing::issue_invoice(
                    app.ledger(),
                    &org,
                    draft.id,
                    Some("2026-02-01"),
                    None,
                )
                .await;
                // Only an invoice totalling zero (every price zero) is refused.
                match issued {
                    Ok(_) => invoices.push(draft.id),
                    Err(LedgerError::Invalid { code, .. })
                        if accubooks_core::money::parse_minor(&draft.total, 2).ok() == Some(0) =>
                    {
                        assert_eq!(code, "EMPTY_INVOICE");
                    }
                    Err(err) => panic!("issuing invoice {}: {err}", draft.id),
                }
            }
            Op::Pay { nth, percent } => {
                if invoices.is_empty() {
                    continue;
                }
                let id = invoices[nth % invoices.len()];
                let invoice = invoicing::get_invoice(db, &org, id).await.unwrap();
                let outstanding =
                    accubooks_core::money::parse_minor(&invoice.outstanding, 2).unwrap();
                let amount = outstanding * i64::from(percent) / 100;
                if amount > 0 {
                    invoicing::record_payment(
                        app.ledger(),
                        &org,
                        id,
                        &text(amount).0,
                        Some("2026-02-15"),
                        None,
                    )
                    .await
                    .unwrap();
                }
            }
        }
    }

    // The trial balance balances, as of every date.
    for as_of in ["2026-01-15", "2026-02-10", "2026-12-31"] {
        let tb = ledger::trial_balance(db, &org, as_of.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(tb.total_debit, tb.total_credit, "as of {as_of}");
        assert_eq!(tb.accounts.iter().map(|a| a.balance_minor).sum::<i64>(), 0);
    }
    // Assets = liabilities + equity + current earnings.
    let sheet = ledger::balance_sheet(db, &org, "2026-12-31".parse().unwrap())
        .await
        .unwrap();
    for totals in &sheet.totals {
        assert_eq!(totals.assets, totals.liabilities_and_equity);
    }
    // Every invoice equals its posting to the cent, and what was paid.
    for id in invoices {
        let invoice = invoicing::get_invoice(db, &org, id).await.unwrap();
        let entry = ledger::get_entry(db, &org, invoice.issue_entry_id.unwrap())
            .await
            .unwrap();
        let receivable = entry
            .lines
            .iter()
            .find(|l| l.account == "1100")
            .and_then(|l| l.debit.clone());
        assert_eq!(receivable.as_deref(), Some(invoice.total.as_str()));
        let revenue = entry
            .lines
            .iter()
            .find(|l| l.account == "4000")
            .and_then(|l| l.credit.clone());
        assert_eq!(revenue.unwrap_or_else(|| "0.00".into()), invoice.subtotal);
        let tax = entry
            .lines
            .iter()
            .find(|l| l.account == "2100")
            .and_then(|l| l.credit.clone());
        assert_eq!(tax.unwrap_or_else(|| "0.00".into()), invoice.tax);
        let line_sum: i64 = invoice
            .lines
            .iter()
            .map(|l| accubooks_core::money::parse_minor(&l.amount, 2).unwrap())
            .sum();
        assert_eq!(
            accubooks_core::money::format_minor(line_sum, 2),
            invoice.subtotal
        );
    }
    app.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_books_stay_balanced(ops in prop::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}

//! Invoicing: customers, invoices and credit notes, their totals, recurring
//! schedules and the occurrences they generate, and card payments of
//! invoices through Stripe.

pub(crate) mod invoices;
pub mod payments;
pub mod recurring;
pub mod schedule;
pub mod totals;

pub use invoices::{
    ArAging, Customer, INVOICE_LINES_PER_PAGE, Invoice, InvoiceFilter, InvoiceKind, InvoiceStatus,
    NewCreditNote, NewCustomer, NewInvoice, NewLine, Settings, SettingsChange, ar_aging,
    create_customer, create_invoice, create_recurring_invoice, credit_note, get_invoice,
    get_settings, issue_invoice, list_customers, list_invoices, parse_timezone, put_settings,
    record_payment, replace_customer_metadata, void_invoice,
};

//! Payroll: employees, the payroll rules and pay runs.

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Result, org};
use crate::identity::{Principal, Role};
use crate::ledger;
use crate::paging::{Page, PageRequest};
use crate::payroll::{self, Employee, NewEmployee, NewPayrollRun, PayrollRule, PayrollRun};

impl Books<'_> {
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

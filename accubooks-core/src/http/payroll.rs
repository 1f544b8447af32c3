//! Routes of payroll: employees, rules and pay runs. Payroll data
//! (salaries, payslips) is for accountants and owners.

use super::{
    Access, ApiError, Handler, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::identity::Role;
use crate::payroll::{Employee, NewEmployee, NewPayrollRun, PayrollRule, PayrollRun};
use http::{Method, StatusCode};

pub(crate) fn routes() -> Vec<Route> {
    /// Payroll data (salaries, payslips) is for accountants and owners.
    fn payroll_read(path: &'static str, handler: impl Handler) -> Route {
        Route::read(path, handler).access(Access::Role(Role::Accountant))
    }
    vec![
        Route::change(Method::POST, "/api/employees", create_employee)
            .idempotent()
            .summary("Add an employee (salaried or hourly)")
            .body::<NewEmployee>()
            .returns::<Employee>(201),
        payroll_read("/api/employees", list_employees)
            .summary("The organization's employees, by id")
            .paged()
            .returns_list::<Employee>(200),
        payroll_read("/api/payroll/rules", get_rules)
            .summary("The payroll rules: deductions and employer contributions")
            .returns_list::<PayrollRule>(200),
        Route::new(Method::PUT, "/api/payroll/rules", put_rules)
            .needs(DATABASE)
            .access(Access::Role(Role::Accountant))
            .summary("Replace the payroll rules (runs already asked for keep theirs)")
            .body::<Vec<PayrollRule>>()
            .returns_list::<PayrollRule>(200),
        Route::change(Method::POST, "/api/payroll-runs", create_run)
            .idempotent()
            .summary(
                "Ask for a pay run of every employee employed in the period, worked on the \
                 payroll-processing queue; it posts one balanced entry",
            )
            .body::<NewPayrollRun>()
            .returns::<PayrollRun>(202)
            .answers(
                409,
                "Another run pays some of these employees for part of the period",
            ),
        payroll_read("/api/payroll-runs/{id}", get_run)
            .summary("A pay run: its status, and its payslips and entry once posted")
            .returns::<PayrollRun>(200),
    ]
}

async fn create_employee(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let employee = app.books().create_employee(&caller, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &employee))
}

async fn list_employees(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let employees = app.books().employees(&request.principal()?, page).await?;
    Ok(page_response(&request, &employees))
}

async fn get_rules(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let rules = app.books().payroll_rules(&request.principal()?).await?;
    Ok(json_response(StatusCode::OK, &rules))
}

async fn put_rules(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, rules) = (request.principal()?, request.json()?);
    let rules = app.books().put_payroll_rules(&caller, rules).await?;
    Ok(json_response(StatusCode::OK, &rules))
}

async fn create_run(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let run = app.books().create_payroll_run(&caller, new, key).await?;
    Ok(answer_response(StatusCode::ACCEPTED, &run))
}

async fn get_run(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (
        request.principal()?,
        request.id("There is no such pay run.")?,
    );
    let run = app.books().payroll_run(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &run))
}

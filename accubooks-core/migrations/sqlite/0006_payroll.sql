-- Payroll (contract section 7): employees, the organization's payroll
-- rules, and pay runs. A run keeps the employees and rules it was asked
-- with, so its job computes the same payslips however often it runs, and
-- it is posted once: the posting's transaction turns it from `pending` to
-- `posted`, which only one can do.

CREATE TABLE employees (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    pay_type        TEXT    NOT NULL CHECK (pay_type IN ('salary', 'hourly')),
    -- Minor units: the annual salary, or the hourly rate.
    pay_amount      BIGINT  NOT NULL CHECK (pay_amount >= 0),
    frequency       TEXT    NOT NULL
        CHECK (frequency IN ('weekly', 'biweekly', 'semimonthly', 'monthly')),
    start_date      TEXT    NOT NULL,
    end_date        TEXT,
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX employees_by_org ON employees (organization_id, id);

-- The rules of an organization, as one JSON list (replaced as a whole).
CREATE TABLE payroll_rules (
    organization_id TEXT    PRIMARY KEY REFERENCES organizations (id),
    rules           TEXT    NOT NULL
);

CREATE TABLE payroll_runs (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    job_id          BIGINT  NOT NULL REFERENCES jobs (id),
    period_start    TEXT    NOT NULL,
    period_end      TEXT    NOT NULL,
    pay_date        TEXT    NOT NULL,
    -- The employees, hours and rules the run was asked with (JSON).
    inputs          TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'posted')),
    payslips        TEXT,
    entry_id        BIGINT  REFERENCES journal_entries (id),
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX payroll_runs_by_org ON payroll_runs (organization_id, id);

-- Who a run pays: a second run of an overlapping period may not pay them.
CREATE TABLE payroll_run_employees (
    run_id          BIGINT  NOT NULL REFERENCES payroll_runs (id),
    employee_id     BIGINT  NOT NULL REFERENCES employees (id),
    PRIMARY KEY (run_id, employee_id)
);
CREATE INDEX payroll_run_employees_by_employee ON payroll_run_employees (employee_id);


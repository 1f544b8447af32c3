//! One account's balance on a day, as SQL: its running balance
//! (`accounts.balance`) less the day movements (`account_days`) after the
//! day. A report as of a recent day therefore reads only the few day rows
//! that follow it, however long the history. Every balance "as of" in the
//! books is written with [`balance_sql`], so there is one formula to trust.

/// Where on its day a balance is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// At the end of the day: every posting dated on or before it.
    EndOf,
    /// At the start of the day: every posting dated before it.
    StartOf,
}

/// The SQL expression (a `BIGINT`) of the balance of the account row
/// `account` (an alias of `accounts`) at `boundary` of the day bound as
/// `day` (a placeholder, e.g. `$2`).
pub(crate) fn balance_sql(account: &str, boundary: Boundary, day: &str) -> String {
    let later = match boundary {
        Boundary::EndOf => ">",
        Boundary::StartOf => ">=",
    };
    format!(
        "CAST({account}.balance - COALESCE((SELECT SUM(d.delta) FROM account_days d \
         WHERE d.account_id = {account}.id AND d.day {later} {day}), 0) AS BIGINT)"
    )
}

/// The SQL expression of what moved on the account row `account` from the
/// start of day `from` to the end of day `to` (placeholders): the sum of
/// its day rows in the period, which reads only the days of the period
/// (the difference of the two balances would read every day after `from`).
pub(crate) fn movement_sql(account: &str, from: &str, to: &str) -> String {
    format!(
        "CAST(COALESCE((SELECT SUM(d.delta) FROM account_days d WHERE d.account_id = {account}.id \
         AND d.day >= {from} AND d.day <= {to}), 0) AS BIGINT)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula on real rows: balances at both boundaries and a
    /// period's movement agree with the day rows.
    #[tokio::test]
    async fn balances_on_a_day_and_movements_of_a_period() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        for sql in [
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
            "CREATE TABLE account_days (account_id INTEGER, day TEXT, delta INTEGER)",
            "INSERT INTO accounts VALUES (1, 600)",
            "INSERT INTO account_days VALUES (1, '2026-01-01', 100), (1, '2026-01-02', 200), \
             (1, '2026-01-03', 300)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let sql = format!(
            "SELECT {}, {}, {} FROM accounts a",
            balance_sql("a", Boundary::EndOf, "$1"),
            balance_sql("a", Boundary::StartOf, "$1"),
            movement_sql("a", "$1", "$2"),
        );
        let (end, start, moved): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind("2026-01-02")
            .bind("2026-01-03")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((end, start, moved), (300, 100, 500));
    }
}

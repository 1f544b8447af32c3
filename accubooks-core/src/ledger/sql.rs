//! Helpers for writing one query for both backends.

/// Runs `$body` with `$pool` bound to the concrete sqlx pool of either
/// backend; the body is compiled once per backend, so it may use any API
/// both drivers share.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Postgres($p) => $body,
            $crate::db::Pool::Sqlite($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// `$first, $first+1, …` placeholders for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `width` placeholders each, numbered from `first`:
/// `($1, $2), ($3, $4)`.
pub(crate) fn value_rows(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(first + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a query error is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(value_rows(1, 2, 2), "($1, $2), ($3, $4)");
    }
}

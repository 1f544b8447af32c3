//! The account tree of the reports: accounts name a parent of their own
//! type and currency (`POST /api/accounts {"parent"}`), and the trial
//! balance and the statements list each parent followed by its children,
//! with the subtotal of the parent and everything below it.

use std::collections::HashMap;

/// Most levels of an account tree: a root is level 1, so an account may
/// have at most 7 ancestors. Deep enough for any chart of accounts (the
/// usual ones have 3 or 4), shallow enough that a report indents sanely.
pub const MAX_DEPTH: u32 = 8;

/// Where an account sits in a report: its row's position, its level (0 for
/// a root) and, when it has children, its subtotal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// The index of the account in the rows given to [`roll_up`].
    pub index: usize,
    /// 0 for an account without a parent (in the rows), 1 for its
    /// children, and so on.
    pub level: u32,
    /// Its amount plus those of all its descendants (of its currency),
    /// when it has children; `None` for a leaf.
    pub subtotal: Option<i64>,
}

/// One account as [`roll_up`] reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    /// Its code.
    pub code: &'a str,
    /// Its parent's code, if any.
    pub parent: Option<&'a str>,
    /// Its currency.
    pub currency: &'a str,
    /// Its own amount.
    pub amount: i64,
}

/// Orders `rows` (sorted by code) depth first: each root in code order,
/// followed by its children in code order, each followed by its own. An
/// account whose parent is not among the rows is a root. Every row appears
/// once; amounts are only added into subtotals, never into another row.
pub(crate) fn roll_up(rows: &[Node<'_>]) -> Vec<Place> {
    let by_code: HashMap<&str, usize> = rows.iter().enumerate().map(|(i, r)| (r.code, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut roots = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row.parent.and_then(|p| by_code.get(p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let mut places = Vec::with_capacity(rows.len());
    let mut seen = vec![false; rows.len()];
    for root in roots {
        visit(root, 0, rows, &children, &mut seen, &mut places);
    }
    // Rows in a loop of parents (which the API cannot make) still show,
    // each as a root, so no amount is ever lost from a report.
    for i in 0..rows.len() {
        if !seen[i] {
            visit(i, 0, rows, &children, &mut seen, &mut places);
        }
    }
    places
}

/// Places `i` and its descendants; answers its subtotal.
fn visit(
    i: usize,
    level: u32,
    rows: &[Node<'_>],
    children: &[Vec<usize>],
    seen: &mut [bool],
    places: &mut Vec<Place>,
) -> i64 {
    seen[i] = true;
    let at = places.len();
    places.push(Place {
        index: i,
        level,
        subtotal: None,
    });
    let mut sum = rows[i].amount;
    let mut any = false;
    for &child in &children[i] {
        if seen[child] {
            continue;
        }
        any = true;
        let below = visit(child, level + 1, rows, children, seen, places);
        if rows[child].currency == rows[i].currency {
            sum = sum.saturating_add(below);
        }
    }
    if any {
        places[at].subtotal = Some(sum);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(code: &'a str, parent: Option<&'a str>, amount: i64) -> Node<'a> {
        Node {
            code,
            parent,
            currency: "USD",
            amount,
        }
    }

    #[test]
    fn children_follow_their_parent_with_subtotals() {
        let rows = [
            node("1000", None, 1),
            node("1010", Some("1000"), 10),
            node("1011", Some("1010"), 100),
            node("1100", None, 1000),
            node("1200", Some("1000"), 10_000),
        ];
        let places = roll_up(&rows);
        let order: Vec<(&str, u32, Option<i64>)> = places
            .iter()
            .map(|p| (rows[p.index].code, p.level, p.subtotal))
            .collect();
        assert_eq!(
            order,
            [
                ("1000", 0, Some(10_111)),
                ("1010", 1, Some(110)),
                ("1011", 2, None),
                ("1200", 1, None),
                ("1100", 0, None),
            ]
        );
    }

    #[test]
    fn a_loop_of_parents_loses_no_row() {
        let rows = [node("a", Some("b"), 1), node("b", Some("a"), 2)];
        let places = roll_up(&rows);
        assert_eq!(places.len(), 2);
        assert_eq!(places[0].subtotal, Some(3));
    }
}

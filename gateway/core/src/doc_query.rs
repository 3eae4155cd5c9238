//! One page of a kind of documents, filtered and sorted by fields of their
//! JSON bodies: what `ConfigStore::docs_page` answers, so a console list of
//! thousands of users pages in the database and not in the admin's memory.
//!
//! The semantics are those of SQLite's `json_extract` (the embedded store
//! runs them as SQL); [`DocQuery::matches`] and [`DocQuery::order`] are the
//! same rules in Rust, for stores that cannot say them in their query
//! language (CQL) and for the trait's reference implementation:
//! - a field is a dotted path into the body (`schedule.mode`), of
//!   `[a-z0-9_]` names; a missing field and JSON null are both null;
//! - booleans are the numbers 1 and 0;
//! - order: null < numbers (by value) < text (`crate::collate::text_order`,
//!   the SQLite store's collation: Chinese by pinyin, 阿 before 李 before
//!   张; ASCII letters folded, "alice" before "Bob"); ties by id ascending,
//!   in both directions;
//! - text search is case-insensitive for ASCII letters only (SQLite's `lower`).

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::StoreError;
use crate::model::Doc;

/// A condition on a document (all of a query's filters must hold).
#[derive(Debug, Clone, PartialEq)]
pub enum DocFilter {
    /// One of `fields` contains `text` (ASCII case-insensitive).
    Contains { fields: Vec<String>, text: String },
    /// `field` equals one of `values` (scalars); no values: nothing matches.
    In { field: String, values: Vec<Value> },
    /// `field` is null (or missing) when `null`, else it is not.
    Null { field: String, null: bool },
}

/// Which documents, in which order, which window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocQuery {
    pub filters: Vec<DocFilter>,
    /// The field to order by (None: by id), and whether descending.
    pub sort: Option<String>,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// The documents of one page and how many match in all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocPage {
    pub docs: Vec<Doc>,
    pub total: u64,
}

/// A field's value as SQLite's `json_extract` gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Scalar {
    fn of(v: Option<&Value>) -> Scalar {
        match v {
            None | Some(Value::Null) => Scalar::Null,
            Some(Value::Bool(b)) => Scalar::Int(i64::from(*b)),
            Some(Value::Number(n)) => n.as_i64().map_or_else(|| Scalar::Real(n.as_f64().unwrap_or(f64::NAN)), Scalar::Int),
            Some(Value::String(s)) => Scalar::Text(s.clone()),
            Some(other) => Scalar::Text(other.to_string()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Scalar::Null => 0,
            Scalar::Int(_) | Scalar::Real(_) => 1,
            Scalar::Text(_) => 2,
        }
    }

    fn number(&self) -> f64 {
        match self {
            Scalar::Int(i) => *i as f64,
            Scalar::Real(r) => *r,
            _ => 0.0,
        }
    }

    /// SQLite's order of two values (text: `crate::collate::text_order`).
    pub fn order(&self, other: &Scalar) -> Ordering {
        match (self, other) {
            (Scalar::Int(a), Scalar::Int(b)) => a.cmp(b),
            (Scalar::Text(a), Scalar::Text(b)) => crate::collate::text_order(a, b),
            (a, b) if a.rank() == 1 && b.rank() == 1 => a.number().total_cmp(&b.number()),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    /// As text (`CAST(… AS TEXT)`), None for null.
    fn text(&self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Real(r) => Some(format!("{r:?}")),
            Scalar::Text(t) => Some(t.clone()),
        }
    }
}

/// Whether `path` is a field path (`a.b_c`): what stores accept.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
}

/// The JSON path of a field (`$.a.b`) for SQLite's `json_extract`.
pub fn json_path(path: &str) -> String {
    format!("$.{path}")
}

/// A field of a body.
pub fn field(body: &Value, path: &str) -> Scalar {
    Scalar::of(path.split('.').try_fold(body, |v, k| v.get(k)))
}

impl DocFilter {
    fn fields(&self) -> Vec<&str> {
        match self {
            DocFilter::Contains { fields, .. } => fields.iter().map(String::as_str).collect(),
            DocFilter::In { field, .. } | DocFilter::Null { field, .. } => vec![field.as_str()],
        }
    }

    /// Whether `body` passes.
    pub fn matches(&self, body: &Value) -> bool {
        match self {
            DocFilter::Contains { fields, text } => {
                let needle = text.to_ascii_lowercase();
                fields.iter().any(|f| field(body, f).text().is_some_and(|t| t.to_ascii_lowercase().contains(&needle)))
            }
            DocFilter::In { field: f, values } => {
                let v = field(body, f);
                v != Scalar::Null && values.iter().any(|w| Scalar::of(Some(w)).order(&v) == Ordering::Equal)
            }
            DocFilter::Null { field: f, null } => (field(body, f) == Scalar::Null) == *null,
        }
    }
}

impl DocQuery {
    /// Every field path valid (stores refuse a query with another).
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = self.filters.iter().flat_map(DocFilter::fields).chain(self.sort.as_deref()).find(|p| !valid_path(p));
        match bad {
            Some(p) => Err(StoreError::Backend(format!("invalid document field {p:?}"))),
            None => Ok(()),
        }
    }

    /// Whether a document passes every filter.
    pub fn matches(&self, doc: &Doc) -> bool {
        self.filters.iter().all(|f| f.matches(&doc.body))
    }

    /// The order of two documents in the answer.
    pub fn order(&self, a: &Doc, b: &Doc) -> Ordering {
        let by_field = match &self.sort {
            Some(s) => {
                let o = field(&a.body, s).order(&field(&b.body, s));
                if self.descending { o.reverse() } else { o }
            }
            None if self.descending => b.id.cmp(&a.id),
            None => Ordering::Equal,
        };
        by_field.then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
    }

    /// The page of `docs` (all of a kind), in memory: the reference the
    /// stores agree with.
    pub fn apply(&self, docs: Vec<Doc>) -> DocPage {
        let mut docs: Vec<Doc> = docs.into_iter().filter(|d| self.matches(d)).collect();
        let total = docs.len() as u64;
        docs.sort_by(|a, b| self.order(a, b));
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(self.limit).unwrap_or(usize::MAX);
        DocPage { docs: docs.into_iter().skip(skip).take(take).collect(), total }
    }

    /// A bounded window over a stream of documents: keeps only the
    /// `offset + limit` first in order (memory bounded by the page's end,
    /// not by the partition), counts the matches.
    pub fn window(&self) -> Window<'_> {
        Window { query: self, top: TopK::new(self.offset, self.limit) }
    }

    /// The key a document sorts by in this query (`Ord` as [`DocQuery::order`]).
    fn key(&self, doc: &Doc) -> DocKey {
        DocKey { value: self.sort.as_deref().map(|s| field(&doc.body, s)), descending: self.descending, id: doc.id.clone() }
    }
}

/// A document's place in a query's order: its sort field (None: by id),
/// the direction, its id (the tie-break, ascending).
struct DocKey {
    value: Option<Scalar>,
    descending: bool,
    id: String,
}

impl Ord for DocKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_field = match (&self.value, &other.value) {
            (Some(a), Some(b)) => {
                let o = a.order(b);
                if self.descending { o.reverse() } else { o }
            }
            _ if self.descending => other.id.as_bytes().cmp(self.id.as_bytes()),
            _ => Ordering::Equal,
        };
        by_field.then_with(|| self.id.as_bytes().cmp(other.id.as_bytes()))
    }
}

impl PartialOrd for DocKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DocKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DocKey {}

/// See [`DocQuery::window`].
pub struct Window<'q> {
    query: &'q DocQuery,
    top: TopK<DocKey, Doc>,
}

impl Window<'_> {
    /// Offer one document (any order).
    pub fn push(&mut self, doc: Doc) {
        if self.query.matches(&doc) {
            self.top.push(self.query.key(&doc), doc);
        }
    }

    pub fn finish(self) -> DocPage {
        let (docs, total) = self.top.finish();
        DocPage { docs, total }
    }
}

/// The page `offset..offset + limit` of a stream of items offered in any
/// order, by their keys (ascending): a max-heap of the `offset + limit`
/// smallest keys seen (O(log n) per item, memory bounded by the page's
/// end, whatever the stream's length), and how many were offered.
pub struct TopK<K: Ord, T> {
    offset: usize,
    keep: usize,
    heap: std::collections::BinaryHeap<Kept<K, T>>,
    total: u64,
}

/// An item in a [`TopK`], ordered by its key only.
struct Kept<K, T>(K, T);

impl<K: Ord, T> Ord for Kept<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl<K: Ord, T> PartialOrd for Kept<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, T> PartialEq for Kept<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Ord, T> Eq for Kept<K, T> {}

impl<K: Ord, T> TopK<K, T> {
    pub fn new(offset: u64, limit: u64) -> Self {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let keep = offset.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX));
        Self { offset, keep, heap: std::collections::BinaryHeap::new(), total: 0 }
    }

    /// Offer one item.
    pub fn push(&mut self, key: K, item: T) {
        self.total += 1;
        if self.heap.len() < self.keep {
            self.heap.push(Kept(key, item));
        } else if self.heap.peek().is_some_and(|last| key < last.0) {
            self.heap.pop();
            self.heap.push(Kept(key, item));
        }
    }

    /// The page, in order, and how many were offered.
    pub fn finish(self) -> (Vec<T>, u64) {
        let items = self.heap.into_sorted_vec().into_iter().skip(self.offset).map(|k| k.1).collect();
        (items, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str, body: Value) -> Doc {
        Doc { tenant: "t".into(), kind: "k".into(), id: id.into(), body, updated_at: 0 }
    }

    #[test]
    fn the_window_agrees_with_the_whole_sort() {
        let docs: Vec<Doc> = (0..300).map(|i| doc(&format!("{i:04}"), json!({"n": (i * 7919) % 101, "name": format!("User {}", i % 13)}))).collect();
        for (sort, descending) in [(None, false), (None, true), (Some("n"), false), (Some("n"), true), (Some("name"), true)] {
            for (offset, limit) in [(0, 50), (250, 50), (290, 50), (0, 0), (1000, 10)] {
                let q = DocQuery {
                    filters: vec![DocFilter::Contains { fields: vec!["name".into()], text: "user 1".into() }],
                    sort: sort.map(Into::into),
                    descending,
                    offset,
                    limit,
                };
                let mut w = q.window();
                for d in docs.iter().rev().cloned() {
                    w.push(d);
                }
                assert_eq!(w.finish(), q.apply(docs.clone()), "{q:?}");
            }
        }
    }

    #[test]
    fn values_order_and_match_as_sqlite_does() {
        let a = json!({"s": "b", "n": 2, "f": true, "x": {"m": "at"}});
        assert_eq!(field(&a, "x.m"), Scalar::Text("at".into()));
        assert_eq!(field(&a, "f"), Scalar::Int(1));
        assert_eq!(field(&a, "missing"), Scalar::Null);
        assert_eq!(Scalar::Null.order(&Scalar::Int(-5)), Ordering::Less);
        assert_eq!(Scalar::Real(2.5).order(&Scalar::Int(2)), Ordering::Greater);
        assert_eq!(Scalar::Int(9).order(&Scalar::Text("1".into())), Ordering::Less);
        assert_eq!(Scalar::Text("alice".into()).order(&Scalar::Text("Bob".into())), Ordering::Less);
        assert!(DocFilter::In { field: "f".into(), values: vec![json!(true)] }.matches(&a));
        assert!(!DocFilter::In { field: "missing".into(), values: vec![Value::Null] }.matches(&a));
        assert!(DocFilter::Null { field: "missing".into(), null: true }.matches(&a));
        assert!(DocFilter::Contains { fields: vec!["s".into(), "x.m".into()], text: "AT".into() }.matches(&a));
        assert!(!valid_path("a') OR 1=1"));
        assert!(valid_path("schedule.mode"));
    }
}

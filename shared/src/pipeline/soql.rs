//! SOQL over lists of ids. A query travels in a GET's URL, and Salesforce answers 414
//! past 16,384 bytes: an `IN` list of a worker batch's ids must be cut, and the cuts
//! sent together (one Composite call carries up to 25 queries).

use std::collections::HashMap;

use serde_json::Value;

use super::Pipeline;
use super::flow::soql_literal;
use crate::ports::CrmError;

/// Literals per `IN` list: 200 eighteen-character ids percent-encode to about 6,000
/// bytes, leaving room for the rest of the query within the URL limit.
pub(crate) const IN_MAX: usize = 200;

/// `values` as one SOQL literal list (`'a', 'b'`), for a caller that keeps it within
/// [`IN_MAX`].
pub(crate) fn literal_list<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| soql_literal(v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `values` as SOQL literal lists (`'a', 'b'`), at most [`IN_MAX`] to a list.
pub(crate) fn in_lists<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    values.chunks(IN_MAX).map(literal_list).collect()
}

impl Pipeline {
    /// Runs `(key, soql)` queries and gathers their rows by key (several queries may
    /// share one): a lone query as itself, more in Composite calls of 25.
    pub(crate) async fn query_keyed(
        &self,
        queries: Vec<(String, String)>,
    ) -> Result<HashMap<String, Vec<Value>>, CrmError> {
        let mut rows: HashMap<String, Vec<Value>> = HashMap::new();
        match queries.as_slice() {
            [] => {}
            [(key, soql)] => {
                rows.insert(key.clone(), self.salesforce.query(soql, false).await?);
            }
            _ => {
                // Composite references must be unique; the keys need not be.
                let referenced: Vec<(String, String)> = queries
                    .iter()
                    .enumerate()
                    .map(|(n, (_, soql))| (format!("q{n}"), soql.clone()))
                    .collect();
                let mut answers = self
                    .salesforce
                    .composite_queries(&referenced, false)
                    .await?;
                for (n, (key, _)) in queries.into_iter().enumerate() {
                    let found = answers.remove(&format!("q{n}")).unwrap_or_default();
                    rows.entry(key).or_default().extend(found);
                }
            }
        }
        Ok(rows)
    }

    /// The rows of `soql(list)` for every `IN` list of `values`, in as few calls as
    /// the lists allow.
    pub(crate) async fn query_in<S: AsRef<str>>(
        &self,
        values: &[S],
        soql: impl Fn(&str) -> String,
    ) -> Result<Vec<Value>, CrmError> {
        let queries = in_lists(values)
            .iter()
            .map(|list| (String::new(), soql(list)))
            .collect();
        Ok(self
            .query_keyed(queries)
            .await?
            .into_values()
            .flatten()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_is_cut_and_nothing_is_lost() {
        let ids: Vec<String> = (0..450).map(|n| format!("003{n:015}")).collect();
        let lists = in_lists(&ids);
        assert_eq!(lists.len(), 3);
        let back: Vec<String> = lists
            .iter()
            .flat_map(|l| l.split(", ").map(|s| s.trim_matches('\'').to_owned()))
            .collect();
        assert_eq!(back, ids);
        // Percent-encoded, the longest list stays far under the 16,384-byte URL limit.
        let encoded: usize = lists[0]
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { 1 } else { 3 })
            .sum();
        assert!(encoded < 8_000, "{encoded} bytes");
    }

    #[test]
    fn quotes_stay_escaped() {
        assert_eq!(in_lists(&["o'hara"]), vec!["'o\\'hara'".to_owned()]);
    }
}

//! Metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per
//! invocation, which Lambda's log pipeline turns into metrics without an API call.
//! (The local runner does not print them.)

use serde_json::{Map, Value, json};

/// The metric namespace the SAM template's alarms read.
pub const NAMESPACE: &str = "crmsync";

/// One EMF document: `function` becomes the `Function` dimension; each metric is a
/// (name, unit, value).
pub fn emf(function: &str, at_ms: i64, metrics: &[(&str, &str, f64)]) -> Value {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }]
        }),
    );
    doc.insert("Function".into(), json!(function));
    for (name, _, value) in metrics {
        doc.insert((*name).to_owned(), json!(value));
    }
    Value::Object(doc)
}

/// Prints an EMF document as one line on stdout.
pub fn emit(function: &str, at_ms: i64, metrics: &[(&str, &str, f64)]) {
    println!("{}", emf(function, at_ms, metrics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let doc = emf(
            "worker",
            1_700_000_000_000,
            &[
                ("RecordsSynced", "Count", 12.0),
                ("FeedLagSeconds", "Seconds", 3.5),
            ],
        );
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "crmsync");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][1],
            json!({"Name": "FeedLagSeconds", "Unit": "Seconds"})
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(doc["Function"], "worker");
        assert_eq!(doc["RecordsSynced"], 12.0);
    }
}

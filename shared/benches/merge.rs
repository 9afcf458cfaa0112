//! Merge throughput: record pairs with 30 mapped fields, on one core.
//!
//! `cargo bench -p crmsync-shared --bench merge` prints `thrpt` in records per second
//! (elements = record pairs). Target: at least 200,000 records/s.
//!
//! Each record pair is a typical later sync: last-synced values exist, two or three
//! fields changed on one side, one on the other, the rest agree.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crmsync_shared::domain::config::{SyncConfig, ValidatedConfig};
use crmsync_shared::domain::merge::{
    LastSynced, MergeRules, OwnerDirectory, Snapshot, SyncedField, merge_fields,
};
use crmsync_shared::domain::metadata::{FieldMeta, PairMeta};
use crmsync_shared::domain::value::FieldType;
use serde_json::{Value, json};

const FIELDS: usize = 30;
/// One batch as the pipeline merges it: a Salesforce Collections call reads 200 records.
const RECORDS: usize = 200;

/// Field i's type: a realistic mix of text, numbers, dates, picklists and booleans.
fn field_type(i: usize) -> FieldType {
    match i % 6 {
        0..=2 => FieldType::Text,
        3 => FieldType::Number,
        4 => FieldType::Date,
        _ => FieldType::Enum,
    }
}

fn value(i: usize, record: usize, side_hubspot: bool, version: usize) -> Value {
    let v = match field_type(i) {
        FieldType::Text => format!("value {i} of record {record} v{version}"),
        FieldType::Number => format!("{}.50", 1000 * (record + i + version)),
        FieldType::Date => format!("2024-{:02}-{:02}", 1 + (i + version) % 12, 1 + record % 28),
        _ => format!("Option {}", (record + i + version) % 7),
    };
    match (field_type(i), side_hubspot) {
        // Salesforce sends numbers as JSON numbers.
        (FieldType::Number, false) => json!((1000 * (record + i + version)) as f64 + 0.5),
        _ => Value::String(v),
    }
}

fn setup() -> (
    ValidatedConfig,
    PairMeta,
    Vec<(Snapshot, Snapshot, LastSynced)>,
) {
    let directions = [
        "prefer_salesforce",
        "two_way",
        "prefer_hubspot",
        "always_salesforce",
    ];
    let mut toml = String::from("[deals]\nenabled = false\n");
    let mut meta = PairMeta::default();
    for i in 0..FIELDS {
        toml += &format!(
            "[[companies.fields]]\nhubspot = \"prop_{i}\"\nsalesforce = \"Field_{i}__c\"\ndirection = \"{}\"\nunless_blank = {}\n",
            directions[i % directions.len()],
            i % 2 == 0
        );
        meta.hubspot
            .insert(format!("prop_{i}"), FieldMeta::of_type(field_type(i)));
        meta.salesforce.insert(
            format!("Field_{i}__c"),
            FieldMeta {
                length: Some(255),
                ..FieldMeta::of_type(field_type(i))
            },
        );
    }
    let config = match SyncConfig::from_toml(&toml) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let records = (0..RECORDS)
        .map(|r| {
            let mut hs = Snapshot {
                modified_at: Some(2_000),
                ..Default::default()
            };
            let mut sf = Snapshot {
                modified_at: Some(1_000),
                ..Default::default()
            };
            let mut last = LastSynced::default();
            for i in 0..FIELDS {
                let hs_version = usize::from(i == r % FIELDS || i == (r + 7) % FIELDS);
                let sf_version = usize::from(i == (r + 13) % FIELDS);
                hs.values
                    .insert(format!("prop_{i}"), value(i, r, true, hs_version));
                sf.values
                    .insert(format!("Field_{i}__c"), value(i, r, false, sf_version * 2));
                last.insert(
                    format!("prop_{i}"),
                    SyncedField {
                        hubspot: value(i, r, true, 0),
                        salesforce: value(i, r, false, 0),
                        held: None,
                    },
                );
            }
            (hs, sf, last)
        })
        .collect();
    (config, meta, records)
}

fn bench_merge(c: &mut Criterion) {
    let (config, meta, records) = setup();
    let owners = OwnerDirectory::default();
    let rules = match MergeRules::new(&config, "companies", "Account", &meta, &owners) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut group = c.benchmark_group("merge");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("30_fields_later_sync", |b| {
        b.iter(|| {
            for (hs, sf, last) in &records {
                black_box(merge_fields(&rules, hs, sf, Some(last)));
            }
        })
    });
    group.bench_function("30_fields_first_sync", |b| {
        b.iter(|| {
            for (hs, sf, _) in &records {
                black_box(merge_fields(&rules, hs, sf, None));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);

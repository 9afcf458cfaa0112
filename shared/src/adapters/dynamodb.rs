//! The state ports on DynamoDB: one table, keys `pk` and `sk` (strings) and one index,
//! written with conditions and transactions so that racing Lambda workers cannot both
//! link, claim or advance. The key schema is explained in `docs/state.md`.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | link | `link#{pair}#{hubspot_id}` | `_` | `data` (JSON), `version`, `sf` (its pointer's key) |
//! | link pointer | `linksf#{sobject}#{salesforce_id}` | `_` | `target` (the link's key) |
//! | cursor | `cursor#{feed}` | `_` | `at`, `last_id` |
//! | claim | `claim#{key}` | `_` | `owner`, `expires` (ms), `ttl` (s, DynamoDB TTL) |
//! | seen event | `event#{key}` | `_` | `expires` (ms), `ttl` (s) |
//! | record status | `status#{side}#{object}#{id}` | `_` | `data` (JSON), `gpk` = `outcome#{outcome}`, `gsk` = last seen, `v` |
//! | history event | `history#{side}#{object}#{id}` | `{at}#{n}` | `data` (JSON), `ttl` |
//! | record counts | `records` | `{object}#{direction}` | `synced`, `skipped`, `failed`: records by last outcome |
//! | code counts | `codes` | `{outcome}#{code}` | `n`: records whose last outcome had this code |
//! | controls | `control` | `_` | `data` (JSON: pause, broken fields), `v` |
//! | time series | `series` | `{bucket:020}` | one number per name, `ttl` |
//! | gauges | `gauges` | `_` | one number per name (the latest) |
//! | dedup key | `dedup#{side}#{kind}#{key}` | record id | |
//!
//! Index `by_outcome` (`gpk`, `gsk`) lists records by their last outcome.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};

/// The index of records by last outcome.
const BY_OUTCOME: &str = "by_outcome";
/// The sort key of single items.
const ONE: &str = "_";
/// The partition of record counts per object, direction and last outcome.
const RECORD_COUNTS: &str = "records";
/// The partition of record counts per last outcome and code.
const CODE_COUNTS: &str = "codes";
/// The controls item, the time-series partition and the gauges item.
const CONTROLS: &str = "control";
const SERIES: &str = "series";
const GAUGES: &str = "gauges";

use crate::ports::{ClaimStore, Cursor, CursorStore, Link, LinkStore, Outcome, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, key: &str) -> Option<i64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn link_key(pair: &str, hubspot_id: &str) -> String {
    format!("link#{pair}#{hubspot_id}")
}

fn pointer_key(sobject: &str, id: &str) -> String {
    format!("linksf#{sobject}#{id}")
}

/// SDK errors: a failed condition or cancelled transaction is a conflict; anything
/// else is the store being unavailable.
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{e:?}");
    if text.contains("ConditionalCheckFailed") || text.contains("TransactionCanceled") {
        StoreError::Conflict("a conditional write lost".into())
    } else {
        StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
    }
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (on-demand, TTL on `ttl`) for local runs and tests; deployed
    /// stacks get it from the SAM template.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str, ty: ScalarAttributeType| {
            build(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ty)
                    .build(),
            )
        };
        let key = |name: &str, ty: KeyType| {
            build(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(ty)
                    .build(),
            )
        };
        let by_outcome = build(
            GlobalSecondaryIndex::builder()
                .index_name(BY_OUTCOME)
                .key_schema(key("gpk", KeyType::Hash)?)
                .key_schema(key("gsk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build(),
        )?;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("sk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("gpk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("gsk", ScalarAttributeType::N)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(by_outcome)
            .send()
            .await
            .map_err(classify)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(build(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build(),
            )?)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(ONE))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// Many items by key at once (`BatchGetItem`, 100 keys a call, strongly
    /// consistent, what DynamoDB leaves unprocessed asked again), by key.
    async fn get_many(&self, pks: Vec<String>) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in pks.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|pk| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(ONE))]))
                .collect();
            let mut asked = build(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build(),
            )?;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, asked)
                    .send()
                    .await
                    .map_err(classify)?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in items {
                    if let Some(pk) = get_s(&item, "pk") {
                        found.insert(pk.to_owned(), item);
                    }
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(left) if !left.keys.is_empty() => asked = left,
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    fn link_of(item: &Item) -> Result<Link, StoreError> {
        let data =
            get_s(item, "data").ok_or_else(|| StoreError::Corrupt("a link without data".into()))?;
        let mut link: Link =
            serde_json::from_str(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        link.version = get_n(item, "version").unwrap_or(0) as u64;
        Ok(link)
    }

    fn link_item(link: &Link, version: u64) -> Result<Item, StoreError> {
        let data = serde_json::to_string(link).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(HashMap::from([
            ("pk".to_owned(), s(link_key(&link.pair, &link.hubspot_id))),
            ("sk".to_owned(), s(ONE)),
            ("data".to_owned(), s(data)),
            ("version".to_owned(), n(version as i64)),
            (
                "sf".to_owned(),
                s(pointer_key(&link.salesforce_object, &link.salesforce_id)),
            ),
        ]))
    }

    /// A put inside a transaction; an empty `condition` writes unconditionally.
    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if !condition.is_empty() {
            put = put.condition_expression(condition);
        }
        if !values.is_empty() {
            put = put.set_expression_attribute_values(Some(values));
        }
        Ok(TransactWriteItem::builder()
            .put(build(put.build())?)
            .build())
    }

    fn delete(
        &self,
        pk: String,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(ONE))
            .condition_expression(condition);
        if !values.is_empty() {
            delete = delete.set_expression_attribute_values(Some(values));
        }
        Ok(TransactWriteItem::builder()
            .delete(build(delete.build())?)
            .build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl LinkStore for DynamoStore {
    async fn by_hubspot(&self, pair: &str, hubspot_id: &str) -> Result<Option<Link>, StoreError> {
        self.get(link_key(pair, hubspot_id))
            .await?
            .as_ref()
            .map(Self::link_of)
            .transpose()
    }

    async fn by_salesforce(
        &self,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let Some(pointer) = self
            .get(pointer_key(salesforce_object, salesforce_id))
            .await?
        else {
            return Ok(None);
        };
        let Some(target) = get_s(&pointer, "target") else {
            return Err(StoreError::Corrupt("a link pointer without target".into()));
        };
        self.get(target.to_owned())
            .await?
            .as_ref()
            .map(Self::link_of)
            .transpose()
    }

    async fn by_hubspot_ids(
        &self,
        pair: &str,
        hubspot_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let keys: Vec<String> = hubspot_ids.iter().map(|id| link_key(pair, id)).collect();
        let found = self.get_many(keys.clone()).await?;
        keys.iter()
            .map(|k| found.get(k).map(Self::link_of).transpose())
            .collect()
    }

    async fn by_salesforce_ids(
        &self,
        salesforce_object: &str,
        salesforce_ids: &[String],
    ) -> Result<Vec<Option<Link>>, StoreError> {
        let pointers: Vec<String> = salesforce_ids
            .iter()
            .map(|id| pointer_key(salesforce_object, id))
            .collect();
        let found = self.get_many(pointers.clone()).await?;
        let mut targets: Vec<Option<String>> = Vec::with_capacity(pointers.len());
        for p in &pointers {
            targets.push(match found.get(p) {
                None => None,
                Some(pointer) => {
                    Some(get_s(pointer, "target").map(str::to_owned).ok_or_else(|| {
                        StoreError::Corrupt("a link pointer without target".into())
                    })?)
                }
            });
        }
        let links = self
            .get_many(targets.iter().flatten().cloned().collect())
            .await?;
        targets
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| links.get(t))
                    .map(Self::link_of)
                    .transpose()
            })
            .collect()
    }

    async fn create(&self, link: &Link) -> Result<Link, StoreError> {
        let mut stored = link.clone();
        stored.version = 1;
        let main = Self::link_item(&stored, 1)?;
        let pointer = HashMap::from([
            (
                "pk".to_owned(),
                s(pointer_key(&link.salesforce_object, &link.salesforce_id)),
            ),
            ("sk".to_owned(), s(ONE)),
            (
                "target".to_owned(),
                s(link_key(&link.pair, &link.hubspot_id)),
            ),
        ]);
        self.transact(vec![
            self.put(main, "attribute_not_exists(pk)", Item::new())?,
            self.put(pointer, "attribute_not_exists(pk)", Item::new())?,
        ])
        .await?;
        Ok(stored)
    }

    async fn update(&self, link: &Link) -> Result<Link, StoreError> {
        let mut next = link.clone();
        next.version += 1;
        let data = serde_json::to_string(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(link_key(&link.pair, &link.hubspot_id)))
            .key("sk", s(ONE))
            .update_expression("SET #d = :d, version = :next")
            .condition_expression("version = :v")
            .expression_attribute_names("#d", "data")
            .expression_attribute_values(":d", s(data))
            .expression_attribute_values(":next", n(next.version as i64))
            .expression_attribute_values(":v", n(link.version as i64))
            .send()
            .await
            .map_err(classify)?;
        Ok(next)
    }

    async fn relink(
        &self,
        link: &Link,
        hubspot_id: &str,
        salesforce_object: &str,
        salesforce_id: &str,
    ) -> Result<Link, StoreError> {
        let next = Link {
            hubspot_id: hubspot_id.to_owned(),
            salesforce_object: salesforce_object.to_owned(),
            salesforce_id: salesforce_id.to_owned(),
            version: link.version + 1,
            ..link.clone()
        };
        let old_main = link_key(&link.pair, &link.hubspot_id);
        let new_main = link_key(&next.pair, &next.hubspot_id);
        let old_pointer = pointer_key(&link.salesforce_object, &link.salesforce_id);
        let new_pointer = pointer_key(salesforce_object, salesforce_id);
        let version = HashMap::from([(":v".to_owned(), n(link.version as i64))]);
        let mut items = Vec::new();
        if old_main == new_main {
            let data =
                serde_json::to_string(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(new_main.clone()))
                .key("sk", s(ONE))
                .update_expression("SET #d = :d, version = :next, sf = :sf")
                .condition_expression("version = :v")
                .expression_attribute_names("#d", "data")
                .expression_attribute_values(":d", s(data))
                .expression_attribute_values(":next", n(next.version as i64))
                .expression_attribute_values(":sf", s(new_pointer.clone()))
                .expression_attribute_values(":v", n(link.version as i64));
            items.push(
                TransactWriteItem::builder()
                    .update(build(update.build())?)
                    .build(),
            );
        } else {
            items.push(self.delete(old_main, "version = :v", version)?);
            items.push(self.put(
                Self::link_item(&next, next.version)?,
                "attribute_not_exists(pk)",
                Item::new(),
            )?);
        }
        if old_pointer == new_pointer {
            let pointer = HashMap::from([
                ("pk".to_owned(), s(new_pointer)),
                ("sk".to_owned(), s(ONE)),
                ("target".to_owned(), s(new_main)),
            ]);
            items.push(self.put(pointer, "attribute_exists(pk)", Item::new())?);
        } else {
            items.push(self.delete(old_pointer, "attribute_exists(pk)", Item::new())?);
            let pointer = HashMap::from([
                ("pk".to_owned(), s(new_pointer)),
                ("sk".to_owned(), s(ONE)),
                ("target".to_owned(), s(new_main)),
            ]);
            items.push(self.put(pointer, "attribute_not_exists(pk)", Item::new())?);
        }
        self.transact(items).await?;
        Ok(next)
    }

    async fn remove(&self, link: &Link) -> Result<(), StoreError> {
        self.transact(vec![
            self.delete(
                link_key(&link.pair, &link.hubspot_id),
                "attribute_exists(pk)",
                Item::new(),
            )?,
            self.delete(
                pointer_key(&link.salesforce_object, &link.salesforce_id),
                "attribute_exists(pk)",
                Item::new(),
            )?,
        ])
        .await
    }
}

#[async_trait]
impl CursorStore for DynamoStore {
    async fn cursor(&self, feed: &str) -> Result<Option<Cursor>, StoreError> {
        let Some(item) = self.get(format!("cursor#{feed}")).await? else {
            return Ok(None);
        };
        Ok(Some(Cursor {
            at: get_n(&item, "at")
                .ok_or_else(|| StoreError::Corrupt("a cursor without at".into()))?,
            last_id: get_s(&item, "last_id").unwrap_or_default().to_owned(),
        }))
    }

    async fn advance(
        &self,
        feed: &str,
        from: Option<&Cursor>,
        to: &Cursor,
    ) -> Result<(), StoreError> {
        if from.is_some_and(|f| to <= f) {
            return Err(StoreError::Conflict("a cursor only moves forward".into()));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("cursor#{feed}")))
            .item("sk", s(ONE))
            .item("at", n(to.at))
            .item("last_id", s(to.last_id.clone()));
        put = match from {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(f) => put
                .condition_expression("#at = :fat AND last_id = :fid")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":fat", n(f.at))
                .expression_attribute_values(":fid", s(f.last_id.clone())),
        };
        put.send().await.map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl ClaimStore for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("claim#{key}")))
            .item("sk", s(ONE))
            .item("owner", s(owner))
            .item("expires", n(now + ttl_ms))
            .item("ttl", n((now + ttl_ms) / 1000 + 1))
            .condition_expression("attribute_not_exists(pk) OR expires <= :now OR #o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self, key: &str, owner: &str, now: i64) -> Result<(), StoreError> {
        // Kept until just after now (DynamoDB's TTL removes it an hour later): a claim
        // made under the same or an earlier time is still refused (a batch that began in
        // the release's millisecond may have read before the holder wrote).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("claim#{key}")))
            .key("sk", s(ONE))
            .update_expression("SET expires = :now, #t = :ttl")
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now + 1))
            .expression_attribute_values(":ttl", n(now / 1000 + 3_600))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn first_sight(
        &self,
        event_key: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("event#{event_key}")))
            .item("sk", s(ONE))
            .item("expires", n(now + ttl_ms))
            .item("ttl", n((now + ttl_ms) / 1000 + 1))
            .condition_expression("attribute_not_exists(pk) OR expires <= :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn record_key(r: &crate::ports::RecordRef) -> String {
    format!("{}#{}#{}", r.side, r.object, r.id)
}

fn data_of<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let data =
        get_s(item, "data").ok_or_else(|| StoreError::Corrupt("an item without data".into()))?;
    serde_json::from_str(data).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl DynamoStore {
    async fn record_once(
        &self,
        event: &crate::ports::SyncEvent,
        history_ttl_ms: i64,
    ) -> Result<crate::ports::RecordStatus, StoreError> {
        let key = record_key(&event.record);
        let previous_item = self.get(format!("status#{key}")).await?;
        let previous: Option<crate::ports::RecordStatus> =
            previous_item.as_ref().map(data_of).transpose()?;
        // Items written before record counts existed carry no version and were never
        // counted: they count as new.
        let previous_version = previous_item.as_ref().and_then(|i| get_n(i, "v"));
        let status = crate::ports::RecordStatus::after(previous.clone(), event);
        let data =
            serde_json::to_string(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut status_item = HashMap::from([
            ("pk".to_owned(), s(format!("status#{key}"))),
            ("sk".to_owned(), s(ONE)),
            ("data".to_owned(), s(data)),
            (
                "gpk".to_owned(),
                s(format!("outcome#{}", event.outcome.as_str())),
            ),
            ("gsk".to_owned(), n(event.at)),
            ("v".to_owned(), n(previous_version.unwrap_or(0) + 1)),
        ]);
        if let Some(code) = &event.code {
            status_item.insert("code".to_owned(), s(code.clone()));
        }
        let status_put = match previous_version {
            Some(v) => self.put(
                status_item,
                "v = :v",
                HashMap::from([(":v".to_owned(), n(v))]),
            )?,
            None => self.put(status_item, "attribute_not_exists(v)", Item::new())?,
        };
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let history =
            serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expires = event.at + history_ttl_ms;
        let history_item = HashMap::from([
            ("pk".to_owned(), s(format!("history#{key}"))),
            ("sk".to_owned(), s(format!("{:020}#{seq:020}", event.at))),
            ("data".to_owned(), s(history)),
            ("expires".to_owned(), n(expires)),
            ("ttl".to_owned(), n(expires / 1000 + 1)),
        ]);
        let mut writes = vec![
            status_put,
            self.put(history_item, "attribute_not_exists(pk)", Item::new())?,
        ];
        // Record counts: +1 where the record is now, -1 where it was, per (object,
        // direction) by outcome and per (outcome, code).
        let counted = previous.filter(|_| previous_version.is_some());
        let place = |object: &str, direction: &str, outcome: Outcome, code: Option<&str>| {
            let mut at = vec![(
                RECORD_COUNTS,
                format!("{object}#{direction}"),
                outcome.as_str().to_owned(),
            )];
            if let Some(code) = code {
                at.push((
                    CODE_COUNTS,
                    format!("{}#{code}", outcome.as_str()),
                    "n".to_owned(),
                ));
            }
            at
        };
        let now_at = place(
            &event.record.object,
            &event.direction,
            event.outcome,
            event.code.as_deref(),
        );
        let was_at = counted
            .map(|p| {
                place(
                    &p.last.record.object,
                    &p.last.direction,
                    p.last.outcome,
                    p.last.code.as_deref(),
                )
            })
            .unwrap_or_default();
        // (partition, sort key) -> the columns it moves, and by how much.
        type Moves<'a> = Vec<((&'a str, String), Vec<(String, i64)>)>;
        let mut moves: Moves<'_> = Vec::new();
        let mut shift = |(pk, sk, column): (&'static str, String, String), delta: i64| match moves
            .iter_mut()
            .find(|(k, _)| k.0 == pk && k.1 == sk)
        {
            Some((_, columns)) => columns.push((column, delta)),
            None => moves.push(((pk, sk), vec![(column, delta)])),
        };
        for at in now_at.iter().filter(|a| !was_at.contains(a)) {
            shift(at.clone(), 1);
        }
        for at in was_at.iter().filter(|a| !now_at.contains(a)) {
            shift(at.clone(), -1);
        }
        for ((pk, sk), columns) in moves {
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk));
            let mut parts = Vec::new();
            for (i, (column, delta)) in columns.into_iter().enumerate() {
                parts.push(format!("#c{i} :d{i}"));
                update = update
                    .expression_attribute_names(format!("#c{i}"), column)
                    .expression_attribute_values(format!(":d{i}"), n(delta));
            }
            update = update.update_expression(format!("ADD {}", parts.join(", ")));
            writes.push(
                TransactWriteItem::builder()
                    .update(build(update.build())?)
                    .build(),
            );
        }
        self.transact(writes).await?;
        Ok(status)
    }

    async fn query_all(
        &self,
        pk: String,
        index: Option<&str>,
        key_name: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key_name)
                .expression_attribute_values(":k", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            if let Some(i) = index {
                q = q.index_name(i);
            } else {
                q = q.consistent_read(true);
            }
            let page = q.send().await.map_err(classify)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl crate::ports::StatusStore for DynamoStore {
    async fn record(
        &self,
        event: &crate::ports::SyncEvent,
        history_ttl_ms: i64,
    ) -> Result<crate::ports::RecordStatus, StoreError> {
        // The status is replaced under its version so that the record counts move once
        // per change of outcome even when two workers record the same record at once.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.record_once(event, history_ttl_ms).await {
                Err(StoreError::Conflict(_)) if attempt < 5 => continue,
                other => return other,
            }
        }
    }

    async fn status(
        &self,
        record: &crate::ports::RecordRef,
    ) -> Result<Option<crate::ports::RecordStatus>, StoreError> {
        self.get(format!("status#{}", record_key(record)))
            .await?
            .as_ref()
            .map(data_of)
            .transpose()
    }

    async fn history(
        &self,
        record: &crate::ports::RecordRef,
        now: i64,
    ) -> Result<Vec<crate::ports::SyncEvent>, StoreError> {
        // DynamoDB's TTL deletes lazily: expired items are filtered here.
        self.query_all(format!("history#{}", record_key(record)), None, "pk")
            .await?
            .iter()
            .filter(|i| get_n(i, "expires").is_none_or(|e| e > now))
            .map(data_of)
            .collect()
    }

    async fn by_outcome(
        &self,
        outcome: crate::ports::Outcome,
        code: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::ports::RecordStatus>, StoreError> {
        let items = self
            .query_all(
                format!("outcome#{}", outcome.as_str()),
                Some(BY_OUTCOME),
                "gpk",
            )
            .await?;
        items
            .iter()
            .filter(|i| code.is_none_or(|c| get_s(i, "code") == Some(c)))
            .take(limit)
            .map(data_of)
            .collect()
    }

    async fn counts(&self) -> Result<Vec<(String, String, crate::ports::Counts)>, StoreError> {
        let items = self.query_all(RECORD_COUNTS.to_owned(), None, "pk").await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let (object, direction) = get_s(i, "sk")?.split_once('#')?;
                let c = |k: &str| get_n(i, k).unwrap_or(0) as u64;
                Some((
                    object.to_owned(),
                    direction.to_owned(),
                    crate::ports::Counts {
                        synced: c("synced"),
                        skipped: c("skipped"),
                        failed: c("failed"),
                    },
                ))
            })
            .collect())
    }

    async fn codes(&self) -> Result<Vec<(Outcome, String, u64)>, StoreError> {
        let items = self.query_all(CODE_COUNTS.to_owned(), None, "pk").await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let (outcome, code) = get_s(i, "sk")?.split_once('#')?;
                let outcome = Outcome::from_name(outcome)?;
                let count = get_n(i, "n").unwrap_or(0).max(0) as u64;
                (count > 0).then(|| (outcome, code.to_owned(), count))
            })
            .collect())
    }
}

#[async_trait]
impl crate::ports::ControlStore for DynamoStore {
    async fn controls(&self) -> Result<(crate::ports::Controls, u64), StoreError> {
        match self.get(CONTROLS.to_owned()).await? {
            None => Ok((crate::ports::Controls::default(), 0)),
            Some(item) => Ok((data_of(&item)?, get_n(&item, "v").unwrap_or(0) as u64)),
        }
    }

    async fn put_controls(
        &self,
        controls: &crate::ports::Controls,
        version: u64,
    ) -> Result<u64, StoreError> {
        let data =
            serde_json::to_string(controls).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let next = version as i64 + 1;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CONTROLS))
            .item("sk", s(ONE))
            .item("data", s(data))
            .item("v", n(next));
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("v = :v")
                .expression_attribute_values(":v", n(version as i64))
        };
        put.send().await.map_err(classify)?;
        Ok(next as u64)
    }
}

impl DynamoStore {
    /// One update of named numbers: `ADD` sums them, `SET` replaces them; names go
    /// through placeholders (`lag.salesforce:Lead` is no valid attribute path).
    async fn update_numbers(
        &self,
        pk: &str,
        sk: String,
        add: bool,
        values: &[(String, i64)],
        ttl: Option<i64>,
    ) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut names = HashMap::new();
        let mut numbers = Item::new();
        let mut parts = Vec::new();
        for (i, (name, value)) in values.iter().enumerate() {
            names.insert(format!("#n{i}"), name.clone());
            numbers.insert(format!(":v{i}"), n(*value));
            parts.push(if add {
                format!("#n{i} :v{i}")
            } else {
                format!("#n{i} = :v{i}")
            });
        }
        let mut expression = format!("{} {}", if add { "ADD" } else { "SET" }, parts.join(", "));
        if let Some(ttl) = ttl {
            names.insert("#ttl".into(), "ttl".into());
            numbers.insert(":ttl".into(), n(ttl));
            expression.push_str(if add {
                " SET #ttl = :ttl"
            } else {
                ", #ttl = :ttl"
            });
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(numbers))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl crate::ports::TelemetryStore for DynamoStore {
    async fn add(&self, at: i64, values: &[(String, i64)]) -> Result<(), StoreError> {
        let bucket = crate::ports::bucket_of(at);
        let ttl = (bucket + crate::ports::ops::SERIES_TTL_MS) / 1000;
        self.update_numbers(SERIES, format!("{bucket:020}"), true, values, Some(ttl))
            .await
    }

    async fn gauge(&self, at: i64, values: &[(String, i64)]) -> Result<(), StoreError> {
        let bucket = crate::ports::bucket_of(at);
        let ttl = (bucket + crate::ports::ops::SERIES_TTL_MS) / 1000;
        self.update_numbers(SERIES, format!("{bucket:020}"), false, values, Some(ttl))
            .await?;
        self.update_numbers(GAUGES, ONE.to_owned(), false, values, None)
            .await
    }

    async fn series(&self, since: i64) -> Result<Vec<crate::ports::SeriesPoint>, StoreError> {
        let from = format!("{:020}", crate::ports::bucket_of(since).max(0));
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":pk", s(SERIES))
                .expression_attribute_values(":from", s(from.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in page.items.unwrap_or_default() {
                let Some(bucket) = get_s(&item, "sk").and_then(|b| b.parse().ok()) else {
                    continue;
                };
                out.push(crate::ports::SeriesPoint {
                    bucket,
                    values: numbers_of(&item, &["ttl"]),
                });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn gauges(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        Ok(self
            .get(GAUGES.to_owned())
            .await?
            .map(|item| numbers_of(&item, &[]))
            .unwrap_or_default())
    }
}

/// An item's number attributes, keys and `skip` aside.
fn numbers_of(item: &Item, skip: &[&str]) -> std::collections::BTreeMap<String, i64> {
    item.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "pk" | "sk") && !skip.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
        .collect()
}

#[async_trait]
impl crate::ports::DedupIndex for DynamoStore {
    async fn put(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("dedup#{side}#{kind}#{key}")))
            .item("sk", s(record_id))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn lookup(&self, side: &str, kind: &str, key: &str) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_all(format!("dedup#{side}#{kind}#{key}"), None, "pk")
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, "sk").map(str::to_owned))
            .collect())
    }

    async fn remove(
        &self,
        side: &str,
        kind: &str,
        key: &str,
        record_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("dedup#{side}#{kind}#{key}")))
            .key("sk", s(record_id))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// The AWS configuration from the standard chain (environment, profile, instance
/// role), with an endpoint override for local servers such as moto.
pub async fn aws_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

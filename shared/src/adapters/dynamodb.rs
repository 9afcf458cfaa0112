//! The state ports on DynamoDB: one table, key `pk` (string), written with conditions
//! and transactions so that racing Lambda workers cannot both link, claim or advance.
//! The key schema is in `docs/state.md`.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | link | `link#{pair}#{hubspot_id}` | `data` (JSON), `version`, `sf` (its pointer's key) |
//! | link pointer | `linksf#{sobject}#{salesforce_id}` | `target` (the link's key) |
//! | cursor | `cursor#{feed}` | `at`, `last_id` |
//! | claim | `claim#{key}` | `owner`, `expires` (ms), `ttl` (s, DynamoDB TTL) |
//! | seen event | `event#{key}` | `expires` (ms), `ttl` (s) |

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};

use crate::ports::{ClaimStore, Cursor, CursorStore, Link, LinkStore, StoreError};

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
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(build(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )?)
            .key_schema(build(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build(),
            )?)
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
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
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
            ("data".to_owned(), s(data)),
            ("version".to_owned(), n(version as i64)),
            (
                "sf".to_owned(),
                s(pointer_key(&link.salesforce_object, &link.salesforce_id)),
            ),
        ]))
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
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

    async fn create(&self, link: &Link) -> Result<Link, StoreError> {
        let mut stored = link.clone();
        stored.version = 1;
        let main = Self::link_item(&stored, 1)?;
        let pointer = HashMap::from([
            (
                "pk".to_owned(),
                s(pointer_key(&link.salesforce_object, &link.salesforce_id)),
            ),
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
                ("target".to_owned(), s(new_main)),
            ]);
            items.push(self.put(pointer, "attribute_exists(pk)", Item::new())?);
        } else {
            items.push(self.delete(old_pointer, "attribute_exists(pk)", Item::new())?);
            let pointer = HashMap::from([
                ("pk".to_owned(), s(new_pointer)),
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

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("claim#{key}")))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
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

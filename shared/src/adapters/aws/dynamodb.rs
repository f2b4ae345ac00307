//! `ConnectionRegistry` on DynamoDB.

use super::boxed;
use crate::domain::{ProjectId, UserId};
use crate::ports::{ConnectionRegistry, Follower, RegistryError, Session};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

/// The table's partition key (a string): the API Gateway connection id.
pub const CONNECTION_ID: &str = "connection_id";
/// The table's sort key (a string): `connection` for the connection's own item,
/// `project#<id>` for each project it follows.
pub const ENTRY: &str = "entry";
/// The attribute holding the project a subscription item follows.
pub const PROJECT_ID: &str = "project_id";
/// The global secondary index on `project_id`, for "who follows this project".
pub const PROJECT_INDEX: &str = "by_project";
/// The token's expiry (a number, seconds since the epoch), on every item of a connection.
pub const EXPIRES_AT: &str = "expires_at";
/// DynamoDB's time to live (a number): items of a connection whose `$disconnect` never
/// came go a day after its token expired.
pub const TTL: &str = "ttl";

const CONNECTION_ENTRY: &str = "connection";
const TTL_AFTER_EXPIRY: u64 = 86_400;

fn project_entry(project: ProjectId) -> String {
    format!("project#{project}")
}

/// Open WebSocket connections in one DynamoDB table: one item per connection and one per
/// project it follows, under the connection's partition.
#[derive(Clone)]
pub struct DynamoConnectionRegistry {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConnectionRegistry {
    pub fn new(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        DynamoConnectionRegistry {
            client: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(super::metering::Metering)
                    .build(),
            ),
            table: table.into(),
        }
    }

    /// The SDK client, for set-up code (creating tables) that the port does not cover.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn failed(action: &'static str) -> impl FnOnce(crate::ports::BackendError) -> RegistryError {
    move |source| RegistryError::Backend { action, source }
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl DynamoConnectionRegistry {
    /// Every item of a connection, its own first (`connection` sorts before `project#`).
    async fn entries(
        &self,
        connection_id: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, RegistryError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_values(":id", s(connection_id))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| failed("read a connection")(boxed(e)))?);
        }
        Ok(items)
    }
}

#[async_trait]
impl ConnectionRegistry for DynamoConnectionRegistry {
    async fn register(&self, connection_id: &str, session: Session) -> Result<(), RegistryError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_ID, s(connection_id))
            .item(ENTRY, s(CONNECTION_ENTRY))
            .item("user_id", s(session.user.to_string()))
            .item("connected_at", s(chrono::Utc::now().to_rfc3339()))
            .item(EXPIRES_AT, n(session.expires_at))
            .item(TTL, n(session.expires_at + TTL_AFTER_EXPIRY))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", CONNECTION_ID)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    RegistryError::AlreadyRegistered(connection_id.to_owned())
                } else {
                    failed("register a connection")(boxed(e))
                }
            })?;
        Ok(())
    }

    async fn renew(&self, connection_id: &str, expires_at: u64) -> Result<(), RegistryError> {
        let entries = self.entries(connection_id).await?;
        if entries.is_empty() {
            return Err(RegistryError::NotRegistered(connection_id.to_owned()));
        }
        for item in entries {
            let Some(entry) = item.get(ENTRY).cloned() else {
                continue;
            };
            self.client
                .update_item()
                .table_name(&self.table)
                .key(CONNECTION_ID, s(connection_id))
                .key(ENTRY, entry)
                .update_expression("SET #e = :e, #t = :t")
                .condition_expression("attribute_exists(#id)")
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_names("#e", EXPIRES_AT)
                .expression_attribute_names("#t", TTL)
                .expression_attribute_values(":e", n(expires_at))
                .expression_attribute_values(":t", n(expires_at + TTL_AFTER_EXPIRY))
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception())
                    {
                        RegistryError::NotRegistered(connection_id.to_owned())
                    } else {
                        failed("renew a connection")(boxed(e))
                    }
                })?;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<(), RegistryError> {
        let session = self
            .session(connection_id)
            .await?
            .ok_or_else(|| RegistryError::NotRegistered(connection_id.to_owned()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_ID, s(connection_id))
            .item(ENTRY, s(project_entry(project)))
            .item(PROJECT_ID, s(project.to_string()))
            .item(EXPIRES_AT, n(session.expires_at))
            .item(TTL, n(session.expires_at + TTL_AFTER_EXPIRY))
            .send()
            .await
            .map_err(|e| failed("subscribe a connection")(boxed(e)))?;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<bool, RegistryError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, s(connection_id))
            .key(ENTRY, s(project_entry(project)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| failed("unsubscribe a connection")(boxed(e)))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn subscriptions(&self, connection_id: &str) -> Result<Vec<ProjectId>, RegistryError> {
        Ok(self
            .entries(connection_id)
            .await?
            .iter()
            .filter_map(|item| item.get(PROJECT_ID)?.as_s().ok())
            .filter_map(|p| ProjectId::parse(PROJECT_ID, p).ok())
            .collect())
    }

    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError> {
        for item in self.entries(connection_id).await? {
            let Some(entry) = item.get(ENTRY).cloned() else {
                continue;
            };
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(CONNECTION_ID, s(connection_id))
                .key(ENTRY, entry)
                .send()
                .await
                .map_err(|e| failed("unregister a connection")(boxed(e)))?;
        }
        Ok(())
    }

    async fn session(&self, connection_id: &str) -> Result<Option<Session>, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, s(connection_id))
            .key(ENTRY, s(CONNECTION_ENTRY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("look up a connection")(boxed(e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let user = item
            .get("user_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|u| UserId::parse("user_id", u).ok());
        Ok(user.map(|user| Session {
            user,
            expires_at: number(&item, EXPIRES_AT).unwrap_or(0),
        }))
    }

    async fn subscribers(&self, project: ProjectId) -> Result<Vec<Follower>, RegistryError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PROJECT_INDEX)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PROJECT_ID)
            .expression_attribute_values(":p", s(project.to_string()))
            .into_paginator()
            .items()
            .send();
        let mut followers = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| failed("list a project's connections")(boxed(e)))?;
            if let Some(AttributeValue::S(id)) = item.get(CONNECTION_ID) {
                followers.push(Follower {
                    connection_id: id.clone(),
                    expires_at: number(&item, EXPIRES_AT).unwrap_or(0),
                });
            }
        }
        Ok(followers)
    }
}

//! `ConnectionRegistry` on DynamoDB.

use super::boxed;
use crate::domain::{ProjectId, UserId};
use crate::ports::{ConnectionRegistry, RegistryError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

/// The table's partition key (a string): the API Gateway connection id.
pub const CONNECTION_ID: &str = "connection_id";
/// The attribute holding the project a connection follows.
pub const PROJECT_ID: &str = "project_id";
/// The global secondary index on `project_id`, for "who follows this project".
pub const PROJECT_INDEX: &str = "by_project";

/// Open WebSocket connections, one item each, in one DynamoDB table.
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

#[async_trait]
impl ConnectionRegistry for DynamoConnectionRegistry {
    async fn register(&self, connection_id: &str, user: UserId) -> Result<(), RegistryError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_ID, s(connection_id))
            .item("user_id", s(user.to_string()))
            .item("connected_at", s(chrono::Utc::now().to_rfc3339()))
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

    async fn subscribe(
        &self,
        connection_id: &str,
        project: ProjectId,
    ) -> Result<(), RegistryError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("SET #p = :p")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_names("#p", PROJECT_ID)
            .expression_attribute_values(":p", s(project.to_string()))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    RegistryError::NotRegistered(connection_id.to_owned())
                } else {
                    failed("subscribe a connection")(boxed(e))
                }
            })?;
        Ok(())
    }

    async fn unregister(&self, connection_id: &str) -> Result<(), RegistryError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, s(connection_id))
            .send()
            .await
            .map_err(|e| failed("unregister a connection")(boxed(e)))?;
        Ok(())
    }

    async fn user_of(&self, connection_id: &str) -> Result<Option<UserId>, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("look up a connection")(boxed(e)))?;
        let user = out
            .item
            .as_ref()
            .and_then(|item| item.get("user_id"))
            .and_then(|v| v.as_s().ok());
        Ok(user.and_then(|u| UserId::parse("user_id", u).ok()))
    }

    async fn subscribers(&self, project: ProjectId) -> Result<Vec<String>, RegistryError> {
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
        let mut ids = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| failed("list a project's connections")(boxed(e)))?;
            if let Some(AttributeValue::S(id)) = item.get(CONNECTION_ID) {
                ids.push(id.clone());
            }
        }
        Ok(ids)
    }
}

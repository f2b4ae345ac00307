//! Every statement of the stores goes through the connection's statement cache: Postgres
//! parses and analyses it once per connection instead of on every call, and each call is
//! one round trip (bind and execute) instead of two (prepare, then execute). The engine
//! sends the same few dozen statements thousands of times, so this halves their cost.
//!
//! The statements are the stores' own text (constants, or `format!` over fixed column
//! lists), never user input, so the cache stays as small as the set of statements.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

/// `query`, `query_one`, `query_opt` and `execute` through the statement cache, on a
/// pooled connection or a transaction alike.
#[async_trait]
pub(crate) trait Cached: GenericClient {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<C: GenericClient + ?Sized> Cached for C {}

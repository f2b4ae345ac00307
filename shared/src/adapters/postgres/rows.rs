//! Row mapping and error conversion shared by the Postgres stores.

use crate::ports::StoreError;
use tokio_postgres::error::SqlState;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
                let detail = e
                    .as_db_error()
                    .and_then(|d| d.detail())
                    .unwrap_or("duplicate value")
                    .to_owned();
                StoreError::Conflict(detail)
            }
            // A row the write refers to is gone (its account or project was deleted while
            // a token or a request still named it): the request, not the database, is wrong.
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::Conflict("something this request refers to no longer exists".into())
            }
            _ => StoreError::Backend(Box::new(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// A non-negative count stored as Postgres `integer`.
pub(crate) fn count(row: &tokio_postgres::Row, column: &str) -> Result<u32, StoreError> {
    let value: i32 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| StoreError::Backend(Box::new(e)))
}

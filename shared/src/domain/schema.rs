//! The JSON Schemas of the few types whose wire form is not what their Rust shape says
//! (ids are uuid strings, kinds are enums of names, a `Decimal` is a number). The rest
//! derive `utoipa::ToSchema`; the API's OpenAPI document and the WebSocket protocol's
//! schema are built from both.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type};

/// A uuid, as text.
pub fn uuid() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

/// One of `names`, as text.
pub fn one_of<const N: usize>(names: [&'static str; N]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .into()
}

/// `decision` of an approval: `approve` or `reject`.
pub fn decision() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["approve", "reject"]))
        .build()
}

/// The content types an upload may have.
pub fn upload_type() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(super::requests::UPLOAD_TYPES))
        .build()
}

/// An outside service's name.
pub fn service() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(super::Service::ALL.iter().map(|s| s.as_str())))
        .build()
}

/// A string whose value is exactly `name` (an event's `kind`, a message's `type`).
pub fn constant(name: &'static str) -> RefOr<Schema> {
    one_of([name])
}

//! The local runner's parts. It plays the pieces of AWS that moto cannot: Lambda's SQS event
//! source mappings (this module's `mapping`), and, as they land, the HTTP and WebSocket
//! API Gateway and the schedules.

pub mod mapping;
pub mod provision;
pub mod template;

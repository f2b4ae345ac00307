//! Integration tests against the local stack (Postgres with pgvector, and moto). One
//! binary, so the AWS SDK is linked once. Every test has its own database and its own
//! queue, bucket, table and state machine names, so they run in parallel.

mod account;
mod agent_loop;
mod api;
mod api_costs;
mod app_journey;
mod approvals;
mod auth;
mod aws;
mod browse;
mod budgets;
mod connections;
mod conversations;
mod database_tls;
mod dead_letters;
mod end_to_end;
mod end_to_end_compatible;
mod gateway;
mod idempotent;
mod limits;
mod llm_anthropic;
mod llm_gemini;
mod llm_openai;
mod llm_streaming;
mod oidc;
mod ownership;
mod pipeline;
mod policies;
mod provider_contract;
mod provider_paths;
mod push;
mod ready_set;
mod run_control;
mod schema;
mod steps_events;
mod stores;
mod sweep;
mod tools_build;
mod tools_deploy;
mod tools_github;
mod tools_images;
mod tools_outreach;
mod tools_recorded;
mod tools_safety;
mod websocket;

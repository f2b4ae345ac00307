//! Product analytics: the events a project's app and landing page send
//! (`POST /projects/{id}/analytics/events`), checked here, kept once per client event id,
//! and counted per day for the owner and the marketer.
//!
//! The landing page `deploy_site` publishes carries a beacon: a small script that posts one
//! `page_view` per page load with the project's public ingest key, which can only add
//! events to its project.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most events one batch carries.
pub const BATCH_MAX: usize = 500;
/// The longest event name, client event id or visitor id.
pub const NAME_MAX: usize = 100;
/// The largest `properties` object, serialised, in bytes.
pub const PROPERTIES_MAX_BYTES: usize = 4096;
/// How far ahead of the server's clock an event may say it happened (clients' clocks
/// drift); later is a mistake.
pub const FUTURE_SLACK_MINUTES: i64 = 10;
/// How old an event may be: an app that was offline sends what it kept, up to this.
pub const OLDEST_DAYS: i64 = 30;
/// The name the beacon gives a page load.
pub const PAGE_VIEW: &str = "page_view";

/// A batch as the client sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// 1 to 500 events.
    pub events: Vec<IncomingEvent>,
}

/// One event as the client sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingEvent {
    /// The client's id for the event: sending it again (a retried batch) adds nothing.
    pub event_id: String,
    /// What happened: `page_view`, `signup`, `recipe_saved`. Letters, digits, `_.:/-`.
    pub name: String,
    /// When it happened (RFC 3339).
    pub occurred_at: DateTime<Utc>,
    /// Anything else about it, as a JSON object of at most 4 KB.
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    /// An anonymous id of the visitor (the beacon keeps a random one per browser).
    #[serde(default)]
    pub visitor_id: Option<String>,
}

/// An event checked and ready to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedEvent {
    pub event_id: String,
    pub name: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Value,
    pub visitor_id: Option<String>,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ingested {
    /// Events kept now.
    pub accepted: u32,
    /// Events kept before (their `event_id` was sent already), not kept again.
    pub duplicates: u32,
}

/// A day of a project's (or a user's) traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct TrafficDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub events: i64,
    /// Distinct visitor ids that day.
    pub visitors: i64,
    pub page_views: i64,
}

/// What is wrong with a batch: the field (`events[3].name`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: String, reason: impl Into<String>) -> BatchError {
    BatchError {
        field,
        reason: reason.into(),
    }
}

fn id_like(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= NAME_MAX
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

/// The batch's events, checked against `now`; the first wrong field refuses the whole
/// batch, so a client never has to work out which of its events were kept.
pub fn check(batch: EventBatch, now: DateTime<Utc>) -> Result<Vec<TrackedEvent>, BatchError> {
    let count = batch.events.len();
    if count == 0 || count > BATCH_MAX {
        return Err(refuse(
            "events".into(),
            format!("must hold 1 to {BATCH_MAX} events, not {count}"),
        ));
    }
    let earliest = now - Duration::days(OLDEST_DAYS);
    let latest = now + Duration::minutes(FUTURE_SLACK_MINUTES);
    batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let field = |name: &str| format!("events[{i}].{name}");
            if !id_like(&event.event_id) {
                return Err(refuse(
                    field("event_id"),
                    format!("must be 1 to {NAME_MAX} letters, digits or _.:/-"),
                ));
            }
            if !id_like(&event.name) {
                return Err(refuse(
                    field("name"),
                    format!("must be 1 to {NAME_MAX} letters, digits or _.:/-"),
                ));
            }
            if event.occurred_at > latest {
                return Err(refuse(
                    field("occurred_at"),
                    format!(
                        "is in the future (the server's time is {})",
                        now.to_rfc3339()
                    ),
                ));
            }
            if event.occurred_at < earliest {
                return Err(refuse(
                    field("occurred_at"),
                    format!("is more than {OLDEST_DAYS} days old"),
                ));
            }
            if let Some(visitor) = &event.visitor_id
                && !id_like(visitor)
            {
                return Err(refuse(
                    field("visitor_id"),
                    format!("must be 1 to {NAME_MAX} letters, digits or _.:/-"),
                ));
            }
            let properties = Value::Object(event.properties.unwrap_or_default());
            let size = properties.to_string().len();
            if size > PROPERTIES_MAX_BYTES {
                return Err(refuse(
                    field("properties"),
                    format!("is {size} bytes; at most {PROPERTIES_MAX_BYTES} are kept"),
                ));
            }
            Ok(TrackedEvent {
                event_id: event.event_id,
                name: event.name,
                occurred_at: event.occurred_at,
                properties,
                visitor_id: event.visitor_id,
            })
        })
        .collect()
}

/// The beacon: posts one `page_view` per page load to `endpoint` (the ingest route with the
/// project's key in `?key=`). `sendBeacon` sends the JSON as `text/plain`, which needs no
/// CORS preflight and survives the page being closed; the visitor id is random and stays in
/// the browser.
pub fn beacon_script(endpoint: &str) -> String {
    // The endpoint is ours (a URL with a uuid and a key of URL-safe characters); JSON
    // quoting keeps it a plain string in the script whatever it holds.
    let endpoint = Value::String(endpoint.to_owned())
        .to_string()
        .replace('<', "\\u003c");
    format!(
        r#"<script data-autocrew="beacon">(function(){{try{{var u={endpoint};var s=window.localStorage,v=s&&s.getItem("autocrew_visitor");if(!v){{v=crypto.randomUUID();s&&s.setItem("autocrew_visitor",v)}}var b=JSON.stringify({{events:[{{event_id:crypto.randomUUID(),name:"{PAGE_VIEW}",occurred_at:new Date().toISOString(),visitor_id:v,properties:{{path:location.pathname,referrer:document.referrer||null}}}}]}});if(navigator.sendBeacon&&navigator.sendBeacon(u,b))return;fetch(u,{{method:"POST",body:b,keepalive:true,headers:{{"content-type":"text/plain"}}}})}}catch(e){{}}}})();</script>"#
    )
}

/// `html` with the beacon for `endpoint` before `</body>` (or at the end when there is no
/// `</body>`), once: a page that has a beacon already keeps it.
pub fn with_beacon(html: &str, endpoint: &str) -> String {
    if html.contains(r#"data-autocrew="beacon""#) {
        return html.to_owned();
    }
    let script = beacon_script(endpoint);
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{script}{}", &html[..at], &html[at..]),
        None => format!("{html}{script}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(events: Value) -> EventBatch {
        serde_json::from_value(json!({ "events": events })).expect("batch")
    }

    fn event(id: &str, at: DateTime<Utc>) -> Value {
        json!({"event_id": id, "name": "page_view", "occurred_at": at, "visitor_id": "v-1",
               "properties": {"path": "/"}})
    }

    #[test]
    fn a_good_batch_is_kept_whole_and_a_wrong_field_is_named_with_its_index() {
        let now = Utc::now();
        let kept = check(batch(json!([event("e1", now), event("e2", now)])), now).expect("ok");
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].properties, json!({"path": "/"}));

        let future = check(
            batch(json!([
                event("e1", now),
                event("e2", now + Duration::hours(1))
            ])),
            now,
        );
        assert_eq!(
            future.map_err(|e| e.field),
            Err("events[1].occurred_at".into())
        );
        let old = check(batch(json!([event("e1", now - Duration::days(31))])), now);
        assert_eq!(
            old.map_err(|e| e.field),
            Err("events[0].occurred_at".into())
        );
        let mut bad = event("e1", now);
        bad["name"] = json!("drop table;");
        assert_eq!(
            check(batch(json!([bad])), now).map_err(|e| e.field),
            Err("events[0].name".into())
        );
        let mut big = event("e1", now);
        big["properties"] = json!({"text": "x".repeat(PROPERTIES_MAX_BYTES)});
        assert_eq!(
            check(batch(json!([big])), now).map_err(|e| e.field),
            Err("events[0].properties".into())
        );
        assert_eq!(
            check(batch(json!([])), now).map_err(|e| e.field),
            Err("events".into())
        );
        let many: Vec<Value> = (0..=BATCH_MAX)
            .map(|i| event(&format!("e{i}"), now))
            .collect();
        assert!(check(batch(json!(many)), now).is_err());
    }

    #[test]
    fn the_beacon_goes_before_the_body_end_once() {
        let page = "<html><body><h1>Keto</h1></BODY></html>";
        let endpoint = "https://api.example.com/projects/p/analytics/events?key=ak_1";
        let with = with_beacon(page, endpoint);
        assert!(with.starts_with("<html><body><h1>Keto</h1><script data-autocrew=\"beacon\">"));
        assert!(with.ends_with("</script></BODY></html>"));
        assert!(with.contains(&format!("var u=\"{endpoint}\"")));
        assert_eq!(with_beacon(&with, endpoint), with);
        assert!(with_beacon("<p>bare</p>", endpoint).starts_with("<p>bare</p><script"));
        // Whatever the endpoint holds, it cannot close the script.
        assert!(!beacon_script("x</script><b>").contains("</script><b>"));
    }
}

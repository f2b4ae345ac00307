//! EventBridge schedules, played locally: `rate(...)` expressions fire their function with
//! the scheduled event EventBridge sends, once at start and then once per period.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use std::time::Duration;

/// The period of `rate(N unit)`; `None` for anything else (cron expressions fire only on
/// AWS).
pub fn parse_rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "minute" if count == 1 => 60,
        "minutes" if count > 1 => 60,
        "hour" if count == 1 => 3600,
        "hours" if count > 1 => 3600,
        "day" if count == 1 => 86_400,
        "days" if count > 1 => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

/// The event EventBridge delivers for a scheduled rule.
pub fn scheduled_event(rule: &str, region: &str) -> EventBridgeEvent {
    use chrono::SubsecRound;
    let mut event = EventBridgeEvent::default();
    event.version = Some("0".to_owned());
    event.id = Some(uuid::Uuid::new_v4().to_string());
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.account = Some("123456789012".to_owned());
    event.time = Some(chrono::Utc::now().trunc_subsecs(0));
    event.region = Some(region.to_owned());
    event.resources = Some(vec![format!(
        "arn:aws:events:{region}:123456789012:rule/{rule}"
    )]);
    event.detail = serde_json::Value::Object(serde_json::Map::new());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_eventbridge_reads_them() {
        assert_eq!(
            parse_rate("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_rate("rate(2 days)"),
            Some(Duration::from_secs(172_800))
        );
        // EventBridge insists on the singular for 1 and the plural otherwise.
        assert_eq!(parse_rate("rate(1 minutes)"), None);
        assert_eq!(parse_rate("rate(0 minutes)"), None);
        assert_eq!(parse_rate("cron(0 8 * * ? *)"), None);
    }

    #[test]
    fn the_scheduled_event_has_eventbridges_shape() {
        let event = scheduled_event("autocrew-sweep", "us-east-1");
        assert_eq!(event.detail_type, "Scheduled Event");
        assert_eq!(event.source, "aws.events");
    }
}

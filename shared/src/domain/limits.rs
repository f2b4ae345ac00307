//! The limits a request is held to, each defined once: the checks use these, and the
//! OpenAPI schema attributes of the request structs name the same constants.

/// A project's name, in characters (after trimming).
pub const PROJECT_NAME_MAX: usize = 200;
/// A project's description, in characters.
pub const PROJECT_DESCRIPTION_MAX: usize = 4000;
/// A command, or a conversation message, in characters (after trimming).
pub const COMMAND_MAX: usize = 4000;
/// A run's budget, in whole dollars at most (more than 0).
pub const RUN_BUDGET_MAX_DOLLARS: i64 = 100;
/// A run's budget when the request names none, in dollars.
pub const RUN_BUDGET_DEFAULT_DOLLARS: i64 = 5;
/// Tasks of one run running at once.
pub const MAX_CONCURRENCY: u32 = 16;
/// Tasks of one run running at once when the request names no number.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// The longest deadline a run may have, in minutes (a day: long enough to wait overnight
/// for an approval). The run state machine's waits are longer, so a run ends at its own
/// deadline, by the sweep, with that reason, and never by a state's timeout.
pub const MAX_DEADLINE_MINUTES: u32 = 1440;
/// A run's deadline when the request names none, in minutes.
pub const DEFAULT_DEADLINE_MINUTES: u32 = 360;

/// A text field that is too long or empty: which limit it broke, in words for the client.
pub fn text_within(text: &str, max: usize) -> Result<&str, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(format!("must be 1-{max} characters"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MicroUsd;

    #[test]
    fn a_text_is_trimmed_then_held_to_its_limit_in_characters() {
        assert_eq!(text_within("  Keto  ", 4), Ok("Keto"));
        assert_eq!(text_within("ñññ", 3), Ok("ñññ"), "characters, not bytes");
        assert_eq!(
            text_within("   ", 10),
            Err("must be 1-10 characters".into())
        );
        assert!(text_within("abcde", 4).is_err());
    }

    #[test]
    fn dollars_become_micro_dollars_once_and_nonsense_is_refused() {
        assert_eq!(MicroUsd::from_usd(0.1), Some(MicroUsd(100_000)));
        assert_eq!(MicroUsd::from_usd(2.0000004), Some(MicroUsd(2_000_000)));
        assert_eq!(
            MicroUsd::from_usd(RUN_BUDGET_MAX_DOLLARS as f64),
            Some(MicroUsd::from_dollars(RUN_BUDGET_MAX_DOLLARS))
        );
        assert_eq!(MicroUsd::from_usd(f64::NAN), None);
        assert_eq!(MicroUsd::from_usd(f64::INFINITY), None);
        assert_eq!(MicroUsd::from_usd(1e300), None);
    }
}

//! How long a model call may take, judged by its progress rather than by one total: real
//! models stream tens of tokens a second, so a healthy answer of 8,000 tokens runs for
//! minutes, while a stalled stream should fail in seconds and let the chain move on.

use crate::config::{ConfigError, Env, optional};
use std::time::Duration;

/// The limits of one model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Opening the connection (`LLM_CONNECT_TIMEOUT_SECS`, 10).
    pub connect: Duration,
    /// From sending the request to the first byte of the answer's body
    /// (`LLM_FIRST_BYTE_TIMEOUT_SECS`, 90): a model that thinks before it writes.
    pub first_byte: Duration,
    /// The longest silence between two pieces of a streamed answer
    /// (`LLM_IDLE_TIMEOUT_SECS`, 30). Keep-alive pings count as progress.
    pub idle: Duration,
    /// The slowest pace a healthy model writes at (`LLM_MIN_TOKENS_PER_SEC`, 20): a call
    /// that is not streamed may take `first_byte` plus its `max_tokens` at this pace.
    pub min_tokens_per_sec: u32,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(90),
            idle: Duration::from_secs(30),
            min_tokens_per_sec: 20,
        }
    }
}

/// Every limit the same length, and an answer sent whole given at most a second more
/// (tests that want a call to give up quickly).
impl From<Duration> for Patience {
    fn from(every: Duration) -> Self {
        Patience {
            connect: every,
            first_byte: every,
            idle: every,
            min_tokens_per_sec: u32::MAX,
        }
    }
}

impl Patience {
    /// Reads the variables named on the fields. `LLM_TIMEOUT_SECS`, the old single total,
    /// is refused with what replaced it: honouring it would cut healthy long answers.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        if optional(env, "LLM_TIMEOUT_SECS").is_some() {
            return Err(ConfigError::Invalid {
                name: "LLM_TIMEOUT_SECS",
                reason: "is no longer read: a model call is judged by its progress; set LLM_FIRST_BYTE_TIMEOUT_SECS and LLM_IDLE_TIMEOUT_SECS instead".into(),
            });
        }
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match optional(env, name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                    _ => Err(ConfigError::Invalid {
                        name,
                        reason: format!("must be a whole number of seconds above 0, got {v:?}"),
                    }),
                },
            }
        };
        let base = Patience::default();
        let pace = match optional(env, "LLM_MIN_TOKENS_PER_SEC") {
            None => base.min_tokens_per_sec,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "LLM_MIN_TOKENS_PER_SEC",
                        reason: format!("must be a whole number above 0, got {v:?}"),
                    });
                }
            },
        };
        Ok(Patience {
            connect: seconds("LLM_CONNECT_TIMEOUT_SECS", base.connect)?,
            first_byte: seconds("LLM_FIRST_BYTE_TIMEOUT_SECS", base.first_byte)?,
            idle: seconds("LLM_IDLE_TIMEOUT_SECS", base.idle)?,
            min_tokens_per_sec: pace,
        })
    }

    /// How long writing `max_tokens` may take at the slowest healthy pace.
    pub fn writing(&self, max_tokens: u32) -> Duration {
        Duration::from_secs(u64::from(max_tokens).div_ceil(u64::from(self.min_tokens_per_sec)))
    }

    /// The ceiling of a call that is not streamed: the first byte, then the whole answer
    /// written at the slowest healthy pace.
    pub fn ceiling(&self, max_tokens: u32) -> Duration {
        self.first_byte + self.writing(max_tokens)
    }

    /// The HTTP client for a provider: only the connection has a fixed limit; the answer's
    /// limits are applied as it arrives.
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::Patience;
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn a_call_not_streamed_may_take_its_max_tokens_at_the_slowest_pace() {
        let patience = Patience::default();
        assert_eq!(patience.ceiling(4096), Duration::from_secs(90 + 205));
        assert_eq!(patience.writing(8192), Duration::from_secs(410));
    }

    #[test]
    fn the_old_total_timeout_is_refused_naming_what_replaced_it() {
        let env = HashMap::from([("LLM_TIMEOUT_SECS".to_owned(), "60".to_owned())]);
        let error = Patience::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("LLM_IDLE_TIMEOUT_SECS"), "{error}");
        let env = HashMap::from([("LLM_IDLE_TIMEOUT_SECS".to_owned(), "0".to_owned())]);
        assert!(Patience::from_env(&env).is_err());
        let env = HashMap::from([("LLM_IDLE_TIMEOUT_SECS".to_owned(), "5".to_owned())]);
        assert_eq!(
            Patience::from_env(&env).unwrap().idle,
            Duration::from_secs(5)
        );
    }
}

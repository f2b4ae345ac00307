//! What the routes check before they touch a port: a decision's hash and reason, a
//! period, an email address, an app's return link.

use super::{field_of, with_query};
use crate::approvals::checked;
use autocrew_shared::domain::Decision;
use autocrew_shared::domain::requests::DecisionBody;

fn decision(hash: &str, reason: Option<&str>) -> DecisionBody {
    DecisionBody {
        decision: Decision::Approve,
        payload_hash: hash.into(),
        reason: reason.map(str::to_owned),
    }
}

#[test]
fn a_decision_quotes_the_payload_hash_exactly() {
    let hash = "a".repeat(64);
    let body = decision(&format!(" {hash} "), Some("  "));
    assert_eq!(checked(&body).ok(), Some((hash.as_str(), None)));
    for wrong in ["A".repeat(64), "a".repeat(63), "g".repeat(64)] {
        let body = decision(&wrong, None);
        let refused = checked(&body);
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "payload_hash",
            "{wrong}"
        );
    }
    let long = "r".repeat(501);
    let body = decision(&hash, Some(&long));
    let refused = checked(&body);
    assert_eq!(field_of(refused.expect_err("refused")), "reason");
}

#[test]
fn a_period_is_this_month_by_default_and_at_most_a_year() {
    let (from, to) = crate::costs::period(&with_query(&[])).expect("a period");
    assert_eq!(from.format("%d %H:%M:%S").to_string(), "01 00:00:00");
    assert!(to > from);
    let (from, to) = crate::costs::period(&with_query(&[
        ("from", "2026-11-01"),
        ("to", "2026-11-02T12:00:00+02:00"),
    ]))
    .expect("a period");
    assert_eq!(from.to_rfc3339(), "2026-11-01T00:00:00+00:00");
    assert_eq!(to.to_rfc3339(), "2026-11-02T10:00:00+00:00");
    let backwards =
        crate::costs::period(&with_query(&[("from", "2026-11-02"), ("to", "2026-11-01")]));
    assert_eq!(field_of(backwards.expect_err("refused")), "to");
    let long = crate::costs::period(&with_query(&[("from", "2024-01-01"), ("to", "2026-01-01")]));
    assert_eq!(field_of(long.expect_err("refused")), "to");
    let garbled = crate::costs::period(&with_query(&[("from", "last week")]));
    assert_eq!(field_of(garbled.expect_err("refused")), "from");
}

#[test]
fn an_email_address_is_trimmed_lowered_and_plausible() {
    assert_eq!(
        crate::auth::email_address("email", "  Ana@Example.COM ").ok(),
        Some("ana@example.com".to_owned())
    );
    for wrong in [
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana @example.com",
        "ana@.com",
    ] {
        let refused = crate::auth::email_address("email", wrong);
        assert_eq!(field_of(refused.expect_err("refused")), "email", "{wrong}");
    }
}

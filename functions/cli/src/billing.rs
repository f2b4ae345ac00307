//! `autocrew billing`: the plan, the period's revenue, AI spend and its share of revenue;
//! `billing checkout PLAN` (a Checkout link), `billing portal`, `billing overage CAP|off`.

use crate::args::{BillingAction, SessionArgs};
use crate::client::NoBody;
use crate::session;
use autocrew_shared::domain::requests::Settings;
use serde_json::{Value, json};

fn dollars(micro: &Value) -> String {
    let micro = micro.as_i64().unwrap_or(0);
    format!("${}.{:02}", micro / 1_000_000, (micro % 1_000_000) / 10_000)
}

/// What `GET /billing` says, as lines a person reads.
pub fn describe(billing: &Value) -> Vec<String> {
    let share = match billing["spend_share_of_revenue"].as_f64() {
        Some(share) => format!("{:.1}% of revenue", share * 100.0),
        None => "no revenue yet".to_owned(),
    };
    let mut lines = vec![
        format!(
            "plan {} ({}), period {} to {}",
            billing["plan_name"].as_str().unwrap_or("?"),
            billing["subscription"]["status"]
                .as_str()
                .unwrap_or("no subscription"),
            billing["period_start"].as_str().unwrap_or("?"),
            billing["period_end"].as_str().unwrap_or("?"),
        ),
        format!(
            "revenue received {}; AI spend {} ({share}, held under {:.0}%)",
            billing["revenue"].as_str().unwrap_or("?"),
            dollars(&billing["ai_spend_micro_usd"]),
            billing["target_share"].as_f64().unwrap_or(0.0) * 100.0,
        ),
        format!(
            "AI budget {} (included {}, trial left {}, overage cap {}); left {}",
            dollars(&billing["ai_budget_micro_usd"]),
            dollars(&billing["included_micro_usd"]),
            dollars(&billing["trial_left_micro_usd"]),
            match &billing["overage_cap_micro_usd"] {
                Value::Null => "off".to_owned(),
                cap => dollars(cap),
            },
            dollars(&billing["ai_budget_left_micro_usd"]),
        ),
    ];
    if billing["overage_micro_usd"].as_i64().unwrap_or(0) > 0 {
        lines.push(format!(
            "overage so far {} (invoiced at the period's end)",
            dollars(&billing["overage_micro_usd"])
        ));
    }
    lines
}

pub async fn billing(action: Option<BillingAction>, args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    match action {
        None => {
            let billing = client.get("/billing", "read billing").await?;
            for line in describe(&billing) {
                println!("{line}");
            }
        }
        Some(BillingAction::Checkout { plan, yearly }) => {
            let interval = if yearly { "year" } else { "month" };
            let page = client
                .post(
                    "/billing/checkout",
                    &json!({"plan": plan, "interval": interval}),
                    "start a checkout",
                )
                .await?;
            println!("{}", page["url"].as_str().unwrap_or("?"));
        }
        Some(BillingAction::Portal) => {
            let page = client
                .post("/billing/portal", &NoBody {}, "open the portal")
                .await?;
            println!("{}", page["url"].as_str().unwrap_or("?"));
        }
        Some(BillingAction::Overage { cap }) => {
            let cap = (cap != "off").then_some(cap);
            let body = Settings {
                overage_cap_usd: Some(cap.clone()),
                ..Default::default()
            };
            client.patch("/me", &body, "set the overage cap").await?;
            match cap {
                Some(cap) => println!("overage allowed up to ${cap} a period, invoiced by Stripe"),
                None => println!("overage off: the AI budget is a hard stop"),
            }
        }
    }
    Ok(())
}

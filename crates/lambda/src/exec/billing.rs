//! Billing of invocations: requests and GB-seconds accrue in memory (shown at once as live lines
//! of the cost ledger) and are written to the ledger every second by the background task.
//!
//! Must not live here: the ledger itself (`fc_services::costs`).

use super::env::lock;
use super::Executor;
use crate::spec::FunctionSpec;
use std::collections::HashMap;
use std::sync::Mutex;

/// Prices of the AWS Lambda pricing page (https://aws.amazon.com/lambda/pricing/), us-east-1:
/// requests $0.20 per 1M; duration per GB-second $0.0000166667 (x86_64), $0.0000133334 (arm64).
const PRICE_REQUEST: f64 = 0.20 / 1_000_000.0;
const PRICE_GB_S_X86: f64 = 0.000_016_666_7;
const PRICE_GB_S_ARM: f64 = 0.000_013_333_4;

impl Executor {
    /// Accrues one invocation of `spec` billed for `billed_ms` milliseconds.
    pub(super) fn bill(&self, spec: &FunctionSpec, billed_ms: u64) {
        let arm = spec.architecture == "arm64";
        let gb_s = f64::from(spec.memory_mb) / 1024.0 * billed_ms as f64 / 1000.0;
        let (req_usage, dur_usage, rate) = if arm {
            ("Request-ARM", "Lambda-GB-Second-ARM", PRICE_GB_S_ARM)
        } else {
            ("Request", "Lambda-GB-Second", PRICE_GB_S_X86)
        };
        let mut p = lock(&self.billing.pending);
        let key = |usage: &str| {
            (
                spec.account.clone(),
                spec.region.clone(),
                spec.function_arn.clone(),
                usage.to_string(),
            )
        };
        let e = p
            .entry(key(req_usage))
            .or_insert(("requests", 0.0, PRICE_REQUEST, 0.0));
        e.1 += 1.0;
        e.3 = fc_protocol::value::now_secs();
        let e = p
            .entry(key(dur_usage))
            .or_insert(("GB-seconds", 0.0, rate, 0.0));
        e.1 += gb_s;
        e.3 = fc_protocol::value::now_secs();
    }

    /// Writes accrued usage to the ledger.
    pub(super) fn flush_billing(&self) {
        let lines: Vec<_> = lock(&self.billing.pending).drain().collect();
        for ((account, region, resource, usage), (unit, qty, rate, at)) in lines {
            if let Err(e) = self.deps.ledger.accrue(
                &account, &region, "lambda", &resource, &usage, unit, qty, rate, at,
            ) {
                tracing::warn!(error = %e, "cannot write Lambda usage to the cost ledger");
            }
        }
    }
}

/// Usage not yet written to the ledger: (account, region, function ARN, usage type) →
/// (unit, quantity, rate, last use).
#[derive(Default)]
pub(super) struct Billing {
    #[allow(clippy::type_complexity)]
    pending: Mutex<HashMap<(String, String, String, String), (&'static str, f64, f64, f64)>>,
}

impl fc_services::costs::LiveSource for Billing {
    fn live(&self, now: f64) -> Vec<fc_services::costs::Line> {
        lock(&self.pending)
            .iter()
            .map(
                |((account, region, resource, usage), (unit, qty, rate, at))| {
                    fc_services::costs::Line {
                        account: account.clone(),
                        region: region.clone(),
                        service: "lambda".into(),
                        resource: resource.clone(),
                        usage_type: usage.clone(),
                        unit: unit.to_string(),
                        quantity: *qty,
                        rate_usd: *rate,
                        amount_usd: qty * rate,
                        first: at.min(now),
                        last: *at,
                    }
                },
            )
            .collect()
    }
}

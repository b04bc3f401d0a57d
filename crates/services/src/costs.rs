//! The cost ledger: what the workloads ferrocloud runs would cost on AWS.
//!
//! Two kinds of lines make up the bill:
//! - **accrued** lines, stored: a service calls [`Ledger::accrue`] when usage happens (a Lambda
//!   invocation's requests and GB-seconds, an EC2 instance's running seconds when it stops);
//!   quantities and amounts add up per (resource, usage type);
//! - **live** lines, computed at read time by a [`LiveSource`] (an instance that is running now
//!   accrues per second until it stops, so its open period is priced when the bill is read).
//!
//! `GET /_ferrocloud/costs` serves [`Ledger::report`]. Prices are the caller's: each service
//! keeps its own price table and names its source.

use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, RwLock};

/// Table of accrued [`Line`]s, under the scope of the account and region they belong to.
pub const TABLE: &str = "costs";

/// One line of the bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub account: String,
    pub region: String,
    /// `ec2`, `lambda`, ...
    pub service: String,
    /// The resource (an instance id, a function ARN, a host id).
    pub resource: String,
    /// AWS-style usage type: `BoxUsage:t3.micro`, `SpotUsage:m5.large`, `Lambda-GB-Second`,
    /// `Request`, `HostUsage:m5`, ...
    pub usage_type: String,
    /// Unit of `quantity`: `seconds`, `GB-seconds`, `requests`, `hours`.
    pub unit: String,
    pub quantity: f64,
    /// USD per unit.
    pub rate_usd: f64,
    pub amount_usd: f64,
    /// Epoch seconds of the first and last usage.
    pub first: f64,
    pub last: f64,
}

/// Computes the not-yet-accrued part of the bill (e.g. instances running now).
pub trait LiveSource: Send + Sync {
    fn live(&self, now: f64) -> Vec<Line>;
}

/// The ledger over the store.
pub struct Ledger {
    store: Arc<dyn Store>,
    lock: Mutex<()>,
    sources: RwLock<Vec<Arc<dyn LiveSource>>>,
}

fn key(service: &str, resource: &str, usage_type: &str) -> String {
    format!("{service}\u{1f}{resource}\u{1f}{usage_type}")
}

impl Ledger {
    pub fn new(store: Arc<dyn Store>) -> Arc<Ledger> {
        Arc::new(Ledger {
            store,
            lock: Mutex::new(()),
            sources: RwLock::new(Vec::new()),
        })
    }

    /// Adds a source of live lines (called once per service at start-up).
    pub fn add_source(&self, source: Arc<dyn LiveSource>) {
        if let Ok(mut s) = self.sources.write() {
            s.push(source);
        }
    }

    /// Adds `quantity` units at `rate_usd` per unit to the line of (service, resource, usage
    /// type) of `account`/`region`, at time `now` (epoch seconds).
    #[allow(clippy::too_many_arguments)]
    pub fn accrue(
        &self,
        account: &str,
        region: &str,
        service: &str,
        resource: &str,
        usage_type: &str,
        unit: &str,
        quantity: f64,
        rate_usd: f64,
        now: f64,
    ) -> Result<(), fc_store::StoreError> {
        if !(quantity.is_finite() && rate_usd.is_finite()) || quantity <= 0.0 {
            return Ok(());
        }
        let scope = Scope::new(account, region);
        let k = key(service, resource, usage_type);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut line = self
            .store
            .get_json::<Line>(&scope, TABLE, &k)?
            .unwrap_or_else(|| Line {
                account: account.to_string(),
                region: region.to_string(),
                service: service.to_string(),
                resource: resource.to_string(),
                usage_type: usage_type.to_string(),
                unit: unit.to_string(),
                quantity: 0.0,
                rate_usd,
                amount_usd: 0.0,
                first: now,
                last: now,
            });
        line.quantity += quantity;
        line.amount_usd += quantity * rate_usd;
        line.rate_usd = rate_usd;
        line.last = now;
        self.store.put_json(&scope, TABLE, &k, &line)
    }

    /// Every accrued line (all accounts and regions) plus the live ones.
    pub fn lines(&self, now: f64) -> Vec<Line> {
        let mut out: Vec<Line> = Vec::new();
        for scope in self.store.scopes(TABLE).unwrap_or_default() {
            if let Ok((rows, _)) = self
                .store
                .scan_json::<Line>(&scope, TABLE, "", None, usize::MAX)
            {
                out.extend(rows.into_iter().map(|(_, l)| l));
            }
        }
        let sources = self.sources.read().map(|s| s.clone()).unwrap_or_default();
        for s in sources {
            out.extend(s.live(now));
        }
        out
    }

    /// The bill as JSON: totals per service and per account, then every line.
    pub fn report(&self, now: f64) -> Value {
        let mut lines = self.lines(now);
        lines.sort_by(|a, b| {
            (
                &a.account,
                &a.region,
                &a.service,
                &a.resource,
                &a.usage_type,
            )
                .cmp(&(
                    &b.account,
                    &b.region,
                    &b.service,
                    &b.resource,
                    &b.usage_type,
                ))
        });
        let mut by_service = serde_json::Map::new();
        let mut by_account = serde_json::Map::new();
        let mut total = 0.0;
        for l in &lines {
            total += l.amount_usd;
            let s = by_service.entry(l.service.clone()).or_insert(json!(0.0));
            *s = json!(s.as_f64().unwrap_or(0.0) + l.amount_usd);
            let a = by_account.entry(l.account.clone()).or_insert(json!(0.0));
            *a = json!(a.as_f64().unwrap_or(0.0) + l.amount_usd);
        }
        json!({
            "Currency": "USD",
            "Total": total,
            "ByService": by_service,
            "ByAccount": by_account,
            "Lines": lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl LiveSource for Fixed {
        fn live(&self, now: f64) -> Vec<Line> {
            vec![Line {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                service: "ec2".into(),
                resource: "i-1".into(),
                usage_type: "BoxUsage:t3.micro".into(),
                unit: "seconds".into(),
                quantity: 10.0,
                rate_usd: 0.0104 / 3600.0,
                amount_usd: 10.0 * 0.0104 / 3600.0,
                first: now - 10.0,
                last: now,
            }]
        }
    }

    #[test]
    fn accrued_and_live_lines_add_up() {
        let store: Arc<dyn Store> = Arc::new(fc_store::SqliteStore::in_memory().unwrap());
        let l = Ledger::new(store);
        let arn = "arn:aws:lambda:us-east-1:000000000000:function:f";
        for _ in 0..3 {
            l.accrue(
                "000000000000",
                "us-east-1",
                "lambda",
                arn,
                "Request",
                "requests",
                1.0,
                0.0000002,
                1.0,
            )
            .unwrap();
        }
        l.accrue(
            "000000000000",
            "us-east-1",
            "lambda",
            arn,
            "Request",
            "requests",
            0.0,
            1.0,
            2.0,
        )
        .unwrap();
        l.add_source(Arc::new(Fixed));
        let lines = l.lines(100.0);
        assert_eq!(lines.len(), 2);
        let req = lines.iter().find(|x| x.usage_type == "Request").unwrap();
        assert_eq!(req.quantity, 3.0);
        assert!((req.amount_usd - 0.0000006).abs() < 1e-12);
        let r = l.report(100.0);
        assert!(r["ByService"]["ec2"].as_f64().unwrap() > 0.0);
        assert_eq!(r["Lines"].as_array().unwrap().len(), 2);
    }
}

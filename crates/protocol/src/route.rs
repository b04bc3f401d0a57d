//! Which service a raw request is for, decided from what clients send: the SigV4 credential
//! scope, `X-Amz-Target`, the rpc-v2-cbor path, `Action` + `Version`, REST paths and the Host
//! header. elb and elbv2 share the signing name `elasticloadbalancing`: `Version` tells them apart.
//!
//! Decided without parsing any model, so the first request is served in microseconds; the unit
//! tests check these tables against the vendored models.

use crate::http::decode_form;
use crate::HttpRequest;

/// Signing name (credential scope service) -> ferrocloud service.
const SIGNING_NAMES: &[(&str, &str)] = &[
    ("autoscaling", "autoscaling"),
    ("batch", "batch"),
    ("monitoring", "cloudwatch"),
    ("ec2", "ec2"),
    ("ecr", "ecr"),
    ("ecs", "ecs"),
    ("eks", "eks"),
    ("elasticbeanstalk", "elasticbeanstalk"),
    ("iam", "iam"),
    ("lambda", "lambda"),
    ("lightsail", "lightsail"),
    ("logs", "logs"),
    ("s3", "s3"),
    ("sqs", "sqs"),
    ("sts", "sts"),
];

/// `X-Amz-Target` prefix (and rpc-v2-cbor service name) -> service.
const TARGET_PREFIXES: &[(&str, &str)] = &[
    ("AmazonEC2ContainerServiceV20141113", "ecs"),
    ("AmazonEC2ContainerRegistry_V20150921", "ecr"),
    ("Lightsail_20161128", "lightsail"),
    ("Logs_20140328", "logs"),
    ("GraniteServiceVersion20100801", "cloudwatch"),
    ("AmazonSQS", "sqs"),
];

/// awsQuery/ec2 `Version` -> service.
const QUERY_VERSIONS: &[(&str, &str)] = &[
    ("2016-11-15", "ec2"),
    ("2011-06-15", "sts"),
    ("2010-05-08", "iam"),
    ("2012-06-01", "elb"),
    ("2015-12-01", "elbv2"),
    ("2011-01-01", "autoscaling"),
    ("2010-12-01", "elasticbeanstalk"),
    ("2010-08-01", "cloudwatch"),
    ("2012-11-05", "sqs"),
];

/// The services ferrocloud routes to (every vendored model).
pub const ALL_SERVICES: &[&str] = &[
    "autoscaling",
    "batch",
    "cloudwatch",
    "ec2",
    "ecr",
    "ecs",
    "eks",
    "elasticbeanstalk",
    "elb",
    "elbv2",
    "iam",
    "lambda",
    "lightsail",
    "logs",
    "s3",
    "sqs",
    "sts",
];

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: &'static str,
    /// Region from the credential scope, if signed.
    pub region: Option<String>,
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Service and region from the SigV4 credential scope (`AKID/date/region/service/aws4_request`).
pub fn credential_scope(req: &HttpRequest) -> Option<(String, String)> {
    let cred = if let Some(auth) = req.header("authorization") {
        let start = auth.find("Credential=")? + "Credential=".len();
        let rest = &auth[start..];
        rest.split([',', ' ']).next()?.to_string()
    } else {
        req.query_pairs()
            .into_iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v)?
    };
    let mut parts = cred.split('/');
    let _key = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some((region, service))
}

/// The form parameters of a query-protocol request (body for POST forms, else query string).
fn form_params(req: &HttpRequest) -> Vec<(String, String)> {
    let is_form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut params = req.query_pairs();
    if is_form {
        params.extend(decode_form(&req.body));
    }
    params
}

fn by_version(req: &HttpRequest) -> Option<&'static str> {
    let params = form_params(req);
    let version = params
        .iter()
        .find(|(k, _)| k == "Version")
        .map(|(_, v)| v.as_str())?;
    lookup(QUERY_VERSIONS, version)
}

fn by_path(req: &HttpRequest) -> Option<&'static str> {
    let p = req.path.as_str();
    if let Some(rest) = p.strip_prefix("/service/") {
        let name = rest.split('/').next().unwrap_or("");
        return lookup(TARGET_PREFIXES, name);
    }
    let lambda_prefixes = [
        "/2015-03-31/",
        "/2016-08-19/",
        "/2017-03-31/",
        "/2017-10-31/",
        "/2018-10-31/",
        "/2019-09-25/",
        "/2019-09-30/",
        "/2020-04-22/",
        "/2020-06-30/",
        "/2021-10-31/",
        "/2021-11-15/",
        "/2022-10-31/",
        "/2024-08-31/",
        "/2025-11-30/",
    ];
    if lambda_prefixes.iter().any(|l| p.starts_with(l)) {
        return Some("lambda");
    }
    if p.starts_with("/v1/") {
        return Some("batch");
    }
    let eks_roots = [
        "/clusters",
        "/addons",
        "/cluster-registrations",
        "/capabilities",
        "/insights",
    ];
    if eks_roots
        .iter()
        .any(|r| p == *r || p.starts_with(&format!("{r}/")))
    {
        return Some("eks");
    }
    None
}

/// Decide the service of a request, or `None` when nothing names one.
pub fn route(req: &HttpRequest) -> Option<Route> {
    let scope = credential_scope(req);
    let region = scope.as_ref().map(|(r, _)| r.clone());
    if let Some((_, signing)) = &scope {
        if signing == "elasticloadbalancing" {
            let service = match by_version(req) {
                Some("elb") => "elb",
                _ => "elbv2",
            };
            return Some(Route { service, region });
        }
        if let Some(service) = lookup(SIGNING_NAMES, signing) {
            return Some(Route { service, region });
        }
    }
    if let Some(target) = req.header("x-amz-target") {
        let prefix = target.split('.').next().unwrap_or("");
        if let Some(service) = lookup(TARGET_PREFIXES, prefix) {
            return Some(Route { service, region });
        }
    }
    if let Some(service) = by_path(req) {
        return Some(Route { service, region });
    }
    if let Some(service) = by_version(req) {
        return Some(Route { service, region });
    }
    let host = req.header("host").unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    for label in host.split('.') {
        if label == "s3" || label.starts_with("s3-") {
            return Some(Route {
                service: "s3",
                region,
            });
        }
        if let Some(service) = lookup(SIGNING_NAMES, label) {
            return Some(Route { service, region });
        }
    }
    // SigV2 query authentication is S3's alone (presigned URLs), and so are unsigned plain
    // HTTP requests (`curl localhost:4566/bucket/key`) that name no other service.
    let sigv2 = req.query.contains("AWSAccessKeyId=") && req.query.contains("Signature=");
    let names_an_action =
        req.header("x-amz-target").is_some() || form_params(req).iter().any(|(k, _)| k == "Action");
    if sigv2 || !names_an_action {
        return Some(Route {
            service: "s3",
            region,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service_model;

    fn req(headers: &[(&str, &str)], uri: &str, body: &str) -> HttpRequest {
        HttpRequest::from_uri(
            "POST",
            uri,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bytes::Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn tables_match_models() {
        for (prefix, svc) in TARGET_PREFIXES {
            let m = service_model(svc).expect("model");
            assert_eq!(m.metadata.target_prefix.as_deref(), Some(*prefix), "{svc}");
        }
        for (version, svc) in QUERY_VERSIONS {
            let m = service_model(svc).expect("model");
            assert_eq!(m.metadata.api_version, *version, "{svc}");
        }
        for (signing, svc) in SIGNING_NAMES {
            let m = service_model(svc).expect("model");
            let name = m
                .metadata
                .signing_name
                .clone()
                .or(m.metadata.endpoint_prefix.clone())
                .unwrap_or_default();
            assert_eq!(name, *signing, "{svc}");
        }
        for s in ALL_SERVICES {
            assert!(service_model(s).is_some(), "{s}");
        }
    }

    #[test]
    fn routes() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20261125/eu-west-1/sts/aws4_request, SignedHeaders=host, Signature=abc";
        let r = route(&req(
            &[("Authorization", auth)],
            "/",
            "Action=GetCallerIdentity",
        ))
        .expect("routed");
        assert_eq!(r.service, "sts");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));

        let elb = "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=abc";
        let form = [
            ("Authorization", elb),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let r = route(&req(
            &form,
            "/",
            "Action=DescribeLoadBalancers&Version=2012-06-01",
        ))
        .expect("elb");
        assert_eq!(r.service, "elb");
        let r = route(&req(
            &form,
            "/",
            "Action=DescribeLoadBalancers&Version=2015-12-01",
        ))
        .expect("elbv2");
        assert_eq!(r.service, "elbv2");

        let r = route(&req(
            &[("X-Amz-Target", "Logs_20140328.DescribeLogGroups")],
            "/",
            "{}",
        ))
        .expect("logs");
        assert_eq!(r.service, "logs");
        let r = route(&req(
            &[],
            "/service/GraniteServiceVersion20100801/operation/GetMetricData",
            "",
        ))
        .expect("cw");
        assert_eq!(r.service, "cloudwatch");
        let r = route(&req(&[], "/2015-03-31/functions/f/invocations", "")).expect("lambda");
        assert_eq!(r.service, "lambda");
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let r = route(&req(
            &form,
            "/",
            "Action=DescribeInstances&Version=2016-11-15",
        ))
        .expect("ec2");
        assert_eq!(r.service, "ec2");
        let r = route(&req(
            &[("Host", "bucket.s3.localhost.localstack.cloud:4566")],
            "/key",
            "",
        ))
        .expect("s3");
        assert_eq!(r.service, "s3");
        let r = route(&req(&[], "/bucket/key", "")).expect("plain s3");
        assert_eq!(r.service, "s3");
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        assert!(route(&req(&form, "/", "Action=Nope&Version=1999-01-01")).is_none());
        let r = route(&req(
            &[],
            "/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=x",
            "",
        ))
        .expect("sigv2");
        assert_eq!(r.service, "s3");
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261125%2Fus-east-1%2Fs3%2Faws4_request";
        let r = route(&req(&[], presigned, "")).expect("presigned");
        assert_eq!(r.service, "s3");
    }
}

//! Amazon Resource Names.

use std::fmt;

/// `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// Not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ARN: {0}")]
pub struct ArnError(pub String);

impl Arn {
    pub fn new(service: &str, region: &str, account: &str, resource: &str) -> Self {
        Arn {
            partition: "aws".into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, ArnError> {
        let mut parts = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError(s.to_string()));
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError(s.to_string()));
        }
        Ok(Arn {
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "arn:aws:iam::000000000000:role/path/MyRole";
        let a = Arn::parse(s).expect("valid");
        assert_eq!(a.service, "iam");
        assert_eq!(a.region, "");
        assert_eq!(a.resource, "role/path/MyRole");
        assert_eq!(a.to_string(), s);
        let l = Arn::new("logs", "us-east-1", "000000000000", "log-group:g:*");
        assert_eq!(
            l.to_string(),
            "arn:aws:logs:us-east-1:000000000000:log-group:g:*"
        );
        assert!(Arn::parse("arn:aws:iam").is_err());
        assert!(Arn::parse("nope:aws:iam::1:x").is_err());
    }
}

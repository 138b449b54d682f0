//! What a group guards: the network interfaces that use it, the instances they belong to, and
//! whether any has a public IP address. An RDP rule on a group attached to nothing public reads
//! differently from one on a public instance; the severity stays as it is.

use serde::Serialize;

/// One network interface that uses the group, as EC2 lists it (`DescribeNetworkInterfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attached {
    /// `eni-…`.
    pub interface: String,
    /// The instance it is attached to, if any.
    pub instance: Option<String>,
    /// Its public IPv4 address, if it has one.
    pub public_ip: Option<String>,
}

/// What the group is attached to, as far as sgwatch could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Exposure {
    /// Read from EC2 now: every interface, with its instance and public IP.
    Ec2 { interfaces: Vec<Attached> },
    /// Only AWS Config's relationships of the item: the interfaces and instances, public IPs
    /// unknown.
    Config {
        interfaces: Vec<String>,
        instances: Vec<String>,
    },
}

impl Exposure {
    /// Whether anything that uses the group has a public IP address (`None`: not known).
    pub fn public(&self) -> Option<bool> {
        match self {
            Exposure::Ec2 { interfaces } => Some(interfaces.iter().any(|a| a.public_ip.is_some())),
            Exposure::Config { .. } => None,
        }
    }

    /// The email's line: `2 network interfaces (instances i-1, i-2), 1 with a public IP address
    /// (203.0.113.10)`, or `nothing (no network interface uses this group)`. Values as EC2 has
    /// them: the caller escapes.
    pub fn sentence(&self) -> String {
        let count = |n: usize, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        let instances_of = |ids: Vec<&str>| match ids.len() {
            0 => String::new(),
            1 => format!(" (instance {})", ids[0]),
            _ => format!(" (instances {})", ids.join(", ")),
        };
        match self {
            Exposure::Ec2 { interfaces } if interfaces.is_empty() => {
                "nothing (no network interface uses this group)".to_owned()
            }
            Exposure::Ec2 { interfaces } => {
                let mut instances: Vec<&str> = interfaces
                    .iter()
                    .filter_map(|a| a.instance.as_deref())
                    .collect();
                instances.dedup();
                let public: Vec<&str> = interfaces
                    .iter()
                    .filter_map(|a| a.public_ip.as_deref())
                    .collect();
                let reach = match public.len() {
                    0 => "none with a public IP address".to_owned(),
                    n => format!("{n} with a public IP address ({})", public.join(", ")),
                };
                format!(
                    "{}{}, {reach}",
                    count(interfaces.len(), "network interface"),
                    instances_of(instances)
                )
            }
            Exposure::Config {
                interfaces,
                instances,
            } if interfaces.is_empty() && instances.is_empty() => {
                "nothing, as AWS Config records it (public IP addresses not read)".to_owned()
            }
            Exposure::Config {
                interfaces,
                instances,
            } => format!(
                "{}{}, as AWS Config records it (public IP addresses not read)",
                count(interfaces.len(), "network interface"),
                instances_of(instances.iter().map(String::as_str).collect())
            ),
        }
    }
}

/// The interfaces and instances an item's relationships name (`AWS::EC2::NetworkInterface`,
/// `AWS::EC2::Instance`).
pub fn from_relationships(relationships: &[serde_json::Value]) -> Exposure {
    let of = |kind: &str| -> Vec<String> {
        relationships
            .iter()
            .filter(|r| r["resourceType"] == kind)
            .filter_map(|r| r["resourceId"].as_str().map(str::to_owned))
            .collect()
    };
    Exposure::Config {
        interfaces: of("AWS::EC2::NetworkInterface"),
        instances: of("AWS::EC2::Instance"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eni(id: &str, instance: Option<&str>, ip: Option<&str>) -> Attached {
        Attached {
            interface: id.into(),
            instance: instance.map(str::to_owned),
            public_ip: ip.map(str::to_owned),
        }
    }

    #[test]
    fn the_alert_says_whether_what_the_group_guards_is_public() {
        let public = Exposure::Ec2 {
            interfaces: vec![
                eni("eni-1", Some("i-1"), Some("203.0.113.10")),
                eni("eni-2", Some("i-2"), None),
            ],
        };
        assert_eq!(public.public(), Some(true));
        assert_eq!(
            public.sentence(),
            "2 network interfaces (instances i-1, i-2), 1 with a public IP address (203.0.113.10)"
        );
        let private = Exposure::Ec2 {
            interfaces: vec![eni("eni-3", Some("i-3"), None)],
        };
        assert_eq!(private.public(), Some(false));
        assert_eq!(
            private.sentence(),
            "1 network interface (instance i-3), none with a public IP address"
        );
        let none = Exposure::Ec2 { interfaces: vec![] };
        assert_eq!(
            none.sentence(),
            "nothing (no network interface uses this group)"
        );
        let recorded = from_relationships(&[
            json!({"resourceType": "AWS::EC2::VPC", "resourceId": "vpc-1"}),
            json!({"resourceType": "AWS::EC2::NetworkInterface", "resourceId": "eni-4"}),
            json!({"resourceType": "AWS::EC2::Instance", "resourceId": "i-4"}),
        ]);
        assert_eq!(recorded.public(), None);
        assert_eq!(
            recorded.sentence(),
            "1 network interface (instance i-4), as AWS Config records it (public IP addresses \
             not read)"
        );
    }
}

//! Trusted principals (`SGWATCH_TRUSTED_PRINCIPALS`, `install --trusted-principal`): the
//! pipelines whose changes auto-revert never undoes. A pattern is an IAM ARN with `*` and `?`
//! wildcards (`arn:aws:iam::111122223333:role/deploy-*`), matched against the caller and, for an
//! assumed role, the role that issued its session; or `invokedBy:SERVICE`
//! (`invokedBy:cloudformation.amazonaws.com`), matched against CloudTrail's `invokedBy`.
//!
//! Trust needs the actor to be known: a change whose callers are unknown is never trusted, and a
//! change made by several callers is trusted only when every one of them is.

use std::fmt;

use crate::core::who::ActorLookup;

/// One trusted-principal pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// An ARN pattern: `*` any run of characters, `?` one.
    Arn(String),
    /// `invokedBy:SERVICE`: calls an AWS service made on a principal's behalf.
    InvokedBy(String),
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Arn(p) => f.write_str(p),
            Pattern::InvokedBy(s) => write!(f, "invokedBy:{s}"),
        }
    }
}

/// Reads a comma-separated list of patterns; the error says which one is wrong and why.
pub fn parse(list: &str) -> Result<Vec<Pattern>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(p: &str) -> Result<Pattern, String> {
    if let Some(service) = p.strip_prefix("invokedBy:") {
        let ok = !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
        return if ok {
            Ok(Pattern::InvokedBy(service.to_owned()))
        } else {
            Err(format!(
                "{p:?}: expected invokedBy:SERVICE, e.g. invokedBy:cloudformation.amazonaws.com"
            ))
        };
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let arn_like = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[2], "iam" | "sts")
        && !p.chars().any(|c| c.is_whitespace() || c.is_control());
    // A bare `*` in every part would trust everyone: the resource must name something.
    let names_something = parts
        .get(5)
        .is_some_and(|r| r.trim_matches(|c| c == '*' || c == '?' || c == '/').len() > 1);
    if arn_like && names_something && p.len() <= 512 {
        Ok(Pattern::Arn(p.to_owned()))
    } else {
        Err(format!(
            "{p:?}: expected an IAM or STS ARN pattern such as arn:aws:iam::111122223333:role/deploy-*, or invokedBy:SERVICE"
        ))
    }
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` one character).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One caller as trust sees it.
struct Who<'a> {
    principal: Option<&'a str>,
    issuer: Option<&'a str>,
    invoked_by: Option<&'a str>,
}

impl Pattern {
    fn trusts(&self, who: &Who<'_>) -> bool {
        match self {
            Pattern::Arn(p) => [who.principal, who.issuer]
                .into_iter()
                .flatten()
                .any(|arn| glob(p, arn)),
            Pattern::InvokedBy(s) => who.invoked_by == Some(s.as_str()),
        }
    }
}

/// The pattern that trusts the change's actor, when one does: every caller must be trusted (by
/// the first pattern that trusts each; the first of them is returned), and an unknown actor is
/// never trusted.
pub fn trusted_by<'p>(patterns: &'p [Pattern], actor: &ActorLookup) -> Option<&'p Pattern> {
    let callers: Vec<Who<'_>> = match actor {
        ActorLookup::Feed(callers) => callers
            .iter()
            .map(|c| Who {
                principal: Some(c.principal.as_str()),
                issuer: c.session_issuer.as_deref(),
                invoked_by: c.invoked_by.as_deref(),
            })
            .collect(),
        ActorLookup::Found(actor) => vec![Who {
            principal: actor.arn.as_deref(),
            issuer: None,
            invoked_by: actor.invoked_by.as_deref(),
        }],
        ActorLookup::Unknown(_) => Vec::new(),
    };
    if callers.is_empty() {
        return None;
    }
    let mut first = None;
    for who in &callers {
        let p = patterns.iter().find(|p| p.trusts(who))?;
        first.get_or_insert(p);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::who::{Actor, Caller};

    fn caller(principal: &str, issuer: Option<&str>, invoked_by: Option<&str>) -> Caller {
        Caller {
            principal: principal.into(),
            session_issuer: issuer.map(str::to_owned),
            session_name: None,
            source_ip: None,
            invoked_by: invoked_by.map(str::to_owned),
            calls: Vec::new(),
        }
    }

    #[test]
    fn a_pipeline_role_is_trusted_by_its_pattern_and_nobody_else_is() {
        let patterns = parse(
            "arn:aws:iam::111122223333:role/deploy-*, invokedBy:cloudformation.amazonaws.com",
        )
        .unwrap();
        let pipeline = caller(
            "arn:aws:sts::111122223333:assumed-role/deploy-prod/run-42",
            Some("arn:aws:iam::111122223333:role/deploy-prod"),
            None,
        );
        let console = caller("arn:aws:iam::111122223333:user/dept-b-admin", None, None);
        let stack = caller(
            "arn:aws:sts::111122223333:assumed-role/cfn-exec/AWSCloudFormation",
            Some("arn:aws:iam::111122223333:role/cfn-exec"),
            Some("cloudformation.amazonaws.com"),
        );
        let feed = |c: Vec<Caller>| ActorLookup::Feed(c);
        assert_eq!(
            trusted_by(&patterns, &feed(vec![pipeline.clone()])),
            Some(&patterns[0])
        );
        assert_eq!(
            trusted_by(&patterns, &feed(vec![stack.clone()])),
            Some(&patterns[1])
        );
        assert_eq!(trusted_by(&patterns, &feed(vec![console.clone()])), None);
        // Trusted only if every caller is.
        assert_eq!(trusted_by(&patterns, &feed(vec![pipeline, console])), None);
        // An unknown actor is never trusted.
        assert_eq!(
            trusted_by(&patterns, &ActorLookup::Unknown("no trail".into())),
            None
        );
        assert_eq!(trusted_by(&patterns, &feed(Vec::new())), None);
        let found = ActorLookup::Found(Actor {
            arn: Some("arn:aws:sts::111122223333:assumed-role/deploy-ci/x".into()),
            ..Actor::default()
        });
        assert_eq!(
            trusted_by(&patterns, &found),
            None,
            "the session, not the role"
        );
        let by_role = parse("arn:aws:sts::111122223333:assumed-role/deploy-*").unwrap();
        assert_eq!(trusted_by(&by_role, &found), Some(&by_role[0]));
    }

    #[test]
    fn a_pattern_that_would_trust_everyone_or_is_no_arn_is_refused() {
        for bad in [
            "*",
            "arn:aws:iam::*:*",
            "arn:aws:iam::111122223333:*",
            "arn:aws:ec2:us-east-1:1:security-group/*",
            "role/deploy",
            "invokedBy:",
            "invokedBy:x y",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn globs_match_as_written() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("deploy-*", "xdeploy-1"));
    }
}

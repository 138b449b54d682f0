//! Auto-revert, opt-in (`SGWATCH_AUTO_REVERT`: `off`, `shadow` or `on`): which rules a change
//! added that sgwatch removes by itself, and what the alert says of it. Pure; the revoke is at
//! the edge (`crate::process`).
//!
//! Only ingress rules open to the internet that this very change added, at or above
//! `SGWATCH_AUTO_REVERT_AT` (critical by default); never on a group tagged
//! `sgwatch:auto-revert=no`, and never a change a trusted principal made (an unknown actor is
//! never trusted). `shadow` reverts nothing and says what it would have done.

use std::fmt;
use std::str::FromStr;

use crate::core::decide::Decision;
use crate::core::message::ChangeType;
use crate::core::remedy;
use crate::core::rules::Change;
use crate::core::severity::{classify, Severity};
use crate::core::trust::Pattern;

/// The tag whose value `no` keeps auto-revert off a group.
pub const OPT_OUT_TAG: &str = "sgwatch:auto-revert";

/// What auto-revert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Off,
    /// Says what it would revert, reverts nothing.
    Shadow,
    On,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Shadow => "shadow",
            Mode::On => "on",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Mode::Off),
            "shadow" => Ok(Mode::Shadow),
            "on" => Ok(Mode::On),
            _ => Err("expected off, shadow or on".to_owned()),
        }
    }
}

/// Auto-revert's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRevert {
    pub mode: Mode,
    /// The lowest severity it acts on.
    pub at: Severity,
}

impl Default for AutoRevert {
    fn default() -> Self {
        AutoRevert {
            mode: Mode::Off,
            at: Severity::Critical,
        }
    }
}

/// What auto-revert makes of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to say: off, or no rule at the level.
    Nothing,
    /// These rules qualify but are left, and why (the alert says so).
    Spared { rules: Vec<Change>, why: String },
    /// Revert these rules (`shadow`: say that it would have).
    Revert(Vec<Change>),
}

/// The rules of `d` auto-revert acts on, given who made the change (`trusted`: the pattern that
/// trusts its actor, if one does).
pub fn verdict(d: &Decision, settings: &AutoRevert, trusted: Option<&Pattern>) -> Verdict {
    let a = &d.analysis;
    if settings.mode == Mode::Off || a.subject.change_type == ChangeType::Delete {
        return Verdict::Nothing;
    }
    let rules: Vec<Change> = a
        .changes
        .iter()
        .filter(|c| remedy::wanted(c) && classify(c) >= settings.at)
        .cloned()
        .collect();
    if rules.is_empty() {
        return Verdict::Nothing;
    }
    if a.tags
        .get(OPT_OUT_TAG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
    {
        return Verdict::Spared {
            rules,
            why: format!("the group is tagged {OPT_OUT_TAG}=no"),
        };
    }
    if let Some(p) = trusted {
        return Verdict::Spared {
            rules,
            why: format!("made by a trusted principal (pattern {p})"),
        };
    }
    Verdict::Revert(rules)
}

/// The alert's line for a rule shadow mode would have reverted.
pub fn shadow_note(c: &Change) -> String {
    format!(
        "sgwatch would have reverted {} (auto-revert in shadow mode)",
        c.rule
    )
}

/// The alert's line for a rule auto-revert removed at `at`, with the command that puts it back.
pub fn reverted_note(region: &str, group: &str, c: &Change, at: &str) -> String {
    match remedy::authorize_command(region, group, c) {
        Some(restore) => format!(
            "{} was reverted by sgwatch at {at}; to restore it: {restore}",
            c.rule
        ),
        None => format!("{} was reverted by sgwatch at {at}", c.rule),
    }
}

/// The alert's line for rules left where they are.
pub fn spared_note(rules: &[Change], why: &str) -> String {
    let rules: Vec<String> = rules.iter().map(|c| c.rule.to_string()).collect();
    format!("not reverted: {} ({why})", rules.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::settings::Policy;
    use crate::core::trust;

    fn rdp_and_http() -> Decision {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let change = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        decide(analyze(&change).unwrap(), &Policy::default())
    }

    fn on() -> AutoRevert {
        AutoRevert {
            mode: Mode::On,
            at: Severity::Critical,
        }
    }

    #[test]
    fn only_the_critical_rule_the_change_added_is_reverted() {
        let d = rdp_and_http();
        let Verdict::Revert(rules) = verdict(&d, &on(), None) else {
            panic!("{:?}", verdict(&d, &on(), None));
        };
        let names: Vec<String> = rules.iter().map(|c| c.rule.to_string()).collect();
        assert_eq!(names, ["ingress tcp/3389 from 0.0.0.0/0"]);
        assert_eq!(verdict(&d, &AutoRevert::default(), None), Verdict::Nothing);
        let high = AutoRevert {
            mode: Mode::Shadow,
            at: Severity::High,
        };
        assert!(matches!(verdict(&d, &high, None), Verdict::Revert(_)));
        assert_eq!(
            reverted_note(
                "us-east-1",
                "sg-0123456789abcdef0",
                &rules[0],
                "2026-12-06T09:00:00Z"
            ),
            "ingress tcp/3389 from 0.0.0.0/0 was reverted by sgwatch at 2026-12-06T09:00:00Z; \
             to restore it: aws ec2 authorize-security-group-ingress --region us-east-1 \
             --group-id sg-0123456789abcdef0 --ip-permissions \
             'IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{CidrIp=0.0.0.0/0}]'"
        );
    }

    #[test]
    fn a_trusted_change_or_a_group_that_opts_out_is_spared_and_the_alert_says_why() {
        let patterns = trust::parse("arn:aws:iam::123456789012:role/deploy-*").unwrap();
        let d = rdp_and_http();
        assert!(matches!(
            verdict(&d, &on(), Some(&patterns[0])),
            Verdict::Spared { why, .. } if why == "made by a trusted principal (pattern arn:aws:iam::123456789012:role/deploy-*)"
        ));
        let mut opted_out = d.clone();
        opted_out
            .analysis
            .tags
            .insert(OPT_OUT_TAG.into(), " No ".into());
        let Verdict::Spared { rules, why } = verdict(&opted_out, &on(), None) else {
            panic!()
        };
        assert_eq!(
            spared_note(&rules, &why),
            "not reverted: ingress tcp/3389 from 0.0.0.0/0 (the group is tagged sgwatch:auto-revert=no)"
        );
    }
}

//! One line of what `status` found about a part of the deployment: ok, warn or FAIL, with what
//! to do. The parts that judge themselves (the actor feed, the alarms, the destinations'
//! secrets) speak it, and `status` prints it.

use serde::Serialize;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of `status`: what was checked, how it went, and what to do when it is not ok.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub level: Level,
    pub check: String,
    /// What was found and, when it is not ok, what to do.
    pub detail: String,
}

impl Check {
    pub fn new(level: Level, check: &str, detail: impl Into<String>) -> Check {
        Check {
            level,
            check: check.to_owned(),
            detail: detail.into(),
        }
    }
    pub fn ok(check: &str, detail: impl Into<String>) -> Check {
        Check::new(Level::Ok, check, detail)
    }
    pub fn warn(check: &str, detail: impl Into<String>) -> Check {
        Check::new(Level::Warn, check, detail)
    }
    pub fn fail(check: &str, detail: impl Into<String>) -> Check {
        Check::new(Level::Fail, check, detail)
    }
}

//! The one error every command returns: the typed error of the module that failed, boxed once
//! here (the module errors carry the account, region and resource, and a command ends on one;
//! boxing keeps every `Result` small) instead of once per module and command.

/// Why a command stopped. Its text says what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<ErrorKind>);

impl Error {
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }
}

/// Which part failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error(transparent)]
    Config(#[from] crate::aws::ConfigError),
    #[error(transparent)]
    Identity(#[from] crate::aws::IdentityError),
    #[error(transparent)]
    Preflight(#[from] crate::deploy::preflight::PreflightError),
    #[error(transparent)]
    Package(#[from] crate::deploy::package::PackageError),
    #[error(transparent)]
    Artifacts(#[from] crate::deploy::artifacts::ArtifactsError),
    #[error(transparent)]
    Stack(#[from] crate::deploy::stack::StackError),
    #[error(transparent)]
    Recorder(#[from] crate::deploy::recorder::RecorderError),
    #[error(transparent)]
    Topic(#[from] crate::deploy::topic::TopicError),
    #[error(transparent)]
    Install(#[from] crate::deploy::wanted::InstallError),
    #[error(transparent)]
    Setting(#[from] crate::deploy::policy_args::InvalidSetting),
    #[error(transparent)]
    Targets(#[from] crate::cmd::rollout::TargetsError),
    #[error(transparent)]
    Rollout(#[from] crate::cmd::rollout::RolloutError),
    #[error(transparent)]
    TestEvent(#[from] crate::cmd::test_event::TestEventError),
    #[error(transparent)]
    Redrive(#[from] crate::cmd::redrive::RedriveError),
    #[error(transparent)]
    Verify(#[from] crate::cmd::verify::VerifyError),
    #[error(transparent)]
    Explain(#[from] crate::cmd::explain::ExplainError),
    #[error(transparent)]
    Baseline(#[from] crate::deploy::baseline::BaselineError),
    #[error(transparent)]
    Spoke(#[from] crate::cmd::spoke::SpokeError),
    #[error(transparent)]
    Hub(#[from] crate::cmd::hub::HubError),
    #[error(transparent)]
    Handover(#[from] crate::deploy::handover::HandoverError),
}

// Every module error converts through its `ErrorKind` variant: one impl instead of one per type.
impl<E> From<E> for Error
where
    ErrorKind: From<E>,
{
    fn from(e: E) -> Self {
        Error(Box::new(ErrorKind::from(e)))
    }
}

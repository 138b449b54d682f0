//! Doing it: each step of a [`Plan`] (install) or of [`undo`](crate::deploy::plan::undo) (teardown)
//! as AWS calls, reported as a line of what was done.

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::Stack;

use crate::aws::sns_for;
use crate::aws::Place;
use crate::deploy::artifacts::{self, InstallState, Ownership};
use crate::deploy::observe::{self, Installed, Observed};
use crate::deploy::plan::{self, Plan, StackStep, Step, Undo};
use crate::deploy::recorder;
use crate::deploy::stack::{self, Deployed, Source};
use crate::deploy::topic;
use crate::deploy::wanted::Wanted;

/// The install record as it is being made, written before each Config change and at the end.
struct Record {
    state: InstallState,
    written: Option<InstallState>,
}

impl Record {
    /// The record as install goes on from the stack: the one found (or a new one), with the
    /// stack's Config bucket and what install found and did not create.
    fn start(observed: &Observed, wanted: &Wanted) -> Record {
        let mut state = observed.state.clone().unwrap_or_else(|| InstallState {
            stack_name: wanted.checked.stack_name.clone(),
            ..Default::default()
        });
        state.config_bucket = observed.outputs().config_bucket_name.clone();
        let owned = plan::owned(&observed.found, Some(&state), observed.outputs());
        plan::mark_adopted(&mut state, &observed.found, owned);
        Record {
            state,
            written: observed.state.clone(),
        }
    }

    /// Notes what a Config step creates or adds, for teardown to take back.
    fn before(&mut self, step: &recorder::Step) {
        match step {
            recorder::Step::CreateRecorder => {
                self.state.recorder = Ownership::Created;
                self.state.recorder_name = recorder::NAME.into();
            }
            recorder::Step::CreateChannel => {
                self.state.channel = Ownership::Created;
                self.state.channel_name = recorder::NAME.into();
            }
            recorder::Step::ExtendRecorder { .. } => {
                self.state.extended_types = vec![recorder::SECURITY_GROUP.to_owned()];
            }
            _ => {}
        }
    }

    async fn write(&mut self, s3: &aws_sdk_s3::Client, place: &Place) -> Result<(), crate::Error> {
        if self.written.as_ref() != Some(&self.state) {
            artifacts::write_state(s3, place, &self.state).await?;
            self.written = Some(self.state.clone());
        }
        Ok(())
    }
}

/// Applies an install plan; returns what was done, one line each.
pub async fn install(
    config: &SdkConfig,
    mut observed: Observed,
    wanted: &Wanted,
    plan: Plan,
    progress: bool,
) -> Result<Vec<String>, crate::Error> {
    let (first, mut rest): (Vec<Step>, Vec<Step>) = plan.steps.into_iter().partition(|s| {
        matches!(
            s,
            Step::CreateArtifactsBucket | Step::Upload | Step::Stack(_)
        )
    });
    let mut changes = Vec::new();
    let params = &plan.params;
    if artifact_and_stack(
        config,
        &mut observed,
        wanted,
        params,
        first,
        progress,
        &mut changes,
    )
    .await?
    {
        // What follows the stack is decided again with its outputs (the Config steps name them).
        let cfg = crate::aws::configservice(config);
        observed.installed.found = recorder::find(&cfg, &observed.place).await?;
        let topics = plan::topics(&observed.installed, plan.source)?;
        observed.subscriptions =
            observe::subscriptions(config, &observed.installed, &topics).await?;
        rest = plan::after_stack(&observed, wanted, plan.source)?;
    }
    changes.extend(after_stack(config, &observed, wanted, plan.source, rest).await?);
    Ok(changes)
}

/// The artifact, by content hash, and the stack; returns whether the stack was deployed.
async fn artifact_and_stack(
    config: &SdkConfig,
    observed: &mut Observed,
    wanted: &Wanted,
    params: &std::collections::BTreeMap<String, String>,
    steps: Vec<Step>,
    progress: bool,
    changes: &mut Vec<String>,
) -> Result<bool, crate::Error> {
    let place = observed.place.clone();
    let s3 = crate::aws::s3(config);
    let mut deployed = false;
    for step in steps {
        match step {
            Step::CreateArtifactsBucket => {
                if artifacts::ensure_bucket(&s3, &place).await? {
                    let bucket = artifacts::bucket_name(&place);
                    changes.push(format!("created artifacts bucket {bucket}"));
                }
            }
            Step::Upload => {
                if artifacts::upload(&s3, &place, &wanted.artifact).await? {
                    let (key, size) = (wanted.artifact.key(), wanted.artifact.size);
                    changes.push(format!("uploaded handler {key} ({size} bytes)"));
                }
            }
            Step::Stack(s) => {
                let name = &wanted.checked.stack_name;
                let cf = crate::aws::cloudformation(config);
                let deployed_stack = observed.deployed.as_ref().map(|d| &d.stack);
                let (stack, lines) =
                    deploy(&cf, name, &place, deployed_stack, &s, params, progress).await?;
                changes.extend(lines.into_iter().map(|c| format!("stack {name}: {c}")));
                observed.installed.deployed = Some(Deployed::read(&cf, name, stack, &place).await?);
                deployed = true;
            }
            _ => unreachable!("only the artifact and stack steps are taken here"),
        }
    }
    Ok(deployed)
}

/// Config, the subscriptions and the install record, once the stack's outputs are known.
async fn after_stack(
    config: &SdkConfig,
    observed: &Observed,
    wanted: &Wanted,
    source: Source,
    steps: Vec<Step>,
) -> Result<Vec<String>, crate::Error> {
    let place = observed.place.clone();
    let s3 = crate::aws::s3(config);
    let mut changes = Vec::new();
    let mut record = Record::start(observed, wanted);
    let outputs = observed.outputs();
    let name = &wanted.checked.stack_name;
    let function = stack::required(&outputs.function_arn, name, "FunctionArn")?.to_owned();
    let want = plan::want(&wanted.args, &wanted.checked, outputs);
    let cfg = crate::aws::configservice(config);
    let lambda = crate::aws::lambda(config);
    for step in steps {
        match step {
            Step::Config(step) => {
                // Recorded *before* it is made: a kill between the call and the record would
                // otherwise leave a recorder that teardown does not know is ours (deleting one
                // that is not there, or taking back a type that was never added, is harmless).
                record.before(&step);
                record.write(&s3, &place).await?;
                recorder::apply(&cfg, &place, &observed.found, &step, &want).await?;
                changes.push(step.describe(&want));
            }
            Step::Unsubscribe {
                topic,
                subscription,
            } => {
                let sns = sns_for(config, &topic);
                topic::unsubscribe(
                    &sns,
                    &lambda,
                    &place,
                    &topic,
                    &subscription,
                    Some(&function),
                )
                .await?;
                changes.push(format!("unsubscribed the handler from {topic}"));
                record.state.adopted_topic_arn = None;
                record.state.adopted_subscription_arn = None;
                record.state.adopted_permission_sid = None;
            }
            Step::Subscribe { topic } => {
                let sns = sns_for(config, &topic);
                let sub = topic::subscribe(&sns, &lambda, &place, &topic, &function).await?;
                changes.push(format!(
                    "subscribed the handler to the adopted channel's topic {topic}"
                ));
                record.state.adopted_subscription_arn = Some(sub);
            }
            Step::Redrive { topic } => {
                let queue = stack::required(&outputs.failure_queue_arn, name, "FailureQueueArn")?;
                let sns = sns_for(config, &topic);
                if redrive(&sns, &place, &topic, &function, queue).await? {
                    changes.push(format!(
                        "parked what SNS cannot deliver from {topic} to the handler in the failure queue"
                    ));
                }
            }
            Step::Record => {}
            Step::CreateArtifactsBucket | Step::Upload | Step::Stack(_) => {
                unreachable!("the artifact and stack come first")
            }
        }
    }
    if let Some(topic) = plan::adopted_topic(&observed.installed, source)? {
        record.state.adopted_topic_arn = Some(topic);
        record.state.adopted_permission_sid = Some(topic::STATEMENT_ID.to_owned());
    }
    record.write(&s3, &place).await?;
    Ok(changes)
}

/// Parks what SNS cannot deliver from `topic` to the handler in the failure queue; false when the
/// handler has no subscription there. Set through the API: the stack subscribes inline (an
/// AWS::SNS::Topic Subscription carries no redrive policy), and an adopted topic's subscription
/// is not the stack's.
async fn redrive(
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    function: &str,
    queue: &str,
) -> Result<bool, crate::Error> {
    let Some(sub) = topic::subscription(sns, place, topic, function).await? else {
        return Ok(false);
    };
    topic::set_redrive(sns, place, topic, &sub, queue).await?;
    Ok(true)
}

/// Creates or updates the stack through a change set; returns it as deployed, with the changes.
async fn deploy(
    cf: &aws_sdk_cloudformation::Client,
    name: &str,
    place: &Place,
    deployed: Option<&Stack>,
    step: &StackStep,
    params: &std::collections::BTreeMap<String, String>,
    progress: bool,
) -> Result<(Stack, Vec<String>), crate::Error> {
    // A stack whose first creation failed cannot be updated, and blocks creating it again; one
    // under review (a first install interrupted before its change set ran) has nothing in it:
    // remove either, then create it anew.
    if step.replace {
        stack::delete(cf, name, place, progress).await?;
    }
    if progress {
        let verb = if step.update { "updating" } else { "creating" };
        eprintln!("{verb} stack {name} ({place})…");
    }
    let mut lines = if step.update {
        step.differences.clone()
    } else {
        Vec::new()
    };
    let change_set = stack::create_change_set(cf, name, params, step.update, place).await?;
    lines.extend(change_set.changes.iter().cloned());
    let stack = match deployed.filter(|_| change_set.empty) {
        // CloudFormation sees nothing to do where the text comparison saw a difference (a
        // comment, say): nothing to execute.
        Some(deployed) => {
            stack::delete_change_set(cf, name, &change_set, place).await?;
            deployed.clone()
        }
        None => stack::execute(cf, name, &change_set, place, progress).await?,
    };
    Ok((stack, lines))
}

/// Applies teardown's steps; returns what was removed and what was kept, one line each.
pub async fn teardown(
    config: &SdkConfig,
    installed: &Installed,
    steps: Vec<Undo>,
    progress: bool,
) -> Result<(Vec<String>, Vec<String>), crate::Error> {
    let place = &installed.place;
    let name = &installed.stack_name;
    let s3 = crate::aws::s3(config);
    let cfg = crate::aws::configservice(config);
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for step in steps {
        match step {
            Undo::Unsubscribe {
                topic,
                subscription,
            } => {
                let lambda = crate::aws::lambda(config);
                let function = installed.outputs().function_name.as_deref();
                let sns = sns_for(config, &topic);
                topic::unsubscribe(&sns, &lambda, place, &topic, &subscription, function).await?;
                removed.push(format!("subscription of the handler to {topic}"));
            }
            Undo::DeleteRecorder { name, channel } => {
                recorder::delete_created(&cfg, place, &name, channel.as_deref()).await?;
                removed.push(format!("configuration recorder {name}"));
                removed.extend(channel.map(|c| format!("delivery channel {c}")));
            }
            Undo::DeleteChannel { name } => {
                recorder::delete_created_channel(&cfg, place, &name).await?;
                removed.push(format!("delivery channel {name}"));
            }
            Undo::Unextend { recorder: r, types } => {
                if recorder::unextend(&cfg, place, &r, &types).await? {
                    removed.push(format!(
                        "{} from the types recorder {r} records (added by --extend-recorder)",
                        types.join(", "),
                    ));
                }
            }
            Undo::DeleteStack => {
                let cf = crate::aws::cloudformation(config);
                if stack::delete(&cf, name, place, progress).await? {
                    removed.push(format!("stack {name}"));
                }
            }
            Undo::ConfigBucket { bucket, keep: true } => {
                if artifacts::bucket_exists(&s3, &bucket, place).await? {
                    kept.push(format!("Config bucket {bucket} (--keep-history)"));
                }
            }
            Undo::ConfigBucket {
                bucket,
                keep: false,
            } => {
                if artifacts::empty_and_delete(&s3, &bucket, place).await? {
                    removed.push(format!("Config bucket {bucket}"));
                }
            }
            // The artifacts bucket is shared by every sgwatch stack of the account and region:
            // it goes with the last one's record.
            Undo::Record => {
                let others = artifacts::delete_state(&s3, place, name).await?;
                let bucket = artifacts::bucket_name(place);
                if others.is_empty() {
                    if artifacts::empty_and_delete(&s3, &bucket, place).await? {
                        removed.push(format!("artifacts bucket {bucket}"));
                    }
                } else {
                    kept.push(format!(
                        "artifacts bucket {bucket} (still used by stack {})",
                        others.join(", ")
                    ));
                }
            }
        }
    }
    Ok((removed, kept))
}

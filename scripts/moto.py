#!/usr/bin/env python3
"""Local AWS for sgwatch's tests and demo: moto server on loopback, plus one route of our own.

moto's `/moto-api/data.json` would show sent SES mail, but it answers 500 as soon as a Lambda
function exists (it asks Docker about it). So this script starts moto in-process and serves the
sent mail itself, straight from moto's SES backend:

    GET /_sgwatch/ses/messages  ->  [{"id", "source", "destinations", "subject", "text", "html",
                                      "region", "account", ...}, ...]  (oldest first per region)

moto keeps a single body per message (the HTML part when there is one, else the text part), so
SES v2 `SendEmail` requests are also noted here, by message id, to return both parts.

Prints `READY http://127.0.0.1:PORT` on stdout once it serves, then runs until SIGTERM or SIGINT
(or, with --watch-stdin, until stdin closes: whoever holds the other end can be sure that moto
goes away with it, even when it is killed).

With --pool it serves nothing itself and starts servers on request, each a fork of itself: a fork
serves within milliseconds, where a process of its own spends about a second of CPU importing moto
and nearly as much again on the first request to each service (importing its backend, loading its
botocore model). The test harness (tests/src/emulator.rs) keeps one pool per test process. The
pool does that work once, for every service sgwatch calls (`POOL_SERVICES`, `warm_up`), then reads
commands on stdin, one a line:

    start LOGFILE  ->  forks a server whose stdout and stderr go to LOGFILE (made anew); it prints
                       `READY PID http://127.0.0.1:PORT` on the pool's stdout once it serves
                       (or `FAILED PID REASON`)
    stop PID       ->  stops that server (SIGTERM)

When stdin closes, the pool stops every server still running, removes their logs and exits; a
server also stops by itself once the pool is gone, so none outlives a killed test process. Forking a Python process is safe only while
it runs a single thread (a lock held by another thread would stay locked in the child for good):
the pool starts none, and each server starts its own threads after the fork, as main() does.
Everything patched below at import applies to the forked servers alike.
"""

import argparse
import contextlib
import email
import json
import logging
import os
import signal
import sys
import threading
import time
from email import policy

# This file is named moto.py, and Python puts its directory first on sys.path: without this,
# `import moto` would import this script instead of the package.
_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _here]

from moto.moto_server import threaded_moto_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.moto_api._internal import mock_random
from moto.core.routing import get_service_router
from moto.core.utils import get_service_model
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudtrail.responses import CloudTrailResponse
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventBus, EventPattern, EventsBackend, Rule as EventsRule, events_backends
from moto.events.utils import EventTemplateParser
from moto.sqs.models import Queue as SqsQueue
from moto.events.responses import EventsHandler
from moto.server import ThreadedMotoServer
from moto.iam.access_control import IAMRequest, S3IAMRequest
from moto.s3.models import s3_backends
from moto.ses.models import Message, RawMessage, ses_backends
from moto.sesv2.responses import SESV2Response

MESSAGES_PATH = "/_sgwatch/ses/messages"

# Both body parts of each SES v2 simple message, by message id (see the module docstring).
_simple_bodies: dict[str, dict[str, str | None]] = {}


def _note_simple_bodies(send_email):
    def wrapper(self):
        result = send_email(self)
        content = json.loads(self.body).get("Content", {})
        body = content.get("Simple", {}).get("Body")
        if body is not None:
            message_id = json.loads(result)["MessageId"]
            _simple_bodies[message_id] = {
                "text": body.get("Text", {}).get("Data"),
                "html": body.get("Html", {}).get("Data"),
            }
        return result

    return wrapper


SESV2Response.send_email = _note_simple_bodies(SESV2Response.send_email)


# moto's CloudTrail has no LookupEvents: it answers 500, which the SDK retries with backoff for
# seconds before the handler gives up on the actor. moto records no API calls either, so answer
# as CloudTrail does before it has delivered the call (it lags by minutes): no events.
def _lookup_events(self):
    return json.dumps({"Events": []})


CloudTrailResponse.lookup_events = _lookup_events


# moto builds a stack's outputs once, from the template it had when the stack object was made,
# and a stack made by a CREATE change set starts with an empty template: after executing a change
# set, DescribeStacks would list no outputs (and stale ones after an UPDATE). AWS re-evaluates them;
# so does this, so that `sgwatch install` (which deploys through change sets) reads its outputs.
def _refresh_outputs_after(execute_change_set):
    def wrapper(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values()
             if c.change_set_name == change_set_name
             and stack_name in (None, c.stack_name, c.stack_id)),
            None,
        )
        if change_set is not None:
            stack = self.stacks[change_set.stack_id]
            stack._parse_template()
            stack.description = stack.template_dict.get("Description")
            stack.output_map = stack._create_output_map()
            # Evaluated now, while this thread holds the stack's finished resources: moto creates
            # a resource it is asked about and has not made yet, so outputs evaluated lazily by a
            # concurrent DescribeStacks could make a second copy.
            stack.outputs

    return wrapper


CloudFormationBackend.execute_change_set = _refresh_outputs_after(
    CloudFormationBackend.execute_change_set)


# moto keeps a function's ReservedConcurrentExecutions from its CloudFormation properties as it
# finds them, and a value from a template parameter is a string there: GetFunctionConcurrency then
# answers "5" where Lambda answers the integer 5 (and the SDK refuses the string). Convert it, as
# CloudFormation does for an Integer property.
_create_function_from_cfn = LambdaFunction.create_from_cloudformation_json.__func__


# Bridge "numbers in a function's environment": moto resolves a Number parameter to an integer,
# and an environment variable set from one stays an integer, which GetFunctionConfiguration then
# answers and the SDK refuses. CloudFormation's Ref of any parameter is a string.
def _string_variables(props):
    variables = (props.get("Environment") or {}).get("Variables") or {}
    for name, value in variables.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            variables[name] = str(value)


def _with_integer_concurrency(cls, resource_name, cloudformation_json, *args, **kwargs):
    props = cloudformation_json.get("Properties", {})
    if isinstance(props.get("ReservedConcurrentExecutions"), str):
        props["ReservedConcurrentExecutions"] = int(props["ReservedConcurrentExecutions"])
    _string_variables(props)
    return _create_function_from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs)


LambdaFunction.create_from_cloudformation_json = classmethod(_with_integer_concurrency)

_update_function_from_cfn = LambdaFunction.update_from_cloudformation_json.__func__


def _update_with_string_variables(cls, original_resource, new_resource_name, cloudformation_json,
                                  account_id, region_name):
    _string_variables(cloudformation_json.get("Properties", {}))
    return _update_function_from_cfn(
        cls, original_resource=original_resource, new_resource_name=new_resource_name,
        cloudformation_json=cloudformation_json, account_id=account_id, region_name=region_name)


LambdaFunction.update_from_cloudformation_json = classmethod(_update_with_string_variables)


# moto's EventBridge answers TestEventPattern with an empty body (the call is a stub), though its
# rules match events with a pattern matcher of their own. Answer it with that matcher, so a test
# can ask whether the stack's rule pattern matches an event the way a deployed rule would.
def _test_event_pattern(self):
    pattern = EventPattern.load(self._get_param("EventPattern"))
    event = json.loads(self._get_param("Event"))
    return json.dumps({"Result": pattern.matches_event(event)}), self.response_headers


EventsHandler.test_event_pattern = _test_event_pattern


# moto's pattern matcher flattens an event's objects but not arrays of objects, so a pattern on a
# field of an array's elements (`requestParameters.resourcesSet.items.resourceId`, CloudTrail's
# shape for the resources of a tag call) never matches. EventBridge matches it when any element's
# field does ("Arrays in Amazon EventBridge event patterns"): flatten such arrays into the list of
# their elements' values, as that reads.
def _flatten_arrays_of_objects(flatten):
    def wrapper(node, prefix="", result=None):
        result = flatten(node, prefix, result)
        for key, value in list(result.items()):
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                for element in value:
                    for sub_key, sub_value in wrapper(element).items():
                        values = sub_value if isinstance(sub_value, list) else [sub_value]
                        result.setdefault(f"{key}.{sub_key}", []).extend(values)
        return result

    return staticmethod(wrapper)


EventPattern._flatten_dict = _flatten_arrays_of_objects(EventPattern._flatten_dict)


# moto forwards an event from one account's bus to another's (a rule whose target is an event
# bus) by putting it again as the target's own account and region. EventBridge keeps the source
# event's `account` and `region` ("Sending and receiving events between AWS accounts in Amazon
# EventBridge"), and the hub decides from them. Bridge "forwarded origin": while a rule forwards
# an event, the rules of the receiving bus see the original account and region.
_forwarding = threading.local()


def _keep_forwarded_origin(send_to_targets):
    def wrapper(self, event, *args, **kwargs):
        origin = getattr(_forwarding, "origin", None)
        if origin is not None:
            event = dict(event, account=origin[0], region=origin[1])
        outer = origin
        _forwarding.origin = (event.get("account"), event.get("region"))
        try:
            return send_to_targets(self, event, *args, **kwargs)
        finally:
            _forwarding.origin = outer

    return wrapper


EventsRule.send_to_targets = _keep_forwarded_origin(EventsRule.send_to_targets)


# moto's events delivered to a target (an SQS queue) leave out the event's `account`, which
# EventBridge always sends ("Amazon EventBridge events": the account that sent the event). Bridge
# "the account in a delivered event": moto's default input template names it too.
EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE.replace(
    '"source": "<source>",', '"source": "<source>", "account": "<account>",'
)
assert '"account": "<account>"' in EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE


# moto's CloudFormation resolves `Ref` of an AWS::Events::EventBus to the bus object itself, so a
# rule on that bus (`EventBusName: {Ref: HubBus}`) fails to create. CloudFormation's Ref returns
# the bus's name ("AWS::Events::EventBus, Return values"). Bridge "Ref of an event bus".
EventBus.physical_resource_id = property(lambda self: self.name)


# moto's PutEvents looks a bus up in the caller's own account and region, even when
# `EventBusName` is the ARN of another account's bus; EventBridge puts the event on that bus (a
# spoke's heartbeat schedule puts on the hub's bus so), as sent by the caller's account. Bridge
# "PutEvents to another account's bus".
def _put_on_the_named_bus(put_events):
    def wrapper(self, events):
        mine, answers = [], {}
        for i, event in enumerate(events):
            name = event.get("EventBusName") or ""
            parts = name.split(":")
            if name.startswith("arn:") and len(parts) >= 6 and (parts[4], parts[3]) != (self.account_id, self.region_name):
                target = events_backends[parts[4]][parts[3]]
                outer = getattr(_forwarding, "origin", None)
                _forwarding.origin = (self.account_id, self.region_name)
                try:
                    answers[i] = put_events(target, [event])[0]
                finally:
                    _forwarding.origin = outer
            else:
                mine.append((i, event))
        for (i, _), answer in zip(mine, put_events(self, [e for _, e in mine]) if mine else []):
            answers[i] = answer
        return [answers[i] for i in range(len(events))]

    return wrapper


EventsBackend.put_events = _put_on_the_named_bus(EventsBackend.put_events)


# moto hands a queue's new messages to a Lambda event source mapping as they arrive, by running
# the function in Docker; without Docker the run fails and the messages it took stay invisible
# for the queue's visibility timeout (the hub's: six minutes). The tests give the hub's queue to
# the handler themselves, as the mapping would. Bridge "no mapping runs": a message stays in
# the queue for whoever receives it.
def _no_mapping_runs(add_message):
    def wrapper(self, message):
        mappings = self.lambda_event_source_mappings
        self.lambda_event_source_mappings = {}
        try:
            return add_message(self, message)
        finally:
            self.lambda_event_source_mappings = mappings

    return wrapper


SqsQueue.add_message = _no_mapping_runs(SqsQueue.add_message)


# moto's stack update ignores resources' conditions: a resource whose condition is false but
# whose properties name a changed parameter is "updated", and its GetAtt of another resource
# under the same condition (never made) fails the whole update. CloudFormation makes a resource
# when its condition becomes true and deletes it when it becomes false. Bridge "conditions on
# update": a resource under a false condition is not updated, and one that exists is deleted
# after the update (one under a true condition that does not exist yet is made when first used,
# as moto already does on create).
from moto.cloudformation import parsing as _cfn_parsing

_update_resource = _cfn_parsing.parse_and_update_resource


def _update_if_its_condition_holds(logical_id, resource_json, resources_map, account_id,
                                   region_name):
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        return resources_map._parsed_resources.get(logical_id)
    return _update_resource(logical_id, resource_json, resources_map, account_id, region_name)


_cfn_parsing.parse_and_update_resource = _update_if_its_condition_holds
_resource_map_update = _cfn_parsing.ResourceMap.update


def _update_by_conditions(self, template, parameters=None):
    _resource_map_update(self, template, parameters)
    for logical_id, resource_json in list(self._resource_json_map.items()):
        condition = resource_json.get("Condition")
        if not condition or self.lazy_condition_map[condition]:
            continue
        resource = self._parsed_resources.pop(logical_id, None)
        if resource is not None:
            with contextlib.suppress(Exception):
                self._delete_resource(resource, resource_json)


_cfn_parsing.ResourceMap.update = _update_by_conditions


# moto's CloudFormation knows no AWS::Lambda::Url (its Lambda API makes function URLs, but a
# template's are skipped, and a GetAtt of one fails the stack). Bridge "function URLs in
# CloudFormation": the resource makes the function's URL config through moto's Lambda backend,
# and answers GetAtt FunctionUrl and FunctionArn as CloudFormation does ("AWS::Lambda::Url,
# Return values"). moto serves no URL: nothing answers at it.
from moto.awslambda.models import lambda_backends
from moto.core.common_models import CloudFormationModel


class _FunctionUrl(CloudFormationModel):
    # moto files each model under the service its module names (`moto.SERVICE.…`).
    __module__ = "moto.awslambda.function_url"

    def __init__(self, function_arn, url):
        self.function_arn = function_arn
        self.url = url

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::Url"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("FunctionUrl", "FunctionArn")

    @property
    def physical_resource_id(self):
        return self.function_arn

    def get_cfn_attribute(self, attribute_name):
        return {"FunctionUrl": self.url, "FunctionArn": self.function_arn}[attribute_name]

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = cloudformation_json["Properties"]
        backend = lambda_backends[account_id][region_name]
        config = backend.create_function_url_config(
            props["TargetFunctionArn"], {"AuthType": props.get("AuthType", "AWS_IAM")})
        return cls(config.function.function_arn, config.url + "/")

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        props = cloudformation_json["Properties"]
        with contextlib.suppress(Exception):
            lambda_backends[account_id][region_name].delete_function_url_config(
                props["TargetFunctionArn"])


# moto makes every AWS::KMS::Key of a template a symmetric encryption key, whatever its KeySpec
# and KeyUsage say, so a stack's HMAC key cannot make a MAC. Bridge "KeySpec in CloudFormation":
# make the key as the template says.
from moto.kms.models import Key as KmsKey, kms_backends


def _key_as_specified(cls, resource_name, cloudformation_json, account_id, region_name,
                      **kwargs):
    props = cloudformation_json["Properties"]
    policy = props["KeyPolicy"]
    key = kms_backends[account_id][region_name].create_key(
        # As the KMS API takes it: a JSON string (moto reads a key's policy as one).
        policy=policy if isinstance(policy, str) else json.dumps(policy),
        key_usage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        key_spec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
        description=props.get("Description"),
        # As KMS's API names them (a template writes Key and Value).
        tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])],
    )
    key.key_rotation_status = props.get("EnableKeyRotation", False)
    key.enabled = props.get("Enabled", True)
    return key


KmsKey.create_from_cloudformation_json = classmethod(_key_as_specified)


# moto's CloudFormation knows no AWS::Scheduler::Schedule (its Scheduler API makes schedules, but
# a template's are skipped, and a GetAtt of one fails the stack). Bridge "schedules in
# CloudFormation": the resource makes the schedule through moto's Scheduler backend, named as
# CloudFormation names what a template leaves unnamed, and answers GetAtt Arn. moto runs no
# schedule: nothing is invoked at its time.
from moto.scheduler.models import scheduler_backends


class _Schedule(CloudFormationModel):
    __module__ = "moto.scheduler.schedule"

    def __init__(self, schedule):
        self.schedule = schedule

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @staticmethod
    def cloudformation_type():
        return "AWS::Scheduler::Schedule"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    @property
    def physical_resource_id(self):
        return self.schedule.name

    def get_cfn_attribute(self, attribute_name):
        return self.schedule.arn

    @staticmethod
    def _create(name, props, account_id, region_name):
        return scheduler_backends[account_id][region_name].create_schedule(
            description=props.get("Description"),
            end_date=props.get("EndDate"),
            flexible_time_window=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=props.get("GroupName"),
            kms_key_arn=props.get("KmsKeyArn"),
            name=name,
            schedule_expression=props["ScheduleExpression"],
            schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
            start_date=props.get("StartDate"),
            state=props.get("State", "ENABLED"),
            target=props["Target"],
            action_after_completion=None,
        )

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = cloudformation_json["Properties"]
        name = props.get("Name") or resource_name
        return cls(cls._create(name, props, account_id, region_name))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = cloudformation_json["Properties"]
        backend = scheduler_backends[account_id][region_name]
        name = original_resource.schedule.name
        with contextlib.suppress(Exception):
            backend.delete_schedule(props.get("GroupName"), name)
        return cls(cls._create(name, props, account_id, region_name))

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        props = cloudformation_json["Properties"]
        with contextlib.suppress(Exception):
            scheduler_backends[account_id][region_name].delete_schedule(
                props.get("GroupName"), resource_name)


# With IAM enforced (INITIAL_NO_AUTH_ACTION_COUNT), moto authorises every non-S3 request against
# the resource "*" and no condition keys, so a statement naming a table or an SES identity never
# matches, and one with a condition always denies. Bridge "resource ARNs": for the calls the
# handler and the installer make on named resources, authorise as AWS does instead: DynamoDB item
# calls against the table's ARN; SES v2 SendEmail against the identity of the sender and of every
# recipient (as SES does in the sandbox, where recipients must be verified identities too), with
# ses:FromAddress set; IAM calls on a role against the role's ARN (`_iam_role_arn`);
# CloudFormation calls on a stack against the stack's (`_cloudformation_stack_arn`); SNS Publish
# against the topic's ARN (the chat topics the handler may publish to); Security Hub's
# BatchImportFindings against each finding's product ARN (the account's own product). Other
# requests keep moto's checks.
def _authorize_like_aws(check_action_permitted):
    def identity_arns(partition, region, account, address):
        domain = address.rsplit("@", 1)[-1]
        return [f"arn:{partition}:ses:{region}:{account}:identity/{name}" for name in (address, domain)]

    def wrapper(self, resource):
        from moto.iam.access_control import IAMPolicy, PermissionResult
        from moto.utilities.utils import get_partition

        partition = get_partition(self._region)
        checks = None  # [(resource, condition values)], each must be allowed
        if self._action in ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
                            "dynamodb:UpdateItem"):
            table = json.loads(self._body or b"{}").get("TableName", "")
            checks = [(f"arn:{partition}:dynamodb:{self._region}:{self.account_id}:table/{table}", {})]
        elif self._action == "ses:SendEmail" and self._body:
            body = json.loads(self._body)
            sender = body.get("FromEmailAddress", "")
            conditions = {"ses:FromAddress": sender}
            destination = body.get("Destination", {})
            recipients = [a for k in ("ToAddresses", "CcAddresses", "BccAddresses")
                          for a in destination.get(k, [])]
            # The sender's identity may be its address or its domain: either one allowing is enough.
            checks = [(identity_arns(partition, self._region, self.account_id, sender), conditions)]
            checks += [(identity_arns(partition, self._region, self.account_id, r), conditions)
                       for r in recipients]
        elif self._action == "sns:Publish" and _param(self, "TopicArn"):
            checks = [(_param(self, "TopicArn"), {})]
        elif self._action == "securityhub:BatchImportFindings" and self._body:
            findings = json.loads(self._body).get("Findings", [])
            checks = [(arn, {}) for arn in sorted({f.get("ProductArn", "") for f in findings})]
        elif self._service == "iam":
            role = _iam_role_arn(self, partition)
            if role is not None:
                checks = [(role, {})]
        elif self._service == "cloudformation":
            stack = _cloudformation_stack_arn(self, partition)
            if stack is not None:
                checks = [(stack, {})]
        if checks is None:
            return check_action_permitted(self, resource)
        policies = self._access_key.collect_policies()
        for resources, conditions in checks:
            resources = resources if isinstance(resources, list) else [resources]
            allowed = False
            for arn in resources:
                results = [IAMPolicy(p).is_action_permitted(self._action, arn, None, conditions)
                           for p in policies]
                if PermissionResult.DENIED in results:
                    self._raise_access_denied()
                allowed = allowed or PermissionResult.PERMITTED in results
            if not allowed:
                self._raise_access_denied()

    return wrapper


def _param(request, name):
    """The first value of query-protocol parameter `name` (IAM, CloudFormation), or None."""
    value = request._data.get(name) if isinstance(request._data, dict) else None
    return value[0] if isinstance(value, list) else value


# IAM authorises calls on a role against the role's ARN, and SimulatePrincipalPolicy against the
# simulated principal's (PolicySourceArn): see "Actions, resources, and condition keys for AWS
# Identity and Access Management" in the Service Authorization Reference. The installer's policy
# scopes them to its stack's roles. None: the call names no role: moto's own check.
def _iam_role_arn(request, partition):
    if request._action == "iam:SimulatePrincipalPolicy":
        return _param(request, "PolicySourceArn")
    from moto.iam.exceptions import NotFoundException

    name = _param(request, "RoleName")
    if name is None:
        return None
    try:
        return request.backend.get_role(name).arn
    except NotFoundException:  # no such role yet (CreateRole): the ARN it will have
        path = _param(request, "Path") or "/"
        return f"arn:{partition}:iam::{request.account_id}:role{path}{name}"


# CloudFormation authorises calls on a stack and its change sets against the stack's ARN
# (arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID; a stack not yet made is matched by
# stack/NAME/*), so the installer's policy scopes them to its stack: see "Actions, resources, and
# condition keys for AWS CloudFormation" in the Service Authorization Reference. None: the call
# names no stack (ListStacks, ValidateTemplate): moto's own check.
def _cloudformation_stack_arn(request, partition):
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[request.account_id][request._region]
    name = _param(request, "StackName")
    change_set = _param(request, "ChangeSetName")
    if change_set is not None and name is None:
        for c in backend.change_sets.values():
            if change_set in (c.change_set_name, getattr(c, "change_set_id", None)):
                return c.stack_id
    if name is None:
        return None
    if name.startswith("arn:"):
        return name
    for stack_id, stack in backend.stacks.items():
        if stack.name == name and stack.status != "DELETE_COMPLETE":
            return stack_id
    return f"arn:{partition}:cloudformation:{request._region}:{request.account_id}:stack/{name}/*"


IAMRequest.check_action_permitted = _authorize_like_aws(IAMRequest.check_action_permitted)


# Bridge "signed payload": with IAM enforced, moto recomputes each request's SigV4 signature over
# a payload rebuilt from what it parsed, not over the bytes the client sent: for a REST request
# without a body (SES v2 GetEmailIdentity, GET /v2/email/identities/{identity}) it hashes the
# request's headers as a form, and for a query-protocol POST (CloudFormation CreateChangeSet) it
# re-encodes the form with "+" for spaces where the AWS SDKs send "%20". Either way it answers
# SignatureDoesNotMatch where AWS, which checks the payload as sent, accepts. Retry the check over
# those two payloads; the signature is still verified with the caller's secret key.
def _signature_over_sent_payload(check_signature):
    from urllib.parse import quote, urlencode

    def wrapper(self):
        from moto.iam.access_control import SignatureDoesNotMatchError

        try:
            return check_signature(self)
        except SignatureDoesNotMatchError:
            if self._body or not isinstance(self._data, dict) or not self._data:
                raise
            body, data = self._body, self._data
            if self._method in ("GET", "HEAD", "DELETE"):
                payloads = [({}, b"")]
            else:
                sent = urlencode(data, doseq=True, quote_via=quote, safe="-_.~").encode()
                payloads = [(data, sent)]
            try:
                for self._data, self._body in payloads:
                    try:
                        return check_signature(self)
                    except SignatureDoesNotMatchError:
                        pass
            finally:
                self._body, self._data = body, data
            raise

    return wrapper


IAMRequest.check_signature = _signature_over_sent_payload(IAMRequest.check_signature)


# Bridge "HeadBucket is s3:ListBucket": moto authorises S3 HeadBucket as an action named
# s3:HeadBucket, which no IAM policy can grant (IAM has no such action); S3 requires
# s3:ListBucket on the bucket for it ("HeadBucket", Amazon S3 API Reference, Permissions).
# `sgwatch install` checks its artifacts bucket with HeadBucket. Authorise it as S3 does.
def _head_bucket_as_list_bucket(check_action_permitted):
    def wrapper(self, resource):
        if self._action == "s3:HeadBucket":
            self._action = "s3:ListBucket"
            try:
                return check_action_permitted(self, resource)
            finally:
                self._action = "s3:HeadBucket"
        return check_action_permitted(self, resource)

    return wrapper


S3IAMRequest.check_action_permitted = _head_bucket_as_list_bucket(
    S3IAMRequest.check_action_permitted)


# Bridge (opt-in, for benchmarks): moto creates a stack within the ExecuteChangeSet call, AWS takes
# seconds to minutes, during which DescribeStacks reports CREATE_IN_PROGRESS. With
# SGWATCH_MOTO_CREATE_SECONDS=N, a stack created by a change set reads as CREATE_IN_PROGRESS for N
# seconds after the call (its resources already exist), so waiting on CloudFormation costs what it
# costs against AWS. Unset or 0: moto's own behaviour.
CREATE_SECONDS = float(os.environ.get("SGWATCH_MOTO_CREATE_SECONDS") or 0)


def _hold_created_stacks(execute_change_set):
    def wrapper(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            if stack.status == "CREATE_COMPLETE" and not hasattr(stack, "_sgwatch_created_at"):
                stack._sgwatch_created_at = time.monotonic()
                stack.status = "CREATE_IN_PROGRESS"

    return wrapper


def _release_held_stacks(describe_stacks):
    def wrapper(self, name_or_stack_id):
        for stack in self.stacks.values():
            held_since = getattr(stack, "_sgwatch_created_at", None)
            if (stack.status == "CREATE_IN_PROGRESS" and held_since is not None
                    and time.monotonic() - held_since >= CREATE_SECONDS):
                stack.status = "CREATE_COMPLETE"
        return describe_stacks(self, name_or_stack_id)

    return wrapper


if CREATE_SECONDS > 0:
    CloudFormationBackend.execute_change_set = _hold_created_stacks(
        CloudFormationBackend.execute_change_set)
    CloudFormationBackend.describe_stacks = _release_held_stacks(
        CloudFormationBackend.describe_stacks)


def _flatten(destinations) -> list[str]:
    if isinstance(destinations, list):  # raw messages keep a flat list
        return list(destinations)
    return [
        address
        for key in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in destinations.get(key, [])
    ]


def _raw_parts(raw_data: str) -> dict[str, str | None]:
    parsed = email.message_from_string(raw_data, policy=policy.default)
    parts = {"subject": parsed.get("Subject"), "text": None, "html": None}
    for kind in ("plain", "html"):
        part = parsed.get_body(preferencelist=(kind,))
        if part is not None and part.get_content_subtype() == kind:
            parts["text" if kind == "plain" else "html"] = part.get_content()
    return parts


def sent_messages() -> list[dict]:
    """Every message moto's SES backends (v1, which SES v2 stores into) have accepted."""
    out = []
    # dict.items, not the BackendDict's own accessors, which create backends as they are asked.
    for account, by_region in list(dict.items(ses_backends)):
        for region, backend in list(dict.items(by_region)):
            for message in list(backend.sent_messages):
                entry = {"id": message.id, "source": message.source, "region": region,
                         "account": account}
                if isinstance(message, Message):
                    # SES v1 SendEmail is not noted: which part moto kept is unknown there.
                    bodies = _simple_bodies.get(message.id, {"text": None, "html": None})
                    entry.update(subject=message.subject, body=message.body, **bodies)
                elif isinstance(message, RawMessage):
                    entry.update(_raw_parts(message.raw_data))
                else:  # templated mail: no rendered body in moto
                    entry.update(subject=None, text=None, html=None,
                                 template=getattr(message, "template", None))
                entry["destinations"] = _flatten(message.destinations)
                out.append(entry)
    return out


# moto ignores S3's ExpectedBucketOwner (the x-amz-expected-bucket-owner header): a request for a
# bucket another account owns succeeds there, where S3 answers 403 Access Denied. Answered here as
# S3 does, for path-style requests (the only style sgwatch uses against a custom endpoint).
def _foreign_bucket(environ) -> bool:
    expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
    if not expected or "/s3/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
        return False
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    owner = s3_backends.bucket_accounts.get(bucket)
    return owner is not None and owner[1] != expected


def _access_denied(environ, start_response):
    body = b"" if environ.get("REQUEST_METHOD") == "HEAD" else (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>")
    start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                     ("Content-Length", str(len(body)))])
    return [body]


class Dispatcher(DomainDispatcherApplication):
    """moto's WSGI dispatcher, answering our own route before moto sees the request."""

    def __call__(self, environ, start_response):
        if _foreign_bucket(environ):
            return _access_denied(environ, start_response)
        if environ.get("PATH_INFO") == MESSAGES_PATH:
            if environ.get("REQUEST_METHOD") != "GET":
                start_response("405 Method Not Allowed", [("Content-Length", "0")])
                return [b""]
            body = json.dumps(sent_messages()).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return super().__call__(environ, start_response)


# ThreadedMotoServer builds its app from this module-level name; give it ours.
threaded_moto_server.DomainDispatcherApplication = Dispatcher


def serve(port: int, ready, stop: threading.Event) -> None:
    """Serves moto on 127.0.0.1:`port` (0: a free one) until `stop` is set; calls `ready(endpoint)`
    once it serves."""
    # Port 0: the OS picks a free port at bind time, so there is no race with other servers.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    ready(f"http://{host}:{port}")
    stop.wait()
    server.stop()


def stop_on_signals(stop: threading.Event) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())


# What the pool prepares before forking: the services sgwatch, its tests and the demo call (as
# botocore names them; moto's dispatcher names Lambda's backend "awslambda"), and moto's own API.
POOL_SERVICES = (
    "sts", "iam", "s3", "sns", "sqs", "ses", "sesv2", "dynamodb", "ec2", "cloudformation",
    "events", "config", "lambda", "logs", "cloudtrail", "ssm", "cloudwatch", "scheduler",
    "organizations", "securityhub",
)


def warm_up() -> None:
    """Does once, before the forks, what a new server does on each service's first request: moto's
    dispatcher imports the service's backend and builds its Flask app (which makes the backend of
    the default account in us-east-1, as that first request would), then the request loads the
    service's botocore model to parse parameters and, for a REST API, builds a router of the
    model's URIs. Both are cached for the life of the process. Starts no thread."""
    for service in POOL_SERVICES:
        create_backend_app("awslambda" if service == "lambda" else service)
        model = get_service_model(service)
        if model.protocol in ("rest-json", "rest-xml"):
            get_service_router(service)._get_router(model.protocol)
    create_backend_app("moto_api")


def pool() -> None:
    """The --pool mode (see the module docstring)."""
    warm_up()
    if threading.active_count() != 1:
        sys.exit(f"moto.py --pool: {threading.active_count()} threads after warming up; "
                 "forking now would not be safe")

    servers: dict[int, str] = {}  # process id -> log file

    def reap(*_):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            servers.pop(pid, None)

    signal.signal(signal.SIGCHLD, reap)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "start" and argument:
            # Held back until the new server is counted, so that reap() cannot miss it.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                _pool_server(argument)  # never returns
            servers[pid] = argument
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        elif command == "stop" and argument.isdigit():
            if int(argument) in servers:  # never a process that is not one of ours
                os.kill(int(argument), signal.SIGTERM)
        elif command:
            print(f"moto.py --pool: unknown command {line.strip()!r}", file=sys.stderr, flush=True)
    # The test process is gone: stop the servers it did not stop, and remove their logs.
    for pid, log in list(servers.items()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(OSError):
            os.remove(log)


def _pool_server(log_path: str) -> None:
    """A server forked by the pool: its output to `log_path`, its READY line to the pool's
    stdout."""
    status = 1
    answer = os.dup(1)
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        stop = threading.Event()
        stop_on_signals(stop)
        pool_pid = os.getppid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        # The pool's random state is every server's: draw ids of this server's own, as a new
        # process would.
        mock_random.seed()

        def watch_pool():
            while os.getppid() == pool_pid:
                time.sleep(1)
            stop.set()

        threading.Thread(target=watch_pool, daemon=True).start()

        def ready(endpoint):
            os.write(answer, f"READY {os.getpid()} {endpoint}\n".encode())
            os.close(answer)

        serve(0, ready, stop)
        status = 0
    except BaseException as e:  # whatever it is, the harness waits for this server's line
        try:
            reason = f"{type(e).__name__}: {e}".replace("\n", " ")
            os.write(answer, f"FAILED {os.getpid()} {reason}\n".encode())
        except OSError:
            pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    parser.add_argument("--pool", action="store_true",
                        help="start servers on request, forked (see above); stdin carries requests")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.pool:
        pool()
        return

    stop = threading.Event()
    stop_on_signals(stop)
    if args.watch_stdin:
        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            stop.set()

        threading.Thread(target=watch, daemon=True).start()

    serve(args.port, lambda endpoint: print(f"READY {endpoint}", flush=True), stop)


if __name__ == "__main__":
    main()

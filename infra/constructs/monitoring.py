"""What operators watch and what wakes them: the CloudWatch dashboard; alarms on every dead-letter queue, handler
errors, a lagging event stream or dispatcher, and the account's SES reputation, each notifying the alarms topic;
and the send guard, which pauses nurture sending automatically before AWS would review or suspend the account.

The alarms topic is not the operations topic: CloudWatch alarms cannot publish to a topic under the SNS AWS-managed
key (infra/constructs/alerts.py), so this one has a customer-managed key whose policy admits CloudWatch. The address
given with `-c operations_email=...` is subscribed to both, so one inbox hears alarms, the send guard's notices and
content rejections. docs/operations.md says what each alarm means and what to do.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.runtime import DLQ_RETENTION, NurtureFunction, private_queue
from infra.nag import acknowledge
from nurture import constants as c
from nurture.runtime.observability import Metric

PERIOD = cdk.Duration.minutes(5)
# The stream keeps records for 24 hours; an hour behind leaves ample time to react.
STREAM_LAG_THRESHOLD = cdk.Duration.hours(1)
# The dispatcher ticks every five minutes and leaves nothing due behind it: a lead still due a quarter of an hour
# after its time has outlived three ticks.
DISPATCH_LAG_THRESHOLD = cdk.Duration.minutes(15)
DISPATCH_LAG_PERIOD = cdk.Duration.minutes(15)
# SES publishes the account's reputation as fractions (0.04 is 4%). AWS reviews an account at a 5% bounce rate or a
# 0.1% complaint rate. The warnings give people time to find the cause; the pause levels sit halfway between the
# warning and AWS's review level, leaving room for the bounces and complaints of emails already sent, which keep
# arriving (complaints for days) after sending stops.
REPUTATION_PERIOD = cdk.Duration.minutes(15)
BOUNCE_RATE_WARNING = 0.04
BOUNCE_RATE_PAUSE = 0.045
BOUNCE_RATE_REVIEW = 0.05
COMPLAINT_RATE_WARNING = 0.0008
COMPLAINT_RATE_PAUSE = 0.0009
COMPLAINT_RATE_REVIEW = 0.001
# The pause alarms have fixed names: the send guard's rule matches them, and operators look them up.
BOUNCE_PAUSE_ALARM = "nurture-ses-bounce-rate-pause"
COMPLAINT_PAUSE_ALARM = "nurture-ses-complaint-rate-pause"
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
SEND_GUARD_TIMEOUT = cdk.Duration.seconds(30)
SEND_GUARD_RETRY_ATTEMPTS = 2
SEND_GUARD_MAX_EVENT_AGE = cdk.Duration.hours(1)
DASHBOARD_NAME = "nurture"
# One count per stage a lead enters (`EnteredAwareness`, ...): the dashboard graphs every one the enum lists.
STAGE_ENTERED_PREFIX = "Entered"
WIDGET_WIDTH = 12
WIDGET_HEIGHT = 6


def nurture_metric(metric: Metric, statistic: str = "Sum", period: cdk.Duration = PERIOD) -> cloudwatch.Metric:
    """A metric the handlers emit (EMF, `nurture.runtime.observability`): namespace Nurture, dimension service."""
    return cloudwatch.Metric(
        namespace=c.METRICS_NAMESPACE,
        metric_name=metric.value,
        dimensions_map={"service": c.SERVICE_NAME},
        statistic=statistic,
        period=period,
    )


def ses_metric(name: str, statistic: str = "Sum", period: cdk.Duration = PERIOD) -> cloudwatch.Metric:
    """An SES account metric (no dimension: the whole account, which is what AWS reviews)."""
    return cloudwatch.Metric(namespace="AWS/SES", metric_name=name, statistic=statistic, period=period)


class SendGuard(Construct):
    """The send guard's function, its dead-letter queue and the rule that calls it when a pause alarm fires."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        operations_topic: sns.ITopic,
        configuration_set_name: str,
        pause_alarms: list[cloudwatch.Alarm],
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = private_queue(self, "Dlq", c.SEND_GUARD_DLQ, retention_period=DLQ_RETENTION)
        acknowledge(
            self.dlq,
            "SQS3",
            "This queue is the send guard's dead-letter destination (the EventBridge target's DLQ and the "
            "function's on-failure destination, which cdk-nag does not recognise as a DLQ).",
        )
        self.handler = NurtureFunction(
            self,
            "Handler",
            name="send_guard",
            description="Pauses nurture sending (the SES configuration set) when a reputation pause alarm fires",
            layer=layer,
            timeout=SEND_GUARD_TIMEOUT,
        )
        self.function = self.handler.function
        self.function.add_environment(c.ENV_OPERATIONS_TOPIC_ARN, operations_topic.topic_arn)
        self.function.configure_async_invoke(
            retry_attempts=SEND_GUARD_RETRY_ATTEMPTS,
            max_event_age=SEND_GUARD_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dlq),
        )
        self.rule = events.Rule(
            self,
            "PauseAlarms",
            description="An SES reputation alarm at its pause level: pause nurture sending",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[ALARM_STATE_CHANGE],
                detail={"alarmName": [a.alarm_name for a in pause_alarms], "state": {"value": ["ALARM"]}},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dlq,
                    retry_attempts=SEND_GUARD_RETRY_ATTEMPTS,
                    max_event_age=SEND_GUARD_MAX_EVENT_AGE,
                )
            ],
        )
        # What `SendGuard` does: turn sending of the one configuration set off, and tell operations. Not
        # `topic.grant_publish`: it adds KMS grants, which the SNS AWS-managed key does not need.
        stack = cdk.Stack.of(self)
        configuration_set_arn = stack.format_arn(
            service="ses", resource="configuration-set", resource_name=configuration_set_name
        )
        self.handler.grant(["ses:PutConfigurationSetSendingOptions"], [configuration_set_arn])
        self.handler.grant(["sns:Publish"], [operations_topic.topic_arn])


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        dead_letter_queues: dict[str, sqs.IQueue],
        functions: dict[str, lambda_.IFunction],
        stream_consumer: lambda_.IFunction,
        operations_topic: sns.ITopic,
        configuration_set_name: str,
        operations_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "AlarmsKey",
            description="nurture: encrypts the alarms topic; its policy lets CloudWatch alarms publish to it",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheEncryptedTopic",
                principals=[cloudwatch_principal],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmsTopic",
            topic_name=c.ALARMS_TOPIC,
            display_name="Nurture alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": stack.format_arn(service="cloudwatch", resource="alarm:*")},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        if operations_email:
            if "@" not in operations_email:
                raise ValueError(f"context operations_email is not an e-mail address: {operations_email!r}")
            self.topic.add_subscription(subscriptions.EmailSubscription(operations_email))
            operations_topic.add_subscription(subscriptions.EmailSubscription(operations_email))
        self._action = cw_actions.SnsAction(self.topic)

        self.alarms: list[cloudwatch.Alarm] = []
        self.dead_letter_queues: dict[str, sqs.IQueue] = {}
        self._dlq_alarms(dead_letter_queues)
        for name, function in functions.items():
            self._errors_alarm(name, function)
        self._alarm(
            "ScorerStreamLag",
            stream_consumer.metric("IteratorAge", period=PERIOD, statistic="Maximum"),
            threshold=STREAM_LAG_THRESHOLD.to_milliseconds(),
            description="The scorer is more than an hour behind the events stream (24-hour retention).",
        )
        self.dispatcher_lag = self._alarm(
            "DispatcherBehind",
            nurture_metric(Metric.OLDEST_DUE_SECONDS, statistic="Maximum", period=DISPATCH_LAG_PERIOD),
            threshold=DISPATCH_LAG_THRESHOLD.to_seconds(),
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # No report for a quarter of an hour: the dispatcher is not running. The state goes to
            # INSUFFICIENT_DATA, which notifies too (a missing report is not a breach at the first deploy).
            missing=cloudwatch.TreatMissingData.MISSING,
            description="A lead has been due for more than 15 minutes (or the dispatcher stopped reporting): "
            "the dispatcher is falling behind.",
        )
        self.dispatcher_lag.add_insufficient_data_action(self._action)
        self._reputation_alarms()
        self.send_guard = SendGuard(
            self,
            "SendGuard",
            layer=layer,
            operations_topic=operations_topic,
            configuration_set_name=configuration_set_name,
            pause_alarms=self.pause_alarms,
        )
        self._dlq_alarms({"SendGuard": self.send_guard.dlq})
        self._errors_alarm("SendGuard", self.send_guard.function)
        self.dashboard = self._dashboard({**functions, "SendGuard": self.send_guard.function})

    def _dlq_alarms(self, queues: dict[str, sqs.IQueue]) -> None:
        for name, queue in queues.items():
            self.dead_letter_queues[name] = queue
            self._alarm(
                f"{name}DlqNotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                description=f"Messages in the {name} dead-letter queue: inspect, fix, then redrive.",
            )

    def _errors_alarm(self, name: str, function: lambda_.IFunction) -> None:
        self._alarm(
            f"{name}Errors",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=1,
            description=f"The {name} Lambda reported errors.",
        )

    def _reputation_alarms(self) -> None:
        bounce = ses_metric("Reputation.BounceRate", statistic="Maximum", period=REPUTATION_PERIOD)
        complaint = ses_metric("Reputation.ComplaintRate", statistic="Maximum", period=REPUTATION_PERIOD)
        # Reputation is published only now and then: between datapoints an alarm keeps its state.
        ignore = cloudwatch.TreatMissingData.IGNORE
        self._alarm(
            "SesBounceRateWarning",
            bounce,
            threshold=BOUNCE_RATE_WARNING,
            missing=ignore,
            description="SES bounce rate at 4% (AWS reviews the account at 5%): find the source of bad addresses.",
        )
        self._alarm(
            "SesComplaintRateWarning",
            complaint,
            threshold=COMPLAINT_RATE_WARNING,
            missing=ignore,
            description="SES complaint rate at 0.08% (AWS reviews the account at 0.1%): find what people report.",
        )
        self.pause_alarms = [
            self._alarm(
                "SesBounceRatePause",
                bounce,
                threshold=BOUNCE_RATE_PAUSE,
                missing=ignore,
                name=BOUNCE_PAUSE_ALARM,
                description="SES bounce rate at 4.5%: the send guard pauses nurture sending; resume by hand.",
            ),
            self._alarm(
                "SesComplaintRatePause",
                complaint,
                threshold=COMPLAINT_RATE_PAUSE,
                missing=ignore,
                name=COMPLAINT_PAUSE_ALARM,
                description="SES complaint rate at 0.09%: the send guard pauses nurture sending; resume by hand.",
            ),
        ]

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        name: str | None = None,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
            alarm_name=name,
        )
        # OK too: the inbox that heard of a problem hears when it is over.
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _dashboard(self, functions: dict[str, lambda_.IFunction]) -> cloudwatch.Dashboard:
        def graph(
            title: str,
            left: list[cloudwatch.IMetric],
            right: list[cloudwatch.IMetric] | None = None,
            left_annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=left,
                right=right,
                left_annotations=left_annotations,
                width=WIDGET_WIDTH,
                height=WIDGET_HEIGHT,
            )

        def line(value: float, label: str, color: str) -> cloudwatch.HorizontalAnnotation:
            return cloudwatch.HorizontalAnnotation(value=value, label=label, color=color)

        m = nurture_metric
        rows: list[list[cloudwatch.IWidget]] = [
            [cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4)],
            [
                graph(
                    "Events ingested and rejected",
                    [m(Metric.MESSAGES_ACCEPTED), m(Metric.MESSAGES_REJECTED), m(Metric.DUPLICATE_MESSAGES)],
                ),
                graph(
                    "Journey: stage transitions, sends queued, sales alerts",
                    [
                        m(Metric.STAGE_TRANSITIONS),
                        m(Metric.SENDS_QUEUED),
                        m(Metric.SALES_ALERTS),
                        m(Metric.SALES_ALERTS_DELIVERED),
                        m(Metric.OWNERS_ASSIGNED),
                        m(Metric.LEADS_MERGED),
                    ],
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Transitions by the stage entered",
                    left=[m(metric) for metric in Metric if metric.value.startswith(STAGE_ENTERED_PREFIX)],
                    width=24,
                    height=WIDGET_HEIGHT,
                )
            ],
            [
                graph(
                    "Sends",
                    [
                        m(Metric.EMAILS_SENT),
                        m(Metric.SENDS_SKIPPED),
                        m(Metric.SENDS_UNCONFIRMED),
                        m(Metric.SEND_RECORDS_LOST),
                        m(Metric.DUPLICATE_SENDS_BLOCKED),
                    ],
                ),
                graph(
                    "SES: sends, deliveries, bounces, complaints (account)",
                    [ses_metric("Send"), ses_metric("Delivery"), ses_metric("Bounce"), ses_metric("Complaint")],
                    right=[m(Metric.TRANSIENT_BOUNCES)],
                ),
            ],
            [
                graph(
                    "Email feedback: recorded, scanner opens and clicks, unmatched",
                    [
                        m(Metric.EMAIL_EVENTS_RECORDED),
                        m(Metric.AUTOMATED_EMAIL_EVENTS),
                        m(Metric.EMAIL_EVENTS_UNMATCHED),
                    ],
                ),
                graph(
                    "Content: broken emails, rejected and published uploads, leads waiting on content",
                    [
                        m(Metric.BROKEN_EMAILS),
                        m(Metric.CONTENT_REJECTED),
                        m(Metric.CONTENT_PUBLISHED),
                        m(Metric.LEADS_WAITING_ON_CONTENT),
                    ],
                ),
            ],
            [
                graph(
                    "Dispatcher: oldest due lead (seconds), leads due, failures",
                    [m(Metric.OLDEST_DUE_SECONDS, statistic="Maximum")],
                    right=[m(Metric.LEADS_DUE), m(Metric.DISPATCH_FAILURES), m(Metric.LEAD_WRITE_CONFLICTS)],
                    left_annotations=[line(DISPATCH_LAG_THRESHOLD.to_seconds(), "falling behind", "#d62728")],
                ),
                graph(
                    "Dead letters",
                    [
                        q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=name)
                        for name, q in self.dead_letter_queues.items()
                    ],
                ),
            ],
            [
                graph(
                    "SES bounce rate (account)",
                    [ses_metric("Reputation.BounceRate", statistic="Maximum", period=REPUTATION_PERIOD)],
                    left_annotations=[
                        line(BOUNCE_RATE_WARNING, "warning", "#ff7f0e"),
                        line(BOUNCE_RATE_PAUSE, "sending paused", "#d62728"),
                        line(BOUNCE_RATE_REVIEW, "AWS review", "#000000"),
                    ],
                ),
                graph(
                    "SES complaint rate (account)",
                    [ses_metric("Reputation.ComplaintRate", statistic="Maximum", period=REPUTATION_PERIOD)],
                    left_annotations=[
                        line(COMPLAINT_RATE_WARNING, "warning", "#ff7f0e"),
                        line(COMPLAINT_RATE_PAUSE, "sending paused", "#d62728"),
                        line(COMPLAINT_RATE_REVIEW, "AWS review", "#000000"),
                    ],
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Handler errors",
                    left=[
                        fn.metric_errors(period=PERIOD, statistic="Sum", label=name) for name, fn in functions.items()
                    ],
                    width=24,
                    height=WIDGET_HEIGHT,
                )
            ],
        ]
        return cloudwatch.Dashboard(self, "Dashboard", dashboard_name=DASHBOARD_NAME, widgets=rows)

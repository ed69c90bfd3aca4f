"""Alarms an operator acts on: anything in a dead-letter queue, Lambda errors, and a lagging event stream."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = cdk.Duration.minutes(5)
# The stream keeps records for 24 hours; an hour behind leaves ample time to react.
STREAM_LAG_THRESHOLD = cdk.Duration.hours(1)


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dead_letter_queues: dict[str, sqs.IQueue],
        functions: dict[str, lambda_.IFunction],
        stream_consumer: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}DlqNotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                description=f"Messages in the {name} dead-letter queue: inspect, fix, then redrive.",
            )
        for name, function in functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {name} Lambda reported errors.",
            )
        self._alarm(
            "ScorerStreamLag",
            stream_consumer.metric("IteratorAge", period=PERIOD, statistic="Maximum"),
            threshold=STREAM_LAG_THRESHOLD.to_milliseconds(),
            description="The scorer is more than an hour behind the events stream (24-hour retention).",
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
        )

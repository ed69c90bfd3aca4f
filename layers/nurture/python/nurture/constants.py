"""Names shared by the CDK app, the Lambda handlers, the local stack and the tests.

One place for resource names, environment keys and table key schemas, so that the deployed stack,
`nurture local` and the tests cannot drift apart.
"""

from __future__ import annotations

SERVICE_NAME = "nurture"
METRICS_NAMESPACE = "Nurture"

# --- DynamoDB -------------------------------------------------------------------------------
# Events table: the source of truth. One item per accepted Segment message, keyed by the profile
# that sent it (userId or anonymousId) and its messageId, so a retried message lands on the same
# key and a conditional put stores it once. Its stream (NEW_IMAGE) feeds the scorer.
EVENTS_TABLE = "nurture-events"
EVENTS_PK = "pk"  # "u#<userId>" or "a#<anonymousId>"
EVENTS_SK = "sk"  # "<messageId>"
EVENTS_TTL_ATTRIBUTE = "expires_at"
# Raw events are kept 400 days: past that, decay (90-day half-life) leaves them under 5% of
# their weight, and the lead item keeps their compact signals.
EVENTS_RETENTION_DAYS = 400

# Leads table: the projection (lead state), identity links and send records.
LEADS_TABLE = "nurture-leads"
LEADS_PK = "pk"  # "LEAD#<lead_id>" | "PROFILE#<profile_id>"
LEADS_SK = "sk"  # "STATE" | "LINK" | "SEND#<sequence>#<content_id>"
LEADS_BY_EMAIL_INDEX = "by-email"  # partition key: "email" (lower-cased)
LEADS_EMAIL_ATTRIBUTE = "email"
LEADS_DUE_INDEX = "due"  # partition key "due_shard" (string), sort key "due_at" (ISO-8601 UTC)
LEADS_DUE_SHARD_ATTRIBUTE = "due_shard"
LEADS_DUE_AT_ATTRIBUTE = "due_at"
# Erasure keeps only anonymous counts: one item per month (sort key YYYY-MM) under this partition key.
LEADS_ERASURES_PK = "ERASURES"
# A lead's state item stays under this many bytes however many events it gets (DynamoDB's limit is 400 KB):
# docs/reliability.md, "Bounded leads"; tests/unit/test_bounded_leads.py and tests/bench/flood.py measure it.
LEAD_ITEM_BUDGET_BYTES = 64 * 1024
DUE_SHARDS = 16
# An outbox entry belongs to the writer that saved it for this long; after it, whoever next writes the lead (the
# dispatcher, which finds such a lead due) publishes it. Longer than the scorer's (60 s) and the dispatcher's
# (2 min) Lambda timeouts, so a live writer that is merely slow is never raced for its own effects.
OUTBOX_LEASE_SECONDS = 300

# Powertools idempotency records (sender and ingest batches).
IDEMPOTENCY_TABLE = "nurture-idempotency"

# --- Functions ------------------------------------------------------------------------------
# Each Lambda's name and its folder under functions/, numbered in the order data flows through them.
FUNCTION_DIRS = {
    "ingest": "1_ingest",
    "scorer": "2_scorer",
    "dispatcher": "3_dispatcher",
    "sender": "4_sender",
    "content_check": "5_content_check",
    "email_events": "6_email_events",
    "alerts": "7_alerts",
    "send_guard": "8_send_guard",
}

# --- Other resources ------------------------------------------------------------------------
EVENT_BUS = "nurture"
SEND_QUEUE = "nurture-send"
SEND_DLQ = "nurture-send-dlq"
SCORER_DLQ = "nurture-scorer-dlq"
ALERTS_TOPIC = "nurture-sales-alerts"
# `Sales Alert` bus events reach the alerts function through this queue (a rule target); a qualification whose
# alert could not be delivered after ALERTS_MAX_RECEIVE_COUNT tries moves to the DLQ.
ALERTS_QUEUE = "nurture-alerts"
ALERTS_DLQ = "nurture-alerts-dlq"
ALERTS_MAX_RECEIVE_COUNT = 5
ALERTS_BATCH_SIZE = 10
# Secrets Manager secret {"webhook_url": "https://hooks.slack.com/..."}: Slack is off while it is empty.
SLACK_WEBHOOK_SECRET = "nurture/slack-webhook"  # noqa: S105 - a secret's name
# The programme's monthly counts (nurture.domain.metrics): items `METRICS#YYYY-MM` / <counter group> in the leads
# table, read by `nurture report` (docs/metrics.md).
METRICS_PK_PREFIX = "METRICS#"
# Owners assigned to leads in turn: one counter item in the leads table.
ROUND_ROBIN_PK = "ROUTING"
CONTENT_PROGRAMME_KEY = "programme.yaml"
CONTENT_EMAILS_PREFIX = "emails/"
# Marketers upload under this prefix; the content check (functions/5_content_check) copies a file that passes the
# lint to the same key without it, where the other Lambdas read. A file that fails never replaces the live one.
CONTENT_INCOMING_PREFIX = "incoming/"
# The S3 events (through EventBridge) that invoke the content check, for keys under CONTENT_INCOMING_PREFIX.
CONTENT_EVENT_DETAIL_TYPES = ("Object Created", "Object Deleted")
# Content rejections (file, line, rule, fix) for marketers and operators; not the sales alerts topic.
OPERATIONS_TOPIC = "nurture-operations"
# CloudWatch alarms notify operators here: a topic under a customer-managed KMS key whose policy admits CloudWatch
# (the SNS AWS-managed key of the other topics does not). docs/operations.md says what each alarm means.
ALARMS_TOPIC = "nurture-alarms"
# What EventBridge could not deliver to the send guard (the automatic pause of sends, functions/8_send_guard).
SEND_GUARD_DLQ = "nurture-send-guard-dlq"
CONTENT_CHECK_DLQ = "nurture-content-check-dlq"
SES_CONFIGURATION_SET = "nurture"
# SES feedback: the configuration set publishes delivery, open, click, bounce, complaint and reject records to
# the default EventBridge bus; a rule sends them to this queue, which the email-events Lambda reads
# (docs/email-feedback.md).
EMAIL_EVENTS_QUEUE = "nurture-email-events"
EMAIL_EVENTS_DLQ = "nurture-email-events-dlq"
EMAIL_EVENTS_BATCH_SIZE = 10
EMAIL_EVENTS_MAX_RECEIVE_COUNT = 5
# What the email-events Lambda keeps per email (its delivery and clicks, for the scanner rule) lives in the leads
# table under the lead's own key (`LEAD#<id>`, sort key `MAIL#<ses message id>#...`) and expires by this attribute.
LEADS_TTL_ATTRIBUTE = "expires_at"
DISPATCH_SCHEDULE_MINUTES = 5
STAGE_CHANGED_DETAIL_TYPE = "Lead Stage Changed"
SALES_ALERT_DETAIL_TYPE = "Sales Alert"
# Published by the alerts function once a qualified lead has an owner: for CRM connectors.
LEAD_QUALIFIED_DETAIL_TYPE = "Lead Qualified"
# One-click unsubscribe (RFC 8058): the route every email's List-Unsubscribe header points at.
UNSUBSCRIBE_PATH = "/v1/unsubscribe"
# The tracking snippet (nurture/static/nurture.js, docs/snippet.md): `nurture local` serves it at SNIPPET_PATH;
# deployed, CloudFront serves it from the content bucket's SNIPPET_PREFIX, the only part of the bucket it may read.
SNIPPET_FILE = "nurture.js"
SNIPPET_PATH = "/nurture.js"
SNIPPET_PREFIX = "public/"
SNIPPET_CONTENT_TYPE = "text/javascript; charset=utf-8"
# Sites load it by a fixed URL: browsers and CloudFront re-check it every five minutes, so an update reaches every
# site that soon, with no invalidation.
SNIPPET_CACHE_CONTROL = "public, max-age=300"

# --- Failure handling: what Lambda retries, and when it gives up --------------------------------
# The scorer's event source mapping on the events table's stream (bisect on error, report batch item
# failures, an SQS on-failure destination: SCORER_DLQ) and the send queue's redrive policy to SEND_DLQ.
# `nurture local` plays Lambda's pollers with these numbers; tests/infra checks the template has them.
SCORER_BATCH_SIZE = 100
SCORER_RETRY_ATTEMPTS = 5
SCORER_MAX_RECORD_AGE_SECONDS = 6 * 3600
SEND_BATCH_SIZE = 10
SEND_MAX_RECEIVE_COUNT = 3
EVENT_SOURCE = "nurture.scoring"

# --- Environment keys read by the Lambda settings model ------------------------------------
ENV_EVENTS_TABLE = "NURTURE_EVENTS_TABLE"
ENV_LEADS_TABLE = "NURTURE_LEADS_TABLE"
ENV_IDEMPOTENCY_TABLE = "NURTURE_IDEMPOTENCY_TABLE"
ENV_CONTENT_BUCKET = "NURTURE_CONTENT_BUCKET"
ENV_EVENT_BUS = "NURTURE_EVENT_BUS"
ENV_SEND_QUEUE_URL = "NURTURE_SEND_QUEUE_URL"
ENV_SES_CONFIGURATION_SET = "NURTURE_SES_CONFIGURATION_SET"
ENV_FROM_ADDRESS = "NURTURE_FROM_ADDRESS"
ENV_WRITE_KEYS_SECRET = "NURTURE_WRITE_KEYS_SECRET"  # noqa: S105 - the name of a variable holding an ARN
ENV_ALLOWED_ORIGINS = "NURTURE_ALLOWED_ORIGINS"  # comma-separated CORS origins
ENV_DUE_SHARDS = "NURTURE_DUE_SHARDS"
ENV_OPERATIONS_TOPIC_ARN = "NURTURE_OPERATIONS_TOPIC_ARN"  # only the content check publishes to it
ENV_ALERTS_TOPIC_ARN = "NURTURE_ALERTS_TOPIC_ARN"  # only the alerts function publishes to it
ENV_SLACK_WEBHOOK_SECRET = "NURTURE_SLACK_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable holding an ARN
# Secrets Manager id of {"signing_key": "..."}: the HMAC key of unsubscribe and click-through links.
ENV_SIGNING_KEY_SECRET = "NURTURE_SIGNING_KEY_SECRET"  # noqa: S105 - the name of a variable holding an ARN
ENV_PUBLIC_URL = "NURTURE_PUBLIC_URL"  # where the API answers: links in emails point here
# Local stack only (`nurture local`): in AWS the admin routes use IAM authorisation instead.
ENV_LOCAL_ADMIN_TOKEN = "NURTURE_ADMIN_TOKEN"  # noqa: S105 - the name of a variable
ENV_LOCAL_WRITE_KEY = "NURTURE_WRITE_KEY"

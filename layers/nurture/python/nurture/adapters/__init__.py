"""The ports on AWS: DynamoDB, S3, SES, EventBridge and SQS. Each adapter takes its boto3 client, so tests inject."""

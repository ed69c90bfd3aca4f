"""Content sources: the S3 content bucket (conditional GET on the ETag) and a folder, for tests and tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


class S3Content:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if etag:
            request["IfNoneMatch"] = etag
        try:
            answer = self.client.get_object(**request)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 304 or error.response.get("Error", {}).get("Code") == "304":
                return None
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"no content at s3://{self.bucket}/{key}") from error
            raise
        return answer["Body"].read().decode("utf-8"), answer["ETag"]


class FolderContent:
    """A content source backed by a folder (the repo's `content/`), for tests and tools."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(f"no content at {path}")
        stamp = str(path.stat().st_mtime_ns)
        return None if stamp == etag else (path.read_text(encoding="utf-8"), stamp)


class S3ContentStore:
    """The content bucket as the content check reads and publishes it (`pipeline.content_check.ContentStore`)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def get(self, key: str) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        body: bytes = answer["Body"].read()
        return body.decode("utf-8")

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def put(self, key: str, text: str) -> None:
        content_type = "text/yaml; charset=utf-8" if key.endswith(".yaml") else "text/markdown; charset=utf-8"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class SnsNotifier:
    """The operations topic, where the content check tells marketers why a file was not published."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> None:
        self.client.publish(TopicArn=self.topic_arn, Subject=subject, Message=message)

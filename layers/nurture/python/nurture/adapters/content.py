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

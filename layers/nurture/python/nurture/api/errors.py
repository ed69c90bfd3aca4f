"""The one error table of the API: every error a client causes or must handle, and its HTTP status."""

from __future__ import annotations

from http import HTTPStatus

from pydantic import BaseModel, Field

from nurture.pipeline.ingest import Problem


class ApiError(Exception):
    """An error a client caused or must handle, with its HTTP status: the only place errors become status codes."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, errors: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class Unauthorised(ApiError):
    status = HTTPStatus.UNAUTHORIZED


class Forbidden(ApiError):
    status = HTTPStatus.FORBIDDEN


class TooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class NotFound(ApiError):
    status = HTTPStatus.NOT_FOUND


class ErrorBody(BaseModel):
    message: str
    errors: list[Problem] = Field(default_factory=list)

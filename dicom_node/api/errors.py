"""API errors and their one mapping to HTTP statuses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    """The resource is not in a state that allows the action (e.g. retry of a running job)."""

    status_code = 409


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__, "reason": exc.reason}, status_code=exc.status_code)

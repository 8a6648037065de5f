"""FastAPI app factory: JSON routes for jobs and deliveries, plus the dashboard page."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.api import errors
from dicom_node.api.routes import deliveries, jobs
from dicom_node.config import Settings


def create_app(settings: Settings, session_factory: sessionmaker[Session]) -> FastAPI:
    app = FastAPI(title="pulmonode", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.session_factory = session_factory
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(deliveries.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return files("dicom_node.api").joinpath("dashboard.html").read_text(encoding="utf-8")

    return app

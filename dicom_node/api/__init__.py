"""HTTP API and operator dashboard (FastAPI). ``create_app(settings, session_factory)``."""

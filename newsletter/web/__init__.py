"""The readers' web app (FastAPI on uvicorn): see `app.create_app`."""

from newsletter.web.app import create_app

__all__ = ["create_app"]

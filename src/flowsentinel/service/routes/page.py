"""The web page at ``/``: upload a JSON record or a file of flows, see the verdicts."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


def _page() -> str:
    return (resources.files("flowsentinel.service") / "static" / "index.html").read_text("utf-8")


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})

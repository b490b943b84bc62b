"""Server-rendered pages; French by default, English with `?lang=en` or the browser's choice."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from omnicanal.collect import service as collect_service
from omnicanal.core.channels import KINDS
from omnicanal.store.session import SessionDep

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def number(value: int, lang: str) -> str:
    """Format a count the way each language writes it (12 345 / 12,345)."""
    text = f"{value:,}"
    return text.replace(",", "\u202f") if lang == "fr" else text


templates.env.filters["number"] = number

TEXT = {
    "fr": {
        "title": "omnicanal — données collectées",
        "lead": "Ce qui est arrivé dans omnicanal, par source et par type d'appel.",
        "events": "Événements",
        "rejected": "Refusés",
        "sources": "Sources",
        "source": "Source",
        "channel": "Canal",
        "docs": "Documentation de l'API (OpenAPI)",
        "none": "Aucune source pour l'instant : `omnicanal sources create NOM --channel web`.",
        "types": "Par type d'appel",
        "refused": "Requêtes refusées sans source connue :",
    },
    "en": {
        "title": "omnicanal — collected data",
        "lead": "What has reached omnicanal, by source and call type.",
        "events": "Events",
        "rejected": "Rejected",
        "sources": "Sources",
        "source": "Source",
        "channel": "Channel",
        "docs": "API documentation (OpenAPI)",
        "none": "No source yet: `omnicanal sources create NAME --channel web`.",
        "types": "By call type",
        "refused": "Requests refused with no known source:",
    },
}


def language(request: Request) -> str:
    """Pick the language: French unless `?lang=en` asks (or asked, through the cookie)."""
    asked = request.query_params.get("lang") or request.cookies.get("lang")
    return asked if asked in TEXT else "fr"


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    """Show what has been collected so far."""
    lang = language(request)
    refused = request.app.state.collector.refused_without_source
    stats = collect_service.stats(session=session, refused_without_source=refused)
    labels = {k: (v.label_fr if lang == "fr" else v.label_en) for k, v in KINDS.items()}
    response = templates.TemplateResponse(
        request,
        "home.html",
        {"t": TEXT[lang], "lang": lang, "stats": stats, "channel_labels": labels},
    )
    if request.query_params.get("lang") in TEXT:
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="lax")
    return response

"""Reading a message: the parts the rules look at, each looked up or parsed once.

Messages come from SDKs and importers of every kind, so nothing here trusts a
type: a value of the wrong type reads as empty and the next rule decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from omnicanal.core.channel_rules.naming import host, source_name

MAX_CAMPAIGN_CHARS = 255


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


_EMPTY: Mapping[str, Any] = {}
_UTM_KEYS = {
    "name": "name",
    "campaign": "name",
    "source": "source",
    "medium": "medium",
    "term": "term",
    "content": "content",
}


class View:
    """The parts of a message the rules read, each looked up or parsed once."""

    __slots__ = ("_query", "_utm", "context", "msg", "page", "properties")

    def __init__(self, msg: Mapping[str, Any]) -> None:
        self.msg = msg
        self.context = _dict(msg.get("context"))
        self.page = _dict(self.context.get("page"))
        self.properties = _dict(msg.get("properties"))
        self._query: dict[str, str] | None = None
        self._utm: dict[str, str] | None = None

    def url(self) -> str:
        return _str(self.page.get("url")) or _str(self.properties.get("url"))

    def referrer(self) -> str:
        return _str(self.page.get("referrer")) or _str(self.properties.get("referrer"))

    def query(self) -> dict[str, str]:
        """Return the page URL's query parameters (lower-case names, first value kept)."""
        if self._query is None:
            self._query = {}
            for holder in (self.page, self.properties):
                search, url = holder.get("search"), holder.get("url")
                if isinstance(search, str) and "=" in search:
                    self._query = _parse_query(search)
                elif isinstance(url, str) and "?" in url and "=" in url:
                    self._query = _parse_query(url[url.index("?") :])
                else:
                    continue
                break
        return self._query

    def utm(self) -> dict[str, str]:
        """Return the campaign: `context.campaign` first, then the URL's `utm_*`."""
        if self._utm is None:
            utm: dict[str, str] = {}
            for key, value in _dict(self.context.get("campaign")).items():
                name = (
                    _UTM_KEYS.get(key.lower().removeprefix("utm_"))
                    if isinstance(key, str)
                    else None
                )
                if name and name not in utm and (text := _str(value).strip()):
                    utm[name] = text
            query = self.query()
            if query:
                for key, name in (
                    ("utm_campaign", "name"),
                    ("utm_source", "source"),
                    ("utm_medium", "medium"),
                    ("utm_term", "term"),
                    ("utm_content", "content"),
                ):
                    if name not in utm and (text := query.get(key, "").strip()):
                        utm[name] = text
            if "source" in utm:
                utm["source"] = source_name(utm["source"]) or ""
            self._utm = utm
        return self._utm

    def campaign(self) -> str | None:
        if not self.context.get("campaign") and not self.query():
            return None
        name = self.utm().get("name")
        return name[:MAX_CAMPAIGN_CHARS] if name else None

    def field(self, path: tuple[str, ...]) -> str:
        """Return the text at a dotted path, with the `_host` and `utm.` virtual fields."""
        if path[0] == "utm" and len(path) == 2:
            return self.utm().get(_UTM_KEYS.get(path[1], path[1]), "")
        value = _walk(self.msg, path)
        if value is None and path[-1].endswith("_host"):
            base = _walk(self.msg, (*path[:-1], path[-1].removesuffix("_host")))
            return host(base) if isinstance(base, str) else ""
        return _scalar(value)


def _walk(value: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _parse_query(search: str) -> dict[str, str]:
    """Parse `?a=1&b=2#x` (the leading `?` optional)."""
    query = search.partition("#")[0].lstrip("?")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        params.setdefault(key.strip().lower(), value)
    return params

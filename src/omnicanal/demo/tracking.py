"""How the e-shop's analytics.js and the app's mobile SDKs shape the calls of a visit.

The e-shop speaks like analytics.js (page calls with `context.page`, `context.campaign`
parsed from the UTM parameters of the landing URL, `ajs-next-...` message ids), the app
like the mobile SDKs (`Application Opened`, `screen` calls, `context.app`, `context.os`).
A browser or app install has one anonymousId; after a login or checkout on it, every
call also carries the customer's userId. What a visit does is in `visits`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from omnicanal.demo.chunk import Chunk
from omnicanal.demo.sessions import (
    AD,
    APP_DEVICE,
    BRAND,
    DESKTOP,
    EMAIL,
    PUSH,
    QR,
    REFERRAL,
    SEARCH,
    SMS,
    SOCIAL,
)
from omnicanal.demo.shop import BRAND as BRAND_NAME
from omnicanal.demo.shop import SITE
from omnicanal.demo.world import NETWORKS, World

ESHOP, APP, NEWSLETTER, SMS_SOURCE, PUSH_SOURCE = range(5)
SOURCES = (
    ("demo-eshop", "web"),
    ("demo-app", "app"),
    ("demo-newsletter", "email"),
    ("demo-sms", "sms"),
    ("demo-push", "push"),
)
DAY_MS = 86_400_000
_WEB_LIBRARY = {"name": "analytics.js", "version": "npm:next-1.81.1"}
_APP_LIBRARIES = (
    ({"name": "analytics-kotlin", "version": "1.19.1"}, {"name": "Android", "version": "14"}),
    ({"name": "analytics-swift", "version": "1.7.1"}, {"name": "iOS", "version": "18.1"}),
)
_APP = {
    "name": "Maison Lumière",
    "version": "4.12.0",
    "build": "4120",
    "namespace": "fr.maisonlumiere.app",
}
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_AGENTS = (
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
_MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Linux; Android 14; SM-S911B) {_WEBKIT} Chrome/131.0.0.0 Mobile Safari/537.36",
)
_SEARCH_ENGINES = (
    "https://www.google.com/",
    "https://www.google.fr/",
    "https://www.bing.com/",
    "https://www.qwant.com/",
    "https://www.ecosia.org/",
)
_SOCIAL = (
    "https://www.instagram.com/",
    "https://l.facebook.com/",
    "https://www.pinterest.fr/",
    "https://www.tiktok.com/",
)
_REFERRERS = (
    "https://www.elle.fr/Mode/Tendances",
    "https://www.marieclaire.fr/mode/",
    "https://www.madmoizelle.com/mode",
    "https://www.vogue.fr/mode",
)
_AD_REFERRERS = (
    "https://www.google.com/",
    "https://l.instagram.com/",
    "https://l.facebook.com/",
    "https://www.tiktok.com/",
)
_CONTENTS = ("carrousel-robes", "video-denim", "story-soldes", "reel-nouveautes", "annonce-texte")


def iso(ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 in UTC, as analytics.js does."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def phone_as_typed(e164: str, style: int) -> str:
    """Return a French number the way a person types it in a form."""
    national = "0" + e164[3:]
    if style == 0:
        return national
    if style == 1:
        return " ".join(national[i : i + 2] for i in range(0, 10, 2))
    if style == 2:
        return e164
    return f"+33 {e164[3]} " + " ".join(e164[i : i + 2] for i in range(4, 12, 2))


@dataclass(slots=True)
class Visit:
    """What one visit knows while its messages are built."""

    source: int
    anon: str
    user: str | None
    app: bool
    agent: str
    page: dict[str, str]
    campaign: dict[str, str] | None
    out: list[dict[str, Any]]


class Tracker:
    """Builds the calls of one chunk's visits as the e-shop's and the app's SDKs send them."""

    def __init__(self, world: World, chunk: Chunk) -> None:
        assert chunk.demand.reach is not None
        self.world, self.people, self.orders = world, chunk.people, chunk.orders
        self.sessions, self.reach = chunk.sessions, chunk.demand.reach
        self.card_t, self.unsubscribed = chunk.card_t, chunk.demand.unsubscribed
        self.optin = chunk.draws.optin
        self.rnd = random.Random(f"{world.seed}-messages-{chunk.number}")
        cal = world.calendar
        start = datetime(cal.start.year, cal.start.month, cal.start.day, tzinfo=UTC)
        self.base_ms = int(start.timestamp() * 1000)
        self.offsets_ms = cal.utc_offset_min * 60_000
        self.first_index = cal.index(0)
        self.days = cal.days
        self.products = [self._product(i) for i in range(len(world.catalogue))]
        self._cum = np.cumsum(world.catalogue.popularity).tolist()

    # -- time and ids -------------------------------------------------------------------
    def ms(self, t: float) -> int:
        """Return epoch milliseconds (UTC) of a Paris time in days from the loaded start."""
        day = int((t - 2.0 / 24.0) // 1)  # clocks change at 2:00 or 3:00 in the night
        return self.base_ms + int(t * DAY_MS) - int(self.offsets_ms[day + self.first_index])

    def _web_id(self, ms: int) -> str:
        return f"ajs-next-{ms}-{self.rnd.getrandbits(128):032x}"

    def _uuid(self) -> str:
        h = f"{self.rnd.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _product(self, i: int) -> dict[str, Any]:
        cat = self.world.catalogue
        sku = cat.sku[i]
        return {
            "product_id": sku,
            "sku": sku,
            "name": cat.name[i],
            "category": cat.category[i],
            "brand": cat.brand[i],
            "price": float(cat.price[i]),
            "currency": "EUR",
            "url": f"{SITE}/p/{cat.slug[i]}-{sku.lower()}",
            "image_url": f"https://cdn.maison-lumiere.fr/p/{sku.lower()}.jpg",
        }

    # -- one visit ----------------------------------------------------------------------
    def _call(self, v: Visit, kind: str, **fields: Any) -> None:
        msg: dict[str, Any] = {"type": kind, "anonymousId": v.anon}
        if v.user is not None:
            msg["userId"] = v.user
        msg.update(fields)
        if v.app:
            msg["context"] = self._app_context(v)
        else:
            context: dict[str, Any] = {
                "library": _WEB_LIBRARY,
                "locale": "fr-FR",
                "page": v.page,
                "userAgent": v.agent,
            }
            if v.campaign is not None:
                context["campaign"] = v.campaign
            msg["context"] = context
        v.out.append(msg)

    def _app_context(self, v: Visit) -> dict[str, Any]:
        library, os_ = _APP_LIBRARIES[int(v.anon[:8], 16) & 1]  # stable per install
        context: dict[str, Any] = {
            "app": _APP,
            "library": library,
            "os": os_,
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
            "network": {"wifi": True},
        }
        if v.campaign is not None:
            context["campaign"] = v.campaign
        return context

    def _page(
        self,
        v: Visit,
        path: str,
        title: str,
        name: str,
        search: str = "",
        referrer: str | None = None,
    ) -> None:
        if v.app:
            self._call(v, "screen", name=name, properties={"title": title})
            return
        url = f"{SITE}{path}{search}"
        previous = v.page.get("url", "") if referrer is None else referrer
        v.page = {
            "path": path,
            "referrer": previous,
            "search": search,
            "title": f"{title} | {BRAND_NAME}",
            "url": url,
        }
        if referrer is None:
            v.campaign = None  # the UTM parameters are only in the landing page's URL
        self._call(v, "page", name=name, properties=dict(v.page))

    def _landing(self, v: Visit, s: int) -> None:
        entry, ref = int(self.sessions.entry[s]), int(self.sessions.ref[s])
        params, referrer, path = self._entry(entry, ref)
        if params:
            v.campaign = {
                k: params[f"utm_{k}"]
                for k in ("name", "source", "medium", "content", "term")
                if f"utm_{k}" in params
            }
            v.campaign["name"] = params["utm_campaign"]
        search = "?" + "&".join(f"{k}={val}" for k, val in params.items()) if params else ""
        if v.app:
            props: dict[str, Any] = {
                "from_background": entry == PUSH,
                "version": _APP["version"],
                "build": _APP["build"],
            }
            if entry == PUSH:
                props["url"] = f"maisonlumiere://nouveautes{search}"
            self._call(v, "track", event="Application Opened", properties=props)
            self._call(v, "screen", name="Accueil", properties={"title": "Accueil"})
            v.campaign = None
            return
        title = "Nouveautés" if path != "/" else "Mode femme et homme"
        self._page(v, path, title, title, search, referrer)

    def _entry(self, entry: int, ref: int) -> tuple[dict[str, str], str, str]:
        rnd = self.rnd
        if entry == AD:
            net = NETWORKS[ref]
            params = {
                "utm_source": net.source,
                "utm_medium": net.medium,
                "utm_campaign": net.campaign,
                "utm_content": rnd.choice(_CONTENTS),
                net.click_id: f"{rnd.getrandbits(200):050x}",
            }
            return (
                params,
                _AD_REFERRERS[ref],
                rnd.choice(("/", "/nouveautes", "/c/robes", "/c/jeans")),
            )
        if entry == BRAND:
            params = {
                "utm_source": "google",
                "utm_medium": "cpc",
                "utm_campaign": "marque",
                "utm_term": "maison+lumiere",
                "gclid": f"Cj0KCQ{rnd.getrandbits(180):045x}",
            }
            return params, "https://www.google.com/", "/"
        if entry in (EMAIL, SMS, PUSH):
            camp = self.world.campaigns[ref]
            source = {EMAIL: "newsletter", SMS: "sms", PUSH: "push"}[entry]
            params = {
                "utm_source": source,
                "utm_medium": camp.channel,
                "utm_campaign": camp.campaign_id.lower(),
            }
            if entry == EMAIL:
                params["utm_content"] = rnd.choice(("bloc-1", "bloc-2", "bandeau"))
            referrer = "https://mail.google.com/" if entry == EMAIL and rnd.random() < 0.3 else ""
            return params, referrer, "/nouveautes"
        if entry == QR:
            return (
                {"utm_source": "flyer", "utm_medium": "qr", "utm_campaign": "printemps-marais"},
                "",
                "/",
            )
        if entry == SEARCH:
            return {}, rnd.choice(_SEARCH_ENGINES), "/"
        if entry == SOCIAL:
            return {}, rnd.choice(_SOCIAL), "/nouveautes"
        if entry == REFERRAL:
            return {}, rnd.choice(_REFERRERS), "/nouveautes"
        return {}, "", "/"

    def _visit(self, s: int) -> tuple[Visit, int, float]:
        """Start session `s` on its install; return it with its person and start time."""
        se, pp = self.sessions, self.people
        person, device = int(se.person[s]), int(se.device[s])
        app = device == APP_DEVICE
        anon = (pp.anon_desktop, pp.anon_mobile, pp.anon_app)[device][person]
        agents = _AGENTS if device == DESKTOP else _MOBILE_AGENTS
        agent = agents[int(anon[:8], 16) % len(agents)]  # stable per browser
        user = pp.customer_id[person] if se.known[s] else None
        source = APP if app else ESHOP
        return Visit(source, anon, user, app, agent, {}, None, []), person, float(se.t[s])

"""Messages of visits to the e-shop and the app, as analytics.js and the mobile SDKs send them.

The e-shop speaks like analytics.js (page calls with `context.page`, `context.campaign`
parsed from the UTM parameters of the landing URL, `ajs-next-...` message ids), the app
like the mobile SDKs (`Application Opened`, `screen` calls, `context.app`, `context.os`).
E-commerce events follow Segment's e-commerce spec v2. A browser or app install has one
anonymousId; after a login or checkout on it, every call also carries the customer's
userId.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from omnicanal.demo.activity import COLLECT, COUPONS
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.sessions import (
    AD,
    APP_DEVICE,
    BRAND,
    CART,
    DESKTOP,
    EMAIL,
    PURCHASE,
    PUSH,
    QR,
    REFERRAL,
    REVIEW,
    SEARCH,
    SIGNUP,
    SMS,
    SOCIAL,
)
from omnicanal.demo.shop import BRAND as BRAND_NAME
from omnicanal.demo.shop import SITE, STORES
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
_QUERIES = (
    "robe",
    "jean",
    "pull",
    "veste lin",
    "baskets",
    "manteau",
    "chemise",
    "sac",
    "robe noire",
)
_REVIEWS = (
    "Très belle qualité, je recommande.",
    "Taille un peu petit.",
    "Conforme à la photo.",
    "Livraison rapide, tissu agréable.",
    "Couleur différente de la photo.",
)
_PHONE_STYLES = 4


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
class _Visit:
    """What one visit knows while its messages are built."""

    source: int
    anon: str
    user: str | None
    app: bool
    agent: str
    page: dict[str, str]
    campaign: dict[str, str] | None
    out: list[dict[str, Any]]


class VisitBuilder:
    """Expands one chunk's visits to the e-shop and the app into messages."""

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
    def _call(self, v: _Visit, kind: str, **fields: Any) -> None:
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

    def _app_context(self, v: _Visit) -> dict[str, Any]:
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
        v: _Visit,
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

    def _landing(self, v: _Visit, s: int) -> None:
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

    def _view(self, v: _Visit, product: int, price: float | None = None) -> dict[str, Any]:
        props = dict(self.products[product])
        if price is not None:
            props["price"] = price
        cat = self.world.catalogue
        self._page(
            v, f"/p/{cat.slug[product]}-{cat.sku[product].lower()}", cat.name[product], "Produit"
        )
        self._call(v, "track", event="Product Viewed", properties=props)
        return props

    def _line_items(self, order: int) -> list[dict[str, Any]]:
        o, cat = self.orders, self.world.catalogue
        return [
            {
                "product_id": cat.sku[p],
                "sku": cat.sku[p],
                "name": cat.name[p],
                "category": cat.category[p],
                "brand": cat.brand[p],
                "price": float(o.line_price[li]),
                "quantity": int(o.line_quantity[li]),
            }
            for li in o.lines(order)
            for p in (int(o.line_product[li]),)
        ]

    def _traits(self, person: int, t: float, full: bool) -> dict[str, Any]:
        pp = self.people
        traits: dict[str, Any] = {"email": pp.email[person]}
        if not full:
            return traits
        traits |= {"firstName": pp.first[person], "lastName": pp.last[person]}
        if pp.gives_phone(person):
            traits["phone"] = phone_as_typed(pp.phone[person], int(pp.phone_style[person]))
        traits["address"] = {
            "street": pp.street[person],
            "postalCode": pp.postcode[person],
            "city": pp.city[person],
        }
        if self.card_t[person] <= t:
            traits["card"] = pp.card[person]
        return traits

    def consent(self, person: int, t: float) -> dict[str, Any]:
        """Return the person's marketing consent at a time, as `context.consent`."""
        optin = self.optin[person]
        email = bool(optin[0]) and t < float(self.unsubscribed[person])
        return {
            "wording": "v1",
            "purposes": {
                "marketing": {"email": email, "sms": bool(optin[1]), "push": bool(optin[2])}
            },
        }

    def _identify(self, v: _Visit, person: int, t: float, with_user: bool) -> None:
        """Identify at a login or checkout (userId and traits), or a newsletter sign-up (e-mail)."""
        if with_user:
            v.user = self.people.customer_id[person]
        self._call(v, "identify", traits=self._traits(person, t, with_user))
        v.out[-1]["context"] = {**v.out[-1]["context"], "consent": self.consent(person, t)}

    def _money(self, order: int) -> dict[str, Any]:
        o = self.orders
        revenue = float(o.revenue[order])
        money: dict[str, Any] = {
            "order_id": o.number[order],
            "total": round(revenue + float(o.shipping[order]), 2),
            "revenue": revenue,
            "shipping": float(o.shipping[order]),
            "tax": round(revenue / 6.0, 2),  # VAT at 20 % is included in French retail prices
            "discount": float(o.discount[order]),
            "currency": "EUR",
        }
        if o.coupon[order] >= 0:
            money["coupon"] = COUPONS[int(o.coupon[order])][0]
        return money

    def _order_completed(self, v: _Visit, order: int) -> None:
        o = self.orders
        props = self._money(order)
        props["affiliation"] = "app" if v.app else "e-shop"
        props["products"] = self._line_items(order)
        collect = int(o.channel[order]) == COLLECT
        props["fulfilment"] = "click_and_collect" if collect else "delivery"
        if collect:
            props["store"] = STORES[int(o.store[order])].code
        self._call(v, "track", event="Order Completed", properties=props)

    def _visit(self, s: int) -> tuple[_Visit, int, float]:
        se, pp = self.sessions, self.people
        person, device = int(se.person[s]), int(se.device[s])
        app = device == APP_DEVICE
        anon = (pp.anon_desktop, pp.anon_mobile, pp.anon_app)[device][person]
        agents = _AGENTS if device == DESKTOP else _MOBILE_AGENTS
        agent = agents[int(anon[:8], 16) % len(agents)]  # stable per browser
        user = pp.customer_id[person] if se.known[s] else None
        source = APP if app else ESHOP
        return _Visit(source, anon, user, app, agent, {}, None, []), person, float(se.t[s])

    def session(self, s: int) -> tuple[int, list[dict[str, Any]]]:
        """Build the messages of one visit, without their timestamps and ids yet."""
        se = self.sessions
        v, person, t = self._visit(s)
        kind, order = int(se.kind[s]), int(se.order[s])
        self._landing(v, s)
        if se.search[s]:
            self._call(
                v,
                "track",
                event="Products Searched",
                properties={"query": self.rnd.choice(_QUERIES)},
            )
        if se.list_view[s]:
            self._list(v)
        bought = (
            [int(self.orders.line_product[li]) for li in self.orders.lines(order)]
            if order >= 0 and kind != REVIEW
            else []
        )
        if kind == REVIEW:
            bought = [int(self.orders.line_product[self.orders.line_start[order]])]
        views = int(se.views[s])
        extra = self.rnd.choices(
            range(len(self.products)), cum_weights=self._cum, k=max(views - len(bought), 0)
        )
        shown = (extra + bought)[:views] if views else []
        cart: list[dict[str, Any]] = []
        adds = int(se.adds[s])
        for i, product in enumerate(shown):
            props = self._view(v, product)
            if kind == PURCHASE and i >= len(extra):
                line = self.orders.line_start[order] + (i - len(extra))
                added = {
                    **props,
                    "price": float(self.orders.line_price[line]),
                    "quantity": int(self.orders.line_quantity[line]),
                }
                self._add(v, added, cart)
        if kind == CART:
            for k in range(adds):
                self._add(v, {**self.products[shown[k % len(shown)]], "quantity": 1}, cart)
        if se.cart[s]:
            self._page(v, "/panier", "Panier", "Panier")
            self._call(
                v,
                "track",
                event="Cart Viewed",
                properties={"cart_id": self._cart_id(v), "products": cart},
            )
        if se.checkout[s]:
            self._page(v, "/commande", "Commande", "Commande")
            props = (
                self._money(order)
                if kind == PURCHASE
                else {
                    "currency": "EUR",
                    "value": round(sum(p["price"] * p["quantity"] for p in cart), 2),
                }
            )
            self._call(v, "track", event="Checkout Started", properties={**props, "products": cart})
        if se.identify[s]:
            self._identify(v, person, t, with_user=kind != SIGNUP)
        if kind == PURCHASE:
            self._order_completed(v, order)
        if kind == REVIEW:
            self._review(v, order)
        return v.source, v.out

    def _add(self, v: _Visit, props: dict[str, Any], cart: list[dict[str, Any]]) -> None:
        props = {
            k: props[k]
            for k in ("product_id", "sku", "name", "category", "brand", "price", "quantity")
        }
        cart.append(props)
        self._call(
            v, "track", event="Product Added", properties={"cart_id": self._cart_id(v), **props}
        )

    @staticmethod
    def _cart_id(v: _Visit) -> str:
        return f"cart-{v.anon[:8]}"

    def _list(self, v: _Visit) -> None:
        cat = self.world.catalogue
        pick = self.rnd.choices(range(len(self.products)), cum_weights=self._cum, k=4)
        category = cat.category[pick[0]]
        slug = category.lower().replace("-", "")
        self._page(v, f"/c/{slug}", category, "Catégorie")
        products = [
            {
                "product_id": cat.sku[p],
                "sku": cat.sku[p],
                "name": cat.name[p],
                "price": float(cat.price[p]),
                "position": k + 1,
            }
            for k, p in enumerate(pick)
        ]
        self._call(
            v,
            "track",
            event="Product List Viewed",
            properties={"list_id": slug, "category": category, "products": products},
        )

    def _review(self, v: _Visit, order: int) -> None:
        o, cat = self.orders, self.world.catalogue
        product = int(o.line_product[o.line_start[order]])
        rating = int(o.review_rating[order])
        props = {
            "product_id": cat.sku[product],
            "review_id": f"rev-{self.rnd.getrandbits(40):010x}",
            "review_body": self.rnd.choice(_REVIEWS),
            "rating": rating,
        }
        self._call(v, "track", event="Product Reviewed", properties=props)

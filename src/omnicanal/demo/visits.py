"""What a visit to the e-shop or the app does, as the messages its SDK sends.

A visit lands (see `tracking`), may search and browse a category, views products, fills
a cart, checks out, identifies, orders or reviews; e-commerce events follow Segment's
e-commerce spec v2.
"""

from __future__ import annotations

from typing import Any

from omnicanal.demo.activity import COLLECT, COUPONS
from omnicanal.demo.sessions import CART, PURCHASE, REVIEW, SIGNUP
from omnicanal.demo.shop import STORES
from omnicanal.demo.tracking import Tracker, Visit, phone_as_typed

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


class VisitBuilder(Tracker):
    """Expands one chunk's visits to the e-shop and the app into messages."""

    def session(self, s: int) -> tuple[int, list[dict[str, Any]]]:
        """Build the messages of one visit, without their timestamps and ids yet."""
        se = self.sessions
        v, person, t = self._visit(s)
        kind, order = int(se.kind[s]), int(se.order[s])
        self._landing(v, s)
        self._browse(v, s)
        cart = self._products(v, s, kind, order)
        self._checkout(v, s, kind, order, cart)
        if se.identify[s]:
            self._identify(v, person, t, with_user=kind != SIGNUP)
        if kind == PURCHASE:
            self._order_completed(v, order)
        if kind == REVIEW:
            self._review(v, order)
        return v.source, v.out

    def _browse(self, v: Visit, s: int) -> None:
        """Search the catalogue and view a category page, if the visit does."""
        if self.sessions.search[s]:
            query = self.rnd.choice(_QUERIES)
            self._call(v, "track", event="Products Searched", properties={"query": query})
        if self.sessions.list_view[s]:
            self._list(v)

    def _shown(self, s: int, kind: int, order: int) -> tuple[list[int], int]:
        """Return the products a visit views, and how many come before the order's own.

        The order's products (or the reviewed one) are viewed last, after popular ones.
        """
        o = self.orders
        if kind == REVIEW:
            bought = [int(o.line_product[o.line_start[order]])]
        elif order >= 0:
            bought = [int(o.line_product[li]) for li in o.lines(order)]
        else:
            bought = []
        views = int(self.sessions.views[s])
        extra = self.rnd.choices(
            range(len(self.products)), cum_weights=self._cum, k=max(views - len(bought), 0)
        )
        return (extra + bought)[:views] if views else [], len(extra)

    def _products(self, v: Visit, s: int, kind: int, order: int) -> list[dict[str, Any]]:
        """View the visit's products and return its cart: a purchase's lines, or adds."""
        shown, extra = self._shown(s, kind, order)
        o = self.orders
        cart: list[dict[str, Any]] = []
        for i, product in enumerate(shown):
            props = self._view(v, product)
            if kind == PURCHASE and i >= extra:
                line = o.line_start[order] + (i - extra)
                price, quantity = float(o.line_price[line]), int(o.line_quantity[line])
                self._add(v, {**props, "price": price, "quantity": quantity}, cart)
        if kind == CART:
            for k in range(int(self.sessions.adds[s])):
                self._add(v, {**self.products[shown[k % len(shown)]], "quantity": 1}, cart)
        return cart

    def _checkout(
        self, v: Visit, s: int, kind: int, order: int, cart: list[dict[str, Any]]
    ) -> None:
        """View the cart and start the checkout, if the visit does."""
        se = self.sessions
        if se.cart[s]:
            self._page(v, "/panier", "Panier", "Panier")
            props = {"cart_id": self._cart_id(v), "products": cart}
            self._call(v, "track", event="Cart Viewed", properties=props)
        if se.checkout[s]:
            self._page(v, "/commande", "Commande", "Commande")
            if kind == PURCHASE:
                money = self._money(order)
            else:
                value = round(sum(p["price"] * p["quantity"] for p in cart), 2)
                money = {"currency": "EUR", "value": value}
            props = {**money, "products": cart}
            self._call(v, "track", event="Checkout Started", properties=props)

    def _view(self, v: Visit, product: int) -> dict[str, Any]:
        props = dict(self.products[product])
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

    def _identify(self, v: Visit, person: int, t: float, with_user: bool) -> None:
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

    def _order_completed(self, v: Visit, order: int) -> None:
        o = self.orders
        props = self._money(order)
        props["affiliation"] = "app" if v.app else "e-shop"
        props["products"] = self._line_items(order)
        collect = int(o.channel[order]) == COLLECT
        props["fulfilment"] = "click_and_collect" if collect else "delivery"
        if collect:
            props["store"] = STORES[int(o.store[order])].code
        self._call(v, "track", event="Order Completed", properties=props)

    def _add(self, v: Visit, props: dict[str, Any], cart: list[dict[str, Any]]) -> None:
        props = {
            k: props[k]
            for k in ("product_id", "sku", "name", "category", "brand", "price", "quantity")
        }
        cart.append(props)
        self._call(
            v, "track", event="Product Added", properties={"cart_id": self._cart_id(v), **props}
        )

    @staticmethod
    def _cart_id(v: Visit) -> str:
        return f"cart-{v.anon[:8]}"

    def _list(self, v: Visit) -> None:
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

    def _review(self, v: Visit, order: int) -> None:
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

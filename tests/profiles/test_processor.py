"""The processor: one person across channels, guard rails, orders, consents, resuming."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from omnicanal.identity import service as identity
from omnicanal.profiles import service
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from tests.conftest import SourceKey, make_source

T0 = "2026-03-01T10:00:00.000Z"


def at(minutes: int) -> str:
    hours, minute = divmod(minutes, 60)
    return f"2026-03-01T{10 + hours:02d}:{minute:02d}:00.000Z"


def send(client: TestClient, source: SourceKey, messages: list[dict[str, Any]]) -> None:
    auth = base64.b64encode(f"{source.write_key}:".encode()).decode()
    for i, message in enumerate(messages):
        message.setdefault("messageId", f"{source.id}-{len(messages)}-{i}-{message.get('event')}")
    answer = client.post(
        "/v1/import", json={"batch": messages}, headers={"Authorization": f"Basic {auth}"}
    )
    assert answer.status_code == 200, answer.text


def process(db: Database, batch_size: int = 2_000) -> int:
    return Processor(db, batch_size=batch_size).drain()


def person(db: Database, reference: str) -> dict[str, Any]:
    with db.engine.connect() as conn:
        return service.profile_360(conn, reference)


def people(db: Database) -> int:
    with db.engine.connect() as conn:
        return service.profile_count(conn)


def test_anonymous_history_joins_the_person_at_identify(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    send(
        client,
        source,
        [
            {"type": "page", "anonymousId": "a1", "name": "Accueil", "timestamp": at(0)},
            {"type": "track", "anonymousId": "a1", "event": "Product Viewed", "timestamp": at(1)},
            {
                "type": "identify",
                "anonymousId": "a1",
                "userId": "u1",
                "traits": {"email": " Marie.Dupont@Exemple.FR ", "firstName": "Marie"},
                "timestamp": at(2),
            },
        ],
    )
    assert process(db) == 3
    found = person(db, "marie.dupont@exemple.fr")
    assert people(db) == 1
    assert {(i["kind"], i["value"]) for i in found["identities"]} == {
        ("anonymous_id", "a1"),
        ("user_id", "u1"),
        ("email", "marie.dupont@exemple.fr"),
    }
    # One timeline, most recent first, the anonymous history included.
    assert [(e["type"], e["event"]) for e in found["timeline"]] == [
        ("identify", None),
        ("track", "Product Viewed"),
        ("page", "Accueil"),
    ]
    assert found["traits"]["firstName"]["value"] == "Marie"
    assert found["traits"]["firstName"]["source"] == "web"
    assert found["merges"] == []  # one profile from the start: nothing had to be joined


def test_records_from_several_channels_merge_with_their_evidence_and_unmerge(
    client: TestClient, db: Database
) -> None:
    web = make_source(db, "eshop", "web")
    till = make_source(db, "till", "store:paris")
    calls = make_source(db, "calls", "call_centre")
    send(
        client,
        web,
        [
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "w1",
                "traits": {"email": "jean@exemple.fr"},
                "timestamp": at(0),
            }
        ],
    )
    send(
        client,
        calls,
        [
            {
                "type": "track",
                "anonymousId": "call:1",
                "event": "Call Centre Contact",
                "context": {"traits": {"phone": "06 71 28 45 93", "lastName": "Martin"}},
                "timestamp": at(5),
            }
        ],
    )
    assert process(db) == 2
    assert people(db) == 2
    send(
        client,
        till,
        [
            {
                "type": "track",
                "anonymousId": "till:1",
                "event": "Order Completed",
                "properties": {
                    "order_id": "T-1",
                    "total": 59.9,
                    "currency": "EUR",
                    "products": [{"sku": "A", "price": 59.9, "quantity": 1}],
                },
                "context": {"traits": {"email": "JEAN@exemple.fr", "phone": "+33671284593"}},
                "timestamp": at(10),
            }
        ],
    )
    assert process(db) == 1
    assert people(db) == 1
    found = person(db, "+33 6 71 28 45 93")
    assert {c["channel"] for c in found["channels"]} == {"web", "call_centre", "store:paris"}
    assert found["orders_by_channel"] == [
        {"channel": "store:paris", "orders": 1, "revenue_eur": 59.9, "refunded_eur": 0.0}
    ]
    (merge,) = found["merges"]
    assert merge["rule"] == "shared_identifier"
    assert merge["evidence"]["kind"] == "phone"
    assert merge["evidence"]["value"] == "+33671284593"
    # Undo it: the call-centre record leaves with its identifiers and events, for good.
    with db.engine.begin() as conn:
        identity.unmerge(conn, merge["merged_id"])
    assert people(db) == 2
    split = person(db, str(merge["merged_id"]))
    assert [e["event"] for e in split["timeline"]] == ["Call Centre Contact"]
    send(
        client,
        till,
        [
            {
                "type": "track",
                "anonymousId": "till:2",
                "event": "Store Visit",
                "context": {"traits": {"email": "jean@exemple.fr", "phone": "0671284593"}},
                "timestamp": at(20),
            }
        ],
    )
    process(db)
    assert people(db) == 2  # a merge undone by hand is not redone


def test_a_shared_family_email_never_merges_two_accounts(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    family = "famille.durand@exemple.fr"
    send(
        client,
        source,
        [
            {"type": "identify", "userId": "u1", "traits": {"email": family}, "timestamp": at(0)},
            {"type": "identify", "userId": "u2", "traits": {"email": family}, "timestamp": at(1)},
            {
                "type": "identify",
                "anonymousId": "n1",
                "traits": {"email": family},
                "timestamp": at(2),
            },
        ],
    )
    process(db)
    with db.engine.connect() as conn:
        shared = conn.execute(text("SELECT shared FROM identity WHERE kind = 'email'")).scalar_one()
        conflicts = conn.execute(text("SELECT reason FROM identity_conflict")).scalars().all()
    assert shared
    assert any("shared by several people" in c for c in conflicts)
    assert people(db) == 3
    household = person(db, "u1")["households"]
    assert [h["key"] for h in household] == [f"email:{family}"]
    assert person(db, "u2")["id"] in household[0]["members"]


def _receipt(number: int, minutes: int, **traits: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "anonymousId": f"till:{number}",
        "event": "Order Completed",
        "properties": {"order_id": f"T{number}", "total": 20},
        "context": {"traits": traits},
        "timestamp": at(minutes),
    }


def test_a_family_member_giving_the_account_email_at_the_till_stays_apart(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    head = "jean.martin@exemple.fr"
    till = make_source(db, "till", "store:lyon")
    send(
        client,
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email": head, "firstName": "Jean", "lastName": "Martin"},
                "timestamp": at(0),
            }
        ],
    )
    send(
        client,
        till,
        [
            _receipt(1, 5, email=head, firstName="Jean", lastName="MARTIN"),
            _receipt(2, 6, email=head, firstName="Jaen", lastName="Martin"),  # a slip
            _receipt(3, 7, email=head, firstName="Martin", lastName="Jean"),  # swapped
            _receipt(4, 8, email=head, firstName="Sophie", lastName="Martin"),  # his wife
            _receipt(5, 9, email=head, firstName="Sophie", lastName="Martin", card="CARD-77"),
            _receipt(6, 10, card="CARD-77", firstName="Sophie"),
        ],
    )
    process(db)
    jean = person(db, "u1")
    assert {o["order_key"] for o in jean["orders"]} == {"lyon:T1", "lyon:T2", "lyon:T3"}
    sophie = person(db, "CARD-77")
    assert sophie["id"] != jean["id"]
    assert {o["order_key"] for o in sophie["orders"]} == {"lyon:T5", "lyon:T6"}
    assert sophie["traits"]["firstName"]["value"] == "Sophie"
    # Her receipts are not his; and what a cashier typed (the swapped receipt 3) does not
    # replace the name he gave when he signed in.
    assert jean["traits"]["firstName"]["value"] == "Jean"
    assert jean["traits"]["firstName"]["from"] == "identify"
    assert people(db) == 3  # receipt 4 carries nothing else: a profile of its own
    with db.engine.connect() as conn:
        shared = conn.execute(
            text("SELECT shared FROM identity WHERE kind = 'email' AND value = :v"), {"v": head}
        ).scalar_one()
        reasons = conn.execute(text("SELECT reason FROM identity_conflict")).scalars().all()
    assert shared
    assert any("another first name" in r for r in reasons)
    household = person(db, "u1")["households"]
    assert [h["key"] for h in household] == [f"email:{head}"]
    assert sophie["id"] in household[0]["members"]


def test_details_typed_at_the_till_fill_gaps_but_do_not_replace_the_customers_own(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    till = make_source(db, "till", "store:lyon")
    send(
        client,
        source,
        [
            {
                "type": "identify",
                "userId": "u9",
                "traits": {"email": "lea.roux@exemple.fr", "firstName": "Léa", "lastName": "Roux"},
                "timestamp": at(0),
            }
        ],
    )
    send(
        client,
        till,
        [
            _receipt(
                1,
                10,
                email="lea.roux@exemple.fr",
                firstName="Lea",
                lastName="ROUX",
                postalCode="69003",
            )
        ],
    )
    process(db)
    lea = person(db, "u9")
    traits = {name: entry["value"] for name, entry in lea["traits"].items()}
    assert traits["firstName"] == "Léa"  # as she wrote it, not as typed at the till
    assert traits["lastName"] == "Roux"
    assert traits["postalCode"] == "69003"  # a gap the receipt fills
    assert lea["traits"]["postalCode"]["from"] == "event"
    send(
        client,
        source,
        [
            {
                "type": "identify",
                "userId": "u9",
                "traits": {"lastName": "Roux-Martin"},
                "timestamp": at(20),
                "messageId": "u9-renamed",
            }
        ],
    )
    process(db)
    assert person(db, "u9")["traits"]["lastName"]["value"] == "Roux-Martin"  # she changed it


def test_a_household_stops_growing_at_its_limit(client: TestClient, db: Database) -> None:
    till = make_source(db, "till", "store:lyon")
    names = ["Anne", "Bruno", "Chloe", "David", "Elodie", "Fabien", "Gilles", "Helene"]
    names += ["Ines", "Julien", "Karim", "Lucie"]
    shared = "bureau.martin@exemple.fr"
    send(
        client,
        till,
        [_receipt(i, i, email=shared, firstName=n, card=f"C{i}") for i, n in enumerate(names)],
    )
    process(db)
    assert people(db) == len(names)  # one e-mail, twelve first names: nobody merged
    household = person(db, "C0")["households"]
    assert [h["key"] for h in household] == [f"email:{shared}"]
    assert len(household[0]["members"]) == 7  # the others: eight in all, the limit
    assert person(db, "C11")["households"] == []


def test_a_generic_till_email_does_not_collapse_customers(client: TestClient, db: Database) -> None:
    till = make_source(db, "till", "store:lyon")
    send(
        client,
        till,
        [
            {
                "type": "track",
                "anonymousId": f"till:{i}",
                "event": "Order Completed",
                "properties": {"order_id": f"R{i}", "total": 10},
                "context": {"traits": {"email": "magasin@boutique-lyon.fr"}},
                "timestamp": at(i),
            }
            for i in range(30)
        ],
    )
    process(db)
    assert people(db) == 30


def test_a_card_limit_holds_within_one_batch_across_a_merge_made_in_it(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    # Two browsers, a card each, joined by a login: two cards, the limit. A third card
    # in the same batch is refused, though none of it is in the store yet.
    send(
        client,
        source,
        [
            {"type": "identify", "anonymousId": "a1", "traits": {"card": "C1"}, "timestamp": at(0)},
            {"type": "identify", "anonymousId": "a2", "traits": {"card": "C2"}, "timestamp": at(1)},
            {"type": "identify", "userId": "u", "anonymousId": "a1", "timestamp": at(2)},
            {"type": "identify", "userId": "u", "anonymousId": "a2", "timestamp": at(3)},
            {"type": "identify", "userId": "u", "traits": {"card": "C3"}, "timestamp": at(4)},
        ],
    )
    process(db)
    root = person(db, "u")["id"]
    with db.engine.connect() as conn:
        cards = conn.execute(
            text(
                "SELECT i.value FROM identity i JOIN profile p ON p.id = i.profile_id "
                "WHERE i.kind = 'card' AND COALESCE(p.merged_into, p.id) = :root ORDER BY 1"
            ),
            {"root": root},
        ).scalars()
        assert list(cards) == ["C1", "C2"]
        refused = conn.execute(
            text("SELECT count(*) FROM identity_conflict WHERE kind = 'card' AND value = 'C3'")
        ).scalar_one()
    assert refused == 1


def test_a_second_user_on_one_browser_is_another_person(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    send(
        client,
        source,
        [
            {"type": "identify", "userId": "u1", "anonymousId": "laptop", "timestamp": at(0)},
            {"type": "identify", "userId": "u2", "anonymousId": "laptop", "timestamp": at(1)},
        ],
    )
    process(db)
    assert people(db) == 2
    assert person(db, "u1")["id"] != person(db, "u2")["id"]


def test_orders_refunds_and_click_and_collect(client: TestClient, db: Database) -> None:
    web = make_source(db, "eshop", "web")
    till = make_source(db, "till", "store:paris")
    order = {
        "type": "track",
        "userId": "u1",
        "event": "Order Completed",
        "timestamp": at(0),
        "properties": {
            "order_id": "W-1",
            "total": 120,
            "revenue": 100,
            "shipping": 5,
            "tax": 20,
            "currency": "EUR",
            "fulfilment": "click_and_collect",
            "products": [
                {"sku": "A", "price": 40, "quantity": 2},
                {"sku": "B", "price": 40, "quantity": 1},
            ],
        },
    }
    send(client, web, [order, {**order, "messageId": "a retry under another id"}])
    send(
        client,
        till,
        [
            {
                "type": "track",
                "anonymousId": "till:p1",
                "event": "Order Completed",
                "timestamp": at(60),
                "properties": {
                    "order_id": "P-1",
                    "total": 0,
                    "fulfilment": "click_and_collect",
                    "order_ref": "W-1",
                },
                "context": {"traits": {"card": "C-1"}},
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Refunded",
                "timestamp": at(90),
                "properties": {
                    "order_id": "W-1",
                    "products": [{"sku": "A", "price": 40, "quantity": 1}],
                },
            },
        ],
    )
    process(db)
    with db.engine.connect() as conn:
        orders = conn.execute(
            text(
                "SELECT order_key, store, fulfilment, status, total_eur_cents, "
                "refunded_eur_cents FROM orders"
            )
        ).all()
        lines = conn.execute(
            text("SELECT sku, quantity, returned_quantity FROM order_line ORDER BY sku")
        ).all()
    assert [tuple(o) for o in orders] == [
        ("W-1", "paris", "click_and_collect", "partially_refunded", 12000, 4000)
    ]
    assert [tuple(line) for line in lines] == [("A", 2, 1), ("B", 1, 0)]
    # Collecting the order with its reference joins the receipt (and its card) to the buyer.
    buyer = person(db, "u1")
    assert person(db, "C-1")["id"] == buyer["id"]
    assert [m["rule"] for m in buyer["merges"]] == ["order_reference"]


def test_a_return_at_the_till_finds_the_order_of_the_person_joined_in_the_same_batch(
    client: TestClient, db: Database
) -> None:
    web = make_source(db, "eshop", "web")
    till = make_source(db, "till", "store:lyon")
    card = {"type": "track", "event": "Store Visit", "context": {"traits": {"card": "C-5"}}}
    send(client, till, [{**card, "anonymousId": "till:r0", "timestamp": at(0)}])
    send(
        client,
        web,
        [
            {"type": "identify", "userId": "u5", "traits": {"email": "lea.martin@free.fr"}},
            {
                "type": "track",
                "userId": "u5",
                "event": "Order Completed",
                "timestamp": at(1),
                "properties": {
                    "order_id": "W-5",
                    "total": 80,
                    "products": [{"sku": "S1", "price": 50}, {"sku": "S2", "price": 30}],
                },
            },
        ],
    )
    process(db)
    assert person(db, "C-5")["id"] != person(db, "u5")["id"]
    joined = {
        "type": "track",
        "anonymousId": "till:r6",
        "event": "Store Visit",
        "timestamp": at(50),
        "context": {"traits": {"card": "C-5", "email": " Lea.Martin@free.fr"}},
    }
    refund = {  # a return on the card alone, with the till's own receipt number
        "type": "track",
        "anonymousId": "till:r7",
        "event": "Order Refunded",
        "timestamp": at(60),
        "properties": {"order_id": "R-5", "products": [{"sku": "S1", "price": 50}]},
        "context": {"traits": {"card": "C-5"}},
    }
    send(client, till, [joined, refund])
    assert process(db) == 2  # one batch: the join and the return are processed together
    assert person(db, "C-5")["id"] == person(db, "u5")["id"]
    with db.engine.connect() as conn:
        order = conn.execute(text("SELECT status, refunded_eur_cents FROM orders")).one()
        linked = conn.execute(text("SELECT order_id IS NOT NULL FROM order_refund")).scalar()
        returned = conn.execute(
            text("SELECT sku, returned_quantity FROM order_line ORDER BY sku")
        ).all()
    assert linked
    assert tuple(order) == ("partially_refunded", 5000)
    assert [tuple(r) for r in returned] == [("S1", 1), ("S2", 0)]


def test_a_refund_finds_no_order_placed_after_it_in_the_log(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    refund = {
        "type": "track",
        "userId": "u8",
        "event": "Order Refunded",
        "timestamp": at(0),
        "properties": {"order_id": "W-8", "total": 10},
    }
    order = {
        "type": "track",
        "userId": "u8",
        "event": "Order Completed",
        "timestamp": at(1),
        "properties": {"order_id": "W-8", "total": 30},
    }
    send(client, source, [refund, order])  # one batch, the refund first
    process(db)
    send(client, source, [{**refund, "messageId": "the refund again, later"}])
    process(db)
    with db.engine.connect() as conn:
        refunds = conn.execute(
            text("SELECT order_id IS NOT NULL FROM order_refund ORDER BY event_id")
        ).scalars()
        status = conn.execute(text("SELECT status, refunded_eur_cents FROM orders")).one()
        assert list(refunds) == [False, True]
    assert tuple(status) == ("partially_refunded", 1000)


def test_an_order_sent_again_in_a_later_batch_is_stored_once(
    client: TestClient, db: Database
) -> None:
    web = make_source(db, "eshop", "web")
    order = {
        "type": "track",
        "userId": "u1",
        "event": "Order Completed",
        "timestamp": at(0),
        "properties": {
            "order_id": "W-9",
            "total": 30,
            "products": [{"sku": "A", "price": 10, "quantity": 3}],
        },
    }
    other = {**order, "properties": {**order["properties"], "order_id": "W-10"}}
    send(client, web, [order])
    process(db)
    # The shop's retry, under another messageId, beside a new order of the same batch.
    send(client, web, [{**order, "messageId": "retry"}, {**other, "messageId": "new"}])
    process(db)

    with db.engine.connect() as conn:
        orders = conn.execute(
            text("SELECT order_key, total_eur_cents FROM orders ORDER BY order_key")
        ).all()
        lines = conn.execute(
            text(
                "SELECT o.order_key, l.sku, l.quantity FROM order_line l "
                "JOIN orders o ON o.id = l.order_id ORDER BY o.order_key"
            )
        ).all()
        events = conn.execute(
            text(
                "SELECT e.order_id, e.revenue_cents, o.order_key FROM profile_event e "
                "LEFT JOIN orders o ON o.id = e.order_id ORDER BY e.event_id"
            )
        ).all()
    assert [tuple(o) for o in orders] == [("W-10", 3000), ("W-9", 3000)]
    assert [tuple(line) for line in lines] == [("W-10", "A", 3), ("W-9", "A", 3)]
    # The first event carries the order and its revenue, the retry neither, the new one its own.
    assert [(r.order_key, r.revenue_cents) for r in events] == [
        ("W-9", 3000),
        (None, None),
        ("W-10", 3000),
    ]


def test_a_call_or_a_return_quoting_an_order_joins_its_customer(
    client: TestClient, db: Database
) -> None:
    web = make_source(db, "eshop", "web")
    calls = make_source(db, "calls", "call_centre")
    till = make_source(db, "till", "store:lyon")
    bought = {
        "type": "track",
        "userId": "u7",
        "event": "Order Completed",
        "timestamp": at(0),
        "properties": {"order_id": "W-7", "total": 80, "currency": "EUR"},
        "context": {"traits": {"email": "claire@exemple.fr"}},
    }
    send(client, web, [bought])
    send(
        client,
        calls,
        [
            {  # the buyer calls from a number the shop has never seen
                "type": "track",
                "anonymousId": "calls:1",
                "event": "Call Centre Contact",
                "timestamp": at(30),
                "properties": {"reason": "delivery", "order_ref": "W-7"},
                "context": {"traits": {"phone": "06 71 28 45 93", "lastName": "Martin"}},
            },
            {  # another caller quotes an order that does not exist: nobody is joined
                "type": "track",
                "anonymousId": "calls:2",
                "event": "Call Centre Contact",
                "timestamp": at(31),
                "properties": {"reason": "delivery", "order_ref": "W-404"},
                "context": {"traits": {"phone": "06 12 98 76 54"}},
            },
        ],
    )
    send(
        client,
        till,
        [
            {  # the goods come back to a store, on a loyalty card
                "type": "track",
                "anonymousId": "till:r1",
                "event": "Order Refunded",
                "timestamp": at(60),
                "properties": {"order_id": "R-1", "total": 80, "order_ref": "W-7"},
                "context": {"traits": {"card": "C-77"}},
            }
        ],
    )
    process(db)
    buyer = person(db, "u7")
    assert person(db, "+33671284593")["id"] == buyer["id"]
    assert person(db, "C-77")["id"] == buyer["id"]
    assert person(db, "+33612987654")["id"] != buyer["id"]
    joined = [m for m in buyer["merges"] if m["rule"] == "order_reference"]
    assert len(joined) == 2
    assert {m["evidence"]["value"] for m in joined} == {"W-7"}


def test_consents_are_kept_when_they_change(
    client: TestClient, db: Database, source: SourceKey
) -> None:
    consent = {"wording": "v2", "purposes": {"marketing": {"email": True, "sms": False}}}
    send(
        client,
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "context": {"consent": consent},
                "timestamp": at(0),
            },
            {
                "type": "identify",
                "userId": "u1",
                "context": {"consent": consent},
                "timestamp": at(1),
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Unsubscribed",
                "timestamp": at(2),
                "properties": {"channel": "email"},
            },
        ],
    )
    process(db)
    consents = person(db, "u1")["consents"]
    assert [
        (c["purpose"], c["channel"], c["granted"], c["wording_version"])
        for c in consents["history"]
    ] == [
        ("marketing", "email", True, "v2"),
        ("marketing", "sms", False, "v2"),
        ("marketing", "email", False, None),
    ]
    current = {(c["purpose"], c["channel"]): c["granted"] for c in consents["current"]}
    assert current == {("marketing", "email"): False, ("marketing", "sms"): False}


@pytest.mark.parametrize("batch_size", [1, 7])
def test_processing_in_small_batches_with_fresh_processors_gives_the_same_result(
    client: TestClient, db: Database, source: SourceKey, batch_size: int
) -> None:
    messages = []
    for p in range(20):
        messages += [
            {"type": "page", "anonymousId": f"a{p}", "timestamp": at(p)},
            {
                "type": "identify",
                "anonymousId": f"a{p}",
                "userId": f"u{p}",
                "timestamp": at(p + 1),
                "traits": {"email": f"p{p}@exemple.fr"},
            },
            {
                "type": "track",
                "anonymousId": f"till{p}",
                "event": "Store Visit",
                "timestamp": at(p + 2),
                "context": {"traits": {"email": f"P{p}@exemple.fr"}},
            },
        ]
    send(client, source, messages)
    # A new processor per batch: nothing cached survives, as after a crash and restart.
    while Processor(db, batch_size=batch_size).process_batch().events:
        pass
    assert people(db) == 20
    with db.engine.connect() as conn:
        processed = conn.execute(text("SELECT COUNT(*) FROM profile_event")).scalar_one()
        checkpoint = conn.execute(
            text("SELECT last_event_id FROM processor_checkpoint WHERE name = 'main'")
        ).scalar_one()
        last = conn.execute(text("SELECT MAX(id) FROM collect_event")).scalar_one()
    assert processed == 60
    assert checkpoint == last

"""Probabilistic matching applied to the store: merges with evidence, guard rails, review."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest
from faker import Faker
from sqlalchemy import text

from omnicanal.core.errors import InvalidError
from omnicanal.identity import linkage, matching
from omnicanal.identity import service as identity_service
from omnicanal.profiles import service
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from tests.conftest import make_source
from tests.profiles.logs import write_log

PEOPLE = 400


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word))
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + "e" + word[i:]


def _world(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[int]]:
    fake = Faker("fr_FR")
    fake.seed_instance(7)
    web: list[dict[str, Any]] = []
    till: list[dict[str, Any]] = []
    copied: set[int] = set()
    for p in range(PEOPLE):
        first, last = fake.first_name(), fake.last_name()
        postcode, street = fake.postcode(), fake.street_address()
        web.append(
            {
                "type": "identify",
                "userId": f"u{p}",
                "timestamp": "2026-02-01T10:00:00Z",
                "traits": {
                    "firstName": first,
                    "lastName": last,
                    "email": f"c{p}@exemple.fr",
                    "address": {"postalCode": postcode, "street": street},
                },
            }
        )
        if p % 4 == 0:  # a till receipt with a name, a postcode, and sometimes a typo
            copied.add(p)
            name = _typo(rng, last) if rng.random() < 0.4 and len(last) > 4 else last
            till.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "anonymousId": f"till:{p}",
                    "timestamp": "2026-03-01T10:00:00Z",
                    "properties": {"order_id": f"T{p}", "total": 30},
                    "context": {
                        "traits": {
                            "firstName": first,
                            "lastName": name,
                            "address": {"postalCode": postcode, "street": street},
                        }
                    },
                }
            )
    # Two account holders with the same name at the same address: never one person.
    for twin in ("a", "b"):
        web.append(
            {
                "type": "identify",
                "userId": f"twin-{twin}",
                "timestamp": "2026-02-02T10:00:00Z",
                "traits": {
                    "firstName": "Camille",
                    "lastName": "Lefebvre",
                    "email": f"camille.{twin}@exemple.fr",
                    "address": {"postalCode": "69003", "street": "4 rue Paul Bert"},
                },
            }
        )
    return web, till, copied


def test_till_receipts_join_their_customers_and_guard_rails_hold(db: Database) -> None:
    rng = random.Random(3)
    web, till, copied = _world(rng)
    write_log(db, make_source(db, "eshop", "web").id, web)
    write_log(db, make_source(db, "till", "store:lyon").id, till)
    Processor(db).drain()
    with db.engine.connect() as conn:
        before = service.profile_count(conn)
    assert before == PEOPLE + 2 + len(till)

    steps: list[tuple[str, int]] = []
    with db.engine.begin() as conn:
        done = linkage.run(conn, progress=lambda step, n: steps.append((step, n)))
    with db.engine.connect() as conn:
        joined = {
            int(r.anonymous.split(":")[1])
            for r in conn.execute(
                text(
                    "SELECT i.value AS anonymous FROM identity i "
                    "JOIN profile p ON p.id = i.profile_id "
                    "JOIN identity u ON u.kind = 'user_id' JOIN profile q ON q.id = u.profile_id "
                    "WHERE i.kind = 'anonymous_id' AND i.value LIKE 'till:%' "
                    "AND COALESCE(p.merged_into, p.id) = COALESCE(q.merged_into, q.id) "
                    "AND u.value = 'u' || SUBSTR(i.value, 6)"
                )
            )
        }
        wrong = conn.execute(
            text(
                "SELECT COUNT(*) FROM identity i JOIN profile p ON p.id = i.profile_id "
                "JOIN identity u ON u.kind = 'user_id' JOIN profile q ON q.id = u.profile_id "
                "WHERE i.kind = 'anonymous_id' AND i.value LIKE 'till:%' "
                "AND COALESCE(p.merged_into, p.id) = COALESCE(q.merged_into, q.id) "
                "AND u.value <> 'u' || SUBSTR(i.value, 6)"
            )
        ).scalar_one()
        merges = (
            conn.execute(text("SELECT evidence FROM identity_merge WHERE rule = 'match'"))
            .scalars()
            .all()
        )
        twins = {service.resolve(conn, "twin-a"), service.resolve(conn, "twin-b")}
    assert wrong == 0  # no receipt given to the wrong customer
    assert len(joined) / len(copied) >= 0.9
    assert done.merged == len(merges)
    assert [step for step, _n in steps] == ["records", "training", "scoring", "merging"]
    # Fewer than 50,000 records: the estimate counts every pair, as count_candidate_pairs.
    assert dict(steps)["scoring"] == done.candidate_pairs >= done.pairs > 0
    assert '"probability"' in merges[0]
    assert '"last_name"' in merges[0]
    assert len(twins) == 2  # same name, same address, two accounts: two people


def test_a_match_undone_by_hand_is_not_redone_and_a_second_run_queues_nothing_twice(
    db: Database,
) -> None:
    web, till, _copied = _world(random.Random(3))
    write_log(db, make_source(db, "eshop", "web").id, web)
    write_log(db, make_source(db, "till", "store:lyon").id, till)
    Processor(db).drain()
    with db.engine.begin() as conn:
        first = linkage.run(conn)
    assert first.merged > 1
    with db.engine.begin() as conn:
        merged_id, survivor_id = conn.execute(
            text(
                "SELECT merged_id, survivor_id FROM identity_merge WHERE rule = 'match' "
                "ORDER BY id LIMIT 1"
            )
        ).one()
        identity_service.unmerge(conn, merged_id)
        people = service.profile_count(conn)
    with db.engine.begin() as conn:
        second = linkage.run(conn)
    with db.engine.connect() as conn:
        roots = {identity_service.root_of(conn, p) for p in (merged_id, survivor_id)}
        assert service.profile_count(conn) == people
    assert len(roots) == 2  # the pair someone separated stays apart
    assert second.merged == 0
    assert second.refused >= 1
    assert second.queued == 0  # every doubtful pair is already before a reviewer


def test_review_queue_accept_and_reject(db: Database) -> None:
    rng = random.Random(5)
    web, till, _copied = _world(rng)
    write_log(db, make_source(db, "eshop", "web").id, web)
    write_log(db, make_source(db, "till", "store:lyon").id, till)
    Processor(db).drain()
    with db.engine.connect() as conn:
        a, b = (service.resolve(conn, f"u{p}") for p in (1, 2))
        c, d = (service.resolve(conn, f"u{p}") for p in (3, 5))
    with db.engine.begin() as conn:
        for left, right in ((a, b), (c, d)):
            conn.execute(
                text(
                    "INSERT INTO identity_match_review (left_id, right_id, probability, evidence, "
                    'status, created_ms) VALUES (:l, :r, 0.7, \'{"postcode": "exact"}\', '
                    "'pending', 0)"
                ),
                {"l": left, "r": right},
            )
    with db.engine.connect() as conn:
        queue = linkage.pending(conn)
    assert [(q["left_id"], q["right_id"]) for q in queue] == [(a, b), (c, d)]
    with db.engine.begin() as conn:
        # Two account holders: accepting cannot merge them, the guard rails refuse.
        assert linkage.decide_review(conn, queue[0]["id"], accept=True) == "refused"
        assert linkage.decide_review(conn, queue[1]["id"], accept=False) == "rejected"
    with db.engine.begin() as conn, pytest.raises(InvalidError):
        linkage.decide_review(conn, queue[1]["id"], accept=True)
    with db.engine.connect() as conn:
        assert linkage.pending(conn) == []


# --- stores, known clusters ---------------------------------------------------------

STORES = {"69": "lyon-01", "33": "bordeaux-01"}


def _receipt(p: int, n: int, store: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": f"till:{store}:{p}-{n}",
        "timestamp": f"2026-03-{n + 1:02d}T10:00:00Z",
        "properties": {"order_id": f"{p}-{n}", "total": 30, "store": store},
        "context": {"channel": f"store:{store}", "traits": traits},
    }


def _store_world(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Customers who shop at the store of their area, seen online and at the till.

    Each person's first receipt carries a card and a name as the cashier typed it, the
    second the card and the e-mail: the deterministic rules join them to the online
    account, so each person has two named profiles. One customer in four comes back
    once with a name only, one in eight also lives in the area but never bought in
    store.
    """
    fake = Faker("fr_FR")
    fake.seed_instance(11)
    web: list[dict[str, Any]] = []
    till: list[dict[str, Any]] = []
    for p in range(PEOPLE // 4):
        first, last = fake.unique.first_name(), fake.unique.last_name()
        department = "69" if p % 2 else "33"
        store = STORES[department]
        web.append(
            {
                "type": "identify",
                "userId": f"u{p}",
                "timestamp": "2026-02-01T10:00:00Z",
                "traits": {
                    "firstName": first,
                    "lastName": last,
                    "email": f"c{p}@exemple.fr",
                    "address": {"postalCode": f"{department}00{p % 10}"},
                },
            }
        )
        if p % 8 == 7:
            continue  # lives in the area, never bought in store
        typed = _typo(rng, last) if rng.random() < 0.2 and len(last) > 4 else last
        card = f"2977{p:09d}"
        till.append(_receipt(p, 1, store, {"card": card, "firstName": first, "lastName": typed}))
        till.append(_receipt(p, 2, store, {"card": card, "email": f"c{p}@exemple.fr"}))
        if p % 4 == 0:
            till.append(_receipt(p, 3, store, {"firstName": first, "lastName": last}))
    return web, till


def _load_store_world(db: Database) -> None:
    web, till = _store_world(random.Random(7))
    write_log(db, make_source(db, "eshop", "web").id, web)
    write_log(db, make_source(db, "till", "store").id, till)
    Processor(db).drain()


def test_records_carry_the_usual_store_or_the_store_of_the_area(db: Database) -> None:
    _load_store_world(db)
    with db.engine.connect() as conn:
        people = linkage.records(conn).set_index("record_id")
        by_user = {f"u{p}": str(service.resolve(conn, f"u{p}")) for p in range(PEOPLE // 4)}

    for p, root in by_user.items():
        department = people.loc[root, "postcode"][:2]
        # Buyers shop at their area's store; the others get it from their postcode.
        assert people.loc[root, "store"] == STORES[department], p
    assert people["store"].notna().all()


def test_a_sign_up_sheet_gives_the_store_its_event_was_held_at(db: Database) -> None:
    _load_store_world(db)
    sheet = [
        {
            "type": "track",
            "event": "Event Attended",
            "anonymousId": f"attendance:atelier:{n}",
            "timestamp": "2026-03-20T18:00:00Z",
            "properties": {"event_name": "Atelier", "event_type": "workshop", "location": where},
            "context": {
                "channel": "event:workshop",
                "traits": {"firstName": first, "lastName": last},
            },
        }
        for n, (first, last, where) in enumerate(
            [("Aude", "Vasseur", "lyon-01"), ("Rémi", "Ollier", "bordeaux-01"), ("Léo", "Brun", "")]
        )
    ]
    write_log(db, make_source(db, "sheets", "event").id, sheet)
    Processor(db).drain()
    with db.engine.connect() as conn:
        people = linkage.records(conn).set_index("record_id")
        roots = [str(service.resolve(conn, f"attendance:atelier:{n}")) for n in range(3)]
        timeline = service.profile_360(conn, roots[0])["timeline"]

    # No postcode nor purchase: the workshop's place is the store they are compared at.
    assert list(people.loc[roots, "store"].fillna("none")) == ["lyon-01", "bordeaux-01", "none"]
    assert [event["store"] for event in timeline] == ["lyon-01"]


def test_known_records_name_the_person_of_each_profile(db: Database) -> None:
    _load_store_world(db)
    with db.engine.connect() as conn:
        known = linkage.known_records(conn)
        people = linkage.records(conn)

    sizes = known.groupby("cluster").size()
    # The till's named profile joined the online account through the card and e-mail.
    assert (sizes == 2).sum() >= 40
    assert set(known["cluster"]) == set(people["cluster"])
    # A person whose name the cashier mistyped is compared under both names.
    names = known.groupby("cluster")["last_name"].nunique()
    records = people.groupby("cluster").size()
    assert (names > 1).sum() > 0
    assert (records == names).all()


def test_a_name_alone_at_the_person_s_store_is_compared_with_them(db: Database) -> None:
    _load_store_world(db)
    with db.engine.connect() as conn:
        people = linkage.records(conn)
        known = linkage.known_records(conn)
        receipts = {
            service.resolve(conn, f"till:{STORES['69' if p % 2 else '33']}:{p}-3"): p
            for p in range(0, PEOPLE // 4, 4)
            if p % 8 != 7
        }
        customers = {p: service.resolve(conn, f"u{p}") for p in receipts.values()}
    settings = dataclasses.replace(linkage.settings_for(people), min_probability=0)

    pairs = matching.score_pairs(people, settings, model=matching.train(known, settings))

    person = dict(zip(people["record_id"], people["cluster"].astype(int), strict=True))
    found = {}
    for pair in pairs.itertuples():
        left, right = person[pair.left_id], person[pair.right_id]
        for receipt, other in ((left, right), (right, left)):
            if receipt in receipts and other == customers[receipts[receipt]]:
                found[receipts[receipt]] = json.loads(pair.evidence)
    # No postcode, e-mail nor card on the receipt: the store brings the pair to be scored.
    assert set(found) == set(customers)
    assert all(evidence["store"] == "exact" for evidence in found.values())
    assert all("postcode" not in evidence for evidence in found.values())

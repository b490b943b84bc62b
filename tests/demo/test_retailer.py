"""The demo retailer: a small world, its messages, files and ground truth."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from omnicanal.collect.importers.messages import slug
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.demo import files, shop_files, truth
from omnicanal.demo.load import BATCH, LoadError, load
from omnicanal.demo.retailer import Dataset, generate
from omnicanal.demo.xlsx import SheetWriter, column_name
from tests.conftest import make_source

END = date(2026, 11, 23)
SMALL = {"customers": 500, "months": 6, "seed": 7, "holdout_months": 3, "end": END}
ENV = Envelope(1, datetime(2026, 11, 24, tzinfo=UTC), Limits(32 * 1024, 32), historical=True)
SPEC_EVENTS = {
    "Product Viewed", "Product List Viewed", "Products Searched", "Product Added", "Cart Viewed",
    "Checkout Started", "Order Completed", "Order Refunded", "Product Reviewed", "Email Delivered",
    "Email Opened", "Email Link Clicked", "SMS Delivered", "SMS Link Clicked",
    "Push Notification Received", "Push Notification Tapped", "Application Opened",
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Dataset:
    return generate(**SMALL, out=tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def sent(world) -> list[tuple[str, dict]]:
    return list(world.messages())


@pytest.fixture(scope="module")
def identifiers(world) -> pd.DataFrame:
    return pd.read_parquet(world.truth / "identifiers.parquet")


@pytest.fixture(scope="module")
def persons(world) -> pd.DataFrame:
    return pd.read_parquet(world.truth / "persons.parquet")


def _csv(world: Dataset, kind: str, **options) -> pd.DataFrame:
    return pd.read_csv(world.files[kind], dtype=str, keep_default_na=False, **options)


def _till(world: Dataset) -> pd.DataFrame:
    return _csv(world, "till", sep=";", encoding="cp1252")


def test_the_same_seed_gives_the_same_world(world, sent, tmp_path) -> None:
    again = generate(**SMALL, out=tmp_path / "again")
    assert list(again.messages()) == sent
    for kind, path in world.files.items():
        assert again.files[kind].read_bytes() == path.read_bytes(), kind
    for name in ("persons", "identifiers", "orders", "holdout", "channel_effects"):
        assert pq.read_table(again.truth / f"{name}.parquet").equals(
            pq.read_table(world.truth / f"{name}.parquet")
        ), name
    assert (again.truth / "README.md").read_text() == (world.truth / "README.md").read_text()
    other = generate(**{**SMALL, "seed": 8}, out=tmp_path / "other")
    assert other.files["till"].read_bytes() != world.files["till"].read_bytes()


def test_every_message_passes_the_collection_validator(world, sent) -> None:
    assert len(sent) == world.stats["messages"]
    problems = []
    for source, message in sent:
        row = normalise(message, kind=None, env=ENV)
        if not isinstance(row, Row):
            problems.append((source, row))
    assert problems == []
    assert {name for name, _ in sent} == {name for name, _ in world.sources}
    seen = {m.get("event") for _, m in sent}
    assert seen >= SPEC_EVENTS
    assert {m["type"] for _, m in sent} == {"page", "screen", "track", "identify"}


def test_messages_come_in_time_order_within_the_loaded_period(world, sent) -> None:
    stamps = [m["timestamp"] for _, m in sent]
    assert stamps == sorted(stamps)
    assert stamps[0] >= "2026-05-22"  # six months before the end, give or take a time zone
    assert stamps[-1] < "2026-11-23T01"
    assert len({m["messageId"] for _, m in sent}) == len(sent)


def test_web_messages_look_like_analytics_js(sent) -> None:
    pages = [m for s, m in sent if s == "demo-eshop" and m["type"] == "page"]
    assert {"path", "referrer", "search", "title", "url"} <= set(pages[0]["context"]["page"])
    tagged = [m for m in pages if "campaign" in m["context"]]
    assert tagged, "no landing page carries UTM parameters"
    for message in tagged:
        search = message["context"]["page"]["search"]
        assert f"utm_campaign={message['context']['campaign']['name']}" in search
        assert f"utm_source={message['context']['campaign']['source']}" in search
    clicks = " ".join(m["context"]["page"]["search"] for m in tagged)
    for click_id in ("gclid=", "fbclid=", "ttclid="):
        assert click_id in clicks
    assert all(m["messageId"].startswith("ajs-next-") for m in pages)


def test_orders_follow_the_ecommerce_spec(sent) -> None:
    orders = [m["properties"] for _, m in sent if m.get("event") == "Order Completed"]
    fulfilments = Counter(o["fulfilment"] for o in orders)
    assert set(fulfilments) == {"delivery", "click_and_collect"}
    for order in orders:
        assert order["currency"] == "EUR"
        products = sum(p["price"] * p["quantity"] for p in order["products"])
        assert order["revenue"] == pytest.approx(products - order["discount"], abs=0.011)
        assert order["total"] == pytest.approx(order["revenue"] + order["shipping"], abs=0.011)
        assert (order["fulfilment"] == "click_and_collect") == ("store" in order)
        assert {"product_id", "sku", "name", "category", "brand", "price", "quantity"} <= set(
            order["products"][0]
        )


def test_identify_carries_traits_and_consent(sent) -> None:
    identifies = [m for _, m in sent if m["type"] == "identify" and "userId" in m]
    assert identifies
    for message in identifies:
        assert set(message["context"]["consent"]["purposes"]["marketing"]) == {
            "email",
            "sms",
            "push",
        }
        assert message["context"]["consent"]["wording"] == "v1"
        assert {"email", "firstName", "lastName", "address"} <= set(message["traits"])
    assert any("card" in m["traits"] for m in identifies)
    # After a login, the browser sends the userId with its anonymousId.
    users_by_anon = {m["anonymousId"]: m["userId"] for m in identifies}
    later = [m for _, m in sent if m.get("anonymousId") in users_by_anon and "userId" in m]
    assert all(m["userId"] == users_by_anon[m["anonymousId"]] for m in later)


def test_files_have_the_format_columns(world) -> None:
    till = _till(world)
    assert tuple(till.columns) == files.TILL_HEADER
    assert set(till["Magasin"]) == {"paris-01", "lyon-01", "bordeaux-01"}
    assert till["Date"].str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d").all()
    assert till["Prix unitaire"].str.fullmatch(r"\d+,\d\d").all()
    assert (till["Qté"].astype(int) < 0).any(), "no return at the till"
    assert set(till["fulfilment"]) == {"in_store", "click_and_collect"}
    assert (till.loc[till["fulfilment"] == "click_and_collect", "Commande"] != "").all()
    customers = pd.read_excel(world.files["customers"], dtype=str)
    assert tuple(customers.columns) == files.CUSTOMERS_HEADER
    assert customers["customer_id"].notna().all()
    assert customers["customer_id"].is_unique
    attendance = _csv(world, "attendance", sep=";", encoding="utf-8-sig")
    assert tuple(attendance.columns) == files.ATTENDANCE_HEADER
    assert set(attendance["event_type"]) == {"workshop", "street"}
    assert tuple(_csv(world, "calls").columns) == files.CALLS_HEADER
    survey = _csv(world, "survey")
    assert tuple(survey.columns) == files.SURVEY_HEADER
    assert set(survey["kind"]) == {"nps", "csat"}
    assert tuple(_csv(world, "catalogue").columns) == shop_files.CATALOGUE_HEADER
    costs = _csv(world, "costs")
    assert tuple(costs.columns) == shop_files.COSTS_HEADER
    assert {"ads:google", "ads:instagram", "ads:facebook", "ads:tiktok", "street", "email",
            "sms", "event:workshop"} <= set(costs["channel"])  # fmt: skip
    stock = pq.read_table(world.files["stock"])
    assert stock.column_names == ["sku", "location", "quantity", "datetime"]
    assert set(stock.column("sku").to_pylist()) <= set(_csv(world, "catalogue")["sku"])


def test_ground_truth_columns_are_documented(world) -> None:
    readme = (world.truth / "README.md").read_text(encoding="utf-8")
    documented = set()
    for cell in re.findall(r"^\| ([a-z_0-9, ]+) \|", readme, flags=re.MULTILINE):
        documented |= {name.strip() for name in cell.split(",")}
    for name, schema in (
        ("persons", truth.PERSONS),
        ("identifiers", truth.IDENTIFIERS),
        ("orders", truth.ORDERS),
        ("holdout", truth.HOLDOUT),
        ("channel_effects", truth.EFFECTS),
    ):
        table = pq.read_table(world.truth / f"{name}.parquet")
        assert table.schema.names == schema.names, name
        assert set(schema.names) <= documented, set(schema.names) - documented
    docs = Path(__file__).parents[2] / "docs" / "concepts" / "demo-retailer.md"
    text = docs.read_text(encoding="utf-8")
    for schema in (truth.PERSONS, truth.IDENTIFIERS, truth.ORDERS, truth.HOLDOUT, truth.EFFECTS):
        assert all(f"`{column}`" in text for column in schema.names)


def _traits(message: dict) -> dict:
    return {**message.get("context", {}).get("traits", {}), **message.get("traits", {})}


def test_every_identifier_sent_is_in_the_truth(world, sent, identifiers) -> None:
    known = set(zip(identifiers["kind"], identifiers["value"], strict=True))
    used = set()
    for _, message in sent:
        used.add(("anonymous_id", message.get("anonymousId")))
        used.add(("user_id", message.get("userId")))
        for kind in ("email", "phone", "card"):
            used.add((kind, _traits(message).get(kind)))
    till = _till(world)
    for store, receipt in zip(till["Magasin"], till["Ticket"], strict=True):
        used.add(("import_row", f"till:{store}:{receipt}"))
    for column, kind in (("Carte fidélité", "card"), ("Email", "email"), ("Téléphone", "phone")):
        used |= {(kind, v) for v in till[column]}
    customers = pd.read_excel(world.files["customers"], dtype=str).fillna("")
    for column, kind in (
        ("customer_id", "user_id"),
        ("email", "email"),
        ("phone", "phone"),
        ("card", "card"),
    ):
        used |= {(kind, v) for v in customers[column]}
    attendance = _csv(world, "attendance", sep=";", encoding="utf-8-sig")
    for event, attendee in zip(attendance["event_name"], attendance["attendee_id"], strict=True):
        used.add(("import_row", f"attendance:{slug(event)}:{attendee}"))
    calls, survey = _csv(world, "calls"), _csv(world, "survey")
    used |= {("import_row", f"calls:{c}") for c in calls["contact_id"]}
    used |= {("import_row", f"survey:{r}") for r in survey["response_id"]}
    used |= {("user_id", c) for c in survey["customer_id"]}
    for frame in (attendance, calls, survey):
        for kind in ("email", "phone", "card"):
            used |= {(kind, v) for v in frame[kind]}
    used = {(k, v) for k, v in used if v}
    assert used - known == set()
    assert Counter(identifiers["kind"]).keys() == {
        "anonymous_id", "user_id", "email", "phone", "card", "import_row",
    }  # fmt: skip


def test_import_rows_point_at_the_person_whose_order_it_is(world, identifiers) -> None:
    orders = pd.read_parquet(world.truth / "orders.parquet")
    store_sales = orders[(orders["channel"] == "store") & (orders["period"] == "loaded")]
    rows = identifiers[identifiers["kind"] == "import_row"].set_index("value")["person_id"]
    for ref, store, person in zip(
        store_sales["order_ref"], store_sales["store"], store_sales["person_id"], strict=True
    ):
        assert rows[f"till:{store}:{ref}"] == person


def test_a_shared_family_email_belongs_to_several_people(identifiers, persons) -> None:
    family = persons[persons["family_email"]]
    assert family.groupby("email")["person_id"].nunique().max() >= 2
    emails = identifiers[identifiers["kind"] == "email"]
    owners = emails.groupby("value")["person_id"].nunique()
    assert (owners >= 2).any()


def test_offline_records_carry_noise(world, identifiers, persons) -> None:
    rows = identifiers[identifiers["kind"] == "import_row"].set_index("value")["person_id"]
    names = persons.set_index("person_id")[["first_name", "last_name"]]
    till = _till(world)
    till = till[till["Nom"] != ""].drop_duplicates("Ticket")
    keys = "till:" + till["Magasin"] + ":" + till["Ticket"]
    truth_names = names.loc[rows.loc[keys].to_numpy()]
    same = (till["Prénom"].to_numpy() == truth_names["first_name"].to_numpy()) & (
        till["Nom"].to_numpy() == truth_names["last_name"].to_numpy()
    )
    assert 0.05 < 1 - same.mean() < 0.95, (
        "names on receipts should differ from the truth, sometimes"
    )
    assert not identifiers["exact"].all(), "no damaged e-mail at all"
    calls = _csv(world, "calls")
    styles = {re.sub(r"\d", "9", p) for p in calls["phone"] if p}
    assert len(styles) >= 4, styles
    assert (till["Email"] == "").any()
    assert (till["Email"] != "").any()


def test_omnichannel_customers_spend_more(persons) -> None:
    buyers = persons[persons["is_customer"] & (persons["orders"] > 0)]
    omni = buyers[buyers["omnichannel"]]
    single = buyers[~buyers["omnichannel"]]
    assert len(omni) > 20
    assert len(single) > 20
    assert omni["spend_eur"].mean() > 1.5 * single["spend_eur"].mean()
    assert omni["channels_used"].map(len).min() >= 2
    assert single["channels_used"].map(len).max() == 1


def test_channel_effects_come_from_switching_channels_off(world) -> None:
    effects = pd.read_parquet(world.truth / "channel_effects.parquet").set_index("channel")
    columns = [
        "true_incremental_customers",
        "true_incremental_orders",
        "true_incremental_revenue_eur",
    ]
    assert (effects[columns] >= 0).all().all()
    paid = effects.loc[["ads:google", "ads:instagram", "ads:facebook", "ads:tiktok"]]
    assert (paid["true_incremental_customers"] > 0).all()
    assert (paid["spend_eur"] > 0).all()
    assert paid["hill_half_saturation_eur_per_day"].notna().all()
    orders = pd.read_parquet(world.truth / "orders.parquet")
    loaded = orders[orders["period"] == "loaded"]
    caused = loaded["cause"].str.startswith("email:").sum()
    assert effects.loc["email", "true_incremental_orders"] == caused
    assert effects["true_incremental_orders"].sum() < len(loaded)
    media = effects["media_class"].to_dict()
    assert media["ads:google"] == "paid"
    assert media["street"] == "hors_media"
    assert media["email"] == "owned"


def test_persons_are_consistent_with_their_orders(world, persons) -> None:
    orders = pd.read_parquet(world.truth / "orders.parquet")
    loaded = orders[orders["period"] == "loaded"]
    counts = loaded.groupby("person_id").size()
    by_person = persons.set_index("person_id")
    assert (by_person.loc[counts.index, "orders"] == counts).all()
    spend = (loaded["revenue_eur"] - loaded["refunded_eur"]).groupby(loaded["person_id"]).sum()
    assert np.allclose(by_person.loc[spend.index, "spend_eur"], spend, atol=0.05)
    assert not persons.loc[~persons["is_customer"], "orders"].any()
    assert set(persons["persona"]) == {
        "web_only", "store_only", "omnichannel", "app_lover", "bargain_hunter", "prospect",
    }  # fmt: skip


def test_holdout_purchases_are_after_the_loaded_data(world, persons) -> None:
    holdout = pd.read_parquet(world.truth / "holdout.parquet")
    customers = set(persons.loc[persons["is_customer"], "person_id"])
    assert set(holdout["person_id"]) <= customers
    assert holdout["purchases"].sum() > 0
    gone = holdout[~holdout["alive_at_start"]]
    assert gone["purchases"].sum() == 0  # who left does not come back
    orders = pd.read_parquet(world.truth / "orders.parquet")
    later = orders[orders["period"] == "holdout"]
    assert later["at"].min() >= pd.Timestamp(END, tz="Europe/Paris")
    assert len(later) == holdout["purchases"].sum()


def test_a_world_in_chunks_streams_what_it_wrote(tmp_path) -> None:
    chunked = generate(**SMALL, out=tmp_path / "chunked", chunk_size=200)
    assert chunked.stats["customers"] == 500
    identifiers = pd.read_parquet(chunked.truth / "identifiers.parquet")
    known = set(zip(identifiers["kind"], identifiers["value"], strict=True))
    count = 0
    for _, message in chunked.messages():
        count += 1
        anonymous = message.get("anonymousId")
        assert anonymous is None or ("anonymous_id", anonymous) in known
        email = _traits(message).get("email")
        assert email is None or ("email", email) in known
    assert count == chunked.stats["messages"]
    persons = pd.read_parquet(chunked.truth / "persons.parquet")
    assert persons["person_id"].is_unique
    own = persons.loc[~persons["family_email"], "email"]
    assert own.is_unique, "an e-mail used by two unrelated people"


def test_the_xlsx_writer_keeps_text_as_written(tmp_path) -> None:
    path = tmp_path / "sheet.xlsx"
    sheet = SheetWriter(path, "Clients & co", ("a", "b", "c"))
    rows = [("Dupont & fils", "<b>", " 0612 "), ("", "06000", "Œuvre « d'art »")]
    for row in rows:
        sheet.append(row)
    sheet.close()
    read = pd.read_excel(path, dtype=str, keep_default_na=False)
    assert [tuple(r) for r in read.itertuples(index=False)] == rows
    assert column_name(0) == "A"
    assert column_name(25) == "Z"
    assert column_name(26) == "AA"


def test_generate_refuses_an_empty_world(tmp_path) -> None:
    with pytest.raises(ValueError, match="customers"):
        generate(customers=0, out=tmp_path)


def test_load_names_the_sources_without_a_write_key(world) -> None:
    with pytest.raises(LoadError, match="demo-sms"):
        load(world, "http://127.0.0.1:9", {"demo-eshop": "k"}, "token", files=False)


def test_load_sends_everything_through_the_real_api(live_server, db, admin_token, tmp_path) -> None:
    tiny = generate(
        customers=60, months=2, seed=3, holdout_months=1, end=END, out=tmp_path / "tiny"
    )
    keys = {name: make_source(db, name, channel).write_key for name, channel in tiny.sources}
    wrong = {**keys, "demo-sms": "oc_wk_not-a-key"}
    with pytest.raises(LoadError, match=r"source 'demo-sms' was refused: HTTP 401"):
        load(tiny, live_server.url, wrong, admin_token, connections=2, files=False)
    # What the failed run stored is not stored twice: message ids make a load idempotent.
    report = load(tiny, live_server.url, keys, admin_token, connections=2)
    assert report.messages == tiny.stats["messages"]
    assert report.batches == sum(
        -(-n // BATCH) for n in Counter(s for s, _ in tiny.messages()).values()
    )
    assert set(report.imports) == set(tiny.files)
    for kind, answer in report.imports.items():
        assert answer["status"] == "done", (kind, answer)
        assert answer["errors"] == [], (kind, answer["errors"][:3])
    stats = httpx.get(
        f"{live_server.url}/api/v1/stats", headers={"Authorization": f"Bearer {admin_token}"}
    ).json()
    by_source = {s["name"]: sum(s["events"].values()) for s in stats["sources"]}
    sent = Counter(s for s, _ in tiny.messages())
    assert all(by_source[name] == count for name, count in sent.items())
    assert stats["rejected"] == 0
    assert by_source["import-till"] > 0

"""The person kinds besides till (customers, attendance, calls, survey), and their registration."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from omnicanal.collect.importers.messages import (
    PERSON_COLUMNS,
    Builder,
    Built,
    iso_time,
    message_id,
    person_loader,
    person_traits,
    slug,
    without_empty,
)
from omnicanal.collect.importers.registry import ImportKind, register_kind
from omnicanal.collect.importers.till import TILL_COLUMNS, build_till
from omnicanal.collect.tabular.columns import B, Column, ColumnType, D, N, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.core.channels import normalise_channel

CUSTOMER_COLUMNS = (
    Column("customer_id", T, False, ("id_client", "client_id", "external_id", "id", "num_client")),
    *PERSON_COLUMNS,
    Column("birth_date", ColumnType.DATE, False, ("date_naissance", "birthday", "naissance")),
    Column("street", T, False, ("adresse", "address", "rue")),
    Column("city", T, False, ("ville", "commune")),
    Column("country", T, False, ("pays",)),
    Column("optin_email", B, False, ("optin", "newsletter", "consentement_email")),
    Column("optin_sms", B, False, ("consentement_sms",)),
    Column("optin_post", B, False, ("optin_courrier", "consentement_courrier")),
    Column("consent_date", D, False, ("date_consentement", "date_optin")),
    Column("consent_wording", T, False, ("wording", "version_consentement", "consent_version")),
    Column("signup_source", T, False, ("source", "origine")),
    Column("created_at", D, False, ("date_creation", "date_inscription")),
)


def _customer_key(values: dict[str, Any]) -> str | None:
    for name in ("customer_id", "email", "phone", "card"):
        if values.get(name) is not None:
            value = values[name].lower() if name == "email" else values[name]
            return f"{name}:{value}"
    return None


def _address(values: dict[str, Any]) -> dict[str, Any] | None:
    address = without_empty(
        {
            "street": values.get("street"),
            "postalCode": values.get("postcode"),
            "city": values.get("city"),
        }
    )
    if not address:
        return None
    country = values.get("country") or "FR"
    address["country"] = country.upper() if len(country) == 2 else country
    return address


def _customer(values: dict[str, Any], key: str, line: int) -> Built:
    traits = person_traits(values)
    traits.pop("postalCode", None)
    traits.update(
        without_empty(
            {
                "birthday": values["birth_date"].isoformat() if values.get("birth_date") else None,
                "address": _address(values),
                "signupSource": values.get("signup_source"),
                "createdAt": iso_time(values["created_at"]) if values.get("created_at") else None,
            }
        )
    )
    channels = {"email": "optin_email", "sms": "optin_sms", "post": "optin_post"}
    consents = {ch: values[col] for ch, col in channels.items() if values.get(col) is not None}
    context = {}
    if consents:
        context["consent"] = without_empty(
            {"wording": values.get("consent_wording"), "purposes": {"marketing": consents}}
        )
    content = orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)
    when = values.get("consent_date") or values.get("created_at")
    message = without_empty(
        {
            "type": "identify",
            "traits": traits,
            "context": context or None,
            # A changed record is a new message; the same record again is not.
            "messageId": message_id("customers", key, hashlib.sha256(content).hexdigest()),
            "timestamp": iso_time(when) if when else None,
        }
    )
    if values.get("customer_id") is not None:
        message["userId"] = values["customer_id"]
    else:
        message["anonymousId"] = f"customers:{key}"
    column = "consent_date" if values.get("consent_date") else "created_at"
    return Built(message, line, time_column=column)


def build_customers(
    rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog
) -> Iterator[Built]:
    """One identify per person record, with consents when the file gives opt-ins."""
    seen: dict[str, int] = {}
    for line, values in rows:
        key = _customer_key(values)
        if key is None:
            errors.add(line, "customer_id", "give at least one of customer_id, email, phone, card")
            continue
        if key in seen:
            errors.add(
                line, key.split(":", 1)[0], f"{key} is already at line {seen[key]}: a duplicate row"
            )
            continue
        seen[key] = line
        yield _customer(values, key, line)


def _keyed(
    kind: str,
    key_column: str,
    key_of: Callable[[int, dict[str, Any]], str],
    make: Callable[[str, dict[str, Any], int, ErrorLog], Built | None],
) -> Builder:
    """A builder of one message per row, refusing a row key seen twice in the file."""

    def build(rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog) -> Iterator[Built]:
        seen: dict[str, int] = {}
        for line, values in rows:
            key = key_of(line, values)
            if key in seen:
                errors.add(
                    line,
                    key_column,
                    f"{kind} row {key!r} is already at line {seen[key]}: a duplicate row",
                )
                continue
            seen[key] = line
            built = make(key, values, line, errors)
            if built is not None:
                yield built

    build.__doc__ = f"One message per {kind} row."
    return build


ATTENDANCE_COLUMNS = (
    Column("event_name", T, True, ("evenement", "event", "nom_evenement", "operation")),
    Column("event_type", T, False, ("type", "type_evenement")),
    Column("date", D, True, ("datetime", "date_evenement", "date_heure")),
    Column("location", T, False, ("lieu", "store", "magasin")),
    *PERSON_COLUMNS,
    Column("attendee_id", T, False, ("participant_id", "id_participant", "inscription_id")),
)
_EVENT_TYPES = {
    "workshop": "workshop",
    "atelier": "workshop",
    "fair": "fair",
    "salon": "fair",
    "foire": "fair",
    "street": "street",
    "street_marketing": "street",
    "other": "other",
    "autre": "other",
}


def _attendee_key(line: int, values: dict[str, Any]) -> str:
    day = values["date"].date().isoformat()
    if values.get("attendee_id") is not None:
        return f"{values['event_name']}\x1f{day}\x1f{values['attendee_id']}"
    person = [values.get(c.name) for c in PERSON_COLUMNS]
    if any(v is not None for v in person):  # a re-ordered file keeps its keys
        digest = hashlib.blake2b(orjson.dumps(person), digest_size=8).hexdigest()
        return f"{values['event_name']}\x1f{day}\x1f{digest}"
    return f"{values['event_name']}\x1f{day}\x1fline{line}"


def _attendance(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built | None:
    given = (values.get("event_type") or "other").lower().replace(" ", "_").replace("-", "_")
    kind = _EVENT_TYPES.get(given)
    if kind is None:
        errors.add(line, "event_type", f"{given[:30]!r} is not workshop, fair, street or other")
        return None
    attendee = key.rsplit("\x1f", 1)[1]
    message = {
        "type": "track",
        "event": "Event Attended",
        "timestamp": iso_time(values["date"]),
        "messageId": message_id("attendance", key),
        "anonymousId": f"attendance:{slug(values['event_name']) or 'event'}:{attendee}",
        "properties": without_empty(
            {
                "event_name": values["event_name"],
                "event_type": kind,
                "location": values.get("location"),
            }
        ),
        "context": without_empty(
            {
                "channel": "street" if kind == "street" else f"event:{kind}",
                "traits": person_traits(values) or None,
            }
        ),
    }
    return Built(message, line, time_column="date")


CALL_COLUMNS = (
    Column("contact_id", T, True, ("id_contact", "call_id", "id_appel", "appel_id")),
    Column("datetime", D, True, ("date", "date_heure", "date_appel")),
    *PERSON_COLUMNS,
    Column("reason", T, False, ("motif", "raison")),
    Column("outcome", T, False, ("resultat", "issue", "statut")),
    Column("order_ref", T, False, ("commande", "order_id", "numero_commande")),
    Column("duration_s", N, False, ("duree", "duree_s", "duration")),
)


def _call(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built:
    message = {
        "type": "track",
        "event": "Call Centre Contact",
        "timestamp": iso_time(values["datetime"]),
        "messageId": message_id("calls", key),
        "anonymousId": f"calls:{key}",
        "properties": without_empty(
            {k: values.get(k) for k in ("reason", "outcome", "order_ref", "duration_s")}
        ),
        "context": without_empty(
            {"channel": "call_centre", "traits": person_traits(values) or None}
        ),
    }
    return Built(message, line, time_column="datetime")


SURVEY_COLUMNS = (
    Column("response_id", T, True, ("id_reponse", "reponse_id", "id")),
    Column("datetime", D, True, ("date", "date_reponse", "date_heure")),
    Column("kind", T, True, ("type", "type_enquete", "survey", "enquete")),
    Column("score", N, True, ("note",)),
    Column("comment", T, False, ("commentaire", "verbatim")),
    Column("channel", T, False, ("canal",)),
    Column("email", T, False, ("courriel", "mail")),
    Column("phone", T, False, ("telephone", "tel", "mobile")),
    Column("card", T, False, ("carte", "carte_fidelite", "loyalty_card")),
    Column("customer_id", T, False, ("id_client", "client_id")),
)
_SCORES = {"nps": (0, 10), "csat": (1, 5)}


def _survey(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built | None:
    kind, score = values["kind"].lower(), values["score"]
    if kind not in _SCORES:
        errors.add(line, "kind", f"{kind[:20]!r} is not nps or csat")
        return None
    low, high = _SCORES[kind]
    if not low <= score <= high:
        errors.add(line, "score", f"{score} is outside {low}-{high} for {kind}")
        return None
    channel = values.get("channel")
    if channel is not None:
        try:
            channel = normalise_channel(channel)
        except ValueError as exc:
            errors.add(line, "channel", str(exc))
            return None
    message = {
        "type": "track",
        "event": "Survey Answered",
        "timestamp": iso_time(values["datetime"]),
        "messageId": message_id("survey", key),
        "properties": without_empty(
            {"kind": kind, "score": score, "comment": values.get("comment"), "channel": channel}
        ),
        "context": {"traits": person_traits(values)} if person_traits(values) else {},
    }
    if values.get("customer_id") is not None:
        message["userId"] = values["customer_id"]
    else:
        message["anonymousId"] = f"survey:{key}"
    return Built(message, line, time_column="datetime")


def register_person_kinds() -> None:
    """Register the person kinds: till, customers, attendance, calls, survey."""
    kinds = (
        (
            "till",
            "Till and POS receipt lines: sales, returns, click & collect pick-ups.",
            TILL_COLUMNS,
            build_till,
        ),
        (
            "customers",
            "Customer lists: CRM or newsletter exports, with opt-ins.",
            CUSTOMER_COLUMNS,
            build_customers,
        ),
        (
            "attendance",
            "Attendance at workshops, fairs and street operations.",
            ATTENDANCE_COLUMNS,
            _keyed("attendance", "attendee_id", _attendee_key, _attendance),
        ),
        (
            "calls",
            "Call-centre contacts.",
            CALL_COLUMNS,
            _keyed("calls", "contact_id", lambda _, v: str(v["contact_id"]), _call),
        ),
        (
            "survey",
            "Survey answers: NPS (0-10) and CSAT (1-5).",
            SURVEY_COLUMNS,
            _keyed("survey", "response_id", lambda _, v: str(v["response_id"]), _survey),
        ),
    )
    for name, summary, columns, build in kinds:
        register_kind(name, ImportKind(name, summary, columns, person_loader(name, build)))

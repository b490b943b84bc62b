"""Score identity resolution against the demo retailer's ground truth.

    python -m bench.identity --data omnicanal-data              # after `omnicanal demo`
    python -m bench.identity --data DIR --breakdown             # and where missed pairs are

Runs, on the loaded demo: the processor (deterministic rules), a first scoring, then
probabilistic matching (`omnicanal identity match`), and a second scoring. Each scoring
compares `omnicanal identity export` with `<data>/ground-truth/identifiers.parquet`:
two identifiers are a true pair when they belong to the same person, a predicted pair
when they resolved to the same profile. Precision, recall and F1 are counted over
pairs, in three scopes:

- `all`: every identifier;
- `offline`: pairs involving an offline record (till receipt, attendance sheet,
  call-centre contact, survey row, CRM row: the noisy ones);
- `offline identifiable`: the same, leaving out identifiers that carry no evidence at
  all: after the deterministic rules they sit alone in a profile with no name, e-mail,
  phone, card or postcode (a cash receipt with no name, a survey answer with no
  contact, a browser that never signed in). Nobody can join those to their person, so
  they cap the recall of the `offline` scope; this scope measures the matching itself.

Identifiers the truth gives to several people (a family e-mail) have no single right
profile: they are left out of the pairs, and a merge they caused shows through the
other identifiers of the people merged. "Wrong pairs" are predicted pairs whose two
sides are different people.

`--breakdown` splits the true pairs of the offline scope by the kind of offline record
and the fields it carries (read from the demo's files), each pair counted under its
weaker side: how many are found, missed, and wrongly made.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from omnicanal.api.app import open_database
from omnicanal.collect.importers.messages import slug
from omnicanal.core.settings import Settings
from omnicanal.identity import linkage
from omnicanal.identity.normalise import (
    normalise_card,
    normalise_email,
    normalise_phone,
)
from omnicanal.profiles.processor import Processor

console = Console(width=None if sys.stdout.isatty() else 160)
OFFLINE_PREFIXES = ("till:", "attendance:", "calls:", "survey:", "customers:")
Key = tuple[str, str]


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    wrong_pairs: int
    identifiers: int


def _normalise(kind: str, value: str) -> tuple[str, str | None]:
    if kind == "email":
        return kind, normalise_email(value)
    if kind == "phone":
        return kind, normalise_phone(value)
    if kind == "card":
        return kind, normalise_card(value)
    if kind == "import_row":
        return "anonymous_id", str(value).strip()
    return kind, str(value).strip()


def truth(path: Path) -> dict[Key, str]:
    """Every identifier the demo sent, normalised as the processor does, with its person.

    Identifiers of several people (shared family e-mails) are left out.
    """
    table = pq.read_table(path, columns=["kind", "value", "person_id"]).to_pylist()
    people: dict[Key, set[str]] = defaultdict(set)
    for row in table:
        kind, value = _normalise(str(row["kind"]), str(row["value"]))
        if value:
            people[(kind, value)].add(str(row["person_id"]))
    return {key: next(iter(who)) for key, who in people.items() if len(who) == 1}


def predicted(settings: Settings) -> dict[Key, int]:
    """Every identifier in the store with the person (root profile) it resolved to."""
    db = open_database(settings)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.kind, i.value, COALESCE(p.merged_into, p.id) FROM identity i "
                    "JOIN profile p ON p.id = i.profile_id"
                )
            ).all()
    finally:
        db.dispose()
    return {(kind, value): int(root) for kind, value, root in rows}


def without_evidence(settings: Settings) -> set[Key]:
    """Identifiers alone with other anonymous ids in a profile that holds nothing personal."""
    db = open_database(settings)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.kind, i.value, COALESCE(p.merged_into, p.id) AS root, "
                    "p.first_name IS NOT NULL OR p.last_name IS NOT NULL OR p.email IS NOT NULL "
                    "OR p.phone IS NOT NULL OR p.card IS NOT NULL OR p.postcode IS NOT NULL "
                    "FROM identity i JOIN profile p ON p.id = i.profile_id"
                )
            ).all()
    finally:
        db.dispose()
    personal = {int(root) for kind, _value, root, named in rows if named or kind != "anonymous_id"}
    return {(kind, value) for kind, value, root, _named in rows if int(root) not in personal}


def _pairs(counts: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def _offline(key: Key) -> bool:
    return key[0] == "anonymous_id" and key[1].startswith(OFFLINE_PREFIXES)


def score(
    true: dict[Key, str],
    found: dict[Key, int],
    offline_only: bool,
    leave_out: set[Key] | frozenset[Key] = frozenset(),
) -> Scores:
    """Pairwise precision, recall and F1 over the identifiers both sides know."""
    keys = [k for k in true if k in found and k not in leave_out]
    offline = {k for k in keys if _offline(k)}

    def tally(select: set[Key] | None) -> tuple[int, int, int]:
        chosen = [k for k in keys if select is None or k in select]
        cells: Counter[object] = Counter((true[k], found[k]) for k in chosen)
        people: Counter[object] = Counter(true[k] for k in chosen)
        profiles: Counter[object] = Counter(found[k] for k in chosen)
        return _pairs(cells), _pairs(people), _pairs(profiles)

    both, truth_pairs, pred_pairs = tally(None)
    if offline_only:  # pairs with at least one offline record = all pairs - online-only pairs
        online = set(keys) - offline
        b2, t2, p2 = tally(online)
        both, truth_pairs, pred_pairs = both - b2, truth_pairs - t2, pred_pairs - p2
    precision = both / pred_pairs if pred_pairs else 1.0
    recall = both / truth_pairs if truth_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, pred_pairs - both, len(offline if offline_only else keys))


# ---------------------------------------------------------------------------------
# Where the missed pairs are: offline records by kind and by the fields they carry.

# Weakest first: a pair is counted under its weaker side.
GROUPS = ("no identifier", "name", "name + postcode", "card, e-mail or phone")
ONLINE = "online or CRM"


def _fields(frame: pd.DataFrame, card: str, email: str, phone: str) -> pd.Series:
    def has(column: str) -> pd.Series:
        if column not in frame.columns:
            return pd.Series(False, index=frame.index)
        return frame[column].fillna("").astype(str).str.strip() != ""

    contact = has(card) | has(email) | has(phone) | has("customer_id")
    named = has("first_name") | has("last_name")
    group = pd.Series(GROUPS[0], index=frame.index)
    group[named] = GROUPS[1]
    group[named & has("postcode")] = GROUPS[2]
    group[contact] = GROUPS[3]
    return group


def _csv(path: Path, sep: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False)


def record_groups(folder: Path) -> dict[Key, str]:
    """Each offline record of the demo's files: `kind: fields it carries`."""
    till = _csv(folder / "till.csv", sep=";", encoding="cp1252")
    till = till.rename(columns={"Prénom": "first_name", "Nom": "last_name"})
    till = till.rename(columns={"Code postal": "postcode"})
    till["kind"] = "till sale"
    till.loc[till["fulfilment"] == "click_and_collect", "kind"] = "till pick-up"
    till.loc[till["Qté"].str.startswith("-"), "kind"] = "till return"
    till = till.drop_duplicates(["Magasin", "Ticket"])
    till["id"] = "till:" + till["Magasin"].map(slug) + ":" + till["Ticket"]
    till["group"] = _fields(till, "Carte fidélité", "Email", "Téléphone")
    sheet = _csv(folder / "attendance.csv", sep=";", encoding="utf-8-sig")
    sheet["id"] = "attendance:" + sheet["event_name"].map(slug) + ":" + sheet["attendee_id"]
    sheet["kind"], sheet["group"] = "sign-up sheet", _fields(sheet, "card", "email", "phone")
    calls = _csv(folder / "calls.csv")
    calls["id"] = "calls:" + calls["contact_id"]
    calls["kind"], calls["group"] = "call", _fields(calls, "card", "email", "phone")
    survey = _csv(folder / "survey.csv")
    survey["id"] = "survey:" + survey["response_id"]
    survey["kind"], survey["group"] = "survey", _fields(survey, "card", "email", "phone")
    rows = pd.concat([f[["id", "kind", "group"]] for f in (till, sheet, calls, survey)])
    return {
        ("anonymous_id", i): f"{kind}: {group}" for i, kind, group in rows.itertuples(index=False)
    }


def _rank(group: str) -> int:
    fields = group.rsplit(": ", 1)[-1]
    return GROUPS.index(fields) if fields in GROUPS else len(GROUPS)


def breakdown(
    true: dict[Key, str], found: dict[Key, int], groups: dict[Key, str], bare: set[Key]
) -> pd.DataFrame:
    """True, found, missed and wrong pairs of the offline scope, by the weaker side's group.

    An online identifier without evidence (a browser that never signed in) is a group
    of its own; the other online and CRM identifiers are the strongest side.
    """

    def group(key: Key) -> str:
        if key in groups:
            return groups[key]
        return f"online: {GROUPS[0]}" if key in bare else ONLINE

    keys = [k for k in true if k in found]
    cells = Counter((true[k], found[k], group(k), _offline(k)) for k in keys)
    by_person: dict[str, list[tuple[int, str, bool, int]]] = defaultdict(list)
    by_root: dict[int, list[tuple[str, str, bool, int]]] = defaultdict(list)
    for (person, root, name, offline), n in cells.items():
        by_person[person].append((root, name, offline, n))
        by_root[root].append((person, name, offline, n))
    counted: dict[str, Counter[str]] = defaultdict(Counter)
    for items in by_person.values():
        pairs = itertools.combinations_with_replacement(items, 2)
        for (r1, g1, o1, n1), (r2, g2, o2, n2) in pairs:
            if not (o1 or o2):
                continue
            same = (r1, g1, o1) == (r2, g2, o2)
            weaker = min(g1, g2, key=_rank)
            counted[weaker]["true pairs"] += n1 * (n1 - 1) // 2 if same else n1 * n2
            if r1 != r2:
                counted[weaker]["missed"] += n1 * n2
    for members in by_root.values():
        for (p1, g1, o1, n1), (p2, g2, o2, n2) in itertools.combinations(members, 2):
            if p1 != p2 and (o1 or o2):
                counted[min(g1, g2, key=_rank)]["wrong"] += n1 * n2
    table = pd.DataFrame(counted).T.fillna(0).astype(int)
    table["found"] = table["true pairs"] - table["missed"]
    table["recall"] = (table["found"] / table["true pairs"]).round(3)
    table["share of missed"] = (table["missed"] / table["missed"].sum()).round(3)
    columns = ["true pairs", "found", "missed", "wrong", "recall", "share of missed"]
    return table[columns].sort_values("missed", ascending=False)


def _print_breakdown(stage: str, table: pd.DataFrame) -> None:
    out = Table("weaker side", *table.columns, title=f"Offline pairs by record ({stage})")
    for name, row in table.iterrows():
        out.add_row(
            str(name),
            *(f"{int(row[c]):,}" for c in table.columns[:4]),
            *(f"{row[c]:.3f}" for c in table.columns[4:]),
        )
    console.print(out)


# ---------------------------------------------------------------------------------


def _add_rows(
    table: Table, stage: str, true: dict[Key, str], found: dict[Key, int], bare: set[Key]
) -> None:
    """Score the store now in each scope."""
    for scope, offline, leave_out in (
        ("all", False, set()),
        ("offline", True, set()),
        ("offline identifiable", True, bare),
    ):
        s = score(true, found, offline, leave_out)
        table.add_row(
            stage,
            f"{s.identifiers:,}",
            scope,
            f"{s.precision:.4f}",
            f"{s.recall:.4f}",
            f"{s.f1:.4f}",
            f"{s.wrong_pairs:,}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("omnicanal-data"))
    parser.add_argument("--no-match", action="store_true", help="Skip probabilistic matching.")
    parser.add_argument(
        "--breakdown", action="store_true", help="Split offline pairs by record kind and fields."
    )
    args = parser.parse_args()
    settings = Settings(data_dir=args.data)
    true = truth(args.data / "ground-truth" / "identifiers.parquet")
    groups = record_groups(args.data / "demo") if args.breakdown else {}
    db = open_database(settings)
    started = time.perf_counter()
    processed = Processor(db, identity=settings.identity).drain()
    console.print(f"{processed:,} events processed in {time.perf_counter() - started:.1f} s")
    bare = without_evidence(settings)
    table = Table(
        "stage",
        "identifiers",
        "scope",
        "precision",
        "recall",
        "F1",
        "wrong pairs",
        title="Identity resolution against the ground truth",
    )
    found = predicted(settings)
    _add_rows(table, "deterministic", true, found, bare)
    if args.breakdown:
        _print_breakdown("deterministic", breakdown(true, found, groups, bare))
    if not args.no_match:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            run = linkage.run(conn, settings.identity)
        console.print(
            f"matching: {run.records:,} people, {run.pairs:,} pairs scored, "
            f"{run.merged:,} merged, {run.refused:,} refused, {run.queued:,} queued, "
            f"{time.perf_counter() - started:.1f} s"
        )
        found = predicted(settings)
        _add_rows(table, "+ probabilistic", true, found, bare)
        if args.breakdown:
            _print_breakdown("after matching", breakdown(true, found, groups, bare))
    db.dispose()
    console.print(table)


if __name__ == "__main__":
    main()

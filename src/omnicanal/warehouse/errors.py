"""What can go wrong with the warehouse file, as the API and the CLI report it."""

from __future__ import annotations

from pathlib import Path

from omnicanal.core.errors import ConflictError, OmnicanalError, ServiceUnavailableError


class WarehouseError(OmnicanalError):
    """The warehouse file cannot be used (unreadable, not a DuckDB file...)."""

    code = "warehouse.error"
    title = "Warehouse error"


class WarehouseBusyError(ServiceUnavailableError):
    """Another process (or this one) held the warehouse file for longer than we wait."""

    code = "warehouse.busy"
    title = "Warehouse busy"

    def __init__(self, path: Path, *, holder: str, waited: float) -> None:
        super().__init__(
            f"the warehouse {path} is in use by {holder}; gave up after waiting {waited:g} s "
            "(try again when it has finished)"
        )
        self.path, self.holder = path, holder

    def extensions(self) -> dict[str, object]:
        return {"path": str(self.path), "holder": self.holder}


class WarehouseOutdatedError(ConflictError):
    """The file was built for other tables than this version's."""

    code = "warehouse.outdated"
    title = "Warehouse outdated"

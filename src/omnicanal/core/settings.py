"""Settings from `OMNICANAL_*` environment variables and `.env`, built once."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnicanal.core.channels import KINDS


class CollectSettings(BaseModel):
    """Limits and tuning of event collection (Segment's limits by default)."""

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_compressed_bytes: int = 500 * 1024
    max_batch_events: int = 2_500
    max_depth: int = 32
    max_string_chars: int = 8_192
    group_commit_rows: int = 20_000
    dedup_window: int = 500_000  # recent messages checked by messageId alone
    rejected_sample_bytes: int = 64 * 1024
    max_import_bytes: int = 1024**3  # one uploaded file (imports API)
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])


# Names of the built-in derivation steps, which a user rule may not take.
BUILTIN_CHANNEL_RULES = frozenset({"explicit", "click_id", "utm", "referrer", "source"})


class RuleSpec(BaseModel):
    """A user rule for channel derivation, tried before the built-in ones.

    `field` is a dotted path into the message (`context.campaign.source`,
    `properties.utm_source`, `context.page.referrer_host`); `pattern` a regular
    expression searched case-insensitively in its value; `channel` the channel it gives,
    which may use `{source}` (the normalised utm source) and `{match}` (the first group
    of the pattern, or the whole match).
    """

    name: str = Field(min_length=1, max_length=64)
    field: str = Field(min_length=1, max_length=200)
    pattern: str = Field(min_length=1, max_length=1000)
    channel: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_CHANNEL_RULES:
            raise ValueError(f"the rule name {value!r} is taken by a built-in rule; choose another")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from exc
        return value

    @field_validator("channel")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kind = value.strip().lower().split(":", 1)[0]
        if "{" not in kind and kind not in KINDS:
            accepted = ", ".join(sorted(KINDS))
            raise ValueError(f"channel {value!r} is not of a known kind; use one of: {accepted}")
        return value


class ChannelSettings(BaseModel):
    """Channel derivation (`OMNICANAL_CHANNELS__RULES='[{"name": ..., ...}]'`)."""

    rules: list[RuleSpec] = Field(default_factory=list)


class IdentitySettings(BaseModel):
    """Guard rails of identity resolution (`OMNICANAL_IDENTITY__...`; docs/concepts/identity.md).

    `limits`: how many values of a kind one person may hold; a join that would exceed
    it is refused. `shareable`: kinds that, when they bridge two people, are marked
    shared (they stop joining and link a household of at most `household_limit` people).
    `blocked`: regular expressions
    on `kind:value` for values that are never identifiers.
    """

    limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1, "card": 2, "email": 5, "phone": 5}
    )
    shareable: list[str] = Field(default_factory=lambda: ["email", "phone"])
    # People one shared address or e-mail links as a household; beyond, no one is added.
    household_limit: int = Field(8, ge=2)
    blocked: list[str] = Field(
        default_factory=lambda: [
            # Generic shop, till and placeholder addresses typed in when a customer has none.
            r"^email:(contact|info|magasin|boutique|caisse|accueil|client|clients|noreply|"
            r"no-reply|test|vente|ventes|shop|store)@",
            r"^email:.*@(example\.(com|org|net|fr)|test\.(com|fr)|invalid)$",
            r"^phone:\+33[67]0{8}$",
            r"^phone:\+33[67](12345678|99999999|11111111)$",
            r"^card:0+$",
        ]
    )


class ProcessorSettings(BaseModel):
    """The event processor run inside `serve`."""

    enabled: bool = True  # false when separate `omnicanal process` workers do it
    batch_size: int = 2_000
    # While a backlog is worked off, a helper process reads and parses the next batch
    # (profiles.processing.ahead); off, the processor reads the log alone.
    read_ahead: bool = True
    # `serve` runs the processor in a process of its own (profiles.worker), so that
    # working off a backlog never holds up the API; false: in a thread of the server.
    own_process: bool = True


class WarehouseSettings(BaseModel):
    """The analytics warehouse: a DuckDB file kept in step with the store."""

    path: Path | None = None  # default: <data_dir>/warehouse.duckdb
    sync_enabled: bool = True  # `serve` syncs in the background
    sync_interval_seconds: float = 30.0
    # Rows changed this long before the last sync are read again: a transaction that
    # stamped its rows before the previous sync but committed after it is not missed.
    overlap_seconds: float = 300.0


class Settings(BaseSettings):
    """Everything configurable; nested areas use `__`, e.g. OMNICANAL_COLLECT__MAX_DEPTH."""

    model_config = SettingsConfigDict(
        env_prefix="OMNICANAL_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("omnicanal-data")
    database_url: str | None = None
    sqlite_synchronous: str = "NORMAL"
    public_url: str | None = None
    migrate_on_start: bool = True
    collect: CollectSettings = Field(default_factory=CollectSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    # The retailer's time zone: days, weeks and months of every report are local.
    timezone: str = "Europe/Paris"

    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'omnicanal.db').resolve()}"

    def resolved_warehouse_path(self) -> Path:
        """Return the warehouse file, defaulting to the data folder."""
        return self.warehouse.path or self.data_dir / "warehouse.duckdb"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()

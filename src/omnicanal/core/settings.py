"""Settings from `OMNICANAL_*` environment variables and `.env`, built once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])


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

    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'omnicanal.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()

"""Fixtures of the warehouse tests: a shop's store and its warehouse file."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from tests.warehouse.shop import Shop


@pytest.fixture
def warehouse(settings: Settings) -> Warehouse:
    return Warehouse.from_settings(settings)


@pytest.fixture
def shop(client: TestClient, db: Database) -> Shop:
    return Shop(client, db)

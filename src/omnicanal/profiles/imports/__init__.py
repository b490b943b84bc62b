"""Import kinds for the retailer's own tables: catalogue, stock and costs.

They plug into collect's import registry (`omnicanal import catalogue FILE`, the
`/api/v1/imports/{kind}` endpoint) when this package is imported. Each file is
checked whole, then written in one transaction, or not at all.

- catalogue: products are upserted by sku; a price change appends to
  `product_price_history`. Prices are kept in euros.
- stock: levels are upserted by (sku, location); a quantity change appends to
  `stock_history`; a row older than the level known is history already seen.
- costs: one amount per (day, channel, campaign, kind), replaced by a re-import,
  never added to it; rows of one file sharing that key (an ad platform's report
  by ad group) are summed.

Amounts in another currency than EUR need a rate: `ImportOptions.rates` maps a
currency code to the euros one unit is worth, e.g. `{"USD": Decimal("0.92")}`
(`omnicanal import costs FILE --rate USD=0.92`). Without it the row is refused.

One module per kind (`catalogue`, `stock`, `cost`), their shared helpers in
`common`, and `kind.register`, which adds the three to the registry.
"""

from omnicanal.profiles.imports.catalogue import CATALOGUE_COLUMNS, load_catalogue, write_catalogue
from omnicanal.profiles.imports.common import to_euro_cents
from omnicanal.profiles.imports.cost import COST_COLUMNS, COST_KINDS, load_costs
from omnicanal.profiles.imports.kind import register
from omnicanal.profiles.imports.stock import (
    STOCK_COLUMNS,
    StockLevelRow,
    load_stock,
    stock_location,
    write_stock,
)

__all__ = [
    "CATALOGUE_COLUMNS",
    "COST_COLUMNS",
    "COST_KINDS",
    "STOCK_COLUMNS",
    "StockLevelRow",
    "load_catalogue",
    "load_costs",
    "load_stock",
    "register",
    "stock_location",
    "to_euro_cents",
    "write_catalogue",
    "write_stock",
]

register()

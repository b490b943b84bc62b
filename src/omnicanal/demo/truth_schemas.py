"""The columns of the demo's ground-truth Parquet files (described in its README)."""

from __future__ import annotations

import pyarrow as pa

PERSONS = pa.schema(
    [
        ("person_id", pa.string()),
        ("household_id", pa.string()),
        ("persona", pa.string()),
        ("is_customer", pa.bool_()),
        ("gender", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("birth_date", pa.date32()),
        ("street", pa.string()),
        ("postcode", pa.string()),
        ("city", pa.string()),
        ("home_store", pa.string()),
        ("email", pa.string()),
        ("email2", pa.string()),
        ("family_email", pa.bool_()),
        ("phone", pa.string()),
        ("customer_id", pa.string()),
        ("card", pa.string()),
        ("optin_email", pa.bool_()),
        ("optin_sms", pa.bool_()),
        ("optin_push", pa.bool_()),
        ("acquisition_channel", pa.string()),
        ("acquisition_date", pa.date32()),
        ("channels_used", pa.list_(pa.string())),
        ("omnichannel", pa.bool_()),
        ("orders", pa.int32()),
        ("spend_eur", pa.float64()),
        ("refunds_eur", pa.float64()),
        ("churn_date", pa.date32()),
        ("alive_at_end", pa.bool_()),
        ("purchase_rate_per_year", pa.float64()),
        ("dropout_probability", pa.float64()),
    ]
)
IDENTIFIERS = pa.schema(
    [
        ("kind", pa.string()),
        ("value", pa.string()),
        ("person_id", pa.string()),
        ("kind_file", pa.string()),
        ("exact", pa.bool_()),
    ]
)
ORDERS = pa.schema(
    [
        ("order_ref", pa.string()),
        ("person_id", pa.string()),
        ("at", pa.timestamp("ms", tz="Europe/Paris")),
        ("period", pa.string()),
        ("channel", pa.string()),
        ("fulfilment", pa.string()),
        ("store", pa.string()),
        ("items", pa.int32()),
        ("revenue_eur", pa.float64()),
        ("shipping_eur", pa.float64()),
        ("refunded_eur", pa.float64()),
        ("cause", pa.string()),
        ("first_purchase", pa.bool_()),
        ("researched_online", pa.bool_()),
        ("pickup_ref", pa.string()),
        ("return_ref", pa.string()),
    ]
)
HOLDOUT = pa.schema(
    [
        ("person_id", pa.string()),
        ("alive_at_start", pa.bool_()),
        ("purchases", pa.int32()),
        ("spend_eur", pa.float64()),
    ]
)
EFFECTS = pa.schema(
    [
        ("channel", pa.string()),
        ("media_class", pa.string()),
        ("spend_eur", pa.float64()),
        ("true_incremental_customers", pa.int64()),
        ("true_incremental_orders", pa.int64()),
        ("true_incremental_revenue_eur", pa.float64()),
        ("hill_half_saturation_eur_per_day", pa.float64()),
        ("hill_shape", pa.float64()),
        ("hill_max_new_customers_per_day", pa.float64()),
    ]
)

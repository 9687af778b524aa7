"""The MES production context: topics, payload round trip, and a validation ladder that names the field."""

from __future__ import annotations

import contextlib
import doctest
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwatch import contract
from plantwatch.contract import (
    ALERT_SCHEMA,
    CONTEXT_SCHEMA,
    PayloadError,
    ProductionContext,
    context_subscription,
    context_topic,
    parse_context,
    parse_context_topic,
    parse_record,
    uuid7,
)


def running(**changes: Any) -> ProductionContext:
    context = ProductionContext(
        schema=CONTEXT_SCHEMA,
        id=uuid7(),
        site="plant1",
        asset="press-3",
        ts="2026-03-02T06:00:00.250Z",
        production_order="1000123",
        lot="L-2026-0042",
        material="BRK-DISC-220",
        since="2026-03-02T06:00:00.000Z",
        plant="1010",
        storage_location="0001",
        quantity=1200.0,
        unit="PC",
    )
    return replace(context, **changes)


_IDLE_NONE = {
    "production_order": None,
    "lot": None,
    "material": None,
    "storage_location": None,
    "quantity": None,
    "unit": None,
}


def idle(**changes: Any) -> ProductionContext:
    return replace(running(), **{**_IDLE_NONE, **changes})


_DROP = object()
"""A value for :func:`payload` that removes the key."""


def payload(base: ProductionContext | None = None, **changes: Any) -> bytes:
    body = json.loads((base or running()).to_json())
    for key, value in changes.items():
        if value is _DROP:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


def test_the_documented_topics_are_built_and_parsed() -> None:
    assert context_topic("plant1", "press-3") == "plantwatch/v1/plant1/mes/press-3/context"
    assert context_subscription("plant1") == "plantwatch/v1/plant1/mes/+/context"
    assert parse_context_topic(context_topic("plant1", "press-3")) == ("plant1", "press-3")


@pytest.mark.parametrize(
    "topic",
    [
        "plantwatch/v1/plant1/gw-line3/press-3/alert",
        "plantwatch/v1/plant1/mes/press-3/status",
        "plantwatch/v1/plant1/mes/Press 3/context",
        "plantwatch/v2/plant1/mes/press-3/context",
        "plantwatch/v1/plant1/mes/context",
    ],
)
def test_other_topics_are_not_context_topics(topic: str) -> None:
    with pytest.raises(PayloadError, match="topic"):
        parse_context_topic(topic)


def test_a_running_context_survives_to_json_and_parse() -> None:
    context = running()
    assert parse_context(context.to_json().encode()) == context
    assert not context.idle


def test_an_idle_context_survives_to_json_and_parse() -> None:
    context = idle()
    parsed = parse_context(context.to_json().encode())
    assert parsed == context
    assert parsed.idle and parsed.plant == "1010"


def test_to_json_writes_every_field_with_nulls() -> None:
    body = json.loads(idle().to_json())
    assert set(body) == {
        "schema",
        "id",
        "site",
        "asset",
        "ts",
        "production_order",
        "lot",
        "material",
        "since",
        "plant",
        "storage_location",
        "quantity",
        "unit",
    }
    assert body["production_order"] is None and body["quantity"] is None


def test_optional_fields_may_be_left_out_and_unknown_keys_are_ignored() -> None:
    raw = payload(
        lot=_DROP,
        material=_DROP,
        plant=_DROP,
        storage_location=_DROP,
        quantity=_DROP,
        unit=_DROP,
        shift="night",
    )
    parsed = parse_context(raw)
    assert (parsed.production_order, parsed.lot, parsed.quantity, parsed.unit) == (
        "1000123",
        None,
        None,
        None,
    )


def test_an_integer_quantity_is_read_as_a_number() -> None:
    assert parse_context(payload(quantity=1200)).quantity == 1200.0


def test_since_may_be_given_with_an_offset() -> None:
    # 06:00 UTC is 07:00 at +01:00: not after ts
    assert (
        parse_context(payload(since="2026-03-02T07:00:00.000+01:00")).since == "2026-03-02T07:00:00.000+01:00"
    )


@pytest.mark.parametrize(
    "field",
    ["schema", "id", "site", "asset", "ts", "production_order", "since"],
)
def test_each_missing_required_field_is_refused_by_name(field: str) -> None:
    with pytest.raises(PayloadError, match=rf"^{field}: missing"):
        parse_context(payload(**{field: _DROP}))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"schema": ALERT_SCHEMA}, "schema"),
        ({"schema": "plantwatch.context/2"}, "schema"),
        ({"schema": "acme.context/1"}, "schema"),
        ({"schema": 1}, "schema"),
        ({"id": "not-a-uuid"}, "id"),
        ({"id": "0190a0e4-5a1b-4c2d-8e3f-123456789abc"}, "id"),  # a UUIDv4, not v7
        ({"ts": "yesterday"}, "ts"),
        ({"ts": "2026-13-02T06:00:00.250Z"}, "ts"),
        ({"site": "Plant 1"}, "site"),
        ({"asset": "press/3"}, "asset"),
        ({"asset": None}, "asset"),
        ({"production_order": 1000123}, "production_order"),
        ({"production_order": ""}, "production_order"),
        ({"production_order": " 1000123"}, "production_order"),
        ({"since": "2026-03-02"}, "since"),
        ({"since": "2026-03-02T06:00:01.000Z"}, "since"),  # after ts
        ({"lot": ["L1"]}, "lot"),
        ({"lot": "L1\n"}, "lot"),
        ({"material": "BRK\tDISC"}, "material"),
        ({"plant": 1010}, "plant"),
        ({"storage_location": ""}, "storage_location"),
        ({"quantity": "1200"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"quantity": 10**400}, "quantity"),
        ({"quantity": None}, "quantity"),  # unit without quantity
        ({"unit": None}, "unit"),  # quantity without unit
        ({"unit": 7}, "unit"),
    ],
)
def test_a_bad_field_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError, match=rf"^{field}: "):
        parse_context(payload(**changes))


def test_nan_and_infinity_are_refused_as_quantity() -> None:
    for text in ("NaN", "Infinity"):
        raw = payload().replace(b'"quantity": 1200.0', f'"quantity": {text}'.encode())
        assert text.encode() in raw
        with pytest.raises(PayloadError, match="^quantity: "):
            parse_context(raw)


@pytest.mark.parametrize("field", ["lot", "material", "storage_location", "quantity", "unit"])
def test_an_idle_asset_carries_no_lot_and_no_quantity(field: str) -> None:
    value = {"quantity": 5, "unit": "PC"}.get(field, "X1")
    changes: dict[str, Any] = {field: value}
    if field == "quantity":
        changes["unit"] = "PC"
    if field == "unit":
        changes["quantity"] = 5
    raw = payload(idle(), **changes)
    with pytest.raises(PayloadError, match=r"must be null while production_order is null"):
        parse_context(raw)


def test_a_context_is_not_a_record_and_a_record_is_not_a_context() -> None:
    with pytest.raises(PayloadError, match="^schema: "):
        parse_record(running().to_json().encode())
    with pytest.raises(PayloadError, match=r"^schema: 'plantwatch.alert/1' is not a production context"):
        parse_context(payload(schema=ALERT_SCHEMA))


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{", b"[]", b"null"])
def test_bytes_that_are_no_json_object_are_refused_as_payload(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="^payload: "):
        parse_context(raw)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_payload_error(raw: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_context(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


@given(
    st.sampled_from(
        [
            "schema",
            "id",
            "site",
            "asset",
            "ts",
            "production_order",
            "lot",
            "material",
            "since",
            "plant",
            "storage_location",
            "quantity",
            "unit",
        ]
    ),
    json_values,
)
def test_any_value_in_any_field_gives_a_context_that_reserialises_or_a_payload_error(
    field: str, value: Any
) -> None:
    raw = json.dumps({**json.loads(running().to_json()), field: value}).encode()  # NaN written as NaN
    try:
        parsed = parse_context(raw)
    except PayloadError:
        return
    assert parse_context(parsed.to_json().encode()) == parsed


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(contract, raise_on_error=False).failed == 0

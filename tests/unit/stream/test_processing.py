"""The engine boundary's encodings: the stored form and the output bytes are exactly what the
state machine's own ``state_to_dict`` and ``to_bytes`` give, only cheaper to make."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.processing import OrderProcessor, OutputRecord, stored_form
from stream.state import json_list_text, state_from_dict, state_to_dict
from stream.transitions import Input, apply
from tests.unit.stream.test_histories import HISTORIES


def states_and_outputs(history: list[Input]) -> tuple[list[object], list[object]]:
    state, states, outputs = None, [], []
    for item in history:
        result = apply(state, item)
        state = result.state
        states.append(state)
        outputs.extend(result.emit)
    return [s for s in states if s is not None], outputs


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_processing_stored_form_equals_state_to_dict_as_json(name: str) -> None:
    states, _ = states_and_outputs(HISTORIES[name])
    for state in states:
        assert stored_form(state) == json.loads(json.dumps(state_to_dict(state)))  # type: ignore[arg-type]
        assert state_from_dict(stored_form(state)) == state  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_processing_output_bytes_equal_the_records_own_encoding(name: str) -> None:
    _, outputs = states_and_outputs(HISTORIES[name])
    assert outputs
    for out in outputs:
        assert OutputRecord.of(out).value == out.to_bytes()  # type: ignore[arg-type, attr-defined]


def test_processing_process_stores_the_stored_form() -> None:
    history = HISTORIES[sorted(HISTORIES)[0]]
    processor, stored = OrderProcessor(3600.0, 86400.0), None
    for item in history:
        done = processor.process(stored, item)
        expected = apply(state_from_dict(stored) if stored else None, item).state
        assert done.state == expected
        if expected is not None:
            assert state_from_dict(done.stored()) == expected  # type: ignore[arg-type]
            assert done.stored() == json.loads(orjson.dumps(done.state))
        stored = done.stored()


@given(
    st.tuples(*[st.one_of(st.none(), st.text(), st.integers(), st.booleans()) for _ in range(10)])
)
def test_processing_digest_text_is_json_dumps_text(values: tuple[str | int | None, ...]) -> None:
    # Digests already stored in orders' states were made from json.dumps' text: a copy that
    # arrives after an upgrade must still read as a copy.
    assert json_list_text(values) == json.dumps(list(values))

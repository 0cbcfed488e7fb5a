import json

from hypothesis import given
from hypothesis import strategies as st

from services.comp_engine.deals.fields_json import decode_all

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(st.dictionaries(st.text(max_size=8), values, max_size=6), max_size=8))
def test_decodes_as_json_does(objects: list[dict[str, object]]) -> None:
    texts = [json.dumps(o) for o in objects]
    decoded = decode_all(texts)
    assert decoded == [json.loads(t) for t in texts]
    assert repr(decoded) == repr([json.loads(t) for t in texts])


def test_an_integer_past_64_bits_stays_exact() -> None:
    big = 123456789012345678901234567890
    assert decode_all([f'{{"id": {big}}}', '{"amount": "1.5"}']) == [{"id": big}, {"amount": "1.5"}]

from weir.testing import Harness

from app import CurrencyConversion


def test_price_in_euros_and_other_fields_kept():
    h = Harness(CurrencyConversion, config={"rate": 0.5})
    out = h.process([{"auction": 7, "price": 100, "extra": "x"}])
    assert [o.kind for o in out] == ["emit"]
    assert out[0].value == {"auction": 7, "price": 50.0, "extra": "x"}


def test_a_bid_without_a_price_is_a_record_error():
    h = Harness(CurrencyConversion)
    out = h.process([{"auction": 7}])
    assert [o.kind for o in out] == ["error"]

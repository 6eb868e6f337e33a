"""The settings A/B bench's variant syntax."""

from __future__ import annotations

import pytest

from yiju_infra.bench.settings_ab import parse_args, parse_variant


def test_a_variant_is_comma_separated_settings_and_empty_is_the_defaults() -> None:
    assert parse_variant("") == {}
    assert parse_variant(" YIJU_A=1 , YIJU_B=x=y ,") == {"YIJU_A": "1", "YIJU_B": "x=y"}


@pytest.mark.parametrize("bad", ["YIJU_A", "=1", "YIJU_A=1,oops"])
def test_a_setting_without_a_name_and_value_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="K=V"):
        parse_variant(bad)


def test_the_defaults_of_the_command_line() -> None:
    args = parse_args(["", "YIJU_KAFKA_COMMIT_INTERVAL_MS=0"])
    assert (args.rate, args.step_s, args.repeat) == (150.0, 40.0, 1)
    assert args.variants == ["", "YIJU_KAFKA_COMMIT_INTERVAL_MS=0"]

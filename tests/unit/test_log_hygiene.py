"""Secrets never reach the logs; addresses and other personal data are masked in logs and spans."""

from __future__ import annotations

import json
import logging

from yiju.common.logs import JsonFormatter, redact


def _format(**extra: object) -> dict:
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "t", **extra})
    return json.loads(JsonFormatter("test").format(record))


def test_secrets_are_dropped_from_log_lines() -> None:
    line = _format(
        token="eyJhbGciOi",
        authorization="Bearer x",
        jwt_secret="s3cret",
        api_key="yk_1",
        user_assertion="eyJ",
        order_id="ord_1",
    )
    assert line["token"] == line["authorization"] == line["jwt_secret"] == line["api_key"] == "[secret]"
    assert line["user_assertion"] == "[secret]"
    assert line["order_id"] == "ord_1"
    assert "s3cret" not in json.dumps(line)


def test_personal_data_is_masked_but_messaging_attributes_are_not() -> None:
    assert redact("address", "Shanghai, Century Avenue 100") == "[redacted]"
    assert redact("user.addresses", "Hangzhou") == "[redacted]"
    assert redact("deliver_to", "office") == "[redacted]"
    assert redact("destination", "home") == "[redacted]"
    assert redact("messaging.destination.name", "yiju.plan.created.v1") == "yiju.plan.created.v1"
    assert redact("order_id", "ord_1") == "ord_1"


def test_a_storm_of_repeated_client_errors_is_one_line_per_interval_with_a_count() -> None:
    import logging

    from yiju.common.logs import RepeatLimiter

    limiter = RepeatLimiter(interval_s=3600)

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)

    storm = [record("aiokafka.conn", "Unable connect to node with id %s", 1) for _ in range(500)]
    assert [limiter.filter(r) for r in storm].count(True) == 1
    assert limiter.filter(record("aiokafka.conn", "another message"))  # a new template passes
    assert all(limiter.filter(record("yiju.payment", "same text")) for _ in range(5))  # our own: all
    limiter.interval_s = 0.0
    again = record("aiokafka.conn", "Unable connect to node with id %s", 1)
    assert limiter.filter(again) and again.repeats_suppressed == 499

"""Cron expressions, occurrence arithmetic and the clock (no I/O besides the test clock file).

Expressions are flora's: 5 fields ``minute hour day-of-month month
day-of-week``, evaluated in UTC (croniter; ``*``, lists, ranges, steps, names,
day-of-week 0 and 7 = Sunday). The nicknames ``@hourly`` … ``@yearly`` are
accepted too. Times are UNIX seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import time

from croniter import CroniterBadDateError, CroniterError, croniter

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CATCH_UP = ("none", "latest")

# For tests only: a file holding the current UNIX time (a number), read at every tick by the
# scheduler and at registration by the workers, so a test can move time across occurrences.
TEST_CLOCK_ENV = "FLORA_CRON_TEST_CLOCK"
# For tests only: seconds between scheduler ticks (default 1, as in flora).
TEST_TICK_ENV = "FLORA_CRON_TEST_TICK_SECS"


class CronError(Exception):
    """A job was refused; the message is flora's."""


def normalize(expr: str) -> str:
    """The 5-field form of ``expr``; :class:`CronError` with flora's message if it is not valid."""
    text = " ".join(expr.split())
    text = NICKNAMES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"invalid cron expression '{expr}': expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    try:
        croniter(text, 0)
    except CroniterError as exc:
        raise CronError(f"invalid cron expression '{expr}': {exc}") from None
    return text


def next_after(expr: str, t: float) -> int:
    """The first occurrence strictly after ``t``; :class:`CronError` if there is none."""
    try:
        return int(croniter(expr, int(t)).get_next(float))
    except CroniterBadDateError as exc:
        raise CronError(f"cron schedule has no future occurrences: {exc}") from None


def latest_at_or_before(expr: str, t: float) -> int:
    """The last occurrence at or before ``t``."""
    return int(croniter(expr, int(t) + 1).get_prev(float))


def count_between(expr: str, first: int, last: int, cap: int = 1000) -> int:
    """How many occurrences lie in ``[first, last]`` (``first`` being one); at most ``cap``."""
    if last < first:
        return 0
    it = croniter(expr, first)
    count = 1
    while count < cap and it.get_next(float) <= last:
        count += 1
    return count


def rfc3339(t: float) -> str:
    """``2026-11-25T12:01:00+00:00``, the shape of flora's ``to_rfc3339`` (UTC)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def now() -> float:
    """Wall-clock UNIX time, or the test clock file's when ``FLORA_CRON_TEST_CLOCK`` is set."""
    path = os.environ.get(TEST_CLOCK_ENV)
    if path:
        with open(path, encoding="utf-8") as f:
            return float(f.read().strip())
    return time.time()


def tick_seconds() -> float:
    raw = os.environ.get(TEST_TICK_ENV)
    return float(raw) if raw else 1.0

"""Retention keeps 7 daily / 4 weekly / 3 monthly over a simulated sequence of dates."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from litellm_ops import backup


def daily_run(days: int, start: dt.datetime) -> list[dt.datetime]:
    return [start + dt.timedelta(days=i, minutes=(i * 37) % 60) for i in range(days)]


def test_rotation_over_four_months_of_daily_backups():
    stamps = daily_run(120, dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC))
    keep = backup.retain(stamps, daily=7, weekly=4, monthly=3)
    newest = max(stamps)
    days = {s.date() for s in keep}
    # The 7 most recent days, every one of them.
    assert {newest.date() - dt.timedelta(days=i) for i in range(7)} <= days
    # One per ISO week for the 4 most recent weeks, and one per month for the 3 most recent months.
    weeks = sorted({s.isocalendar()[:2] for s in stamps}, reverse=True)[:4]
    months = sorted({(s.year, s.month) for s in stamps}, reverse=True)[:3]
    for week in weeks:
        assert max(s for s in stamps if s.isocalendar()[:2] == week) in keep
    for month in months:
        assert max(s for s in stamps if (s.year, s.month) == month) in keep
    # Nothing else: the rotation bounds the disk use.
    assert len(keep) <= 7 + 4 + 3
    assert all(s.isocalendar()[:2] in weeks or (s.year, s.month) in months for s in keep)
    oldest_month = min(months)
    assert all((s.year, s.month) >= oldest_month for s in keep)


def test_rotation_is_stable_day_after_day():
    """Applying the rotation every day (as the timer does) ends where applying it once does."""
    stamps = daily_run(100, dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC))
    kept: set[dt.datetime] = set()
    for stamp in stamps:
        kept = backup.retain([*kept, stamp], 7, 4, 3)
    assert len(kept) <= 14
    assert max(stamps) in kept
    assert len({s.date() for s in kept if s > max(stamps) - dt.timedelta(days=7)}) == 7
    assert len({(s.year, s.month) for s in kept}) >= 3


@pytest.mark.parametrize(("daily", "weekly", "monthly"), [(1, 0, 0), (3, 2, 1), (7, 4, 3), (30, 0, 12)])
def test_counts_are_parameters(daily, weekly, monthly):
    stamps = daily_run(400, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    keep = backup.retain(stamps, daily, weekly, monthly)
    assert len(keep) <= daily + weekly + monthly
    assert len({s.date() for s in keep}) >= daily


def test_prune_removes_only_complete_backups_outside_the_rotation(tmp_path):
    stamps = daily_run(40, dt.datetime(2026, 5, 1, 1, 0, tzinfo=dt.UTC))
    for stamp in stamps:
        directory = tmp_path / (backup.PREFIX + stamp.strftime(backup.STAMP))
        directory.mkdir()
        (directory / backup.MANIFEST).write_text(json.dumps({}))
    (tmp_path / ".partial-litellm-20260610T010000Z").mkdir()
    (tmp_path / "unrelated").mkdir()
    settings = {"backup": {"retention": {"daily": 7, "weekly": 4, "monthly": 3}}}
    removed = backup.prune(settings, tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    expected = {backup.PREFIX + s.strftime(backup.STAMP) for s in backup.retain(stamps, 7, 4, 3)}
    assert left == expected | {"unrelated"}
    assert len(removed) == 40 - len(expected)
    assert backup.prune(settings, tmp_path) == []


def test_backup_names_round_trip():
    stamp = dt.datetime(2026, 11, 23, 4, 5, 6, tzinfo=dt.UTC)
    assert backup.parse_name(backup.PREFIX + stamp.strftime(backup.STAMP)) == stamp
    assert backup.parse_name("litellm-yesterday") is None
    assert backup.parse_name("other-20261123T040506Z") is None

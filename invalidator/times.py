"""Times and durations as settings and operators write them: ISO 8601 with a zone, a duration
in ISO 8601 or short form, or a duration meaning that long ago."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from contracts.errors import OperatorInputError

DATETIME_FORMS = "ISO 8601 with a zone, e.g. 2026-11-27T13:45:00Z or 2026-11-27T14:45:00+01:00"
DURATION_FORMS = "ISO 8601 (PT15M, PT1H30M, P1D) or short (90s, 15m, 2h, 1h30m, 1d)"

_SHORT_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_datetime(text: str, *, option: str) -> datetime:
    """An aware datetime from ISO 8601 text; a time without a zone is refused (ambiguous)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OperatorInputError(
            f"{option} {text!r} is not a time; write {DATETIME_FORMS}"
        ) from None
    if parsed.tzinfo is None:
        raise OperatorInputError(f"{option} {text!r} has no zone; write {DATETIME_FORMS}")
    return parsed


def parse_duration(text: str, *, option: str) -> timedelta:
    """A positive duration from ISO 8601 (`PT15M`) or short (`15m`, `1h30m`) text."""
    compact = text.strip()
    match = _ISO_DURATION.fullmatch(compact.upper()) if compact[:1] in "Pp" else None
    if match is None:
        match = _SHORT_DURATION.fullmatch(compact.lower())
    if match is None or not any(match.groups()):
        raise OperatorInputError(f"{option} {text!r} is not a duration; write {DURATION_FORMS}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_when(text: str, *, option: str, now: datetime | None = None) -> datetime:
    """A point in time: an ISO 8601 datetime, or a duration meaning that long before now."""
    if text[:1].isdigit() and ("-" in text or ":" in text):
        return parse_datetime(text, option=option)
    try:
        ago = parse_duration(text, option=option)
    except OperatorInputError:
        raise OperatorInputError(
            f"{option} {text!r} is neither a time ({DATETIME_FORMS}) nor a duration ago "
            f"({DURATION_FORMS})"
        ) from None
    return (now or datetime.now(UTC)) - ago

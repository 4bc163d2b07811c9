"""Cron schedules as Kubernetes CronJobs read them: parse, check, and find the next run.

The dialect is the one kube-controller-manager accepts (robfig/cron's standard parser): five
fields `minute hour day-of-month month day-of-week`, each a comma list of `*`, `N`, `N-M`, with
an optional `/step`; month names JAN-DEC and weekday names SUN-SAT (any case); `?` as `*` in the
two day fields; and the macros @yearly, @annually, @monthly, @weekly, @daily, @midnight,
@hourly. Day-of-week runs 0-6 with 0 = Sunday (7 is refused, as Kubernetes refuses it).
`@every` and `TZ=`/`CRON_TZ=` prefixes are refused: Kubernetes wants `.spec.timeZone` instead.

As in cron, when both day fields are restricted a day matches if EITHER matches; when one of
them is `*` (or `?`) only the other one counts.

The module is pure so the spec validator, the backup planner ("is the last backup overdue?")
and the tests share one reading of a schedule.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final


class CronError(ValueError):
    """A schedule that Kubernetes would refuse, or that would never run."""


MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS: Final = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS: Final = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    question_mark: bool


_FIELDS: Final = (
    _Field("minute", 0, 59, {}, False),
    _Field("hour", 0, 23, {}, False),
    _Field("day-of-month", 1, 31, {}, True),
    _Field("month", 1, 12, _MONTHS, False),
    _Field("day-of-week", 0, 6, _WEEKDAYS, True),
)

# The longest a month can be, per month number (February counts its leap-year 29 days).
_MONTH_DAYS: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the set of allowed values of each field."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def day_matches(self, moment: datetime) -> bool:
        """Whether the date of `moment` is a day this schedule runs on."""
        dom = moment.day in self.days_of_month
        dow = (moment.isoweekday() % 7) in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom or dow
        return dom and dow

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires in the minute of `moment`."""
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self.day_matches(moment)
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first minute strictly after `moment` at which the schedule fires.

        Works in `moment`'s own time zone (CronJobs without `.spec.timeZone` use the
        controller-manager's, normally UTC). Jumps a month, a day or an hour at a time when
        that field does not match, so even a once-a-year schedule takes a few hundred steps.
        """
        current = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + timedelta(days=366 * 5)
        while current <= limit:
            if current.month not in self.months:
                current = _first_of_next_month(current)
            elif not self.day_matches(current):
                current = current.replace(hour=0, minute=0) + timedelta(days=1)
            elif current.hour not in self.hours:
                current = current.replace(minute=0) + timedelta(hours=1)
            elif current.minute not in self.minutes:
                current = current + timedelta(minutes=1)
            else:
                return current
        raise CronError("the schedule does not fire within five years")


def _first_of_next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0)


def _value(text: str, field: _Field) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names[upper]
    if not text.isdigit():
        hint = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise CronError(f"{field.name} field: {text!r} is not a number{hint}")
    number = int(text)
    if not field.low <= number <= field.high:
        raise CronError(
            f"{field.name} field: {number} is out of range {field.low}-{field.high}"
            + (" (0 is Sunday; 7 is not accepted)" if field.name == "day-of-week" else "")
        )
    return number


def _term(text: str, field: _Field) -> tuple[set[int], bool]:
    """One comma-separated term -> (values, whether it is an unrestricted `*`)."""
    range_text, slash, step_text = text.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{field.name} field: step {step_text!r} must be a positive number")
        step = int(step_text)
    if range_text == "*" or (range_text == "?" and field.question_mark):
        low, high, star = field.low, field.high, step == 1
    elif range_text == "?":
        raise CronError(f"{field.name} field: '?' is only allowed in the two day fields")
    else:
        first, dash, last = range_text.partition("-")
        low = _value(first, field)
        # "N/step" means "from N to the end of the range, every step".
        high = _value(last, field) if dash else (field.high if slash else low)
        if low > high:
            raise CronError(f"{field.name} field: range {range_text!r} ends before it starts")
        star = False
    return set(range(low, high + 1, step)), star


def _field(text: str, field: _Field) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for term in text.split(","):
        if not term:
            raise CronError(f"{field.name} field: empty entry in {text!r}")
        term_values, term_star = _term(term, field)
        values |= term_values
        star = star or term_star
    return frozenset(values), star


def parse_cron(text: str) -> CronSchedule:
    """Parse a CronJob schedule; raise CronError with a message that says what to change."""
    spec = text.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("time zones inside the schedule are not accepted; schedules run in UTC")
    if spec.startswith("@"):
        if spec.startswith("@every"):
            raise CronError("@every is not accepted by Kubernetes CronJobs; write five fields")
        if spec.lower() not in MACROS:
            raise CronError(f"unknown macro {spec!r}; use one of {', '.join(MACROS)}")
        spec = MACROS[spec.lower()]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or a macro like "
            f"@daily, got {len(parts)} field(s)"
        )
    parsed = [_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    (minutes, _), (hours, _), (dom, dom_star), (months, _), (dow, dow_star) = parsed
    schedule = CronSchedule(
        minutes=minutes,
        hours=hours,
        days_of_month=dom,
        months=months,
        days_of_week=dow,
        day_of_month_restricted=not dom_star,
        day_of_week_restricted=not dow_star,
    )
    if not dow_star and not dom_star:
        return schedule  # either day field may match: some weekday always occurs
    if dow_star and not any(day <= _MONTH_DAYS[m] for m in months for day in dom):
        raise CronError(
            f"the schedule never runs: day-of-month {sorted(dom)} does not occur in month(s) "
            f"{sorted(months)}"
        )
    return schedule


def cron_problem(text: str) -> str | None:
    """The reason `text` is not a valid schedule, or None."""
    try:
        parse_cron(text)
    except CronError as err:
        return str(err)
    return None

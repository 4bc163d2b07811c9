"""What a pass changed becomes one Event, however many actions it took."""

from __future__ import annotations

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.events import MESSAGE_LIMIT, EventSpec, action_events, fit_message


def test_no_action_posts_nothing_and_one_action_is_its_own_message() -> None:
    assert action_events([]) == []
    assert action_events(["created Secret lokifi-db-conn"]) == [
        EventSpec("Normal", Reason.RECONCILED, "created Secret lokifi-db-conn")
    ]


def test_a_few_actions_are_one_event_in_their_order() -> None:
    actions = [
        "claimed table public.ai_messages",
        "create partition public.ai_messages_p2026_11 of public.ai_messages",
        "created connection Secret lokifi-db-conn",
    ]
    [event] = action_events(actions)
    assert event.type == "Normal"
    assert event.reason == Reason.RECONCILED
    assert event.message == "3 changes: " + "; ".join(actions)


def test_many_of_a_kind_are_counted_and_the_others_still_said() -> None:
    months = [
        f"create partition public.ai_messages_p{y}_{m:02d} of public.ai_messages for FROM (...)"
        for y in range(2020, 2030)
        for m in range(1, 13)
    ]
    nodes = [f"CONFIG SET maxmemory 1073741824 on 127.0.0.1:700{n}" for n in range(3)]
    actions = [*months, *nodes, "created CronJob lokifi-prod-backup-daily (30 1 * * *)"]
    [event] = action_events(actions, Reason.CLEANED_UP)
    assert event.reason == Reason.CLEANED_UP
    assert event.message == (
        "124 changes: create partition x120: public.ai_messages_p2020_01,"
        " public.ai_messages_p2020_02, public.ai_messages_p2020_03, public.ai_messages_p2020_04,"
        " and 116 more; CONFIG SET x3: maxmemory 1073741824 on 127.0.0.1:7000,"
        " maxmemory 1073741824 on 127.0.0.1:7001, maxmemory 1073741824 on 127.0.0.1:7002;"
        " created CronJob lokifi-prod-backup-daily (30 1 * * *)"
    )


def test_the_message_never_passes_the_limit_in_bytes() -> None:
    [single] = action_events(["x" * 5000])
    assert len(single.message.encode()) == MESSAGE_LIMIT
    assert single.message.endswith("...")
    [event] = action_events([f"action{n} {'y' * 300}" for n in range(10)])
    assert len(event.message.encode()) == MESSAGE_LIMIT
    # The API server counts bytes: 1,000 characters of which some take two bytes are cut.
    assert fit_message("é" * 1000).encode() == ("é" * 510).encode() + b"..."
    assert fit_message("é" * 512) == "é" * 512


def test_kinds_seen_twice_are_folded_in_the_order_first_seen() -> None:
    actions = [
        "claimed table public.ai_messages",
        "created CronJob lokifi-prod-backup-daily (0 2 * * *)",
        "claimed table public.ai_threads",
    ]
    [event] = action_events(actions)
    assert event.message == (
        "3 changes: claimed table x2: public.ai_messages, public.ai_threads;"
        " created CronJob lokifi-prod-backup-daily (0 2 * * *)"
    )

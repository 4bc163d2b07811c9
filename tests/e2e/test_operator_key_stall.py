"""The issue's first case through the running operator: `ai_messages` with PRIMARY KEY
(id, created_at) and `subpartitionBy: user_id`.

Stalled=True with KeyLacksPartitionColumn naming the table, the constraint, the column and the
fix; Reconciling=False; the months are made (plain), so rows land in their month and not in
DEFAULT; the stored status reads back as sent (no "CRD is old" warning); and once stalled, the
resyncs write nothing at all to the API server (no retry loop, no repeated Event).
"""

from __future__ import annotations

import json
import time

import psycopg
from e2e_full import create_example_secrets
from e2e_operator import APP_SCHEMA, OperatorFactory, conditions, get_json, kubectl, wait_for
from e2e_proxy import counting_proxy

from lokifi_storage.api import conditions as types
from stackfixtures import PgDatabase, StackEnv

RESYNC = 2.0


def test_a_key_lacking_the_sub_column_stalls_makes_months_and_then_writes_nothing(
    kube_stack: StackEnv,
    crd: str,
    k8s_namespace: str,
    pg_database: PgDatabase,
    start_operator: OperatorFactory,
) -> None:
    stack, ns = kube_stack, k8s_namespace
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
        conn.execute("ALTER TABLE ai_messages ADD PRIMARY KEY (id, created_at)")
    create_example_secrets(stack, ns, pg_database)
    resource = {
        "apiVersion": "storage.lokifi.ai/v1alpha1",
        "kind": "LokifiStorage",
        "metadata": {"name": "keyed", "namespace": ns},
        "spec": {
            "postgres": {
                "primary": {"secretRef": {"name": "lokifi-db", "key": "url"}},
                "tables": [
                    {
                        "name": "ai_messages",
                        "partitionBy": {"column": "created_at", "interval": "month"},
                        "subpartitionBy": {"column": "user_id", "rangeSize": 1000, "count": 2},
                        "premake": 2,
                    },
                    {"name": "ai_threads"},
                ],
            }
        },
    }
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(resource))
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=RESYNC, kubeconfig=proxy.kubeconfig)

        def stalled() -> dict[str, dict[str, object]] | None:
            conds = conditions(get_json(stack, ns, "lks", "keyed"))
            return conds if conds.get(types.STALLED, {}).get("status") == "True" else None

        conds = wait_for(stalled, 120, "Stalled")
        part = conds[types.PARTITIONS_READY]
        assert part["reason"] == "KeyLacksPartitionColumn", part
        message = str(part["message"])
        for needed in ("public.ai_messages", "ai_messages_pkey", "lacks column user_id", "ALTER"):
            assert needed in message, message
        assert conds[types.RECONCILING]["status"] == "False"
        assert conds[types.STALLED]["reason"] == "KeyLacksPartitionColumn"

        with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
            months = conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ai_messages'::regclass"
            ).fetchone()
            conn.execute(
                "INSERT INTO ai_messages (user_id, thread_id, content) VALUES (1, 1, 'hello')"
            )
            in_default = conn.execute("SELECT count(*) FROM ai_messages_default").fetchone()
        assert months is not None
        assert months[0] == 4  # DEFAULT, this month and two ahead
        assert in_default == (0,)

        time.sleep(2 * RESYNC)  # the first pass's trailing writes (Kopf's diffbase) land
        start = time.monotonic()
        passes = operator.log().count("reconciled ")
        wait_for(lambda: operator.log().count("reconciled ") >= passes + 3, 30, "three resyncs")
        writes = proxy.writes(since=start)
        operator.stop()

    assert writes == [], [f"{w.method} {w.path}" for w in writes]
    assert "stalled (" in operator.log()
    assert "drops status fields" not in operator.log()
    stored = (get_json(stack, ns, "lks", "keyed") or {}).get("status") or {}
    threads = next(p for p in stored["partitions"] if p["table"] == "ai_threads")
    assert "oldest" not in threads  # a table without partitions, stored as it was sent

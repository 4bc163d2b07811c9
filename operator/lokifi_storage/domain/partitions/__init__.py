"""Managed tables and their partitions, pure: the walk of a table's spec from catalog rows to
SQL text happens here in one place, and only the sending and the reading happen in clients/.

catalog_query.py says what to ask the catalog, catalog_rows.py and catalog.py turn the answer
into ObservedTable; plan.py (with the plan_*.py steps) turns spec + observation + now into
actions (actions.py, pack.py); steps.py and pack_steps.py, from statements.py, turn actions into
psycopg.sql compositions. Composing SQL with psycopg.sql is
pure (no connection is needed to build it), which is why this layer may import it.
"""

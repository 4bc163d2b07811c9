"""The two ai_messages indexes of the full example (examples/local/lokifistorage.yaml), as
TableSpec.indexes entries.

One definition for the planner's unit tests, the partition integration tests and the partition
benchmarks, so all of them build the indexes the example ships with. Pure data: importing it
touches no server.
"""

from __future__ import annotations

from typing import Any

THREAD_INDEX: dict[str, Any] = {
    "name": "idx_ai_messages_user_thread_time",
    "columns": ["user_id", "thread_id", "created_at DESC"],
}
SEARCH_INDEX: dict[str, Any] = {
    "name": "idx_ai_messages_content_search",
    "fullText": {"column": "content", "language": "english"},
}

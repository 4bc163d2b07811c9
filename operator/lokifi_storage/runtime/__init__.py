"""The operator process around Kopf: start-up, Lease election, sharding, health, scheduling.

Kept apart from handlers/ so that the Kopf decorators stay a page of glue: everything with a
lifetime (threads, Leases, a server, queues) lives here and is tested without Kopf's registry.
"""

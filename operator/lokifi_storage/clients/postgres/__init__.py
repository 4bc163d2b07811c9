"""The PostgreSQL clients: probes, partition work, backups, VACUUM, sizes, job outcomes.

They share one way in (connection.py: URL parsing, connecting, and the translation of every
driver error into the clients' error tree) so that a password never reaches a message and a
lost connection reads the same whichever client lost it.
"""

"""Pydantic models of the LokifiStorage spec and status, and the CRD generated from them.

Nothing in this layer does I/O; every other layer may import it.
"""

"""Fault campaigns run against the local stack: each prints its figures and a verdict."""

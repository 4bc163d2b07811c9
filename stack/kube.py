"""Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager); being written."""

from __future__ import annotations

from stack.state import StackError, State


def env_values(state: State) -> dict[str, str]:
    return {}


def up(state: State) -> bool:
    raise StackError("the Kubernetes part of the stack is not written yet; use --no-kube")


def down(state: State) -> list[str]:
    return []


def status(state: State) -> list[tuple[str, bool, str]]:
    return [("kube-apiserver", False, "not written yet")]

"""`python -m stack up|down|status|env`: the local stack every test and the demo talk to.

up      start (or reuse) PostgreSQL, Redis Cluster, S3, then Kubernetes; write stack.env
        (`up --node`: also the node - containerd, kubelet, scheduler - so Pods run)
down    stop what `up` started (by pid file), nothing else; the node's host changes undone
image   build the operator image as an OCI archive (`image --import`: into the node)
status  one line per service; exit 1 when a selected service is not up
env     print the path of stack.env (`set -a; . "$(python -m stack env)"; set +a`)
demo    the operator reconciling examples/local/lokifistorage.yaml (`demo --stop` ends it)
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from types import ModuleType

from stack.state import StackError, State

# Fastest first, so the services most tests need are ready soonest. The node comes up only
# when asked for (`--node`, `--only node`): most tests need no Pod to run.
SERVICES = ("pg", "redis", "s3", "kube", "node")
DEFAULT_SERVICES = ("pg", "redis", "s3", "kube")
MODULES = {
    "pg": "stack.postgres",
    "redis": "stack.redis_cluster",
    "s3": "stack.s3",
    "kube": "stack.kube",
    "node": "stack.node",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])


def _selected(args: argparse.Namespace) -> list[str]:
    chosen = list(SERVICES if getattr(args, "node", False) else DEFAULT_SERVICES)
    if args.command == "down" or (args.command == "status" and _node_started()):
        chosen = list(SERVICES)
    if args.only:
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        unknown = sorted(set(wanted) - set(SERVICES))
        if unknown:
            raise SystemExit(f"unknown service(s) {unknown}; choose from {', '.join(SERVICES)}")
        chosen = [s for s in SERVICES if s in wanted]
    if getattr(args, "no_kube", False):
        chosen = [s for s in chosen if s not in ("kube", "node")]
    return chosen


def _node_started() -> bool:
    state = State.default()
    return any(state.running_pid(name) for name in ("containerd", "kubelet"))


def _write_env(state: State) -> None:
    """stack.env holds the variables of every service that is up now, started by whichever run."""
    values: dict[str, str] = {}
    for name in SERVICES:
        if name == "node" and not _node_started():
            continue
        module = _module(name)
        if all(ok for _, ok, _ in module.status(state)):
            values.update(module.env_values(state))
    state.write_env(values)


def cmd_up(args: argparse.Namespace) -> int:
    state = State.default()
    total = time.monotonic()
    with state.lock():
        for name in _selected(args):
            started = time.monotonic()
            try:
                reused = _module(name).up(state)
            except StackError as exc:
                print(
                    f"{name:6} FAILED after {time.monotonic() - started:.1f}s: {exc}",
                    file=sys.stderr,
                )
                _write_env(state)
                return 1
            how = "reused" if reused else "started"
            print(f"{name:6} {how:8} {time.monotonic() - started:6.1f}s", flush=True)
        _write_env(state)
    print(f"{'total':6} {'':8} {time.monotonic() - total:6.1f}s  env: {state.env_file}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = State.default()
    with state.lock():
        for name in reversed(_selected(args)):
            for stopped in _module(name).down(state):
                print(f"stopped {stopped}")
        _write_env(state)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = State.default()
    all_up = True
    for name in _selected(args):
        for label, ok, detail in _module(name).status(state):
            all_up = all_up and ok
            print(f"{label:24} {'up' if ok else 'down':5} {detail}")
    return 0 if all_up else 1


def cmd_env(args: argparse.Namespace) -> int:
    state = State.default()
    if not state.env_file.exists():
        print(f"{state.env_file} does not exist yet: run `python -m stack up`", file=sys.stderr)
        return 1
    print(state.env_file)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from stack.demo import demo

    return demo(stop=args.stop, timeout=args.timeout, cluster=args.cluster)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (
        ("up", cmd_up),
        ("down", cmd_down),
        ("status", cmd_status),
        ("env", cmd_env),
        ("demo", cmd_demo),
    ):
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        if name == "demo":
            p.add_argument("--stop", action="store_true", help="stop the demo's operator")
            p.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
            p.add_argument("--cluster", action="store_true",
                           help="install the operator in the node with the chart")  # fmt: skip
        elif name != "env":
            p.add_argument("--only", help="comma-separated subset of " + ",".join(SERVICES))
            p.add_argument("--no-kube", action="store_true", help="leave Kubernetes out")
            p.add_argument("--node", action="store_true", help="also the node (Pods run)")
    sub.add_parser("image", help="see `python -m stack image --help`", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["image"]:
        from stack.image import main as image_main

        return image_main(argv[1:])
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

"""`python -m faults CAMPAIGN`: run a fault campaign against the local stack and print its figures.

    python -m faults spec-fuzz --count 500 --seed 1

Each campaign exits non-zero when its verdict fails, so `make faults` fails on a regression.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid

from stack.state import State

from faults import spec_fuzz


def _kubectl() -> list[str]:
    env = State.default().read_env()
    if "KUBECTL" not in env or "KUBECONFIG" not in env:
        sys.exit("the local stack has no Kubernetes API server: run `python -m stack up` first")
    return [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"]]


def _spec_fuzz(args: argparse.Namespace) -> int:
    kubectl = _kubectl()
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", "crds/lokifistorage.yaml"],
        check=True,
        capture_output=True,
    )
    namespace = f"fuzz-{uuid.uuid4().hex[:8]}"
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    try:
        report = spec_fuzz.generate(args.count, args.seed)
        spec_fuzz.judge(report.cases, kubectl, namespace)
    finally:
        subprocess.run(
            [*kubectl, "delete", "namespace", namespace, "--wait=false"], capture_output=True
        )
    print(f"spec-fuzz --count {args.count} --seed {args.seed}")
    print("\n".join(spec_fuzz.summary(report)))
    failed = report.count(spec_fuzz.REFUSED_UNNAMED) + report.count(spec_fuzz.ADMITTED)
    print(f"verdict: {'PASS' if failed == 0 else 'FAIL'}")
    return 0 if failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    sub = parser.add_subparsers(dest="campaign", required=True)
    fuzz = sub.add_parser("spec-fuzz", help="invalid specs against admission and the models")
    fuzz.add_argument("--count", type=int, default=500)
    fuzz.add_argument("--seed", type=int, default=1)
    fuzz.set_defaults(run=_spec_fuzz)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

"""S3: moto's server mode on 127.0.0.1:59000, always spoken to through real boto3 over HTTP.

moto keeps objects in memory, so a restart starts with no buckets; tests create their own.

Authentication is on, as on real S3: right after moto starts (while it still accepts anything),
`up` creates an IAM user with an allow-all policy and an access key, writes that key pair to
<state>/s3/credentials.json (0600) and into stack.env, then switches moto's request
authentication on (POST /moto-api/reset-auth 0). From then on a wrong key is refused with
InvalidAccessKeyId / SignatureDoesNotMatch, so tests can prove AccessDenied handling for real.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from stack.state import StackError, State, port_open, spawn, stop_pid, wait_for

HOST = "127.0.0.1"
PORT = 59000
ENDPOINT = f"http://{HOST}:{PORT}"
REGION = "us-east-1"
IAM_USER = "lokifi-stack"
# Any key works until authentication is switched on; these only create the real key pair.
_BOOTSTRAP_KEY = "bootstrap"


def _credentials_file(state: State) -> Path:
    return state.sub("s3") / "credentials.json"


def _read_credentials(state: State) -> dict[str, str] | None:
    path = _credentials_file(state)
    if not path.exists():
        return None
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def env_values(state: State) -> dict[str, str]:
    keys = _read_credentials(state)
    if keys is None:
        raise StackError(f"{_credentials_file(state)} is missing: run `python -m stack up`")
    return {
        "LOKIFI_S3_ENDPOINT": ENDPOINT,
        "AWS_ACCESS_KEY_ID": keys["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }


def _client(service: str, access_key: str, secret_key: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )


def _keys_work(keys: dict[str, str]) -> bool:
    import botocore.exceptions

    try:
        _client("s3", keys["access_key_id"], keys["secret_access_key"]).list_buckets()
    except botocore.exceptions.ClientError:
        return False
    return True


def _auth_enabled() -> bool:
    """True when moto refuses a key it never issued (authentication is on)."""
    return not _keys_work({"access_key_id": "not-issued", "secret_access_key": "not-issued"})


def _provision_credentials(state: State) -> None:
    """Create the stack's IAM user and key pair, then switch moto's authentication on."""
    iam = _client("iam", _BOOTSTRAP_KEY, _BOOTSTRAP_KEY)
    if IAM_USER not in {user["UserName"] for user in iam.list_users()["Users"]}:
        iam.create_user(UserName=IAM_USER)
        iam.put_user_policy(
            UserName=IAM_USER,
            PolicyName="allow-all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
    key = iam.create_access_key(UserName=IAM_USER)["AccessKey"]
    path = _credentials_file(state)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}, fh
        )
    os.replace(tmp, path)
    request = urllib.request.Request(  # noqa: S310 - loopback moto endpoint
        f"{ENDPOINT}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        if resp.status != 200:
            raise StackError(f"moto refused to switch authentication on ({resp.status})")


def _ensure_credentials(state: State) -> None:
    """A running moto has working stack keys and authentication on, whoever started it."""
    keys = _read_credentials(state)
    if keys is not None and _keys_work(keys) and _auth_enabled():
        return
    if _auth_enabled():
        raise StackError(
            "moto requires authentication but the stack's key pair is lost; restart it with "
            "`python -m stack down --only s3 && python -m stack up --only s3`"
        )
    _provision_credentials(state)


def _answers() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/moto-api/", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _running(state: State) -> bool:
    return state.running_pid("s3") is not None and port_open(PORT)


def up(state: State) -> bool:
    if _running(state):
        _ensure_credentials(state)
        return True
    if port_open(PORT):
        raise StackError(f"port {PORT} is taken by a process this stack did not start")
    log = state.sub("s3") / "moto.log"
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    pid = spawn([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(PORT)], log, env=env)
    state.write_pid("s3", pid)
    wait_for("moto S3 server", _answers, 60, log)
    _provision_credentials(state)
    return False


def down(state: State) -> list[str]:
    pid = state.running_pid("s3")
    state.forget_pid("s3")
    if pid is None:
        return []
    stop_pid(pid)
    return ["s3"]


def status(state: State) -> list[tuple[str, bool, str]]:
    return [("s3", _running(state) and _answers(), ENDPOINT)]

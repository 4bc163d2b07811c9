"""Run deploy/argocd/health.lua the way Argo CD does: the live object as the global `obj`.

Argo CD turns the object's JSON into a Lua table (objects become tables with string keys,
arrays become 1-indexed tables, null becomes nil) and runs the health script as a chunk whose
return value is the health. `lua_literal` writes the same table as Lua source, and
`argocd_health` runs the script with Debian's `lua5.4` on it, so the test reads the real
script's verdict on the real object the operator wrote.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "deploy" / "argocd" / "health.lua"
LUA = "lua5.4"

# Escapes with a meaning of their own; every other byte outside printable ASCII is written as a
# three-digit decimal escape, as Lua's %q does for control bytes.
_NAMED = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def lua_string(text: str) -> str:
    """A double-quoted Lua string literal holding exactly the UTF-8 bytes of `text`.

    Decimal escapes always take three digits (`\\009`), so a digit that follows can never be
    read as part of the escape; bytes >= 0x80 are escaped too, so the literal is plain ASCII
    whatever encoding the source is read in.
    """
    out = ['"']
    for byte in text.encode("utf-8"):
        if byte in _NAMED:
            out.append(_NAMED[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def lua_literal(value: Any) -> str:
    """`value` (decoded JSON) as a Lua expression; null as nil, arrays 1-indexed."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit a Lua integer")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list | tuple):
        # Explicit indexes: a nil in the middle must not shift the elements after it.
        items = [f"[{i}]={lua_literal(v)}" for i, v in enumerate(value, start=1) if v is not None]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, dict):
        fields = [
            f"[{lua_string(str(k))}]={lua_literal(v)}" for k, v in value.items() if v is not None
        ]
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


@dataclass(frozen=True)
class Health:
    """What the health script returned."""

    status: str
    message: str


_WRAPPER = """\
obj = {obj}
local hs = dofile({script})
io.write(hs.status or "", "\\0", hs.message or "")
"""


def run_lua(source: str) -> str:
    """Run Lua source with lua5.4 (read from stdin), return its stdout; fail on any error."""
    result = subprocess.run(
        [LUA, "-"], input=source.encode(), capture_output=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"lua5.4 failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode()


def argocd_health(obj: dict[str, Any], script: Path = HEALTH_LUA) -> Health:
    """The health `script` gives the object `obj`, run as Argo CD runs it."""
    out = run_lua(_WRAPPER.format(obj=lua_literal(obj), script=lua_string(str(script))))
    status, _, message = out.partition("\0")
    return Health(status, message)


def round_trip(value: Any) -> Any:
    """`value` written as a Lua table, read back by Lua and dumped as JSON-like text.

    Proves the serializer: Lua walks the table it parsed and prints it canonically (keys
    sorted, arrays by index), which must decode to the input with nulls dropped.
    """
    dumper = r"""
local function dump(v)
  local t = type(v)
  if t == "table" then
    local n = #v
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    if n > 0 and #keys == n then
      local parts = {}
      for i = 1, n do parts[i] = dump(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = dump(tostring(k)) .. ":" .. dump(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.17g", v)
  else
    return tostring(v)
  end
end
io.write(dump(VALUE))
"""
    out = run_lua(f"VALUE = {lua_literal(value)}\n{dumper}")
    # Each byte came back as \\u00XX: re-assemble the UTF-8 bytes before comparing.
    decoded = json.loads(out)
    return _bytes_to_text(decoded)


def _bytes_to_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("latin-1").decode("utf-8")
    if isinstance(value, list):
        return [_bytes_to_text(v) for v in value]
    if isinstance(value, dict):
        return {_bytes_to_text(k): _bytes_to_text(v) for k, v in value.items()}
    return value


KSTATUS_BUILD = REPO / "tools" / "kstatus" / "build.sh"


def kstatus_binary() -> Path:
    """The kstatus checker, built by tools/kstatus/build.sh (instant once cached)."""
    result = subprocess.run(
        ["bash", str(KSTATUS_BUILD)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"building the kstatus checker failed: {result.stderr.strip()}")
    return Path(result.stdout.strip().splitlines()[-1])


def kstatus(binary: Path, obj: dict[str, Any]) -> Health:
    """What sigs.k8s.io/cli-utils' status.Compute says of `obj` (Current, InProgress, ...)."""
    result = subprocess.run(
        [str(binary)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kstatus failed: {result.stderr.strip()}")
    out = json.loads(result.stdout)
    return Health(str(out["status"]), str(out["message"]))

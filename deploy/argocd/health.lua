-- Argo CD health check for LokifiStorage (storage.lokifi.ai).
--
-- Written for Lua 5.1 with only the base and table libraries, as Argo CD's gopher-lua runs it.
-- Argo CD sets the global `obj` to the live object and reads the returned table:
-- hs.status in Healthy | Progressing | Degraded | Suspended, hs.message shown in the UI.
-- The operator writes the kstatus trio (Ready, Reconciling, Stalled) and
-- status.observedGeneration; the rules below read them the way kstatus does, so Argo CD,
-- Flux and `kubectl wait --for=condition=Ready` agree:
--   no status yet, or observedGeneration behind metadata.generation -> Progressing
--     (the conditions describe an older spec, or none at all)
--   Stalled=True                        -> Degraded   (a human has to fix something)
--   Ready=True                          -> Healthy
--   Ready=False and Reconciling=True    -> Progressing (the operator is retrying)
--   Ready=False otherwise               -> Degraded
--   Ready missing or Unknown            -> Progressing

local hs = {}

local function condition(kind)
  local conditions = obj.status.conditions
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  return message
end

local generation = obj.metadata and obj.metadata.generation

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  -- Concatenation, not string.format("%d"): Argo CD runs gopher-lua (Lua 5.1, every number a
  -- float64) whose string.format hands "%d" to Go's fmt, which cannot print a float as %d.
  hs.message = "waiting for the operator to observe generation " .. generation
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil and ready.status == "False" then
  local reconciling = condition("Reconciling")
  if reconciling ~= nil and reconciling.status == "True" then
    hs.status = "Progressing"
    hs.message = describe(reconciling)
  else
    hs.status = "Degraded"
    hs.message = describe(ready)
  end
  return hs
end

hs.status = "Progressing"
hs.message = "waiting for the Ready condition"
return hs

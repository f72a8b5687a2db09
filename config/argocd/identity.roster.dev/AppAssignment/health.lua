-- Health of Roster objects (identity.roster.dev) for Argo CD. One script for every kind;
-- make manifests copies it to identity.roster.dev/<Kind>/health.lua and argocd-cm.yaml.
-- It uses base Lua only: Argo CD's default restricted mode loads no string library.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local message = ""
  if c.reason ~= nil then
    message = c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    message = message .. ": " .. c.message
  end
  return message
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: accounts are deprovisioned first"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Roster to report"
  return hs
end

if obj.metadata.generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for Roster to act on the latest change"
  return hs
end

local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
if obj.kind == "AccessRequest" and stalled ~= nil and stalled.status == "True" and stalled.reason == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = describe(stalled)
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if obj.kind == "AppConnection" then
  local annotations = obj.metadata.annotations
  if annotations ~= nil and annotations["identity.roster.dev/paused"] == "true" then
    hs.status = "Suspended"
    hs.message = "Paused: nothing is written to the app"
    return hs
  end
  if obj.spec ~= nil and obj.spec.mode == "Plan" then
    hs.status = "Suspended"
    hs.message = "Plan mode: the plan is published, nothing is written to the app"
    return hs
  end
end

local ready = condition(conditions, "Ready")
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for Roster to report"
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.status = "Healthy"
hs.message = describe(ready)
return hs

-- vedirect_bmv.lua: Domoticz Lua parser for vedirect_async's legacy "udevices" mode.
--
-- Written for vedirect_async (MIT). It also understands what the old vedirect.py script sent,
-- so it can replace an ap_bmv.lua / bmv_json.lua parser as is.
--
-- What arrives (one request per device and interval):
--   GET /json.htm?type=command&param=udevices&script=vedirect_bmv.lua&data=<json>
--   [&device=<name>, only when vedirect_async reads several devices]
-- <json> is an object of the device's raw VE.Direct labels and values, all strings, in the
-- device's own units, for example (a BMV-702):
--   {"PID":"0x203","V":"12650","I":"-1230","P":"-16","CE":"-20500","SOC":"876","TTG":"1234",
--    "Alarm":"OFF","Relay":"OFF","AR":"0","BMV":"702","FW":"0308","H1":"-102345",...,"H18":"8527"}
-- A value of "---" means "not available" (an unsynchronised BMV's SOC, CE and TTG).
--
-- Install:
--   1. Copy this file to <Domoticz userdata>/scripts/lua_parsers/vedirect_bmv.lua
--      (e.g. ~/domoticz/scripts/lua_parsers/, or /opt/domoticz/userdata/scripts/lua_parsers/
--      in the Docker image).
--   2. Create the devices (Setup > Hardware > a "Dummy" hardware > Create Virtual Sensors),
--      note their idx (Setup > Devices) and put them in the DEVICES table below.
--   3. In vedirect_async's config.toml:  [domoticz] enabled = true, mode = "udevices",
--      script = "vedirect_bmv.lua"
-- Domoticz answers "OK" as soon as this file is found and compiles. A wrong idx or a label
-- typo below is SILENT on a real Domoticz (2025.1): no update and no log line. Only a runtime
-- error logs "CLuaHandler: ..." (Setup > Log), and only a missing file or a syntax error makes
-- Domoticz answer "ERR". After editing DEVICES check each device's "Last Seen" in Domoticz.
--
-- For new installations the default mode "udevice" is better: one request per idx, each
-- confirmed by Domoticz, no Lua needed (python -m vedirect_async domoticz setup).

-- Only handle requests for this device name ("" = any). vedirect_async adds &device=<name>
-- to the URL when it reads more than one device.
local DEVICE = ""

-- label = the VE.Direct label in the JSON; idx = the Domoticz device; factor converts the raw
-- value (mV, mA, 0.1 %, 0.01 kWh ...) to what the device shows; decimals is how many to send.
-- kind: "value" (Voltage, Current, Percentage, Custom, Usage, Temperature devices; sends the
-- number), "kwh" (Electric Instant+Counter device; sends "0;<Wh>" with factor giving Wh),
-- "text" (Text device; sends the raw value).
-- The idx and factors below are those of the old ap_bmv.lua example, so an existing setup keeps
-- its devices. H17/H18 there feed Custom sensors in kWh; for an "Electric (Instant+Counter)"
-- device (Energy dashboard) use factor = 10, decimals = 0, kind = "kwh" (0.01 kWh -> Wh).
-- Delete the lines you do not need; an idx that does not exist is silently ignored.
local DEVICES = {
  { label = "V",   idx = 60, factor = 0.001, decimals = 3, kind = "value" }, -- battery V
  { label = "I",   idx = 61, factor = 0.001, decimals = 3, kind = "value" }, -- battery A
  { label = "P",   idx = 62, factor = 1,     decimals = 0, kind = "value" }, -- power W
  { label = "SOC", idx = 63, factor = 0.1,   decimals = 1, kind = "value" }, -- state of charge %
  { label = "H18", idx = 64, factor = 0.01,  decimals = 2, kind = "value" }, -- charged kWh
  { label = "H17", idx = 65, factor = 0.01,  decimals = 2, kind = "value" }, -- discharged kWh
  { label = "CE",  idx = 66, factor = 0.001, decimals = 3, kind = "value" }, -- consumed Ah
}

-- The JSON: GET data=... (what vedirect_async and the old script send) or a POSTed body.
local json = uri and uri["data"]
if (json == nil or json == "") and request ~= nil then
  json = request["content"]
end
if json == nil or json == "" then
  print("vedirect_bmv.lua: no data in the request")
  return
end

if DEVICE ~= "" and uri["device"] ~= nil and uri["device"] ~= DEVICE then
  return -- another device's values
end

for _, d in ipairs(DEVICES) do
  local raw = domoticz_applyJsonPath(json, "." .. d.label)
  if raw == nil or raw == "" or raw == "---" then
    -- not sent by this device, or not available right now: leave the Domoticz value alone
  elseif d.kind == "text" then
    domoticz_updateDevice(d.idx, "", raw)
  else
    local number = tonumber(raw)
    if number == nil then
      print("vedirect_bmv.lua: " .. d.label .. " is not a number: " .. raw)
    else
      local text = string.format("%." .. d.decimals .. "f", number * d.factor)
      if d.kind == "kwh" then
        text = "0;" .. text
      end
      -- note the order: nvalue ("" = keep) comes before svalue
      domoticz_updateDevice(d.idx, "", text)
    end
  end
end

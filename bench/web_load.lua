-- One endpoint's load for bench/web_load.py (wrk 4.1, one process per endpoint so that each gets
-- its own latency histogram). Every request picks a random line of WRK_TARGETS: "path<TAB>cookie",
-- so the sessions and ids rotate. Between a connection's requests it waits a think time drawn
-- uniformly from [WRK_THINK_MIN_MS, WRK_THINK_MAX_MS] (none when both are 0). done() writes
-- requests, errors (status classes counted here, so a 302 to the login page is an error too) and
-- latency percentiles as JSON to WRK_OUT.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local targets = {}
local think_min, think_max = 0, 0

function init(args)
  for line in io.lines(os.getenv("WRK_TARGETS")) do
    local path, cookie = line:match("^([^\t]+)\t(.*)$")
    if path then
      targets[#targets + 1] = { path, cookie }
    end
  end
  if #targets == 0 then
    error("no targets in " .. tostring(os.getenv("WRK_TARGETS")))
  end
  think_min = tonumber(os.getenv("WRK_THINK_MIN_MS") or "0") or 0
  think_max = tonumber(os.getenv("WRK_THINK_MAX_MS") or "0") or 0
  if think_max <= 0 then
    delay = nil -- wrk checks after init whether the script has a delay()
  end
  math.randomseed(tonumber(os.getenv("WRK_SEED") or "1") + os.time())
  s2xx, s3xx, s4xx, s5xx, sother = 0, 0, 0, 0, 0
end

function request()
  local t = targets[math.random(#targets)]
  return wrk.format("GET", t[1], { ["Cookie"] = t[2], ["Accept"] = "text/html" })
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    s2xx = s2xx + 1
  elseif status < 400 then
    s3xx = s3xx + 1
  elseif status < 500 then
    s4xx = s4xx + 1
  elseif status < 600 then
    s5xx = s5xx + 1
  else
    sother = sother + 1
  end
end

function delay()
  return math.random(think_min, think_max)
end

function done(summary, latency, requests)
  local c = { s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0, sother = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(c) do
      c[name] = c[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  local out = io.open(os.getenv("WRK_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %.0f, "bytes": %.0f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"status": {"2xx": %d, "3xx": %d, "4xx": %d, "5xx": %d, "other": %d}, '
      .. '"latency_us": {"min": %.0f, "mean": %.1f, "p50": %.0f, "p90": %.0f, "p95": %.0f, "p99": %.0f, "max": %.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    c.s2xx, c.s3xx, c.s4xx, c.s5xx, c.sother,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
  out:close()
end

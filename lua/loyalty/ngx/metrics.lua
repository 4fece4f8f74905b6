-- Operator metrics for nginx: per-worker counters in a lua_shared_dict, served in the Prometheus
-- text format (0.0.4) by `serve()` from any location. What is counted:
--   loyalty_crm_calls_total{worker, operation, result}   result "ok" or the error kind
--   loyalty_crm_errors_total{worker, operation, kind}
--   loyalty_crm_retries_total{worker, operation}          attempts beyond the first
--   loyalty_crm_call_duration_seconds{worker}             histogram, the whole call incl. retries
--   loyalty_token_refreshes_total{worker}                 OAuth tokens fetched
--   loyalty_rules_reloads_total / loyalty_rules_rejections_total{worker}
--   loyalty_events_total{worker, event}                   every loyalty.log event
--   loyalty_outbox_pending / loyalty_outbox_dead          the outbox's backlog and dead letters,
--                                                         read from the store at scrape time
-- Enable with require("loyalty.ngx").configure{metrics_dict = "loyalty_metrics"} and
-- `lua_shared_dict loyalty_metrics 1m;`; loyalty.ngx.program then instruments its programs.
local _M = {}

local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local HELP = {
  loyalty_crm_calls_total = { "counter", "CRM calls by operation and result (ok or the error kind)" },
  loyalty_crm_errors_total = { "counter", "failed CRM calls by operation and error kind" },
  loyalty_crm_retries_total = { "counter", "CRM attempts beyond the first, by operation" },
  loyalty_crm_call_duration_seconds = { "histogram", "CRM call time, retries included" },
  loyalty_token_refreshes_total = { "counter", "OAuth tokens fetched from the CRM" },
  loyalty_rules_reloads_total = { "counter", "rule sets accepted (start and edits)" },
  loyalty_rules_rejections_total = { "counter", "rule edits rejected (the last good set stays)" },
  loyalty_events_total = { "counter", "structured log events by name" },
  loyalty_outbox_pending = { "gauge", "writes waiting in the outbox" },
  loyalty_outbox_dead = { "gauge", "outbox writes given up on (dead letters)" },
  loyalty_metrics_dropped_total = { "counter", "metric updates lost because the shared dict was full" },
}

local Metrics = {}
Metrics.__index = Metrics

local function escape(v)
  return (tostring(v):gsub("[\\\n\"]", { ["\\"] = "\\\\", ["\n"] = "\\n", ['"'] = '\\"' }))
end

--- new(dict_name) -> metrics | nil, err (kind config: the dict is not declared)
function _M.new(dict_name)
  local dict = ngx.shared[dict_name]
  if not dict then
    return nil, require("loyalty.errors").config("lua_shared_dict " .. tostring(dict_name) .. " is not declared",
                                                 "metrics_dict")
  end
  -- the worker label is found on first use in a worker: made in init_by_lua, this object is
  -- copied into every worker by the fork
  return setmetatable({ dict = dict, keys = {} }, Metrics)
end

-- The series key for name and a label string (cached: the same few series on every call).
local function key(self, name, labels)
  if not self.worker then
    local id = ngx.worker.id()
    if not id then return name .. '{worker="init"' .. labels .. "}" end
    self.worker = '{worker="' .. id .. '"'
  end
  local by_name = self.keys[name]
  if not by_name then by_name = {} self.keys[name] = by_name end
  local k = by_name[labels]
  if not k then
    k = name .. self.worker .. labels .. "}"
    by_name[labels] = k
  end
  return k
end

function Metrics:add(name, labels, n)
  local ok, err = self.dict:incr(key(self, name, labels or ""), n or 1, 0)
  if not ok and err then self.dict:incr(key(self, "loyalty_metrics_dropped_total", ""), 1, 0) end
end

--- A finished CRM call: operation name, result (nil for ok, else the error), seconds, attempts.
function Metrics:call(operation, err, seconds, attempts)
  local op = ',operation="' .. escape(operation) .. '"'
  if err then
    local kind = type(err) == "table" and err.kind or "unknown"
    self:add("loyalty_crm_calls_total", op .. ',result="' .. escape(kind) .. '"')
    self:add("loyalty_crm_errors_total", op .. ',kind="' .. escape(kind) .. '"')
  else
    self:add("loyalty_crm_calls_total", op .. ',result="ok"')
  end
  if attempts and attempts > 1 then self:add("loyalty_crm_retries_total", op, attempts - 1) end
  local b = #BUCKETS + 1
  for i = 1, #BUCKETS do
    if seconds <= BUCKETS[i] then b = i break end
  end
  self:add("loyalty_crm_call_duration_seconds_bucket_raw", ',b="' .. b .. '"')
  self:add("loyalty_crm_call_duration_seconds_sum", "", seconds)
end

local EVENT_COUNTERS = {
  rules_loaded = "loyalty_rules_reloads_total", rules_rejected = "loyalty_rules_rejections_total",
}

--- A loyalty.log event (counted by name; rule reloads and rejections also on their own).
function Metrics:event(event)
  self:add("loyalty_events_total", ',event="' .. escape(event) .. '"')
  local counter = EVENT_COUNTERS[event]
  if counter then self:add(counter, "") end
end

function Metrics:token_refresh()
  self:add("loyalty_token_refreshes_total", "")
end

--- Wraps a client (and so a program's calls): each operation method and request() records
-- its outcome, duration and retries.
function Metrics:instrument_client(client)
  if client.loyalty_metrics then return client end
  client.loyalty_metrics = self
  local now, update = ngx.now, ngx.update_time
  local metrics = self
  local function wrap(name, label_of)
    local method = client[name]
    if type(method) ~= "function" then return end
    client[name] = function(c, ...)
      update()
      local t0 = now()
      local r, err = method(c, ...)
      update()
      metrics:call(label_of and label_of(...) or name, not r and (err or { kind = "unknown" }) or nil,
                   now() - t0, (r and type(r) == "table" and r.attempts) or (type(err) == "table" and err.attempts))
      return r, err
    end
  end
  for name in pairs(client.provider.ops or {}) do wrap(name) end
  wrap("request", function(spec) return type(spec) == "table" and spec.path or "request" end)
  return client
end

-- Histogram series from the raw per-bucket counts: cumulative buckets, +Inf, _count.
local function histogram_lines(out, raw, sums)
  for worker, counts in pairs(raw) do
    local total = 0
    for i = 1, #BUCKETS do
      total = total + (counts[i] or 0)
      out[#out + 1] = string.format('loyalty_crm_call_duration_seconds_bucket{worker="%s",le="%s"} %d', worker,
                                    tostring(BUCKETS[i]), total)
    end
    total = total + (counts[#BUCKETS + 1] or 0)
    out[#out + 1] = string.format('loyalty_crm_call_duration_seconds_bucket{worker="%s",le="+Inf"} %d', worker, total)
    out[#out + 1] = string.format('loyalty_crm_call_duration_seconds_sum{worker="%s"} %.6f', worker, sums[worker] or 0)
    out[#out + 1] = string.format('loyalty_crm_call_duration_seconds_count{worker="%s"} %d', worker, total)
  end
end

--- A log sink that counts each event, then passes it to `sink` (may be nil).
function Metrics:log_sink(sink)
  local metrics = self
  return function(level, event, fields)
    metrics:event(event)
    if sink then return sink(level, event, fields) end
  end
end

--- Counts token refreshes on a token store (its set() is called once per token fetched).
function Metrics:instrument_token_store(store)
  if store.loyalty_metrics then return store end
  store.loyalty_metrics = self
  local set, metrics = store.set, self
  store.set = function(...)
    metrics:token_refresh()
    return set(...)
  end
  return store
end

--- The Prometheus text for everything in the dict, plus the outbox gauges when given an
-- outbox (its status() is read now). Returns the text.
function Metrics:text(outbox)
  local keys = self.dict:get_keys(0)
  table.sort(keys)
  local series, raw, sums = {}, {}, {}
  for _, k in ipairs(keys) do
    local v = self.dict:get(k)
    local name = k:match("^([%w_]+)")
    if name == "loyalty_crm_call_duration_seconds_bucket_raw" then
      local worker, b = k:match('worker="([^"]*)",b="(%d+)"')
      raw[worker] = raw[worker] or {}
      raw[worker][tonumber(b)] = v
    elseif name == "loyalty_crm_call_duration_seconds_sum" then
      sums[k:match('worker="([^"]*)"')] = v
    elseif name and v then
      series[name] = series[name] or {}
      local s = series[name]
      s[#s + 1] = k .. " " .. (math.floor(v) == v and string.format("%d", v) or string.format("%.6f", v))
    end
  end
  if outbox then
    local st = outbox:status()
    if st and st.counts then
      series.loyalty_outbox_pending = { "loyalty_outbox_pending " .. (st.counts.pending or 0) }
      series.loyalty_outbox_dead = { "loyalty_outbox_dead " .. (st.counts.dead or 0) }
    end
  end
  local names = {}
  for name in pairs(HELP) do names[#names + 1] = name end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    local help = HELP[name]
    if name == "loyalty_crm_call_duration_seconds" then
      if next(raw) then
        out[#out + 1] = "# HELP " .. name .. " " .. help[2]
        out[#out + 1] = "# TYPE " .. name .. " histogram"
        histogram_lines(out, raw, sums)
      end
    elseif series[name] then
      out[#out + 1] = "# HELP " .. name .. " " .. help[2]
      out[#out + 1] = "# TYPE " .. name .. " " .. help[1]
      for _, line in ipairs(series[name]) do out[#out + 1] = line end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Content handler: answers the scrape (text/plain; version=0.0.4).
function Metrics:serve(outbox)
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(self:text(outbox))
end

return _M

-- wrk script: POST a pre-built body whose messageIds and times change per request.
--
-- Usage: wrk -s bench/batch.lua URL -- TEMPLATE_FILE NONCE AUTHORIZATION
--   TEMPLATE_FILE  the body with marks (see bench/events.py): @@ID@@ for the first 23
--                  characters of each messageId, @@TS@@ for each event's timestamp,
--                  @@SENT@@ for the body's sentAt
--   NONCE          4 hex digits, distinct per wrk run (runs may share a database)
--   AUTHORIZATION  the whole Authorization header value, or "-" for none
--
-- @@ID@@ becomes "aaaaaaaa-rrrr-rrrr-nnnn": aaaaaaaa is random-looking and differs
-- from event to event (taken from a per-thread pool, to keep the script cheap);
-- rrrrrrrr is (thread * 2^24 + request counter) * 0x9E3779B1 mod 2^32, one to one, so
-- ids never repeat across threads and requests; nnnn is the run's nonce. @@TS@@ is a
-- millisecond of the previous second, @@SENT@@ the current second.
-- done() prints one line, "WRKJSON {...}": counts, and latency percentiles in µs.

local threads = {}
local parts, marks = {}, {}
local pool = {}
local POOL = 4093 -- prime, so a body's positions walk the whole pool; small, for the GC
local nonce = "0000"
local counter = 0
local stamp_second, stamps, sent_at = -1, {}, ""
-- Globals, not locals: done() reads them through thread:get().
sent = 0
ok = 0
first_error = ""

local TWO16, TWO24, TWO32, KNUTH = 65536, 16777216, 4294967296, 0x9E3779B1

-- LuaJIT hashes a long string from a few of its bytes only (first, last, middle,
-- quarter), so bodies that differ only in their ids all fall in one hash chain, and
-- interning each new one compares it with every live one. Starting and ending each
-- body with 4 bytes of JSON whitespace that vary with the request spreads them out:
-- with the GC setting in init(), a request costs ~9 µs of Lua instead of ~65.
local WHITE = { " ", "\t", "\n", "\r" }
local spaces = {}
for k = 0, 255 do
  spaces[k] = WHITE[k % 4 + 1] .. WHITE[math.floor(k / 4) % 4 + 1]
    .. WHITE[math.floor(k / 16) % 4 + 1] .. WHITE[math.floor(k / 64) + 1]
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- Split the template into literal parts and, between them, the names of the marks.
local function parse(text)
  local start = 1
  while true do
    local first, last, name = string.find(text, "@@(%u+)@@", start)
    if not first then
      table.insert(parts, string.sub(text, start))
      return
    end
    table.insert(parts, string.sub(text, start, first - 1))
    table.insert(marks, name)
    start = last + 1
  end
end

function init(args)
  -- Each request leaves ~100 KB of garbage: collect when memory has grown tenfold,
  -- not twofold, or the GC's marking of the pool below costs more than the request.
  collectgarbage("setpause", 1000)
  local file = assert(io.open(args[1], "rb"))
  parse(file:read("*a"))
  file:close()
  math.randomseed(tid)
  for k = 0, POOL - 1 do
    pool[k] = string.format("%08x", math.random(0, TWO32 - 1))
  end
  nonce = args[2]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] ~= "-" then
    wrk.headers["Authorization"] = args[3]
  end
end

-- (x * KNUTH) mod 2^32, exact in doubles: split x in 16-bit halves.
local function scramble(x)
  local lo, hi = x % TWO16, math.floor(x / TWO16)
  return (lo * KNUTH + ((hi * KNUTH) % TWO16) * TWO16) % TWO32
end

-- Every millisecond of the previous second, formatted once per second.
local function refresh_stamps()
  local now = os.time()
  if now == stamp_second then
    return
  end
  stamp_second = now
  local before = os.date("!%Y-%m-%dT%H:%M:%S", now - 1)
  for ms = 0, 999 do
    stamps[ms] = string.format("%s.%03dZ", before, ms)
  end
  sent_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", now)
end

function request()
  counter = counter + 1
  sent = sent + 1
  assert(counter < TWO24, "at most 2^24 requests per thread")
  refresh_stamps()
  local rid = scramble(tid * TWO24 + counter)
  local tail = string.format("-%04x-%04x-%s", math.floor(rid / TWO16), rid % TWO16, nonce)
  local buf, n = { spaces[math.floor(counter / 256) % 256], parts[1] }, 2
  local id_index, ts_index = counter * #marks, 0
  for i, name in ipairs(marks) do
    if name == "ID" then
      id_index = id_index + 1
      buf[n + 1] = pool[id_index % POOL]
      n = n + 1
      buf[n + 1] = tail
    elseif name == "TS" then
      buf[n + 1] = stamps[(counter * 13 + ts_index * 10) % 1000]
      ts_index = ts_index + 1
    else
      buf[n + 1] = sent_at
    end
    buf[n + 2] = parts[i + 1]
    n = n + 2
  end
  buf[n + 1] = spaces[counter % 256]
  return wrk.format(nil, nil, nil, table.concat(buf))
end

local function json_string(text)
  text = string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. text .. '"'
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif first_error == "" then
    first_error = status .. " " .. string.sub(body or "", 1, 300)
  end
end

function done(summary, latency, requests)
  local total_sent, total_ok, error_sample = 0, 0, ""
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
    if error_sample == "" then
      error_sample = thread:get("first_error")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"responses":%d,"ok":%d,"sent":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d,"max":%d},"first_error":%s}\n',
    summary.duration, summary.requests, total_ok, total_sent, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, json_string(error_sample)))
end

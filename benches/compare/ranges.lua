-- ranges.lua — wrk script: every request asks for LEN bytes (default 4096) at a random offset of
-- a file of SIZE bytes, and the summary goes to stdout as one "RESULT key=value ..." line.
--
--   wrk -t2 -c64 -d10s -s ranges.lua https://HOST:PORT/FILE -- SIZE [LEN]
local size, len = 0, 4096
local threads = {}

function setup(thread)
  -- Each thread gets its own seed, so that the threads do not ask for the same offsets.
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  size = tonumber(args[1])
  len = tonumber(args[2] or 4096)
  math.randomseed(os.time() * 1000 + seed)
end

function request()
  local start = math.random(0, size - len)
  return wrk.format("GET", nil, { ["Range"] = string.format("bytes=%d-%d", start, start + len - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d errors=%d status_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end

-- wrk script of bench/bench.py: prints one JSON line with the counts and latency percentiles.
-- BENCH_POST_BYTES=N turns every request into a POST with an N-byte body.
local post = tonumber(os.getenv("BENCH_POST_BYTES") or "0")
if post > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("p", post)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end

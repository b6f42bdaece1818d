-- wrk script for tests/soak/test_keepalive_soak.py: POST a small body to /echo on
-- keep-alive connections; each wrk thread stops after its share of responses (the first
-- argument after "--") and then creates the file named by the second argument (wrk's main
-- thread sleeps for the whole -d duration: the test sends SIGINT when the file appears).
-- Non-2xx answers and wrong bodies are counted; the test parses the SOAK summary line.
wrk.method = "POST"
wrk.body = string.rep("e", 64)
wrk.headers["Content-Type"] = "application/octet-stream"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   limit = tonumber(args[1])
   marker = args[2]
   count = 0
   non2xx = 0
   badbody = 0
end

function response(status, headers, body)
   count = count + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif body ~= wrk.body then
      badbody = badbody + 1
   end
   if count == limit then
      io.open(marker, "w"):close()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local responses, bad_status, bad_body = 0, 0, 0
   for _, thread in ipairs(threads) do
      responses = responses + thread:get("count")
      bad_status = bad_status + thread:get("non2xx")
      bad_body = bad_body + thread:get("badbody")
   end
   io.write(string.format(
      "SOAK responses=%d non2xx=%d badbody=%d connect=%d read=%d write=%d timeout=%d\n",
      responses, bad_status, bad_body, summary.errors.connect, summary.errors.read,
      summary.errors.write, summary.errors.timeout))
end

-- tests/bench/requests.lua - wrk cycles through pre-made requests.
--
--   wrk -tT ... -s requests.lua URL -- FILE T [close]
--
-- FILE: one request a line, "METHOD<TAB>TARGET<TAB>HEADERS<TAB>BODY", HEADERS
-- "Name: value" separated by "|" (ktbench sign writes the Authorization
-- header there, legacy.py a form's Content-Type; HEADERS and BODY may be
-- empty; a BODY without a Content-Type is sent as application/json).  Thread k
-- of T takes lines k, k+T, ... so no two threads send the same line (each
-- registration body is a new client).  "close" adds Connection: close, so
-- every request is a new connection and a full TLS handshake.  At the end
-- one line "JSON {...}" gives requests, duration, errors and latency
-- percentiles (microseconds) to bench.py.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local reqs = {}
local idx = 1

function init(args)
   -- tid: set by setup() in this thread's state
   local file, nthreads, close = args[1], tonumber(args[2]) or 1, args[3] == "close"
   local me = tonumber(tid) or 0
   local f = assert(io.open(file, "r"))
   local lines = {}
   for line in f:lines() do lines[#lines + 1] = line end
   f:close()
   -- fewer lines than threads: every thread sends them all
   if #lines < nthreads then nthreads = 1 end
   local n = 0
   for _, line in ipairs(lines) do
      if n % nthreads == me % nthreads then
         local m, p, a, b = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
         if m == nil then
            m, p, b = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
            a = ""
         end
         local h = {}
         for kv in a:gmatch("[^|]+") do
            local k, v = kv:match("^([^:]+): (.*)$")
            if k then h[k] = v end
         end
         -- a body is JSON unless its line names its own Content-Type
         if b ~= "" and h["Content-Type"] == nil then h["Content-Type"] = "application/json" end
         if close then h["Connection"] = "close" end
         reqs[#reqs + 1] = wrk.format(m, p, h, b ~= "" and b or nil)
      end
      n = n + 1
   end
   if #reqs == 0 then error("no requests in " .. file) end
end

function request()
   local r = reqs[idx]
   idx = idx + 1
   if idx > #reqs then idx = 1 end
   return r
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "status_errors": %d, ' ..
      '"timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(99),
      latency.max))
end

-- Lazy GET paced to BENCH_RATE requests/s in total over all connections
-- (wrk's delay() before each request), for latency at a given load.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
local rate = tonumber(os.getenv("BENCH_RATE") or "1000")
local conns = tonumber(os.getenv("BENCH_CONNS") or "16")
request = function() return wrk.format("GET", "/bucket/" .. key()) end
delay = function() return math.floor(conns * 1000 / rate + 0.5) end

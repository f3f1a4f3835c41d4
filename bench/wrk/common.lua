-- Shared by the wrk scripts of `make bench`: a random key among KEYS.
KEYS = tonumber(os.getenv("BENCH_KEYS") or "100000")
VALUE = string.rep("v", 100)
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
function key() return string.format("bench/%06d", math.random(0, KEYS - 1)) end

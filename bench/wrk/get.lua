-- GET /<BUCKET>/KEY for a random preloaded key. BUCKET: bucket or canonicalbucket.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
local bucket = os.getenv("BENCH_BUCKET") or "bucket"
request = function() return wrk.format("GET", "/" .. bucket .. "/" .. key()) end

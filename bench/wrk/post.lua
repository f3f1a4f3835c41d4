-- POST /<BUCKET>/KEY with a 100-byte value.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
local bucket = os.getenv("BENCH_BUCKET") or "bucket"
request = function() return wrk.format("POST", "/" .. bucket .. "/" .. key(), nil, VALUE) end

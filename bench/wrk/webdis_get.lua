-- webdis: GET /GET/KEY
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
request = function() return wrk.format("GET", "/GET/" .. key()) end

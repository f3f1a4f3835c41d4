-- webdis: PUT /SET/KEY with the value as body
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
request = function() return wrk.format("PUT", "/SET/" .. key(), nil, VALUE) end

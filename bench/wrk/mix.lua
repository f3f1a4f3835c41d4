-- 90% lazy GET, 10% POST.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
request = function()
  if math.random() < 0.9 then return wrk.format("GET", "/bucket/" .. key()) end
  return wrk.format("POST", "/bucket/" .. key(), nil, VALUE)
end

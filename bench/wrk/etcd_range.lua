-- etcd 3.4 JSON gateway: POST /v3/kv/range {"key": base64(key)}
dofile(os.getenv("BENCH_WRK") .. "/common.lua")
local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function b64(data)
  return ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({'', '==', '='})[#data % 3 + 1])
end
local mode = os.getenv("BENCH_ETCD") or "range"
local value64 = b64(VALUE)
request = function()
  if mode == "put" then
    return wrk.format("POST", "/v3/kv/put", nil, '{"key":"' .. b64(key()) .. '","value":"' .. value64 .. '"}')
  end
  return wrk.format("POST", "/v3/kv/range", nil, '{"key":"' .. b64(key()) .. '"}')
end

-- sysbench script: the MariaDB ceiling for writes. A single-row
-- INSERT ... ON DUPLICATE KEY UPDATE of a 100-byte value into lazykv's own
-- table shape, prepared once per connection, with bound parameters.
function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
  stmt = con:prepare("INSERT INTO data (k, v, ctype, version, deleted, seq) VALUES (?, ?, '', ?, 0, NULL) " ..
    "ON DUPLICATE KEY UPDATE v = VALUES(v), deleted = 0, seq = NULL, " ..
    "version = LAST_INSERT_ID(GREATEST(version + 1, VALUES(version)))")
  pk = stmt:bind_create(sysbench.sql.type.VARCHAR, 64)
  pv = stmt:bind_create(sysbench.sql.type.VARCHAR, 128)
  pver = stmt:bind_create(sysbench.sql.type.BIGINT)
  stmt:bind_param(pk, pv, pver)
  value = string.rep("v", 100)
end

function event()
  pk:set(string.format("bench/%06d", sysbench.rand.uniform(0, 99999)))
  pv:set(value)
  pver:set(os.time() * 1000000)
  stmt:execute()
end

function thread_done()
  stmt:close()
  con:disconnect()
end

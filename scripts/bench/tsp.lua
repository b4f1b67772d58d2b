-- POSTs the DER TimeStampReq in $TSP_REQ; counts granted answers (PKIStatus 0).
local f = assert(io.open(os.getenv("TSP_REQ"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/timestamp-query"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) okc = 0 end
function response(status, headers, body)
  -- TimeStampResp ::= SEQUENCE { status PKIStatusInfo ::= SEQUENCE { status INTEGER 0 }, token }
  local l = string.byte(body, 2) or 0
  local off = 3
  if l > 0x80 then off = 3 + (l - 0x80) end
  if status == 200 and string.byte(body, off) == 0x30 and string.byte(body, off + 2) == 0x02
    and string.byte(body, off + 4) == 0 then okc = okc + 1 end
end
function done(summary, latency, requests)
  local ok = 0
  for _, t in ipairs(threads) do ok = ok + t:get("okc") end
  local s = summary.duration / 1e6
  io.write(string.format("WRK ok_per_s=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d requests=%d\n", ok / s,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    summary.requests))
end

-- wrk: POST /v1/sessions over 100,000 usernames, for the measured rounds. The 100,000 requests are
-- formatted once in init() and sent in turn; no response() callback, so wrk parses no answer in Lua
-- (failures show in wrk's "Non-2xx or 3xx responses" line, which run.sh checks).
local requests = {}
local counter = 0
function init(args)
  local auth = "Bearer " .. os.getenv("API_TOKEN")
  for index = 0, 99999 do
    local body = '{"username":"bench-' .. index .. '@example.com"}'
    requests[index + 1] = wrk.format("POST", "/v1/sessions", {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
  end
end
function request()
  counter = counter % 100000 + 1
  return requests[counter]
end

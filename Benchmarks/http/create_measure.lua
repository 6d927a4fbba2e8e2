-- wrk: POST /v1/sessions over 100,000 usernames, without reading the answers (for the measured rounds).
local counter = 0
local auth = "Bearer " .. os.getenv("API_TOKEN")
function request()
  counter = counter + 1
  local body = '{"username":"bench-' .. (counter % 100000) .. '@example.com"}'
  return wrk.format("POST", "/v1/sessions", {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end

-- wrk: POST /v1/sessions with usernames over 100,000 users; keeps every 10th token in TOKENS_FILE.
local counter = 0
local out = nil
local kept = 0
function setup(thread) thread:set("id", thread.id or 0) end
function init(args)
  out = io.open(os.getenv("TOKENS_FILE"), "a")
end
function request()
  counter = counter + 1
  local body = '{"username":"user-' .. (counter % 100000) .. '@example.com"}'
  return wrk.format("POST", "/v1/sessions", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("API_TOKEN")}, body)
end
function response(status, headers, body)
  if status ~= 201 then error("create failed: " .. status .. " " .. body) end
  kept = kept + 1
  if kept % 10 == 0 then
    out:write(string.match(body, '"token":"(usm_[^"]+)"'), "\n")
    if kept % 1000 == 0 then out:flush() end
  end
end
function done(summary, latency, requests) end

-- wrk: 9 validations (GET /v1/session of random tokens from TOKENS_FILE) to 1 login (POST
-- /v1/sessions over 100,000 usernames), in turn. Every request is formatted once in init(), and there
-- is no response() callback (failures show in wrk's "Non-2xx or 3xx responses" line).
local validations, logins = {}, {}
local counter = 0
function init(args)
  local auth = "Bearer " .. os.getenv("API_TOKEN")
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    validations[#validations + 1] = wrk.format("GET", "/v1/session", {["Session-Token"] = line, ["Authorization"] = auth})
  end
  if #validations == 0 then error("no tokens in TOKENS_FILE") end
  for index = 0, 9999 do
    local body = '{"username":"mixed-' .. index .. '@example.com"}'
    logins[index + 1] = wrk.format("POST", "/v1/sessions", {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
  end
  math.randomseed(os.time())
end
function request()
  counter = counter + 1
  if counter % 10 == 0 then return logins[(counter / 10) % 10000 + 1] end
  return validations[math.random(#validations)]
end

-- wrk: GET /v1/session (validate and slide) with random tokens from TOKENS_FILE.
local tokens = {}
local auth = "Bearer " .. os.getenv("API_TOKEN")
local failures = 0
function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
  math.randomseed(os.time())
end
function request()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", "/v1/session", {["Session-Token"] = token, ["Authorization"] = auth})
end
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

-- wrk: GET /v1/session (validate and slide) with random tokens from TOKENS_FILE and the API token
-- from API_TOKEN; VALIDATE_PATH=/v1/session?refresh=false checks without sliding instead.
-- Every request is formatted once in init(), and there is no response() callback: wrk then parses no
-- answer in Lua, so its own per-request work stays close to a plain GET, and the measured difference
-- is the server's. Failed validations show in wrk's "Non-2xx or 3xx responses" line (run.sh checks it).
local requests = {}
function init(args)
  local auth = "Bearer " .. os.getenv("API_TOKEN")
  local path = os.getenv("VALIDATE_PATH") or "/v1/session"
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", path, {["Session-Token"] = line, ["Authorization"] = auth})
  end
  if #requests == 0 then error("no tokens in TOKENS_FILE") end
  math.randomseed(os.time())
end
function request()
  return requests[math.random(#requests)]
end

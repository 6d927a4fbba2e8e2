-- wrk: GET /v1/session (validate and slide) with random tokens from TOKENS_FILE.
-- Every request is formatted once in init(), and there is no response() callback: wrk then parses no
-- answer in Lua, so its own per-request work stays close to a plain GET, and the measured difference
-- is the server's. Failed validations show in wrk's "Non-2xx or 3xx responses" line (run.sh checks it).
local requests = {}
function init(args)
  local auth = "Bearer " .. os.getenv("API_TOKEN")
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/v1/session", {["Session-Token"] = line, ["Authorization"] = auth})
  end
  if #requests == 0 then error("no tokens in TOKENS_FILE") end
  math.randomseed(os.time())
end
function request()
  return requests[math.random(#requests)]
end

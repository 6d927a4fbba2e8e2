/// The Redis Functions library that carries out every operation on sessions: one `FCALL` per
/// operation, each an atomic step that touches the keys of one partition only (one hash slot).
///
/// Loaded at startup with `FUNCTION LOAD REPLACE`; the version is part of the library's and the
/// functions' names (`sessiond_v1`, `sd1_*`), so instances of two versions can share a store during a
/// rolling upgrade, each calling its own functions.
///
/// Every function takes `KEYS[1]` = the partition's configuration key (`sd:{p}:cfg`; the other keys
/// are that prefix plus a suffix, see ``RedisKeys``), reads the time with `TIME` (Redis's clock is the
/// clock), and, when it may end a session, `ARGV[1]` = the length kept of the partition's event
/// stream and `ARGV[2]` = how long (ms) the token of a session ended by timeout answers "expired".
///
/// **Every key a function writes is read, or named in an `EXISTS` (`fence`), before its first
/// write.** On a Redis Cluster, while the partition's slot moves to another node, a script that
/// touches a key already moved fails at that touch (`TRYAGAIN`, or "non local key"), so it fails
/// before writing anything, never halfway, and the client tries it again until the slot has moved
/// (see ``RedisClusterClient``). Outside a move the `EXISTS` costs a microsecond and changes nothing.
///
/// Replies: `{'OK', …}`; `{'E', code, detail}` for a refusal; `{'U'}` for an unknown token;
/// `{'X', reason, ended}` for a token whose session has expired (`ended`: the session this call ended,
/// or nil when it had ended before). A session is `{id, username, createdAt, lastSeenAt, idleTimeout,
/// expiresAt, data}` (idle timeout negative when it follows the default); an ended session is
/// `{id, username, createdAt, endedAt, reason}`.
enum RedisFunctionLibrary {
    static let name = "sessiond_v1"
    static let create = "sd1_create"
    static let validate = "sd1_validate"
    static let data = "sd1_data"
    static let setData = "sd1_set_data"
    static let rotate = "sd1_rotate"
    static let logout = "sd1_logout"
    static let session = "sd1_session"
    static let revoke = "sd1_revoke"
    static let revokeUser = "sd1_revoke_user"
    static let deleteSome = "sd1_delete_some"
    static let reap = "sd1_reap"
    static let list = "sd1_list"
    static let userSessions = "sd1_user_sessions"
    static let users = "sd1_users"
    static let statistics = "sd1_stats"
    static let configure = "sd1_configure"
    static let forgetSightings = "sd1_forget_seen"
    static let openStore = "sd1_open_store"
    static let updateConfiguration = "sd1_update_configuration"

    /// The library's source: the helpers and the token operations, then the operations by id, the
    /// listings and the store's upkeep (``administrationSource``).
    static let source = coreSource + administrationSource

    private static let coreSource = #"""
        #!lua name=sessiond_v1

        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        -- 'sd:{p}:cfg' -> 'sd:{p}:'
        local function prefix(keys)
          return string.sub(keys[1], 1, -4)
        end

        local function context(args)
          return {evmax = args[1], retention = tonumber(args[2])}
        end

        local function settings(p)
          local c = redis.call('HMGET', p .. 'cfg', 'idle', 'life', 'cap', 'policy', 'maxdata')
          if not c[1] then return nil end
          return {idle = tonumber(c[1]), life = tonumber(c[2]), cap = tonumber(c[3]), policy = c[4],
                  maxdata = tonumber(c[5])}
        end

        local function load(p, th)
          local s = redis.call('HMGET', p .. 'k:' .. th, 'id', 'u', 'c', 'l', 'i', 'x', 'd')
          if not s[1] then return nil end
          return {th = th, id = s[1], u = s[2], c = tonumber(s[3]), l = tonumber(s[4]), i = tonumber(s[5]),
                  x = tonumber(s[6]), d = s[7]}
        end

        local function load_id(p, id)
          local th = redis.call('GET', p .. 'i:' .. id)
          if not th then return nil end
          return load(p, th)
        end

        -- The earlier deadline and its reason (absolute wins ties).
        local function deadline(s)
          local idle = s.l + math.abs(s.i)
          if s.x <= idle then return s.x, 'absolute_timeout' end
          return idle, 'idle_timeout'
        end

        -- Touches keys about to be written (see the library's documentation): on a cluster, fails the
        -- call here, before any write, while one of them is on its way to another node.
        local function fence(...)
          redis.call('EXISTS', ...)
        end

        -- Fences every key finish() writes for session s.
        local function fence_finish(p, s)
          fence(p .. 'k:' .. s.th, p .. 'i:' .. s.id, p .. 'u:' .. s.u, p .. 'users', p .. 'all', p .. 'dl',
                p .. 'x:' .. s.th, p .. 'ev')
        end

        -- The sessions of ids, each fenced for finish(), and the ids without a session: every read
        -- and fence before the caller's first write.
        local function load_all(p, ids)
          local found, strays = {}, {}
          for _, id in ipairs(ids) do
            local s = load_id(p, id)
            if s then
              fence_finish(p, s)
              found[#found + 1] = s
            else
              strays[#strays + 1] = id
            end
          end
          return found, strays
        end

        local function row(s)
          return {s.id, s.u, s.c, s.l, s.i, s.x, s.d}
        end

        local function add_event(p, ctx, fields)
          redis.call('XADD', p .. 'ev', 'MAXLEN', '~', ctx.evmax, '*', unpack(fields))
        end

        -- Ends a session: every key and index entry goes, the event is appended, and the token of a
        -- session ended by timeout is remembered for the retention.
        local function finish(p, ctx, s, reason, at, now)
          fence_finish(p, s)
          if at < s.c then at = s.c end
          redis.call('DEL', p .. 'k:' .. s.th, p .. 'i:' .. s.id)
          local ukey = p .. 'u:' .. s.u
          redis.call('ZREM', ukey, s.id)
          if redis.call('EXISTS', ukey) == 0 then redis.call('ZREM', p .. 'users', s.u) end
          redis.call('ZREM', p .. 'all', s.id)
          redis.call('ZREM', p .. 'dl', s.id)
          if (reason == 'idle_timeout' or reason == 'absolute_timeout') and ctx.retention > 0 then
            local ttl = ctx.retention - (now - at)
            if ttl > 0 then redis.call('SET', p .. 'x:' .. s.th, reason, 'PX', ttl) end
          end
          add_event(p, ctx, {'t', 'e', 'id', s.id, 'u', s.u, 'c', s.c, 'a', at, 'r', reason})
          return {s.id, s.u, s.c, at, reason}
        end

        -- The live session of a token hash, ended first when past a deadline: s, or nil and the reply.
        local function live(p, ctx, th, now)
          local s = load(p, th)
          if not s then
            local reason = redis.call('GET', p .. 'x:' .. th)
            if reason then return nil, {'X', reason, false} end
            return nil, {'U'}
          end
          local at, reason = deadline(s)
          if now >= at then return nil, {'X', reason, finish(p, ctx, s, reason, at, now)} end
          return s
        end

        local function see(p, username, now)
          local seen = redis.call('ZSCORE', p .. 'seen', username)
          if not seen or now - tonumber(seen) >= 1000 then redis.call('ZADD', p .. 'seen', now, username) end
        end

        -- ARGV: ctx, token hash, id, username, has data (0/1), data, idle ms (0: default), lifetime ms
        -- (0: default), refused (0/1: the caller found the data or a timeout invalid, which it reports
        -- unless the data is too large: the same order of checks as the embedded store).
        redis.register_function('sd1_create', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local cfg = settings(p)
          if not cfg then return {'E', 'not_initialized', 0} end
          local th, id, u = args[3], args[4], args[5]
          local data = false
          if args[6] == '1' then data = args[7] end
          if data and #data > cfg.maxdata then return {'E', 'data_too_large', cfg.maxdata} end
          if args[10] == '1' then return {'E', 'refused', 0} end
          local idle = tonumber(args[8])
          if idle == 0 then idle = -cfg.idle end
          local life = tonumber(args[9])
          if life == 0 then life = cfg.life end
          local ukey = p .. 'u:' .. u
          local count = redis.call('ZCARD', ukey)
          if cfg.cap > 0 and count >= cfg.cap and cfg.policy == 'reject' then
            return {'E', 'session_limit_reached', cfg.cap}
          end
          -- A taken id or token hash (240 random bits of a token) is refused before anything is written.
          if redis.call('EXISTS', p .. 'k:' .. th, p .. 'i:' .. id) > 0 then
            return {'E', 'collision', 0}
          end
          local victims, strays = {}, {}
          if cfg.cap > 0 and count >= cfg.cap then
            victims, strays = load_all(p, redis.call('ZRANGE', ukey, 0, count - cfg.cap))
          end
          fence(p .. 'meta', p .. 'users', p .. 'all', p .. 'dl', p .. 'seen', p .. 'ev')
          redis.call('SET', p .. 'i:' .. id, th)
          local ended = {}
          for _, s in ipairs(victims) do ended[#ended + 1] = finish(p, ctx, s, 'evicted', now, now) end
          for _, victim in ipairs(strays) do redis.call('ZREM', ukey, victim) end
          local seq = redis.call('HINCRBY', p .. 'meta', 'seq', 1)
          local x = now + life
          local fields = {'id', id, 'u', u, 'c', now, 'l', now, 'i', idle, 'x', x}
          if data then
            fields[#fields + 1] = 'd'
            fields[#fields + 1] = data
          end
          redis.call('HSET', p .. 'k:' .. th, unpack(fields))
          redis.call('ZADD', ukey, seq, id)
          -- The user is new, or every session it had was just evicted: it joins the user list.
          if count == #victims + #strays then redis.call('ZADD', p .. 'users', 0, u) end
          redis.call('ZADD', p .. 'all', seq, id)
          redis.call('ZADD', p .. 'dl', math.min(now + math.abs(idle), x), id)
          redis.call('ZADD', p .. 'seen', now, u)
          add_event(p, ctx, {'t', 'c', 'id', id, 'u', u, 'c', now, 'a', now})
          return {'OK', {id, u, now, now, idle, x, data}, ended}
        end)

        -- ARGV: ctx, token hash, refresh (0/1). Writes only a slide due (a tenth of the idle timeout
        -- since the last one written, or a changed default) and a sighting due (a second).
        redis.register_function('sd1_validate', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s, reply = live(p, ctx, args[3], now)
          if not s then return reply end
          if args[4] == '1' then
            local idle = s.i
            if idle < 0 then idle = -settings(p).idle end
            if idle ~= s.i or now - s.l >= math.abs(idle) / 10 then
              fence(p .. 'dl', p .. 'seen')
              s.l, s.i = now, idle
              redis.call('HSET', p .. 'k:' .. s.th, 'l', now, 'i', idle)
              redis.call('ZADD', p .. 'dl', math.min(now + math.abs(idle), s.x), s.id)
            end
          end
          see(p, s.u, now)
          return {'V', row(s)}
        end)

        -- ARGV: ctx, token hash
        redis.register_function('sd1_data', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s, reply = live(p, ctx, args[3], now)
          if not s then return reply end
          return {'OK', s.d}
        end)

        -- ARGV: ctx, token hash, has data (0/1), data, refused (0/1: the data is not valid JSON)
        redis.register_function('sd1_set_data', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local cfg = settings(p)
          if not cfg then return {'E', 'not_initialized', 0} end
          local data = false
          if args[4] == '1' then data = args[5] end
          if data and #data > cfg.maxdata then return {'E', 'data_too_large', cfg.maxdata} end
          if args[6] == '1' then return {'E', 'refused', 0} end
          local s, reply = live(p, ctx, args[3], now)
          if not s then return reply end
          if data then
            redis.call('HSET', p .. 'k:' .. s.th, 'd', data)
          else
            redis.call('HDEL', p .. 'k:' .. s.th, 'd')
          end
          s.d = data
          return {'OK', row(s)}
        end)

        -- ARGV: ctx, token hash, new token hash
        redis.register_function('sd1_rotate', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s, reply = live(p, ctx, args[3], now)
          if not s then return reply end
          local th = args[4]
          if redis.call('EXISTS', p .. 'k:' .. th) == 1 then return {'E', 'collision', 0} end
          fence(p .. 'i:' .. s.id)
          redis.call('RENAME', p .. 'k:' .. s.th, p .. 'k:' .. th)
          redis.call('SET', p .. 'i:' .. s.id, th)
          return {'OK', row(s)}
        end)

        -- ARGV: ctx, token hash
        redis.register_function('sd1_logout', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s, reply = live(p, ctx, args[3], now)
          if not s then return reply end
          return {'OK', row(s), finish(p, ctx, s, 'logout', now, now)}
        end)

        """#
}

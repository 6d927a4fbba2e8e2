extension RedisFunctionLibrary {
    /// The functions by session id and by user, the listings, the store gauges and the store's
    /// upkeep (configuration, sightings, its description). They use the helpers of the first part of
    /// the library (``source``).
    static let administrationSource = #"""
        -- ARGV: ctx, id. {'OK', session} or {'N', ended or nil}.
        redis.register_function('sd1_session', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s = load_id(p, args[3])
          if not s then return {'N', false} end
          local at, reason = deadline(s)
          if now >= at then return {'N', finish(p, ctx, s, reason, at, now)} end
          return {'OK', row(s)}
        end)

        -- ARGV: ctx, id. {'OK', session, ended} or {'N'}.
        redis.register_function('sd1_revoke', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local s = load_id(p, args[3])
          if not s then return {'N'} end
          return {'OK', row(s), finish(p, ctx, s, 'revoked', now, now)}
        end)

        -- ARGV: ctx, username. {'OK', ended sessions}.
        redis.register_function('sd1_revoke_user', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local ukey = p .. 'u:' .. args[3]
          local found, strays = load_all(p, redis.call('ZRANGE', ukey, 0, -1))
          local ended = {}
          for _, s in ipairs(found) do ended[#ended + 1] = finish(p, ctx, s, 'revoked', now, now) end
          for _, id in ipairs(strays) do redis.call('ZREM', ukey, id) end
          return {'OK', ended}
        end)

        -- ARGV: ctx, batch size. Ends up to a batch of the partition's sessions, reason revoked.
        -- {'OK', more (0/1), ended sessions}.
        redis.register_function('sd1_delete_some', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local found, strays = load_all(p, redis.call('ZRANGE', p .. 'all', 0, tonumber(args[3]) - 1))
          local ended = {}
          for _, s in ipairs(found) do ended[#ended + 1] = finish(p, ctx, s, 'revoked', now, now) end
          for _, id in ipairs(strays) do redis.call('ZREM', p .. 'all', id) end
          return {'OK', redis.call('EXISTS', p .. 'all'), ended}
        end)

        -- ARGV: ctx, batch size. Ends up to a batch of sessions past a deadline; entries whose
        -- session moved its deadline are filed again. {'OK', more (0/1), ended sessions}.
        redis.register_function('sd1_reap', function(keys, args)
          local p, ctx, now = prefix(keys), context(args), now_ms()
          local limit = tonumber(args[3])
          local due = redis.call('ZRANGE', p .. 'dl', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
          local found, strays = load_all(p, due)
          local ended = {}
          for _, s in ipairs(found) do
            local at, reason = deadline(s)
            if now >= at then
              ended[#ended + 1] = finish(p, ctx, s, reason, at, now)
            else
              redis.call('ZADD', p .. 'dl', at, s.id)
            end
          end
          for _, id in ipairs(strays) do redis.call('ZREM', p .. 'dl', id) end
          local more = 0
          if #due == limit then more = 1 end
          return {'OK', more, ended}
        end)

        -- ARGV: after (creation sequence, exclusive), page size. Live sessions in creation order:
        -- {'OK', last sequence or nil when there is no more, sessions}.
        redis.register_function{function_name = 'sd1_list', flags = {'no-writes'}, callback = function(keys, args)
          local p, now = prefix(keys), now_ms()
          local limit = tonumber(args[2])
          local ids = redis.call('ZRANGE', p .. 'all', '(' .. args[1], '+inf', 'BYSCORE', 'LIMIT', 0, limit,
                                 'WITHSCORES')
          local rows, last = {}, false
          for index = 1, #ids, 2 do
            last = ids[index + 1]
            local s = load_id(p, ids[index])
            if s and now < deadline(s) then rows[#rows + 1] = row(s) end
          end
          if #ids < 2 * limit then last = false end
          return {'OK', last, rows}
        end}

        -- ARGV: username, offset, page size. A user's sessions oldest first:
        -- {'OK', next offset or nil, sessions}.
        redis.register_function{function_name = 'sd1_user_sessions', flags = {'no-writes'}, callback = function(keys, args)
          local p, now = prefix(keys), now_ms()
          local ukey = p .. 'u:' .. args[1]
          local offset, limit = tonumber(args[2]), tonumber(args[3])
          local rows = {}
          for _, id in ipairs(redis.call('ZRANGE', ukey, offset, offset + limit - 1)) do
            local s = load_id(p, id)
            if s and now < deadline(s) then rows[#rows + 1] = row(s) end
          end
          local next = false
          if redis.call('ZCARD', ukey) > offset + limit then next = offset + limit end
          return {'OK', next, rows}
        end}

        -- ARGV: after (username, exclusive; empty with has-after 0), has after (0/1), page size.
        -- Users with live sessions in byte order: {'OK', more (0/1), {username, count, ...}}.
        redis.register_function{function_name = 'sd1_users', flags = {'no-writes'}, callback = function(keys, args)
          local p = prefix(keys)
          local start = '-'
          if args[2] == '1' then start = '(' .. args[1] end
          local limit = tonumber(args[3])
          local names = redis.call('ZRANGE', p .. 'users', start, '+', 'BYLEX', 'LIMIT', 0, limit)
          local out = {}
          for _, name in ipairs(names) do
            out[#out + 1] = name
            out[#out + 1] = redis.call('ZCARD', p .. 'u:' .. name)
          end
          local more = 0
          if #names == limit then more = 1 end
          return {'OK', more, out}
        end}

        -- The partition's store gauges: {sessions, users, seen 1 min, 5 min, 15 min, config version}.
        redis.register_function{function_name = 'sd1_stats', flags = {'no-writes'}, callback = function(keys, args)
          local p, now = prefix(keys), now_ms()
          local seen = p .. 'seen'
          return {redis.call('ZCARD', p .. 'all'), redis.call('ZCARD', p .. 'users'),
                  redis.call('ZCOUNT', seen, '(' .. (now - 60000), '+inf'),
                  redis.call('ZCOUNT', seen, '(' .. (now - 300000), '+inf'),
                  redis.call('ZCOUNT', seen, '(' .. (now - 900000), '+inf'),
                  tonumber(redis.call('HGET', p .. 'cfg', 'ver') or '0')}
        end}

        -- ARGV: idle ms, lifetime ms, cap (0: none), policy, max data bytes, version. Writes the
        -- partition's copy of the configuration unless it holds this version or a newer one.
        -- {'OK', written 0/1}.
        redis.register_function('sd1_configure', function(keys, args)
          local current = tonumber(redis.call('HGET', keys[1], 'ver') or '0')
          local version = tonumber(args[6])
          if current >= version then return {'OK', 0} end
          redis.call('HSET', keys[1], 'idle', args[1], 'life', args[2], 'cap', args[3], 'policy', args[4],
                     'maxdata', args[5], 'ver', version)
          return {'OK', 1}
        end)

        -- Forgets sightings older than the longest users-seen window (15 minutes).
        redis.register_function('sd1_forget_seen', function(keys, args)
          return redis.call('ZREMRANGEBYSCORE', prefix(keys) .. 'seen', '-inf', now_ms() - 900000)
        end)

        -- KEYS[1] = 'sd:meta'. ARGV: a new store id, partitions, now. Creates the store's description
        -- unless there is one: {id, partitions, created 0/1}.
        redis.register_function('sd1_open_store', function(keys, args)
          local m = redis.call('HMGET', keys[1], 'id', 'partitions')
          if m[1] then return {m[1], tonumber(m[2]), 0} end
          redis.call('HSET', keys[1], 'id', args[1], 'partitions', args[2], 'created', args[3])
          return {args[1], tonumber(args[2]), 1}
        end)

        -- KEYS[1] = 'sd:config'. ARGV: field, value, ... (the fields that change). Sets them, moves the
        -- version on: {idle, life, cap, policy, maxdata, ver}.
        redis.register_function('sd1_update_configuration', function(keys, args)
          for index = 1, #args, 2 do redis.call('HSET', keys[1], args[index], args[index + 1]) end
          redis.call('HINCRBY', keys[1], 'ver', 1)
          return redis.call('HMGET', keys[1], 'idle', 'life', 'cap', 'policy', 'maxdata', 'ver')
        end)
        """#
}

"""The available-to-sell state in Redis: cached ERP positions and reservations, changed
only by Lua scripts so that every check-and-change is one atomic step.

Keys per SKU (prefix omitted):
    ats:{sku}:pos   hash   oh:<loc> on hand, v:<loc> ERP version, _fetched, _delta, _known
    ats:{sku}:res   hash   <loc> units reserved there (held and confirmed)
    ats:{sku}:exp   zset   "<rid>|<loc>|<qty>" scored by expiry (+inf once confirmed)
    ats:r:<rid>     hash   one reservation: sku, loc, qty, owner, status, expires, fp, by
                           (`by`: the principal that made it, the only one, with operators,
                           that may read, confirm or release it)
    ats:o:<owner>   set    the reservations of an order

Expired reservations are purged by whichever script touches the SKU next (reads included),
so units come back without a sweeper on the critical path. Written for one Redis (or a
replicated primary): the scripts touch keys they build from the prefix, which a Redis
Cluster would refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["AtsStore"]

_PURGE = """
local function purge(prefix, sku, now)
  local exp = prefix .. 'ats:' .. sku .. ':exp'
  local res = prefix .. 'ats:' .. sku .. ':res'
  local gone = redis.call('ZRANGEBYSCORE', exp, '-inf', now)
  for _, member in ipairs(gone) do
    local rid, loc, qty = string.match(member, '^(.*)|([^|]*)|([^|]*)$')
    redis.call('HINCRBY', res, loc, -tonumber(qty))
    redis.call('ZREM', exp, member)
    local rkey = prefix .. 'ats:r:' .. rid
    if redis.call('HGET', rkey, 'status') == 'held' then
      redis.call('HSET', rkey, 'status', 'expired')
      redis.call('EXPIRE', rkey, 604800)
    end
  end
  return #gone
end
"""

# ARGV: prefix, sku, now → {expired count, pos hash flat, res hash flat}
_READ = (
    _PURGE
    + """
local prefix, sku, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expired = purge(prefix, sku, now)
return {expired,
        redis.call('HGETALL', prefix .. 'ats:' .. sku .. ':pos'),
        redis.call('HGETALL', prefix .. 'ats:' .. sku .. ':res')}
"""
)

# ARGV: prefix, sku, fetched_at, delta, known, ttl, then (loc, on_hand, version)...
# A location is written only when its version is newer than the cached one, so a slow
# fetch can never undo a newer position written by an event.
_WRITE = """
local prefix, sku = ARGV[1], ARGV[2]
local pos = prefix .. 'ats:' .. sku .. ':pos'
redis.call('HSET', pos, '_fetched', ARGV[3], '_delta', ARGV[4], '_known', ARGV[5],
           '_source', 'erp-fetch')
local i = 7
while i <= #ARGV do
  local loc, on_hand, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local cached = tonumber(redis.call('HGET', pos, 'v:' .. loc) or '-1')
  if version > cached then
    redis.call('HSET', pos, 'oh:' .. loc, on_hand, 'v:' .. loc, version)
  end
  i = i + 3
end
redis.call('EXPIRE', pos, ARGV[6])
return 1
"""

# ARGV: prefix, sku, loc, on_hand, version → 1 when written. Only a cached SKU is updated
# (an uncached one gets the ERP's current state at its next fetch), and only forward.
_APPLY = """
local pos = ARGV[1] .. 'ats:' .. ARGV[2] .. ':pos'
if redis.call('EXISTS', pos) == 0 or redis.call('HGET', pos, '_known') ~= '1' then
  return 0
end
local loc, version = ARGV[3], tonumber(ARGV[5])
if version > tonumber(redis.call('HGET', pos, 'v:' .. loc) or '-1') then
  redis.call('HSET', pos, 'oh:' .. loc, ARGV[4], 'v:' .. loc, version, '_source', 'event')
  return 1
end
return 0
"""

# ARGV: prefix, sku, rid, owner, qty, now, expires, fingerprint, principal, then (loc, safety)...
# → {'ok', loc} | {'exists', status, loc, same-fingerprint} | {'refused', best ats} | {'miss'}
_RESERVE = (
    _PURGE
    + """
local prefix, sku, rid, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local qty, now, expires, fp = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local by = ARGV[9]
local rkey = prefix .. 'ats:r:' .. rid
purge(prefix, sku, now)
if redis.call('EXISTS', rkey) == 1 then
  local r = redis.call('HMGET', rkey, 'status', 'loc', 'fp')
  return {'exists', r[1], r[2], r[3] == fp and 1 or 0}
end
local pos = prefix .. 'ats:' .. sku .. ':pos'
local res = prefix .. 'ats:' .. sku .. ':res'
if redis.call('HGET', pos, '_known') ~= '1' then
  return {'miss'}
end
local best = 0
local i = 10
while i <= #ARGV do
  local loc, safety = ARGV[i], tonumber(ARGV[i + 1])
  local on_hand = tonumber(redis.call('HGET', pos, 'oh:' .. loc) or '0')
  -- never below 0: a counter that lost its key while purges went on never adds stock
  local reserved = math.max(0, tonumber(redis.call('HGET', res, loc) or '0'))
  local ats = on_hand - reserved - safety
  if ats < 0 then ats = 0 end
  if ats >= qty then
    redis.call('HINCRBY', res, loc, qty)
    redis.call('ZADD', prefix .. 'ats:' .. sku .. ':exp', expires, rid .. '|' .. loc .. '|' .. qty)
    redis.call('HSET', rkey, 'sku', sku, 'loc', loc, 'qty', qty, 'owner', owner,
               'status', 'held', 'expires', expires, 'fp', fp, 'by', by)
    redis.call('SADD', prefix .. 'ats:o:' .. owner, rid)
    return {'ok', loc}
  end
  if ats > best then best = ats end
  i = i + 2
end
return {'refused', best}
"""
)

# ARGV: prefix, rid, now, action ('confirm' | 'release' | 'commit') → {status, changed}
_SETTLE = (
    _PURGE
    + """
local prefix, rid, now, action = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local rkey = prefix .. 'ats:r:' .. rid
local r = redis.call('HMGET', rkey, 'sku', 'loc', 'qty', 'status')
if not r[1] then return {'missing', 0} end
local sku, loc, qty = r[1], r[2], tonumber(r[3])
purge(prefix, sku, now)
local status = redis.call('HGET', rkey, 'status')
local member = rid .. '|' .. loc .. '|' .. qty
if action == 'confirm' then
  if status == 'held' then
    redis.call('ZADD', prefix .. 'ats:' .. sku .. ':exp', '+inf', member)
    redis.call('HSET', rkey, 'status', 'confirmed', 'expires', '')
    return {'confirmed', 1}
  end
  return {status, 0}
end
if status == 'held' or status == 'confirmed' then
  redis.call('HINCRBY', prefix .. 'ats:' .. sku .. ':res', loc, -qty)
  redis.call('ZREM', prefix .. 'ats:' .. sku .. ':exp', member)
  local final = action == 'commit' and 'committed' or 'released'
  redis.call('HSET', rkey, 'status', final, 'expires', '')
  redis.call('EXPIRE', rkey, 604800)
  return {final, 1}
end
return {status, 0}
"""
)


class AtsStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._read: Any = redis.register_script(_READ)
        self._write: Any = redis.register_script(_WRITE)
        self._reserve: Any = redis.register_script(_RESERVE)
        self._settle: Any = redis.register_script(_SETTLE)
        self._apply: Any = redis.register_script(_APPLY)

    def lock_key(self, sku: str) -> str:
        return f"{self.prefix}ats:{sku}:lock"

    async def read(
        self, sku: str, now: float
    ) -> tuple[int, dict[bytes, bytes], dict[bytes, bytes]]:
        expired, pos, res = await self._read(args=[self.prefix, sku, now])
        return int(expired), _pairs(pos), _pairs(res)

    async def write(
        self,
        sku: str,
        fetched_at: float,
        delta: float,
        positions: list[tuple[str, int, int]] | None,
        ttl_s: int,
    ) -> None:
        known = 1 if positions is not None else 0
        args: list[Any] = [self.prefix, sku, fetched_at, delta, known, ttl_s]
        for loc, on_hand, version in positions or ():
            args += [loc, on_hand, version]
        await self._write(args=args)

    async def reserve(
        self,
        sku: str,
        rid: str,
        owner: str,
        qty: int,
        now: float,
        expires: float,
        fingerprint: str,
        locations: list[tuple[str, int]],
        principal: str = "",
    ) -> list[Any]:
        args: list[Any] = [self.prefix, sku, rid, owner, qty, now, expires, fingerprint, principal]
        for loc, safety in locations:
            args += [loc, safety]
        return [v.decode() if isinstance(v, bytes) else v for v in await self._reserve(args=args)]

    async def settle(self, rid: str, now: float, action: str) -> tuple[str, bool]:
        status, changed = await self._settle(args=[self.prefix, rid, now, action])
        return (status.decode() if isinstance(status, bytes) else str(status)), bool(changed)

    async def apply_position(self, sku: str, loc: str, on_hand: int, version: int) -> bool:
        return bool(await self._apply(args=[self.prefix, sku, loc, on_hand, version]))

    async def owner_reservations(self, owner: str) -> list[str]:
        members: Any = await self.redis.smembers(f"{self.prefix}ats:o:{owner}")
        return sorted(m.decode() for m in members)

    async def reservation(self, rid: str) -> dict[str, str] | None:
        raw: Any = await self.redis.hgetall(f"{self.prefix}ats:r:{rid}")
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}

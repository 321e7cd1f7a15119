"""The Redis layout shared by the purge engine and the cache client, so they cannot drift.

Per concrete namespace N every key carries the hash tag `{N}` (one Cluster slot):
`{N}:gen` holds the generation token, `{N}:e:<entry>` the entries, `{N}:keys` the optional index.
An entry is stored as `<generation>\\n<value schema version>\\n<value>`; it is valid only while
its generation is the namespace's current one.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import NamedTuple

from contracts.ids import validate_entry
from contracts.namespaces import BoundNamespace, Namespace

_SEPARATOR = b"\n"


def hash_tag(namespace: BoundNamespace) -> str:
    """`{N}`: the hash tag that keeps every key of the namespace in one Cluster slot."""
    return "{" + namespace.key + "}"


def hash_tag_template(namespace: Namespace) -> str:
    """The shape of a namespace's keys, for documentation: `{company:{company_id}:orders}:*`."""
    return "{" + namespace.template + "}:{gen|e:<entry>|keys}"


def generation_key(namespace: BoundNamespace) -> str:
    """`{N}:gen`: the key of the namespace's generation token."""
    return generation_key_of(namespace.key)


def generation_key_of(rendered: str) -> str:
    """`{N}:gen` for a namespace's rendered key `N` (already validated: the purge hot path)."""
    return "{" + rendered + "}:gen"


def entry_key(namespace: BoundNamespace, entry: str) -> str:
    """`{N}:e:<entry>`: the key of one cached entry (the entry name is validated)."""
    return hash_tag(namespace) + ":e:" + validate_entry(entry, namespace=namespace.namespace.name)


def fill_lock_key(namespace: BoundNamespace, entry: str) -> str:
    """`{N}:fill:<entry>`: held by the one caller filling an entry of a single-flight namespace."""
    return (
        hash_tag(namespace) + ":fill:" + validate_entry(entry, namespace=namespace.namespace.name)
    )


def hold_off_key(namespace: BoundNamespace) -> str:
    """`{N}:holdoff`: present for `fill_hold_off` after a purge; no fill is stored meanwhile."""
    return hash_tag(namespace) + ":holdoff"


def index_key(namespace: BoundNamespace) -> str:
    """`{N}:keys`: the set of entry keys, for namespaces purged by the `index` strategy."""
    return hash_tag(namespace) + ":keys"


def generation_ttl(namespace: Namespace) -> timedelta:
    """How long a generation token is kept: twice the entries' TTL backstop.

    Losing a token is safe (a reader writes a fresh one, which invalidates every older entry);
    keeping it longer than its entries only wastes memory.
    """
    return namespace.ttl * 2


_TIME_DIGITS = 16
"""A token's leading hexadecimal digits: the nanoseconds since the epoch it was made at."""


def new_generation() -> bytes:
    """A generation token that is never reused: time-ordered, with 64 random bits."""
    return f"{time.time_ns():0{_TIME_DIGITS}x}{secrets.token_hex(8)}".encode()


def generation_time_ns(token: bytes) -> int | None:
    """When `token` was made by `new_generation` (nanoseconds since the epoch); None when it is
    not a token of that form (e.g. a counter written by something else)."""
    stamp = token[:_TIME_DIGITS]
    if len(token) <= _TIME_DIGITS:
        return None
    try:
        return int(stamp, 16)
    except ValueError:
        return None


class StoredEntry(NamedTuple):
    """A decoded entry: the generation it was filled under, its schema version, its value.

    A named tuple rather than a frozen dataclass: it is built on every cache read, and a tuple
    is made in C where a frozen dataclass sets each field through `object.__setattr__`."""

    generation: bytes
    schema_version: int
    value: bytes


def encode_entry(generation: bytes, schema_version: int, value: bytes) -> bytes:
    """The bytes stored for an entry."""
    return generation + _SEPARATOR + str(schema_version).encode() + _SEPARATOR + value


def decode_entry(raw: bytes) -> StoredEntry | None:
    """The entry stored as `raw`, or None when it is not in this layout (treated as a miss)."""
    parts = raw.split(_SEPARATOR, 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return StoredEntry(parts[0], int(parts[1]), parts[2])


FILL_STORED = 1
"""FILL_IF_GENERATION's reply when the entry was stored (0: a purge came in between, -1: the
namespace is in its fill hold-off)."""

FILL_IF_GENERATION = """
-- KEYS[1] generation, KEYS[2] entry, KEYS[3] hold-off marker, KEYS[4] index set
-- ARGV[1] generation read before the source of truth, ARGV[2] encoded entry, ARGV[3] ttl ms,
-- ARGV[4] '1' to record the entry in the index
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[4], KEYS[2])
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
return 1
"""
"""Store an entry only if the generation is still the one read before the source: a purge in
between refuses the fill atomically, so the read-purge-fill race cannot store a stale value.
A fill during a purge's hold-off is refused too. Returns FILL_STORED, 0 or -1."""

PURGE_WITH_INDEX = """
-- KEYS[1] generation, KEYS[2] index set; ARGV[1] new generation, ARGV[2] generation ttl ms
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local keys = redis.call('SMEMBERS', KEYS[2])
for i = 1, #keys, 500 do
  redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
end
redis.call('DEL', KEYS[2])
return #keys
"""
"""The `index` strategy: a new generation (race safety) and the indexed entries unlinked
(memory back at once). Every key is in the namespace's slot. Returns how many were unlinked."""

SET_EACH_LOCAL = """#!lua flags=allow-cross-slot-keys
-- ARGV: one or more groups of three: value, ttl ms, the keys joined by newlines.
-- Returns the positions (1-based, counted over every group's keys) of the keys not set.
local refused = {}
local position = 0
for i = 1, #ARGV, 3 do
  local value, ttl = ARGV[i], ARGV[i + 1]
  for key in string.gmatch(ARGV[i + 2], '[^\\n]+') do
    position = position + 1
    local reply = redis.pcall('SET', key, value, 'PX', ttl)
    if type(reply) == 'table' and reply.err then
      refused[#refused + 1] = position
    end
  end
end
return refused
"""
"""Set many keys, in groups sharing a value and a TTL, in one call: the generation tokens and
hold-off markers of a purge on one Redis node. The keys of a group travel as one argument, joined
by newlines (no key holds one: ids and templates exclude it), so packing a call costs the client
one string, not one argument per key. One call may carry keys of many Cluster slots; Redis checks
every key a script touches against the node's own slot table, so a key this node does not serve
is refused, never written here, and its position comes back (see `invalidator.bulk_set`)."""

RELEASE_FILL_LOCK = """
-- KEYS[1] fill lock; ARGV[1] the token its holder set
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Release a single-flight fill lock only if it is still the caller's: compare and delete in one
step, so a lock that expired and was taken by another caller meanwhile is left to that caller.
Returns 1 when released, 0 when the lock was no longer the caller's."""

"""The stale-data harness: this system against two naive baselines, under the same races.

`python -m bench.stale` runs three variants (this system, TTL-only, delete-on-event) one after
the other against the real Kafka broker and both regions' Redis, with readers and writers racing
on a few hot items of a SQLite source of truth, and counts the reads that returned a value older
than a write whose purge had had time to land everywhere.
"""

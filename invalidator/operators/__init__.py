"""The invalidator's operator tooling: the commands beside `invalidator run` (offsets, replay,
purge, dead letters, topics, the catalogue) and what they read from and write to Kafka."""

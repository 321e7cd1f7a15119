"""Kafka topic names of the example domain and of the invalidator."""

ORDERS = "orders.events"
"""Events of the Order aggregate, keyed by order."""
COMPANIES = "companies.events"
"""Events of the Company aggregate, keyed by company."""
DEAD_LETTER = "invalidator.dead-letter"
"""Records the invalidator could not decode or plan, with the reason in the headers."""

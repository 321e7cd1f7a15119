"""The demo: an example orders service writing through the system while invalidators purge."""

"""Use cases over a Store and a Reference: push, pull, inspect, and what later builds on them."""

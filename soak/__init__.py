"""The soak: a long, bounded, mixed load against a real server (`make soak`; not part of `make test`)."""

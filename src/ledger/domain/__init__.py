"""The domain: events, the cadre aggregate and its fold, points arithmetic, periods, errors.

Imports only the standard library, msgspec and eventsourcing's domain module.
"""

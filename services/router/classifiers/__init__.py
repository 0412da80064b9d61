"""The classifier registry: versioned models in the database, activation, hot reload in the
routers, routing-time signals (language, urgency, predictions) and feedback from reassignments.

The model itself lives in ``services.router.classification``; this package stores and serves it.
"""

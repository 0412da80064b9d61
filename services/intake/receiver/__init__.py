"""``POST /v1/webhooks/{name}``: the HTTP side of the webhook adapters."""

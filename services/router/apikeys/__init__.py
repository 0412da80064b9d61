"""``/v1/api-keys``: API keys managed over REST by admins (``ticketctl keys`` does the same locally)."""

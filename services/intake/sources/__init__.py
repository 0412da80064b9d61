"""Configured webhook sources: admin REST API, service functions shared with ``ticketctl``, cache."""

"""Teams: who tickets can be routed to (CRUD at /v1/teams and ``ticketctl teams``)."""

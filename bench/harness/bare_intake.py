"""The intake baseline: a minimal FastAPI endpoint that only turns the posted ticket into the same
event bytes, produces them to the same broker with the same producer settings, and answers 202
after the acknowledgement. No auth, no database, no outbox: what intake costs on top of this is
its own overhead.

``POST /v1/webhooks/{name}`` is the same for the bench's webhook sources (bench/harness/webhooks.py):
it adapts the vendor payload with intake's own adapter and produces the event intake would produce
for that delivery (same source name, same derived event id, same payload; only ``produced_at``
differs), without verifying the signature, rate limiting, or claiming the delivery in a database.

    KAFKA_BOOTSTRAP_SERVERS=... TOPIC_TICKET_EVENTS=... python -m bench.harness.bare_intake --port P
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.harness.webhooks import SOURCES
from services.intake.tickets.schemas import TicketIn
from services.intake.webhooks import WebhookRequest, adapt, delivery_id, to_envelopes
from shared.events import EventType, ticket_event, utc_now
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.runtime import freeze_startup_heap, start_producer, tune_collector_for_requests
from shared.settings import IntakeSettings


def create_app(settings: IntakeSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings)
        producer = make_producer(settings, linger_ms=settings.intake_producer_linger_ms)  # as intake's
        await start_producer(producer)
        app.state.producer = producer
        freeze_startup_heap()  # as the real services do
        tune_collector_for_requests()  # as intake does
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/tickets")
    async def post(request: Request) -> Response:
        ticket = TicketIn.model_validate_json(await request.body())  # the same parse intake does
        envelope = ticket_event(EventType.TICKET_CREATED, ticket.source, ticket.snapshot())
        await app.state.producer.send_and_wait(
            settings.topic_ticket_events, value=envelope.to_bytes(), key=envelope.ticket_key.encode()
        )
        content = orjson.dumps({"event_id": str(envelope.event_id), "ticket_key": envelope.ticket_key})
        return Response(content, status_code=202, media_type="application/json")

    # The signature is not checked here: the secret only has to satisfy the model.
    configs = {source.name: source.config("unchecked") for source in SOURCES.values()}

    @app.post("/v1/webhooks/{name}")
    async def webhook(name: str, request: Request) -> Response:
        config = configs.get(name)
        if config is None:
            return Response(status_code=404)
        received = WebhookRequest(headers=dict(request.headers), body=await request.body())
        # The delivery ids the bench sends are short: intake's bound on them changes nothing.
        envelopes = to_envelopes(config, delivery_id(config, received), adapt(config, received, utc_now()))
        for envelope in envelopes:
            await app.state.producer.send_and_wait(
                settings.topic_ticket_events, value=envelope.to_bytes(), key=envelope.ticket_key.encode()
            )
        event_ids = [str(e.event_id) for e in envelopes]
        content = orjson.dumps({"event_ids": event_ids, "ticket_keys": [e.ticket_key for e in envelopes]})
        return Response(content, status_code=202, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        create_app(IntakeSettings()),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()

"""The intake baseline: a minimal FastAPI endpoint that only turns the posted ticket into the same
event bytes, produces them to the same broker with the same producer settings, and answers 202
after the acknowledgement. No auth, no database, no outbox: what intake costs on top of this is
its own overhead.

    KAFKA_BOOTSTRAP_SERVERS=... TOPIC_TICKET_EVENTS=... python -m bench.harness.bare_intake --port P
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from services.intake.tickets.schemas import TicketIn
from shared.events import EventType, ticket_event
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.runtime import freeze_startup_heap, start_producer
from shared.settings import IntakeSettings


def create_app(settings: IntakeSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings)
        producer = make_producer(settings, linger_ms=settings.intake_producer_linger_ms)  # as intake's
        await start_producer(producer)
        app.state.producer = producer
        freeze_startup_heap()  # as the real services do
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

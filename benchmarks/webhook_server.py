"""uvicorn factory for the webhook benchmark's ceiling: a bare FastAPI POST endpoint.

Run as `python -m uvicorn benchmarks.webhook_server:create_bare_app --factory` with the same
uvicorn flags as the API server. `POST /bare` reads the whole body and answers 200 with a
small JSON object, nothing else (no middleware, no auth, no parsing, no database), so it
measures what HTTP, uvicorn, FastAPI and the load generator cost on their own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request


def create_bare_app() -> FastAPI:
    app = FastAPI(title="bare ceiling", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/bare")
    async def bare(request: Request) -> dict[str, int]:
        body = await request.body()
        return {"received_bytes": len(body)}

    return app

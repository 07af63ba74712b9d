"""The FastAPI application: the API routers, the shipped front end, clear 4xx answers for bad requests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from convscope.explore import dataset_view, image_view, layer_view, metrics_view, model_view, relevance_view
from convscope.explore.jobs import Cancelled
from convscope.explore.security import BodyTooLarge, Guard, too_large
from convscope.explore.state import Explorer

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("convscope.explore")


def create_app(explorer: Explorer) -> FastAPI:
    """The explorer's web app over ``explorer`` (its model, pictures, scan and worker)."""
    app = FastAPI(title="convscope explorer", version="1", docs_url=None, redoc_url=None,
                  description="Look inside a convolutional network: predictions, attribution maps, live occlusion, "
                              "channels, feature visualisations, a scan's feature space. Every view of the front "
                              "end is built from these endpoints. Errors are JSON: "
                              "{\"status\": 400, \"error\": \"what went wrong, in one line\"}.")
    app.state.explorer = explorer
    for view in (image_view, layer_view, dataset_view, model_view, relevance_view, metrics_view):
        app.include_router(view.router)

    install_error_answers(app)

    @app.get("/api/info", tags=["explorer"], summary="The model, the scan and the check results being served")
    async def info() -> dict:
        return explorer.info()

    @app.get("/api/queue", tags=["explorer"], summary="What the workers compute and what waits")
    async def queue() -> dict:
        return {**explorer.worker.status(), "background": explorer.background.status(),
                "scan": explorer.scan_worker.status()}

    @app.post("/api/cancel", tags=["explorer"], summary="Cancel the jobs a page asked for under `group`, queued "
                                                        "and running (without `group`: every job)")
    async def cancel(group: Annotated[str | None, Query(min_length=1, max_length=100)] = None) -> dict:
        workers = (explorer.worker, explorer.background, explorer.scan_worker)
        return {"cancelled": sum(worker.cancel(group) for worker in workers)}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api", include_in_schema=False)
    async def api_page() -> FileResponse:
        return FileResponse(STATIC / "api.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if explorer.atlas is not None:  # read-only; StaticFiles refuses paths that lead outside the folder
        app.mount("/atlas", StaticFiles(directory=explorer.atlas, html=True), name="atlas")
    app.add_middleware(Guard, token=explorer.token)
    return app


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def install_error_answers(app: FastAPI) -> None:
    """Every failure is JSON ``{"status": N, "error": "one line"}``: 400 for bad values, 409 for cancelled work,
    413 too large, 422 malformed, 500 for anything else (logged with its traceback)."""

    def answer(status: int, text: str) -> JSONResponse:
        return JSONResponse({"status": status, "error": text}, status_code=status)

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def bad_value(request: Request, error: Exception) -> JSONResponse:
        return answer(400, one_line(error))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                 for e in error.errors()]
        return answer(422, "; ".join(parts) or "malformed request")

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return too_large()

    @app.exception_handler(Cancelled)
    async def cancelled(request: Request, error: Cancelled) -> JSONResponse:
        return answer(409, one_line(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return answer(error.status_code, one_line(Exception(error.detail)) if error.detail else "error")

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return answer(500, f"{type(error).__name__}: {one_line(error)}")

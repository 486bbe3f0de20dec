"""``wavegen listen serve``: the listening-test web app (Starlette on uvicorn).

Routes (everything else is a 404 or 405):

    GET  /                       the single page (static/index.html)
    GET  /static/{name}          app.js, style.css, favicon.svg: a fixed list, no file system lookup
    GET  /api/config             the pages' wording and the experimenter's pages (experiment.py)
    POST /api/session            {"listener": ID | null, "consent": true} -> register -> state
                                 (a test with a consent page registers nobody without consent)
    GET  /api/state?listener=ID  the listener's current page, progress, completion code when done
    GET  /api/audio/{token}?listener=ID   a stimulus (WAV) by the listener's opaque token
    POST /api/answer             the answer to the current page; 200 only once it is on disk
    POST /api/questionnaire      {"listener", "answers": {question id: answer}} after the last page

Every body is JSON (``Content-Type: application/json``, which also makes a cross-site POST need
a CORS preflight that this app never grants) of at most ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.errors import WavegenError
from .answers import BadRequest, check_keys, listener_id, parse_answer, state_view, token
from .experiment import check_answers
from .plan import make_plan
from .spec import DATABASE, load_test
from .store import Conflict, Store

MAX_BODY = 16 * 1024  # bytes; a 12-condition MUSHRA answer is ~700
DRAIN_LIMIT = 64 * 1024 * 1024  # read and drop up to this much of a refused body, so the client sees the 413
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def create_app(test_dir: str | Path, db_path: str | Path | None = None, completion_code: str | None = None):
    """The ASGI app serving the test in ``test_dir``; answers go to ``db_path``."""
    test_dir = Path(test_dir)
    test = load_test(test_dir)
    store = Store(db_path or test_dir / DATABASE, test.test_id)
    package = resources.files("wavegen.listen") / "static"
    index_html = (package / "index.html").read_bytes()
    static = {name: ((package / name).read_bytes(), kind) for name, kind in STATIC.items()}
    exp = test.experiment
    wording = exp.wording()
    config = {
        "type": test.type,
        "language": exp.language,
        "texts": wording,
        "consent": exp.consent,
        "calibration": exp.calibration,
        "comments": exp.comments,
        "previous": exp.previous,
        "questionnaire": [{k: v for k, v in vars(q).items() if v is not None} for q in exp.questionnaire],
    }

    def new_code() -> str:
        if completion_code:
            return completion_code
        code = secrets.token_hex(4).upper()
        return f"{code[:4]}-{code[4:]}"

    def known_listener(request: Request):
        only_params(request, {"listener"})
        if "listener" not in request.query_params:
            raise BadRequest("listener: missing")
        found = store.listener(listener_id(request.query_params["listener"]))
        if found is None:
            raise BadRequest("listener: unknown; start at /", 404)
        return found

    async def index(request: Request) -> Response:
        only_params(request, {"listener"})
        return Response(index_html, media_type="text/html; charset=utf-8")

    async def static_file(request: Request) -> Response:
        only_params(request, set())
        found = static.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        body, kind = found
        return Response(body, media_type=kind)

    async def get_config(request: Request) -> Response:
        only_params(request, set())
        return api_json(config)

    async def session(request: Request) -> Response:
        only_params(request, set())
        body = await json_body(request)
        check_keys(body, {"listener"}, {"consent"})
        given = body["listener"]
        lid = secrets.token_urlsafe(9) if given is None else listener_id(given)
        if exp.consent and body.get("consent") is not True:
            known = given is not None and await run_in_threadpool(store.listener, lid)
            if not known:  # returning listeners agreed before they were registered
                raise BadRequest("consent: the listener must agree before the test starts", 403)
        listener = await run_in_threadpool(
            store.register, lid, lambda seq: make_plan(test, lid, seq), new_code
        )
        return api_json(state_view(test, listener))

    async def state(request: Request) -> Response:
        listener = await run_in_threadpool(known_listener, request)
        return api_json(state_view(test, listener))

    async def audio(request: Request) -> Response:
        listener = await run_in_threadpool(known_listener, request)
        tok = token(request.path_params["token"], "stimulus")
        found = listener.plan["audio"].get(tok)
        if found is None:
            raise BadRequest("stimulus: unknown for this listener", 404)
        item_id, condition = found
        path = test_dir / test.item(item_id).condition(condition).file  # from test.json only
        data = await run_in_threadpool(path.read_bytes)
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "private, max-age=86400"})

    async def answer(request: Request) -> Response:
        only_params(request, set())
        body = await json_body(request)
        if "listener" not in body:
            raise BadRequest("listener: missing")
        listener = await run_in_threadpool(store.listener, listener_id(body["listener"]))
        if listener is None:
            raise BadRequest("listener: unknown; start at /", 404)
        parsed = parse_answer(test, listener, body)
        try:
            stored = await run_in_threadpool(
                store.save,
                listener.listener,
                parsed.page,
                parsed.item,
                parsed.kind,
                parsed.response,
                parsed.elapsed_ms,
                parsed.ratings,
                parsed.choice,
                parsed.revise,
                not exp.questionnaire,
            )
        except Conflict as err:
            raise BadRequest(str(err), 409) from None
        listener = await run_in_threadpool(store.listener, listener.listener)
        return api_json({"stored": stored, "state": state_view(test, listener)})

    async def questionnaire(request: Request) -> Response:
        only_params(request, set())
        body = await json_body(request)
        check_keys(body, {"listener", "answers"})
        listener = await run_in_threadpool(store.listener, listener_id(body["listener"]))
        if listener is None:
            raise BadRequest("listener: unknown; start at /", 404)
        if not exp.questionnaire:
            raise BadRequest("this test has no questionnaire", 404)
        try:
            answers = check_answers(exp, body["answers"], len(wording["likert"]))
        except ValueError as err:
            raise BadRequest(str(err), 422) from None
        try:
            stored = await run_in_threadpool(store.save_questionnaire, listener.listener, answers)
        except Conflict as err:
            raise BadRequest(str(err), 409) from None
        listener = await run_in_threadpool(store.listener, listener.listener)
        return api_json({"stored": stored, "state": state_view(test, listener)})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        store.close()

    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return api_json({"error": str(exc)}, status=exc.status)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return api_json({"error": exc.detail}, status=exc.status_code)

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/static/{name}", static_file, methods=["GET"]),
            Route("/api/config", get_config, methods=["GET"]),
            Route("/api/session", session, methods=["POST"]),
            Route("/api/state", state, methods=["GET"]),
            Route("/api/audio/{token}", audio, methods=["GET"]),
            Route("/api/answer", answer, methods=["POST"]),
            Route("/api/questionnaire", questionnaire, methods=["POST"]),
        ],
        exception_handlers={BadRequest: bad_request, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.test = test
    app.state.store = store
    return BodyLimit(SecurityHeaders(app), MAX_BODY)


def only_params(request: Request, allowed: set[str]) -> None:
    unknown = set(request.query_params) - allowed
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown)[:5])}")
    if len(request.query_params.multi_items()) != len(set(request.query_params)):
        raise BadRequest("a query parameter is repeated")


async def json_body(request: Request) -> dict:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest("expected Content-Type: application/json", 415)
    raw = await request.body()  # at most MAX_BODY bytes: BodyLimit refuses anything longer
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    try:  # "\ud800" is valid JSON but no text: SQLite and the reply cannot encode it
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("body: a string holds an unpaired UTF-16 surrogate") from None
    return body


def _not_json(name: str):
    """NaN, Infinity and -Infinity: Python's json reads them, JSON has no such values."""
    raise ValueError(f"{name} is not JSON")


def api_json(data: dict, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


class SecurityHeaders:
    """ASGI wrapper adding CSP and no-sniff headers to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI wrapper refusing request bodies over ``limit`` bytes with 413, before the app reads
    them: by the declared Content-Length, or by counting a chunked body as the app reads it."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._drain(receive, int(declared) if declared.isdigit() else 0)
            return await self._refuse(send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the endpoint's request.body(): the app's handler answers 413.
                    raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, counting_receive, send)

    async def _drain(self, receive, declared: int) -> None:
        # Reading the refused body (up to a bound) lets the client finish sending and then read
        # the 413, instead of seeing its connection reset mid-upload.
        if declared > DRAIN_LIMIT:
            return
        total = 0
        while total <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": "request body too large"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def serve(
    test_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db_path: str | Path | None = None,
    completion_code: str | None = None,
    echo=print,
) -> None:
    """Serve the test until interrupted."""
    import uvicorn

    if not 0 <= port <= 65535:
        raise WavegenError(f"--port {port}: expected 0-65535")
    app = create_app(test_dir, db_path, completion_code)
    sock = listening_socket(host, port)  # bound before saying "serving": a taken port is one line
    port = sock.getsockname()[1]
    echo(
        f"serving {Path(test_dir)} at http://{host}:{port}/ (answers: {db_path or Path(test_dir) / DATABASE})"
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0: any free port), or a one-line error naming
    the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise WavegenError(f"--host {host}: cannot listen there: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections queue from now on, before uvicorn starts accepting
    except OSError as err:
        sock.close()
        raise WavegenError(f"{host}:{port}: cannot listen there: {err.strerror or err}") from None
    return sock

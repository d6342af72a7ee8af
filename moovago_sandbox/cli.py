"""`moovago-sandbox serve`: run a local Moovago-compatible GraphQL server.

The first stdout line is the contract other tools read:
    moovago-sandbox listening on http://HOST:PORT/graphql api_key=KEY team_id=TEAM
then one line per further key (`moovago-sandbox key api_key=KEY team_id=TEAM`). One log line
per request goes to stderr. SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from moovago_api.errors import SchemaFileError
from moovago_sandbox.faults import FaultProfile, FaultProfileError, parse_churn

if TYPE_CHECKING:
    from aiohttp import web

    from moovago_sandbox.app import Sandbox


def _api_key(text: str) -> tuple[str, str | None]:
    key, sep, team = text.partition(":")
    if not key or (sep and not team):
        raise argparse.ArgumentTypeError(f"expected KEY or KEY:TEAM, got {text!r}")
    return key, team or None


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, got {text}")
    return value


def _latency(text: str) -> tuple[float, float]:
    prob, _, ms = text.partition(":")
    try:
        return _rate(prob), float(ms or 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected PROBABILITY:MS, got {text!r}") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {text}")
    return value


def _ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def _churn(text: str) -> str:
    try:
        parse_churn(text)
    except FaultProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moovago-sandbox", description="Local Moovago-compatible GraphQL server."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    serve.add_argument("--companies", type=int, default=100, help="companies of the first team")
    serve.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        type=_api_key,
        metavar="KEY[:TEAM]",
        help="accepted key, bound to team TEAM (default: a team of its own); repeatable",
    )
    serve.add_argument("--api-key-header", default="X-API-KEY")
    serve.add_argument(
        "--rate-limit", type=int, default=5, help="requests per rolling second per key (0 = off)"
    )
    serve.add_argument(
        "--retry-after", action="store_true", help="send Retry-After with 429 answers"
    )
    serve.add_argument("--faults", metavar="PROFILE", help="fault profile: JSON file or JSON text")
    serve.add_argument("--fault-5xx", type=_rate, metavar="RATE")
    serve.add_argument("--fault-429", type=_rate, metavar="RATE")
    serve.add_argument("--fault-drop", type=_rate, metavar="RATE")
    serve.add_argument("--fault-latency", type=_latency, metavar="PROBABILITY:MS")
    serve.add_argument("--fault-partial", type=_rate, metavar="RATE")
    serve.add_argument("--fault-commit-then-fail", type=_rate, metavar="RATE")
    serve.add_argument("--fault-seed", type=int)
    serve.add_argument(
        "--fault-churn",
        type=_churn,
        metavar="N:D:I",
        help="before every Nth request reading an entity's list, delete D and insert I rows of it",
    )
    modes = serve.add_argument_group("server modes (also keys of a --faults profile)")
    modes.add_argument(
        "--max-page-size", type=_positive, metavar="N", help="silently cap every list page at N"
    )
    modes.add_argument(
        "--ignore-limit",
        action="store_const",
        const=True,
        help="ignore the page-size argument: pages of --default-page-size rows",
    )
    modes.add_argument("--default-page-size", type=_positive, metavar="N", help="default 50")
    modes.add_argument(
        "--unstable-order",
        action="store_const",
        const=True,
        help="list rows in another (seeded) order at each read unless a sort is given",
    )
    modes.add_argument(
        "--no-date-header", action="store_const", const=True, help="answer without a Date header"
    )
    modes.add_argument(
        "--clock-offset",
        type=float,
        metavar="SECONDS",
        help="the server's clock runs this far from the real one (timestamps, Date header)",
    )
    modes.add_argument("--latency-read", type=_ms, metavar="MS", help="latency of every query")
    modes.add_argument(
        "--latency-mutation", type=_ms, metavar="MS", help="latency of every mutation"
    )
    modes.add_argument(
        "--latency-jitter",
        type=_ms,
        metavar="SIGMA",
        help="lognormal spread of --latency-read/--latency-mutation (0 = fixed)",
    )
    modes.add_argument(
        "--max-body-bytes", type=_positive, metavar="N", help="answer 413 to larger bodies"
    )
    serve.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    serve.add_argument("--schema", type=Path, help="SDL file (default: the bundled one)")
    serve.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        help="run every query through graphql-core execute (benchmark baseline)",
    )
    serve.add_argument("--quiet", action="store_true", help="no per-request log lines")
    serve.add_argument(
        "--reconfigurable",
        action="store_true",
        help="for test harnesses: POST /_sandbox/configure with a JSON list of serve arguments "
        "replaces the served sandbox in place (no new process)",
    )
    return parser


def fault_profile(args: argparse.Namespace) -> FaultProfile:
    profile = FaultProfile.load(args.faults)
    latency, latency_ms = args.fault_latency or (None, None)
    return profile.merged(
        error_5xx=args.fault_5xx,
        burst_429=args.fault_429,
        drop_connection=args.fault_drop,
        latency=latency,
        latency_ms=latency_ms,
        partial_error=args.fault_partial,
        commit_then_fail=args.fault_commit_then_fail,
        seed=args.fault_seed,
        churn=args.fault_churn,
        max_page_size=args.max_page_size,
        ignore_limit=args.ignore_limit,
        default_page_size=args.default_page_size,
        unstable_order=args.unstable_order,
        no_date_header=args.no_date_header,
        clock_offset=args.clock_offset,
        latency_read=args.latency_read,
        latency_mutation=args.latency_mutation,
        latency_jitter=args.latency_jitter,
        max_body_bytes=args.max_body_bytes,
    )


def build_sandbox(args: argparse.Namespace, profile: FaultProfile) -> Sandbox:
    from moovago_sandbox.app import DEFAULT_KEY, Sandbox, SandboxConfig

    return Sandbox(
        SandboxConfig(
            host=args.host,
            port=args.port,
            seed=args.seed,
            companies=args.companies,
            api_keys=args.api_keys or [(DEFAULT_KEY, None)],
            api_key_header=args.api_key_header,
            rate_limit=args.rate_limit,
            retry_after=args.retry_after,
            faults=profile,
            db=args.db,
            fast_path=args.fast_path,
            schema_path=args.schema,
        )
    )


def rebuild(argv: list[str]) -> Sandbox:
    """A fresh Sandbox from `serve` arguments (the `--reconfigurable` endpoint); ValueError
    says what is wrong with them."""
    parser = build_parser()
    parser.exit_on_error = False
    try:
        args = parser.parse_args(["serve", *argv])
        return build_sandbox(args, fault_profile(args))
    except (argparse.ArgumentError, FaultProfileError, SchemaFileError, OSError) as exc:
        raise ValueError(str(exc)) from exc
    except SystemExit as exc:  # argparse exits on some errors even with exit_on_error=False
        raise ValueError(f"invalid serve arguments: {argv!r}") from exc


def make_app(
    box: Sandbox, rebuild: Callable[[list[str]], Sandbox] | None = None
) -> web.Application:
    """The HTTP routes over `box`. With `rebuild` (`serve --reconfigurable`), `POST
    /_sandbox/configure` with a JSON list of `serve` arguments answers from then on with a fresh
    Sandbox built from them: tests reuse one process instead of starting one per configuration."""
    from aiohttp import web

    from moovago_sandbox.app import DEFAULT_MAX_BODY

    current = [box]

    def route(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await getattr(current[0], name)(request)

        return handler

    async def date_header(request: web.Request, response: web.StreamResponse) -> None:
        await current[0]._date_header(request, response)

    # a rebuilt sandbox may lower the body limit, never raise it above the default cap
    limit = box.config.faults.max_body_bytes
    app = web.Application(client_max_size=limit + 1 if limit and not rebuild else DEFAULT_MAX_BODY)
    app.on_response_prepare.append(date_header)
    # Reconfigurable: every route also under one leading segment, so each configuration can be
    # given a URL of its own (clients keep state per URL, such as the rate governor).
    for prefix in ("", "/{configuration}") if rebuild is not None else ("",):
        app.router.add_post(prefix + "/graphql", route("handle_graphql"))
        app.router.add_get(prefix + "/_sandbox/stats", route("handle_stats"))
        app.router.add_post(prefix + "/_sandbox/reset", route("handle_reset"))
        app.router.add_get(prefix + "/_sandbox/export", route("handle_export"))
        app.router.add_get(prefix + "/_sandbox/requests", route("handle_requests"))
    if rebuild is not None:

        async def configure(request: web.Request) -> web.Response:
            args = await request.json()
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                message = "expected a JSON list of serve arguments"
                return web.json_response({"error": message}, status=400)
            try:
                current[0] = rebuild(args)
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            keys = [[key, current[0].keys[key]] for key, _ in current[0].config.api_keys]
            return web.json_response({"keys": keys})

        app.router.add_post("/_sandbox/configure", configure)
    return app


async def serve(args: argparse.Namespace, profile: FaultProfile) -> None:
    from aiohttp import web

    sandbox = build_sandbox(args, profile)
    keys = sandbox.config.api_keys
    app = make_app(sandbox, rebuild if args.reconfigurable else None)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    first_key = keys[0][0]
    lines = [
        f"moovago-sandbox listening on http://{host}:{port}/graphql "
        f"api_key={first_key} team_id={sandbox.keys[first_key]}"
    ]
    lines += [f"moovago-sandbox key api_key={k} team_id={sandbox.keys[k]}" for k, _ in keys[1:]]
    print("\n".join(lines), flush=True)  # noqa: T201 (the contract line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        profile = fault_profile(args)
    except FaultProfileError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(args, profile))
    except ModuleNotFoundError as exc:  # aiohttp or faker: the web part is an extra
        if exc.name not in ("aiohttp", "faker"):
            raise
        msg = f"`serve` needs {exc.name}: pip install 'moovago-connectors[sandbox]'"
        print(f"moovago-sandbox: {msg}", file=sys.stderr)  # noqa: T201
        return 1
    except (SchemaFileError, OSError, UnicodeDecodeError) as exc:
        print(f"moovago-sandbox: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

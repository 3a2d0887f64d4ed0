"""`client-sut endpoints`: the servers a run would drive, found (and waited for, described)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client_sut.config import check_dialect, normalise_endpoint, parse_choice
from client_sut.errors import EXIT_OK
from client_sut.request import Api
from client_sut.security import resolve_credentials

def add_parser(commands) -> None:
    endpoints = commands.add_parser(
        "endpoints", help="list the servers the client finds (and wait for them)",
        description="Resolve --endpoint (dns+http://NAME:PORT: every address of NAME) and "
                    "--endpoints-file into the servers a run would drive, one URL per line.")
    endpoints.add_argument("--endpoint", action="append", default=[], metavar="URL")
    endpoints.add_argument("--endpoints-file", type=Path, action="append", default=[],
                           metavar="PATH")
    endpoints.add_argument("--expect", type=int, metavar="N",
                           help="wait until N servers are found and every one answers /health")
    endpoints.add_argument("--wait", type=float, default=900.0, metavar="SECONDS",
                           help="with --expect: how long to wait for them (default 900)")
    endpoints.add_argument("--describe", action="store_true",
                           help="probe each server (one short request): its kind, what it "
                                "accepts of the client's request and where it puts ids and usage")
    endpoints.add_argument("--model", help="with --describe: the served model (default: the "
                                           "first of GET /v1/models)")
    endpoints.add_argument("--api", default="completions", help="with --describe: "
                                                                "completions|chat")
    endpoints.add_argument("--dialect", metavar="NAME",
                           help="with --describe: the servers' kind, as a run would be told")
    endpoints.add_argument("--api-key-env", metavar="NAME")
    endpoints.add_argument("--api-key-file", type=Path, metavar="PATH")
    endpoints.add_argument("--insecure", action="store_true")
    endpoints.add_argument("--ca-bundle", type=Path, metavar="PATH")
    endpoints.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.preflight.discovery import (
        discover,
        endpoint_origins,
        wait_for_endpoints,
    )

    specs = [normalise_endpoint(url) for url in args.endpoint]
    if args.expect is None:
        found = discover(specs, args.endpoints_file)
    else:
        found = wait_for_endpoints(specs, args.endpoints_file, args.expect, args.wait,
                                   lambda message: print(message, file=sys.stderr, flush=True))
    if not args.describe:
        for url, origin in endpoint_origins(found).items():
            print(f"{url}\t{origin['found_by']}\t{origin['reached']}")
        return EXIT_OK
    from client_sut.preflight.dialect_probe import describe_endpoints

    credentials = resolve_credentials(key_env=args.api_key_env, key_file=args.api_key_file,
                                      insecure=args.insecure, ca_bundle=args.ca_bundle)
    print("\n".join(describe_endpoints(
        tuple(e.url for e in found), args.model, parse_choice(Api, args.api, "--api"),
        credentials, check_dialect(args.dialect))))
    return EXIT_OK

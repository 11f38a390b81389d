"""`python app.py simulate`: run a simulated field in its own process until Ctrl-C or SIGTERM.

The site master key comes from --key-hex, --master-key-file (hex or 24 raw bytes) or the
environment variable WATTLINE_MASTER_KEY (hex), in that order; without any of them the
secure-frame test key is used. The key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from simulator.field import Field
from simulator.secure import TEST_MASTER_KEY
from simulator.site import get_site


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py simulate",
                                     description="Run simulated gateways, RS485 buses and meters on loopback Modbus.")
    parser.add_argument("--site", choices=("demo", "scale"), default="demo")
    parser.add_argument("--base-port", type=int, default=None, help="first bus port (demo 15020, scale 20000)")
    parser.add_argument("--baud", type=int, default=None,
                        help="emulate the RS485 frame time of this baud rate on every bus (default: no emulation)")
    parser.add_argument("--framer", choices=("socket", "rtu"), default="socket",
                        help="socket = Modbus TCP, rtu = RTU over TCP")
    parser.add_argument("--state-file", type=Path, default=None, help="JSON file the meters' state persists in")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--key-hex", default=None, help="site master key, 48 hex digits")
    parser.add_argument("--master-key-file", type=Path, default=None)
    parser.add_argument("--offline", nargs="+", default=[], metavar="ADDR", help="meters that never answer")
    parser.add_argument("--gateway-down", nargs="+", default=[], metavar="NAME", help="gateways that refuse connections")
    parser.add_argument("--garbage", nargs="+", default=[], metavar="ADDR", help="meters that answer random bytes")
    parser.add_argument("--mailbox-v1", nargs="+", default=[], metavar="ADDR",
                        help="meters whose mailbox read-back names no frame (mailbox version 1)")
    return parser


def load_master_key(path: Path | None, key_hex: str | None = None) -> bytes:
    if key_hex:
        key = bytes.fromhex(key_hex.strip())
    elif path is not None:
        raw = path.read_bytes()
        text = raw.strip()
        try:
            key = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            key = raw
    elif os.environ.get("WATTLINE_MASTER_KEY"):
        key = bytes.fromhex(os.environ["WATTLINE_MASTER_KEY"].strip())
    else:
        return TEST_MASTER_KEY
    if len(key) != 24:
        raise ValueError("the master key must be 24 bytes (48 hex digits)")
    return key


async def _serve(field: Field) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread or not POSIX
            pass
    await field.start()
    try:
        by_gateway: dict[str, list[str]] = {}
        for gateway, bus_no, host, port in field.listening():
            by_gateway.setdefault(gateway, []).append(f"bus {bus_no} {host}:{port}")
        for gateway in field.site.gateways:
            state = "DOWN" if gateway.name not in by_gateway else ", ".join(by_gateway[gateway.name])
            print(f"{gateway.name} ({gateway.framing}): {state}", flush=True)
        print(f"simulating {len(field.meters)} meters on {len(field.listening())} ports; Ctrl-C to stop", flush=True)
        await stop.wait()
    finally:
        await field.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        site = get_site(args.site, args.base_port, args.framer)
        if args.baud is not None:
            for gateway in site.gateways:
                for bus in gateway.buses:
                    bus.baud = args.baud
        field = Field(site, state_file=args.state_file, seed=args.seed, emulate_baud=args.baud is not None,
                      master_key=load_master_key(args.master_key_file, args.key_hex))
        for address in args.offline:
            field.set_meter_offline(address)
        for address in args.garbage:
            field.inject_bad_replies(address, "garbage", 2**31)
        for name in args.gateway_down:
            field.set_gateway_down(name)
        for address in args.mailbox_v1:
            field.set_mailbox_version(address, 1)
    except (KeyError, ValueError, OSError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(field))
    except OSError as exc:
        print(f"simulate: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

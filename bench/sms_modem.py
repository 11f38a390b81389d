"""SMS through the GSM-modem backend: 1,000 queued customer messages through the outbox and a fake modem at a
modem's pace, while poll cycles of the demo site go on in the same process.

Three processes, as on a site: the simulator (the field), the fake modem on a pseudo-terminal (tests/fake_modem.py,
standing in for the USB modem, which is not our process either), and this one: collector + outbox + backend
writing one DuckDB file. First poll cycles alone, then the same cycles back to back while the outbox job sends
the 1,000 messages (the catalog's alarm 1 / alarm 2 / arrears / purchase texts, half Chinese in UCS2, half
English in 7-bit; each fits one SMS). Usage:
  .venv/bin/python bench/sms_modem.py [--messages 1000] [--pace 0.2] [--cycles 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.poll_cycle import prepare, start_simulator  # noqa: E402
from collectors.cycle import CollectorService  # noqa: E402
from collectors.poller import FieldIO  # noqa: E402
from collectors.profiles import ProfileRegistry  # noqa: E402
from core.config import site_zone  # noqa: E402
from notify.gsm import GsmModemBackend  # noqa: E402
from notify.outbox import Outbox, queue_message, state_counts  # noqa: E402
from simulator.site import find_free_base_port, get_site  # noqa: E402
from storage.engine import dispose  # noqa: E402

NOON = dt.datetime(2026, 11, 21, 4, 0)      # 12:00 at the site: no quiet hours
TEMPLATES = ("alarm1", "alarm2", "arrears", "purchase")


def serve_fake_modem(pace_s: float) -> None:
    """Child process: a fake modem; prints its device, runs until stdin closes, prints what it delivered."""
    from tests.fake_modem import FakeModem
    with FakeModem(pace_s=pace_s) as modem:
        print(json.dumps({"device": modem.device}), flush=True)
        sys.stdin.read()
        print(json.dumps({"delivered": len(modem.delivered), "parts": len(modem.submitted),
                          "texts": sorted(m.text for m in modem.delivered),
                          "protocol_errors": modem.protocol_errors[:5]}, ensure_ascii=False), flush=True)


def start_fake_modem(pace_s: float) -> tuple[subprocess.Popen, str]:
    modem = subprocess.Popen([sys.executable, __file__, "--serve-fake-modem", "--pace", str(pace_s)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    return modem, json.loads(modem.stdout.readline())["device"]


def backend_only(count: int) -> None:
    """The backend's own cost a message: AT+CMGS, prompt, PDU, +CMGS over the pty, with a modem of no pace."""
    modem, device = start_fake_modem(0.0)
    try:
        backend = GsmModemBackend(device)
        backend.send("+8613800138000", "set-up")
        t0 = time.perf_counter()
        for i in range(count):
            backend.send(f"+86138{i:08d}", "您的电费余额为 ¥12.50，请及时购电。" if i % 2 else "Room 3-1-502: balance 12.50")
        seconds = time.perf_counter() - t0
        backend.close()
        modem.stdin.close()
        delivered = json.loads(modem.stdout.readline())["delivered"] - 1
    finally:
        if modem.poll() is None:
            modem.kill()
    print(f"backend alone: {count} messages in {seconds:.2f} s = {seconds / count * 1000:.1f} ms a message "
          f"({delivered} delivered); load {os.getloadavg()[0]:.1f}")


def queue_messages(engine, count: int) -> list[str]:
    texts = []
    with engine.begin() as conn:
        for i in range(count):
            template = TEMPLATES[i % len(TEMPLATES)]
            language = "zh" if i % 2 else "en"
            params = {"room": f"{3 + i % 5}-{1 + i % 3}-{500 + i % 40}", "balance": f"¥{(i % 300) / 10:.2f}",
                      "time": "11:58", "amount": "¥100.00", "receipt": f"R2026112100{i:04d}"}
            queue_message(conn, recipient="customer", phone=f"+86138{i:08d}", language=language, kind=template,
                          template=template, params=params, now=NOON)
        texts = [r[0] for r in conn.exec_driver_sql("SELECT text FROM notification ORDER BY id")]
    return texts


def cycles(service: CollectorService, n: int | None, until: threading.Event | None = None) -> list[float]:
    times = []
    while (n is not None and len(times) < n) or (until is not None and not until.is_set()):
        t0 = time.perf_counter()
        s = service.run_cycle()
        times.append(time.perf_counter() - t0)
        if s.ok != s.meters:
            print(f"  warning: {s.meters - s.ok} meters failed in a cycle", file=sys.stderr)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--pace", type=float, default=0.2, help="the fake modem's seconds per SMS part")
    ap.add_argument("--cycles", type=int, default=20, help="poll cycles measured without the modem")
    ap.add_argument("--backend-only", type=int, metavar="N",
                    help="only N messages straight through the backend to a fake modem with no pace (no outbox)")
    ap.add_argument("--serve-fake-modem", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake_modem:
        return serve_fake_modem(args.pace)
    if args.backend_only:
        return backend_only(args.backend_only)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        base_port = find_free_base_port(len(get_site("demo", 20000).ports()))
        site, engine = prepare("demo", base_port, workdir)
        sim = start_simulator("demo", base_port, workdir)
        modem, device = start_fake_modem(args.pace)
        try:
            queued = queue_messages(engine, args.messages)
            backend = GsmModemBackend(device, 115200, answer_timeout_s=5.0, send_timeout_s=30.0)
            outbox = Outbox(engine, backend, zone=site_zone("+08:00"), clock=lambda: NOON + dt.timedelta(minutes=1))
            with FieldIO(ProfileRegistry()) as fio:
                service = CollectorService(engine, fio)
                service.run_cycle()                     # connect every endpoint once, as a running site has them
                alone = cycles(service, args.cycles)
                done = threading.Event()
                result = {}

                def send_all():
                    t0 = time.perf_counter()
                    summary = outbox.send_due(limit=args.messages)
                    result.update(seconds=time.perf_counter() - t0, summary=summary)
                    done.set()

                sender = threading.Thread(target=send_all, name="notify-job")
                sender.start()
                sending = cycles(service, None, until=done)
                sender.join()
            backend.close()
            with engine.begin() as conn:
                counts = state_counts(conn)
            modem.stdin.close()
            report = json.loads(modem.stdout.readline())
        finally:
            if modem.poll() is None:
                modem.kill()
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=60)
            dispose(engine)
    summary, seconds = result["summary"], result["seconds"]
    parts = report["parts"]
    print(f"demo site: {len(site.meters())} meters on {len(site.ports())} buses")
    print(f"poll cycle alone:        {len(alone)} cycles, median {statistics.median(alone):.3f} s, "
          f"max {max(alone):.3f} s")
    print(f"poll cycle while sending: {len(sending)} cycles, median {statistics.median(sending):.3f} s, "
          f"max {max(sending):.3f} s")
    print(f"outbox: {summary.sent} sent, {summary.failed} failed, {summary.dead} dead of {args.messages} queued "
          f"(states {counts}); {parts} SMS parts in {seconds:.1f} s = {parts / seconds:.2f} parts/s at a pace of "
          f"{args.pace:g} s a part (floor {parts * args.pace:.1f} s, our overhead "
          f"{(seconds - parts * args.pace) / parts * 1000:.1f} ms a part)")
    same = report["texts"] == sorted(queued)
    print(f"fake modem: {report['delivered']} messages delivered, texts identical to the queued ones: {same}; "
          f"protocol errors: {report['protocol_errors'] or 'none'}")


if __name__ == "__main__":
    main()

"""The customer's self-service page at /c/<token>: reached from a QR code, no sign-in, read-only, phone-sized.

The token (billing.qr) names an account or a meter and is signed; a forged, altered or cut-off one gets a
404 page saying so in the visitor's language and nothing else, and /c/ without a token says what the page is
for and how to reach it. The page shows per meter the balance, the last purchases and the
daily use of the last 30 days, in English or Chinese (?lang=, else the browser's language).
Plain server-rendered HTML with its own small stylesheet: it must load fast on a phone, offline.
"""
from __future__ import annotations

import calendar
import datetime as dt

from flask import Blueprint, Response, current_app, redirect, request
from markupsafe import escape

from billing import qr
from billing.context import BillingContext
from billing.errors import BillingError
from billing.views import customer_view
from core.clock import show_local, zone_label
from core.formatting import format_energy, format_money
from dashboard.i18n import LANGUAGES, request_lang, t
from dashboard.ids import Customer, Shell

_CSS = """
*{box-sizing:border-box}body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"PingFang SC",
"Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",sans-serif;background:#f3f5f7;color:#1d2733}
main{max-width:480px;margin:0 auto;padding:12px}header{display:flex;justify-content:space-between;align-items:center}
h1{font-size:1.25rem;margin:.4rem 0}a{color:#0b5ed7}.who{color:#5b6775;margin:.2rem 0 .8rem}
section{background:#fff;border-radius:10px;padding:12px 14px;margin:0 0 12px;box-shadow:0 1px 2px #0001}
.meter{color:#5b6775;font-size:.85rem}.balance{font-size:2rem;font-weight:600;margin:.2rem 0}
.low{color:#c0392b}.muted{color:#5b6775;font-size:.8rem}table{width:100%;border-collapse:collapse;font-size:.9rem}
td,th{padding:4px 2px;text-align:left;border-bottom:1px solid #eef0f2}td.r,th.r{text-align:right}
h2{font-size:1rem;margin:.8rem 0 .3rem}svg{width:100%;height:auto;display:block}
.notice h1{font-size:1.1rem}.notice p{margin:.4rem 0}
"""


def day_label(day: dt.date, lang: str) -> str:
    """A day on the chart's axis: "Nov 3" / "11月3日"."""
    return f"{day.month}月{day.day}日" if lang == "zh" else f"{calendar.month_abbr[day.month]} {day.day}"


AXIS_EVERY = 7   # a date under the first bar, every seventh and the last


def _bars(daily: list[tuple], lang: str) -> str:
    """30 bars of daily kWh as an inline SVG (no script, no external chart library), dates under the bars."""
    values = [v for _, v in daily]
    top = max(values) if values and max(values) > 0 else 1.0
    w, h, gap, axis = 300, 90, 2, 14
    bw = (w - gap * (len(values) - 1)) / max(len(values), 1)
    bars, ticks = [], []
    last = len(daily) - 1
    for i, (day, v) in enumerate(daily):
        bh = 0 if v <= 0 else max(1.0, v / top * (h - 14))
        x = i * (bw + gap)
        bars.append(f'<rect x="{x:.1f}" y="{h - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="#3b82f6">'
                    f'<title>{escape(day_label(day, lang))}: {format_energy(v)}</title></rect>')
        if (i % AXIS_EVERY == 0 and last - i >= AXIS_EVERY // 2) or i == last:
            anchor = "start" if i == 0 else "end" if i == last else "middle"
            at = x if i == 0 else x + bw if i == last else x + bw / 2
            ticks.append(f'<line x1="{x + bw / 2:.1f}" y1="{h}" x2="{x + bw / 2:.1f}" y2="{h + 3}" stroke="#9aa5b1"/>'
                         f'<text x="{at:.1f}" y="{h + axis - 2}" font-size="9" fill="#5b6775" text-anchor="{anchor}" '
                         f'class="day">{escape(day_label(day, lang))}</text>')
    label = escape(t("billing.customer.max_day", lang, kwh=f"{top:.1f}" if values else "0"))
    return (f'<svg viewBox="0 0 {w} {h + axis}" role="img" aria-label="{escape(t("billing.customer.daily", lang))}">'
            f'<text x="0" y="10" font-size="9" fill="#5b6775">{label}</text>{"".join(bars)}'
            f'<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#c9d1d9"/>{"".join(ticks)}</svg>')


def _entry_row(e: dict, lang: str) -> str:
    kind = escape(t("billing.customer.kind." + e["kind"], lang))
    state = escape(t("billing.customer.state." + e["state"], lang))
    return (f'<tr><td>{show_local(e["at"], "short")}</td><td>{kind}</td><td class="r">{format_money(e["amount"])}</td>'
            f'<td>{state}</td></tr>')


def _low_notice(level: int, view: dict, lang: str) -> str:
    """The low-balance notice under a meter's balance: at or below the site's alarm 1, or its alarm 2 amount."""
    if level >= 2:
        return t("alarm.customer.very_low", lang, amount=format_money(view["alarm2"]))
    return t("alarm.customer.low", lang, amount=format_money(view["alarm1"]))


def render(view: dict, lang: str, token: str, zone) -> str:
    """The page; times are the site's (billing.views gives them so) and the last line names the zone."""
    other = "zh" if lang == "en" else "en"
    parts = [f'<header><h1>{escape(t("billing.customer.title", lang))}</h1>'
             f'<a href="?lang={other}" id="{Shell.LANG_SWITCH}">{escape(t("lang.switch", lang))}</a></header>',
             f'<p class="who">{escape(view["holder"])} · {escape(view["building"])} {escape(view["room"])}</p>']
    if view["account_status"] not in (None, "open"):
        parts.append(f'<section>{escape(t("billing.customer.closed", lang))}</section>')
    for m in view["meters"]:
        low = m.get("low_level", 0)   # the site's own alarm 1 / alarm 2 amounts (billing.settings.alarm_amounts)
        read_at = (escape(t("billing.customer.read_at", lang, time=show_local(m["read_at"], "minutes")))
                   if m["read_at"] else escape(t("billing.customer.never_read", lang)))
        power = "" if m["relay_closed"] is None else escape(
            t("billing.customer.power_on" if m["relay_closed"] else "billing.customer.power_off", lang))
        rows = "".join(_entry_row(e, lang) for e in m["entries"])
        total = sum(v for _, v in m["daily"])
        parts.append(
            f'<section class="meter-card"><div class="meter">{escape(t("billing.customer.meter", lang))} '
            f'{escape(m["meter_address"])}</div>'
            f'<div class="balance{" low" if low else ""}">{format_money(m["balance"])}</div>'
            + (f'<p class="low" id="{Customer.LOW_BALANCE}">{escape(_low_notice(low, view, lang))}</p>' if low else "") +
            f'<div class="muted">{read_at} {power}</div>'
            f'<h2>{escape(t("billing.customer.purchases", lang))}</h2>'
            + (f'<table><tbody>{rows}</tbody></table>' if rows else
               f'<p class="muted">{escape(t("billing.customer.no_purchases", lang))}</p>')
            + f'<h2>{escape(t("billing.customer.daily", lang))}</h2>{_bars(m["daily"], lang)}'
            f'<p class="muted">{escape(t("billing.customer.total_30", lang, kwh=f"{total:.1f}"))}</p></section>')
    parts.append(f'<p class="muted">{escape(t("billing.customer.footer", lang))}</p>'
                 f'<p class="muted" id="{Shell.SITE_CLOCK}">{escape(t("clock.note", lang, zone=zone_label(zone)))}</p>')
    return _page(lang, "".join(parts))


def notice_page(lang: str, heading: str, lines: list[str]) -> str:
    """A short page in the customer's style (a refused code, no code at all), with the language switch."""
    other = "zh" if lang == "en" else "en"
    text = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return _page(lang, f'<header><h1>{escape(t("billing.customer.title", lang))}</h1>'
                       f'<a href="?lang={other}" id="{Shell.LANG_SWITCH}">{escape(t("lang.switch", lang))}</a></header>'
                       f'<section class="notice" id="{Customer.NOTICE}"><h1>{escape(heading)}</h1>{text}</section>')


def _page(lang: str, body: str) -> str:
    return (f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(t("billing.customer.title", lang))}</title>'
            f'<style>{_CSS}</style></head><body><main>{body}</main></body></html>')


def public_base_url() -> str:
    """The address customers open ([site] public_url; the demo's own), for every QR code and card.
    Never the request's Host header: any client writes that, and a printed label cannot be taken back.
    BillingError("public_url_missing") when the site has not configured it."""
    url = getattr(current_app.config.get("WATTLINE_SERVICES"), "public_url", None)
    if not url:
        raise BillingError("public_url_missing")
    return url


def customer_pages(ctx: BillingContext, qr_key: bytes) -> Blueprint:
    bp = Blueprint("customer_pages", __name__)

    def lang_of_request() -> str:
        asked = request.args.get("lang")
        return asked if asked in LANGUAGES else request_lang()

    def refused(lang: str) -> Response:
        page = notice_page(lang, t("billing.customer.bad_token", lang), [t("billing.customer.scan_again", lang)])
        return Response(page, status=404, mimetype="text/html")

    @bp.get("/c/")
    def no_token():  # noqa: ANN202
        """Someone opened the customer pages' address without a code (typed, or a cut-off link): no page is
        there (404 for machines), but a person is told what the address is for."""
        lang = lang_of_request()
        page = notice_page(lang, t("billing.customer.no_token", lang), [t("billing.customer.no_token_help", lang)])
        return Response(page, status=404, mimetype="text/html")

    @bp.get("/c")
    def no_slash():  # noqa: ANN202
        return redirect("/c/" + (f"?lang={request.args['lang']}" if request.args.get("lang") in LANGUAGES else ""))

    @bp.get("/c/<token>")
    def customer_page(token: str):  # noqa: ANN202
        lang = lang_of_request()
        try:
            subject = qr.verify(qr_key, token)
            view = customer_view(ctx, subject.kind, subject.key)
        except (qr.BadToken, BillingError):
            return refused(lang)
        resp = Response(render(view, lang, token, ctx.tz), mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @bp.get("/c/<token>/qr.png")
    def customer_qr(token: str):  # noqa: ANN202
        try:
            qr.verify(qr_key, token)
        except qr.BadToken:
            return refused(lang_of_request())
        try:
            base = public_base_url()
        except BillingError as exc:
            lang = lang_of_request()
            return Response(_page(lang, f"<section>{escape(exc.message(lang))}</section>"), status=503,
                            mimetype="text/html")
        return Response(qr.png(qr.url(base, token)), mimetype="image/png")

    return bp

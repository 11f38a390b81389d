"""Wrong types and sizes against a running demo site: every server-side Dash callback (each input and state
fed each bad value in turn, the others kept at values that let the callback do its work), every page with
junk in its query string, and every payment API route. None may answer 500 or show a traceback; the API
answers each refusal as JSON {code, message} in the caller's language."""
from __future__ import annotations

import datetime as dt
import inspect
import json
import urllib.parse

import dash
import pytest
import sqlalchemy as sa

from billing.api import openapi_document
from operators.service import demo_password
from dashboard.auth import GUARDED_CALLBACKS
from storage.schema import account, ledger_entry, meter, room
from tests.conftest import own_pg_database
from tests.webclient import WebClient, base_url, callback_body, start_demo_runtime

DEMO = demo_password()
METER = "202611210001"      # the demo's first room meter (opened, with sales)


def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# Each value alone, in each field: what a broken browser, a script or a curious operator may send.
BAD_VALUES = {
    "none": None, "empty": "", "huge_int": 10 ** 40, "huge_digits": "99999999999999999999", "minus_one": -1,
    "float": 1.5, "exponent": "1e30", "nan": "NaN", "infinity": "Infinity", "arabic_digit": "٥",
    "fullwidth_digits": "５０", "decimal_comma": "50,5", "100kb": "x" * 100_000,
    "control_chars": "a\x00b\x01c\x1b[31m\r\n\t\x7f", "formula": "=cmd|' /C calc'!A0", "list": [1, "a", None],
    "dict": {"a": 1, "ids": "x"}, "nested_50": _nested(50), "true": True, "sql": "' OR 1=1 --", "percent": "%",
    "underscore": "_", "last_day": "9999-12-31T23:59", "first_day": "0001-01-01",
}


# A trigger (n_clicks, n_submit, n_intervals ...) is only tested for truth: one value of each kind.
TRIGGER_VALUES = ("none", "empty", "huge_int", "minus_one", "float", "100kb", "control_chars", "list", "dict",
                  "nested_50", "true")
# A member of a store's object, a grid row or an id list: each kind, and the texts that pass for numbers or days.
MEMBER_VALUES = TRIGGER_VALUES + ("huge_digits", "arabic_digit", "fullwidth_digits", "first_day")


def _as_text(value) -> str:
    """A bad value as it can arrive in a URL or a query string."""
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("fuzz"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def admin(rt) -> WebClient:
    client = WebClient(base_url(rt))
    assert client.login("admin", DEMO).status == 302
    return client


@pytest.fixture(scope="module")
def good(rt) -> dict:
    return good_values(rt)


def good_values(rt) -> dict:
    """Values that let each callback do its work, so a bad value in one field reaches the code that reads it."""
    if rt.accounts.operator("fuzz-target") is None:
        rt.accounts.add_operator("fuzz-target", None, "target-password", ["cashier"], by="test", source="test")
    with rt.engine.connect() as conn:
        meter_ids = [r for r, in conn.execute(sa.select(meter.c.id).order_by(meter.c.id).limit(5))]
        room_id = conn.execute(sa.select(meter.c.room_id).where(meter.c.address == METER)).scalar_one()
        room_ids = [r for r, in conn.execute(sa.select(room.c.id).order_by(room.c.id).limit(1))]
        account_id = conn.execute(sa.select(sa.func.max(account.c.id))).scalar_one()
        entries = conn.execute(sa.select(ledger_entry.c.id, ledger_entry.c.receipt_no)
                               .order_by(ledger_entry.c.id.desc()).limit(5)).all()
    today = dt.date.today().isoformat()
    receipt_no = entries[0].receipt_no
    return {
        # records and exports
        "meters-export-request.data": {"ids": meter_ids, "filter": {}},
        "rec-from.value": today, "rec-to.value": today, "rec-kinds.value": ["sale", "refund"],
        "rec-text.value": METER, "rec-export-request.data": {"ids": [e.id for e in entries], "filter": {}},
        "rec-applied.data": {"from": today, "to": today, "kinds": [], "operator": None, "building": None,
                             "text": None},
        "audit-applied.data": {"operator": "nobody", "action": "auth.", "since": None, "until": None},
        "audit-action.value": "auth.", "audit-operator.value": "nobody",
        # API clients
        "api-name.value": "fuzz client", "api-revoke-name.value": "no such client",
        # accounts
        "acc-building.value": "Building 1", "acc-room.value": room_ids[0] if room_ids else room_id,
        "acc-holder.value": "Fuzz Holder", "acc-phone.value": "13800000000", "acc-extra-meters.value": "",
        "acc-room-meters.value": [], "acc-search.value": "王", "acc-status.value": "open",
        "acc-grid.selectedRows": [{"id": account_id}], "acc-selected.data": account_id,
        "acc-add-meter.value": METER, "acc-old-meter.value": METER, "acc-new-meter.value": "202611210002",
        "acc-transfer-mode.value": "entered", "acc-transfer-amount.value": "1.00", "acc-transfer-reason.value": "fuzz",
        "acc-close-reason.value": "fuzz", "acc-hand-meter.value": METER, "acc-hand-amount.value": "1.00",
        "acc-hand-reason.value": "fuzz", "acc-receipt-no.data": receipt_no, "acc-ev-kind.value": "opened",
        "acc-ev-from.value": "2020-01-01", "acc-ev-to.value": today, "acc-ev-text.value": "王",
        # my account: no current password (refused before the argon2 check; the admin's password stays)
        "account-current.value": "", "account-new.value": "a-new-password",
        "account-confirm.value": "a-new-password",
        # QR labels: a building with no meters keeps each call cheap
        "qr-building.value": "No such building",
        # operators and permissions
        "users-new-username.value": "fuzz-user", "users-new-name.value": "Fuzz", "users-new-password.value":
            "fuzz-password-1", "users-new-roles.value": ["cashier"], "users-new-language.value": "en",
        "users-grid.selectedRows": [{"username": "fuzz-target", "role_names": ["cashier"]}],
        "users-temp-password.value": "temporary-password", "users-roles.value": ["cashier"],
        "roles-grid.rowData": [{"permission": "meter.view", "analyst": True}],
        # reconciliation
        "recon-alarms.selectedRows": [{"id": 1, "meter_address": METER}], "recon-note.value": "fuzz",
        "recon-first-day.date": "2020-01-01", "recon-last-day.date": "2020-01-02",
        # tariffs
        "tar-target.value": "new", "tar-mode.value": "flat", "tar-modes.data": {}, "tar-name.value": "Fuzz tariff",
        "tar-flat-price.value": "0.5500", "tar-push-tariff.value": 1, "tar-scope.value": "list",
        "tar-push-meters.value": METER, "tar-assign.value": False, "tar-batch.data": "no-such-batch",
        # overview: one tile, and a panel for a meter that is not there (cheap; the panel's own path is
        # reached by the bad values of ov-map.selected)
        "ov-search.value": METER, "ov-map.selected": {"meter": 2 ** 31 - 1}, "ov-version.data": 1,
        "ov-panel.is_open": True,
        # cashier desk: small amounts to the demo's first meter
        "sell-search.value": METER, "sell-meter.data": METER, "sell-amount.value": "1.00",
        "sell-refund-amount.value": "0.01", "sell-refund-reason.value": "fuzz", "sell-reverse-receipt.value":
            receipt_no, "sell-reverse-reason.value": "fuzz",
        "sell-watch.data": {"receipt": receipt_no, "state": "queued", "entry": "pending", "since": 0},
        # a transformer area's page: area 1, its week, and a control that queues no command (automation off)
        "gar-area.data": 1, "gar-range.value": "24h", "gar-outlet.value": "8", "gar-tap.value": "3",
        "gar-applied.data": {"start": (dt.datetime.now() - dt.timedelta(days=1)).isoformat(),
                             "end": dt.datetime.now().isoformat()},
        "gar-chart.relayoutData": {"xaxis.range[0]": f"{today} 08:00:00", "xaxis.range[1]": f"{today} 09:00:00"},
        "gar-pending.data": {"name": "auto_off", "area": 1}, "gar-reason.value": "fuzz",
        # the page router
        "_pages_location.pathname": "/records", "_pages_location.search": "",
    }


CLICKS = ("n_clicks", "n_submit", "submit_n_clicks", "n_intervals")
# Fields a callback reads only in some state of its form: the good values that make it read them.
CONTEXT = {"tar-price-": {"tar-mode.value": "tou", "tar-segments.value": "00:00 flat"},
           "tar-segments.": {"tar-mode.value": "tou", "tar-price-flat.value": "0.6000"},
           "tar-tier-": {"tar-mode.value": "tiered", "tar-tier-bound-0.value": "200", "tar-tier-price-0.value": "0.5",
                         "tar-tier-price-1.value": "0.6"},
           "tar-push-building.": {"tar-scope.value": "building"},
           "acc-transfer-amount.": {"acc-transfer-mode.value": "entered"}}


def _server_callbacks(client: WebClient) -> list[dict]:
    return [s for s in client.dependencies() if not s.get("clientside_function")]


def _key(dep: dict) -> str:
    return f"{dep['id']}.{dep['property']}"


def _is_wildcard(dep: dict) -> bool:
    return dep["id"].startswith("{")


def _baseline(spec: dict, good: dict) -> dict:
    values = {}
    for dep in spec["inputs"] + spec["state"]:
        if dep["property"] in CLICKS:
            values[_key(dep)] = 1
        elif _key(dep) in good:
            values[_key(dep)] = good[_key(dep)]
    return values


def _pattern_id(ident: str, index) -> dict:
    """A pattern's id (ALL or MATCH in a key) as the id of one component it matches, `index` in the pattern's key."""
    return {k: (index if v in (["ALL"], ["MATCH"]) else v) for k, v in json.loads(ident).items()}


def _is_match(ident) -> bool:
    return isinstance(ident, str) and '["MATCH"]' in ident


def _wildcard_value(dep: dict, index, clicks) -> list[dict] | dict:
    """What the browser sends for a pattern's input: for ALL one entry per matching component (a list), for MATCH
    the one component that fired (an entry)."""
    entry = {"id": _pattern_id(dep["id"], index), "property": dep["property"], "value": clicks}
    return entry if _is_match(dep["id"]) else [entry]


def _changed_id(dep: dict, index) -> str:
    return json.dumps(_pattern_id(dep["id"], index), sort_keys=True, separators=(",", ":")) + "." + dep["property"]


def _matched(body: dict, index) -> dict:
    """A MATCH callback's request as the browser builds it: the outputs and every other MATCH input and state of
    the same component (`index`), as single entries with concrete ids."""
    def one(entry):
        return {**entry, "id": _pattern_id(entry["id"], index)} if _is_match(entry.get("id")) else entry

    outputs = body["outputs"]
    body["outputs"] = [one(o) for o in outputs] if isinstance(outputs, list) else one(outputs)
    for part in ("inputs", "state"):
        body[part] = [one(e) if isinstance(e, dict) else e for e in body[part]]
    return body


def _bodies(spec: dict, good: dict):
    """(field, bad value's name, request body) for each input and state and each bad value: a data field with
    the others at their good values (and, for a store's object, a grid's selected row or a list of ids, each
    member in turn with MEMBER_VALUES); a trigger (n_clicks ...) with one value of each kind (TRIGGER_VALUES) and
    the others empty, since a callback only tests it for truth and an empty form keeps those calls cheap."""
    base = _baseline(spec, good)
    first = spec["inputs"][0]
    match = _is_match(spec["output"]) or any(_is_match(d["id"]) for d in spec["inputs"] + spec["state"])

    def _shaped(body: dict) -> dict:   # a MATCH callback's plain fields: its component 1's
        if match:
            body["changedPropIds"] = [_changed_id({"id": c.rsplit(".", 1)[0], "property": c.rsplit(".", 1)[1]}, 1)
                                      if _is_match(c) else c for c in body["changedPropIds"]]
        return _matched(body, 1) if match else body

    for dep in spec["inputs"] + spec["state"]:
        if dep["property"] in CLICKS and not _is_wildcard(dep):
            for name in TRIGGER_VALUES:
                yield _key(dep), name, _shaped(callback_body(spec, {_key(dep): BAD_VALUES[name]}, [_key(dep)]))
            continue
        context = next((v for k, v in CONTEXT.items() if _key(dep).startswith(k)), {})
        for name, bad in BAD_VALUES.items():
            if _is_wildcard(dep):
                for what, entry, index in (("index", _wildcard_value(dep, bad, 1), bad),
                                           ("value", _wildcard_value(dep, METER, bad), METER)):
                    body = callback_body(spec, base, [_changed_id(dep, index)])
                    # as the browser sends a pattern's input: its matches (or its one match) in the input's place
                    for part, deps in (("inputs", spec["inputs"]), ("state", spec["state"])):
                        body[part] = [entry if d["id"] == dep["id"] else b for d, b in zip(deps, body[part])]
                    yield f"{_key(dep)}[{what}]", name, _matched(body, index) if match else body
                continue
            changed = _key(dep) if dep in spec["inputs"] else _key(first)
            values = {**base, **context}
            yield _key(dep), name, _shaped(callback_body(spec, {**values, _key(dep): bad}, [changed]))
            if name in MEMBER_VALUES:
                for inner, value in _inside(base.get(_key(dep)), bad):
                    yield f"{_key(dep)}{inner}", name, _shaped(callback_body(spec, {**values, _key(dep): value},
                                                                            [changed]))


def _inside(good_value, bad) -> list[tuple[str, object]]:
    """A store's object, a grid's selected row or a list of ids with one member bad: (where, value) each."""
    if isinstance(good_value, dict):
        return [(f"[{k!r}]", {**good_value, k: bad}) for k in good_value]
    if isinstance(good_value, list) and good_value and isinstance(good_value[0], dict):
        return [(f"[0][{k!r}]", [{**good_value[0], k: bad}, *good_value[1:]]) for k in good_value[0]]
    if isinstance(good_value, list) and good_value:
        return [("[0]", [bad, *good_value[1:]])]
    return []


def _failure(status: int, text: str) -> bool:
    return status >= 500 or "Traceback" in text


# --- Dash callbacks -------------------------------------------------------------------------------
def test_every_guarded_callback_is_among_the_callbacks_fuzzed(admin):
    fuzzed = {s["output"] for s in _server_callbacks(admin)}
    assert {c.output for c in GUARDED_CALLBACKS.values()} <= fuzzed


def _halves(specs: list[dict], good: dict) -> tuple[list[dict], list[dict]]:
    """The callbacks in two halves of about as many requests each, the same in every process (by output id)."""
    sized = sorted(((sum(1 for _ in _bodies(spec, good)), spec["output"], spec) for spec in specs),
                   key=lambda x: (-x[0], x[1]))
    halves: tuple[list[dict], list[dict]] = ([], [])
    load = [0, 0]
    for n, _output, spec in sized:
        lighter = 0 if load[0] <= load[1] else 1
        halves[lighter].append(spec)
        load[lighter] += n
    return halves


def _callback_failures(client: WebClient, good: dict, names=None, half: int | None = None) -> list[str]:
    """Every callback fed its bad values (only those in `names`, if given): the calls answered 500. `half` (0 or 1):
    one of two halves of the callbacks only (_halves), so they run in two test files, on two workers side by side."""
    failures = []
    specs = _server_callbacks(client)
    for spec in specs if half is None else _halves(specs, good)[half]:
        for field, name, body in _bodies(spec, good):
            if names is not None and name not in names:
                continue
            r = client.post_json("/_dash-update-component", body)
            if _failure(r.status, r.text):
                failures.append(f"{spec['output'][:60]} {field}={name}: {r.status}")
    return failures


@pytest.mark.timeout(1200)  # about 3,500 requests (the other half: tests/test_fuzz_callbacks.py)
def test_no_callback_answers_500_to_a_wrong_type_or_size_in_any_field(admin, good):
    failures = _callback_failures(admin, good, half=0)
    assert not failures, f"{len(failures)} calls failed:\n" + "\n".join(failures)


def _malformed(body: dict) -> list[tuple[str, object]]:
    """The same request with its envelope broken one way at a time (what a script, not a browser, sends)."""
    first = body["inputs"][0] if body["inputs"] else {}
    return [("not an object", [body]), ("no output", {**body, "output": None}),
            ("output a list", {**body, "output": [body["output"]]}),
            ("unknown output", {**body, "output": "no-such.children"}), ("inputs not a list", {**body, "inputs": 5}),
            ("an input missing", {**body, "inputs": body["inputs"][1:]}),
            ("an input without property", {**body, "inputs": [{"id": first.get("id")}, *body["inputs"][1:]]}),
            ("state not a list", {**body, "state": {"a": 1}}), ("outputs wrong", {**body, "outputs": [5]}),
            ("changed not a list", {**body, "changedPropIds": "x"}),
            ("changed id broken", {**body, "changedPropIds": ['{"type":.n_clicks']})]


def test_no_callback_request_with_a_broken_envelope_answers_500(admin, good):
    failures = []
    for spec in _server_callbacks(admin):
        body = callback_body(spec, _baseline(spec, good))
        for how, broken in _malformed(body):
            r = admin.post_json("/_dash-update-component", broken)
            if _failure(r.status, r.text) or r.status not in (400, 404):
                failures.append(f"{spec['output'][:60]} {how}: {r.status} {r.text[:80]!r}")
            elif not r.json().get("message"):
                failures.append(f"{spec['output'][:60]} {how}: {r.status} without a message")
    for path in ("/_dash-component-suites/dash/no-such.js", "/_dash-component-suites/no-such/x.js",
                 "/_dash-component-suites/dash/..%2f..%2fapp.py"):
        r = admin.get(path)
        if r.status != 404:
            failures.append(f"GET {path}: {r.status}")
    assert not failures, f"{len(failures)} requests failed:\n" + "\n".join(failures)


def _ledger_size(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)).scalar_one()


@pytest.mark.parametrize("amount", ["1e30", 10 ** 40, "99999999999999999999", "٥", "50,5", "NaN", "Infinity", "-1",
                                    1.5, True, [1], {"amount": 1}, "x" * 100_000, "1\x00"])
def test_an_amount_the_parser_refuses_is_shown_at_the_desk_and_sells_nothing(rt, admin, amount):
    before = _ledger_size(rt)
    r = admin.callback("sell.sell", {"sell-sell.n_clicks": 1, "sell-meter.data": METER, "sell-amount.value": amount,
                                     "sell-request.data": f"fuzz-amount-{before}"})
    assert r.status == 200, (r.status, r.text[:300])
    assert '"data-code":"amount_' in r.text.replace(" ", ""), r.text[:300]
    assert _ledger_size(rt) == before


# --- pages ----------------------------------------------------------------------------------------
QUERY_KEYS = ("page", "limit", "meter", "building", "floor", "state", "q", "id", "range")


def _pages() -> list[tuple[str, bool]]:
    """Each registered page's path, and whether its layout reads the query string: a named parameter, or
    **query (the pages write **_query for a query string they ignore)."""
    out = []
    for page in dash.page_registry.values():
        params = inspect.signature(page["layout"]).parameters.values() if callable(page["layout"]) else []
        out.append((page["path"], any(not p.name.startswith("_") for p in params)))
    return out


def test_every_page_is_fuzzed_and_the_pages_reading_their_query_string_are_known(admin):
    pages = dict(_pages())
    assert {"/", "/sell", "/records", "/accounts", "/audit", "/meters", "/tariffs"} <= set(pages)
    assert {path for path, reads in pages.items() if reads} >= {"/", "/sell", "/control"}


def test_no_page_answers_500_to_junk_in_its_query_string(admin):
    """Every junk value in every common query key (and once more, so the key holds a list), as the page router
    renders the page and as the browser first loads it. A layout that reads no parameter by name ignores the
    query string: it is rendered with three of the values, the others with all."""
    failures = []
    for path, reads_query in _pages() + [("/no-such-page", False)]:
        for n, (name, bad) in enumerate(BAD_VALUES.items()):
            query = "?" + urllib.parse.urlencode([(k, _as_text(bad)) for k in QUERY_KEYS] + [("page", "2")])
            answers = [("GET", admin.get(path + query))]
            if reads_query or n < 3:
                answers.append(("page", admin.page(path, query)))
            failures += [f"{how} {path} ?…={name}: {r.status}" for how, r in answers if _failure(r.status, r.text)]
    assert not failures, f"{len(failures)} pages failed:\n" + "\n".join(failures)


def test_no_route_outside_the_pages_answers_500_to_junk_in_its_path_or_query(rt, admin):
    """The customers' QR pages, the language switch, the login page and /healthz, with junk in each place."""
    anonymous = WebClient(base_url(rt))
    failures = []
    for name, bad in BAD_VALUES.items():
        junk = urllib.parse.quote(_as_text(bad)[:2000], safe="") or "%20"
        for client, url in ((anonymous, f"/c/{junk}?lang={junk}"), (anonymous, f"/c/{junk}/qr.png"),
                            (anonymous, f"/login?next={junk}&bye={junk}"), (admin, f"/lang/{junk}?next={junk}"),
                            (anonymous, f"/healthz?x={junk}")):
            r = client.get(url, follow=False)
            if _failure(r.status, r.text):
                failures.append(f"{url[:50]} ({name}): {r.status}")
    assert not failures, "\n".join(failures)


# --- the payment API ------------------------------------------------------------------------------
class Api:
    def __init__(self, client: WebClient, token: str):
        self.client, self.token = client, token

    def call(self, method: str, path: str, body: bytes | None = None, lang: str = "en"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Language": lang,
                   "Content-Type": "application/json"}
        return self.client.request(method, "/api/v1" + path, data=body, headers=headers)


@pytest.fixture(scope="module")
def api(rt) -> Api:
    return Api(WebClient(base_url(rt)), rt.demo_api_token)


def _check_api(r, lang: str, where: str, failures: list) -> None:
    if _failure(r.status, r.text):
        failures.append(f"{where}: {r.status}")
        return
    if r.status >= 400:
        try:
            body = r.json()
        except ValueError:
            failures.append(f"{where}: {r.status} is not JSON: {r.text[:80]!r}")
            return
        if not (isinstance(body, dict) and body.get("code") and body.get("message")):
            failures.append(f"{where}: {r.status} without code and message: {r.text[:80]!r}")
        elif lang == "zh" and body["message"].isascii():
            failures.append(f"{where}: {r.status} message not in Chinese: {body['message'][:80]!r}")


def _operations() -> list[tuple[str, str, dict]]:
    doc = openapi_document()
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_the_openapi_document_lists_the_routes_fuzzed_here():
    assert {(m, p) for m, p, _ in _operations()} == {("POST", "/sales"), ("GET", "/sales/{receipt_no}"),
                                                     ("GET", "/meters"), ("GET", "/meters/{address}"),
                                                     ("POST", "/commands"), ("GET", "/commands/{batch_id}")}


def test_no_api_route_answers_500_to_a_wrong_path_or_query_value(api):
    failures = []
    for i, (method, path, op) in enumerate(o for o in _operations() if o[0] == "GET"):
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        for param in params:
            for j, (name, bad) in enumerate(BAD_VALUES.items()):
                lang = "zh" if (i + j) % 2 else "en"
                text = urllib.parse.quote(_as_text(bad), safe="")
                if param["in"] == "path":
                    url = path.replace("{" + param["name"] + "}", text or "%20")
                else:
                    url = path + f"?{param['name']}={text}"
                url = url.replace("{receipt_no}", "S1").replace("{address}", METER)
                _check_api(api.call(method, url, lang=lang), lang, f"{method} {url[:60]} ({name})", failures)
    assert not failures, "\n".join(failures)


def _sale(**fields) -> dict:
    body = {"meter_address": METER, "amount": "1.00", "request_id": None, "wait_s": 0}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not _MISSING}


_MISSING = object()


def _sale_failures(api: Api, names=BAD_VALUES) -> list[str]:
    """Each field of a sale fed each bad value (those in `names`), and left out."""
    failures = []
    cases = []
    for field in ("meter_address", "amount", "request_id", "wait_s"):
        for name in names:
            cases.append((f"{field}={name}", field, BAD_VALUES[name]))
        cases.append((f"{field} missing", field, _MISSING))
    for n, (where, field, bad) in enumerate(cases):
        fields = {"request_id": f"fuzz-{n}-{id(api)}"}
        fields[field] = bad
        lang = "zh" if n % 2 else "en"
        body = json.dumps(_sale(**fields)).encode()
        _check_api(api.call("POST", "/sales", body, lang), lang, where, failures)
    return failures


def test_no_api_sale_answers_500_to_a_wrong_field_a_missing_field_or_a_wrong_body(api):
    failures = _sale_failures(api)
    for n, raw in enumerate([b"", b"null", b"[]", b"42", b'"text"', b"{", b"\xff\xfe", json.dumps(_nested(50)).encode(),
                             b'{"amount": NaN, "meter_address": "202611210001", "request_id": "nan-1"}',
                             b'{"amount": Infinity, "meter_address": "202611210001", "request_id": "inf-1"}',
                             b'{"amount": 1e999999, "meter_address": "202611210001", "request_id": "big-1"}']):
        lang = "zh" if n % 2 else "en"
        _check_api(api.call("POST", "/sales", raw, lang), lang, f"body {raw[:30]!r}", failures)
    assert not failures, "\n".join(failures)


def test_no_api_batch_command_answers_500_to_a_wrong_field_or_body(api):
    """Each field of POST /commands fed each bad value (the demo's token holds the control scope); the meters are
    given as junk or the action is, so nothing may be queued."""
    failures = []
    fields = {"meters": [METER], "action": "explode", "reason": "fuzz", "confirm": False}
    for n, (field, name) in enumerate((f, b) for f in ("meters", "building", "floor", "action", "reason", "limits",
                                                       "confirm") for b in BAD_VALUES):
        body = {**fields, field: BAD_VALUES[name]}
        if field != "action":
            body["meters"] = BAD_VALUES[name] if field == "meters" else ["junk"]
        lang = "zh" if n % 2 else "en"
        _check_api(api.call("POST", "/commands", json.dumps(body).encode(), lang), lang, f"{field}={name}", failures)
    for n, raw in enumerate([b"", b"null", b"[]", b"{", b"\xff\xfe", json.dumps(_nested(50)).encode()]):
        _check_api(api.call("POST", "/commands", raw, "en"), "en", f"body {raw[:30]!r}", failures)
    assert not failures, "\n".join(failures)


# --- the same on PostgreSQL ------------------------------------------------------------------------
# What only PostgreSQL refuses: a NUL in text, text longer than its column, numbers beyond INTEGER. Every field
# gets these on a demo site whose database is PostgreSQL.
ENGINE_VALUES = ("control_chars", "100kb", "huge_int", "huge_digits")


@pytest.fixture(scope="module")
def pg_rt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz-pg")
    runtime = start_demo_runtime(tmp, database_url=own_pg_database())
    yield runtime
    runtime.stop()


@pytest.mark.postgres
def test_on_postgresql_no_callback_or_api_sale_answers_500_to_a_nul_a_long_text_or_a_huge_number(pg_rt):
    client = WebClient(base_url(pg_rt))
    assert client.login("admin", DEMO).status == 302
    failures = _callback_failures(client, good_values(pg_rt), ENGINE_VALUES)
    failures += _sale_failures(Api(WebClient(base_url(pg_rt)), pg_rt.demo_api_token), ENGINE_VALUES)
    assert not failures, f"{len(failures)} calls failed:\n" + "\n".join(failures)

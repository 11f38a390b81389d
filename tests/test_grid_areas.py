"""A transformer area edited by hand (grid/areas.py) on each engine of the matrix: the nameplate, terminal, master
meter and CT ratio ("200/5", full-width digits) written with their operation-log row; every kind of mistake ("50,5",
text, out of range, a terminal that is not one, another area's master meter, unknown meter numbers) refused with
a message in both languages and nothing written; the meters fed by floor and by number; cameras added (http and
https only) and removed; the demo's cameras."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from collectors.profiles import ProfileRegistry
from collectors.site_setup import Who
from collectors.topology_import import import_topology
from grid import areas
from storage import grid as grid_store
from storage import grid_control as grid_control_store
from storage.schema import (account, account_meter, area_meter, audit_log, camera, command, ledger_entry, meter,
                            transformer_area)

NOW = dt.datetime(2026, 11, 20, 8, 0)
WHO = Who("admin", "127.0.0.1")


def _row(address: str, unit: int, profile: str, area: str, **extra) -> dict:
    row = {"building": "Block A" if area == "Area A" else "Block B", "area": area, "gateway": "GW-T",
           "host": "127.0.0.1", "framing": "socket", "bus": "1", "port": "15991", "unit": str(unit),
           "profile": profile, "meter_address": address}
    return {**row, **{k: str(v) for k, v in extra.items()}}


@pytest.fixture
def site(any_engine):
    """Area A (master, terminal, four rooms on floors 1 and 2) and Area B (its master and terminal, one room)."""
    return _site(any_engine)


@pytest.fixture
def duck_site(duck_engine):
    """The same on DuckDB only: the many refusals check the form, not the engine."""
    return _site(duck_engine)


def _site(any_engine):
    rows = [_row("202611400001", 1, "eastron-sdm630", "Area A", area_role="master", ct_ratio=1),
            _row("202611400002", 2, "wattline-ttu", "Area A", area_role="terminal"),
            *(_row(f"20261140001{i}", 10 + i, "acrel-ddsy1352", "Area A", floor=1 + i // 2, room=f"A-{i}")
              for i in range(4)),
            _row("202611400101", 21, "eastron-sdm630", "Area B", area_role="master"),
            _row("202611400102", 22, "wattline-ttu", "Area B", area_role="terminal"),
            _row("202611400111", 23, "acrel-ddsy1352", "Area B", floor=1, room="B-1")]
    import_topology(any_engine, rows, set(ProfileRegistry().names()), NOW)
    with any_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        area_ids = dict(conn.execute(sa.select(transformer_area.c.name, transformer_area.c.id)).all())
    return any_engine, ids, area_ids


def _kinds() -> dict[str, str]:
    registry = ProfileRegistry()
    return {n: registry.get(n).kind for n in registry.names()}


def _form(engine, area_id) -> dict:
    """The form as the page fills it from the area."""
    f = areas.area_form(engine, area_id, _kinds())
    a = f["area"]
    return {"rating_kva": "" if a["rating_kva"] is None else str(a["rating_kva"]),
            "nominal_voltage": "" if a["nominal_voltage"] is None else str(a["nominal_voltage"]),
            "connection_group": a["connection_group"] or "", "terminal": str(a["terminal_meter_id"] or ""),
            "master": str(a["master_meter_id"] or ""), "ct_ratio": str(a["ct_ratio"] or ""),
            "groups": f["selected_groups"], "addresses": "\n".join(f["listed"])}


def _record(engine, area_id) -> dict:
    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(transformer_area).where(transformer_area.c.id == area_id)).mappings().one())
        row["meters"] = sorted(conn.execute(sa.select(meter.c.address).join(
            area_meter, area_meter.c.meter_id == meter.c.id).where(area_meter.c.area_id == area_id)).scalars())
        row["log"] = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    return row


def test_the_form_shows_the_area_as_imported(site):
    engine, ids, area_ids = site
    f = areas.area_form(engine, area_ids["Area A"], _kinds())
    assert f["area"]["terminal_meter_id"] == ids["202611400002"] and f["meters_fed"] == 6
    assert [m["address"] for m in f["terminals"]] == ["202611400002"], "Area B's terminal is not offered"
    assert len(f["selected_groups"]) == 2 and f["listed"] == [], "both floors of Block A whole"
    assert areas.area_form(engine, 999999, _kinds()) is None


def test_the_nameplate_and_ct_ratio_are_written_and_logged(site):
    engine, ids, area_ids = site
    form = {**_form(engine, area_ids["Area A"]), "rating_kva": "６３０", "nominal_voltage": "230",
            "connection_group": "dyn11", "ct_ratio": "200/5"}
    out = areas.edit_area(engine, WHO, area_ids["Area A"], form, _kinds(), NOW)
    rec = _record(engine, area_ids["Area A"])
    assert (rec["rating_kva"], rec["nominal_voltage"], rec["connection_group"], rec["ct_ratio"]) == (
        630.0, 230.0, "Dyn11", 40.0)
    assert out["changed"] == {"rating_kva": 630.0, "nominal_voltage": 230.0, "connection_group": "Dyn11",
                              "ct_ratio": 40.0} and out["meters"] == 6
    with engine.connect() as conn:
        [log] = conn.execute(sa.select(audit_log).where(audit_log.c.action == "grid.area_edit")).mappings().all()
    assert log["operator"] == "admin" and log["target"] == "area:Area A" and '"ct_ratio": 40.0' in log["after"]


@pytest.mark.parametrize("changes, field, en, zh", [
    ({"rating_kva": "50,5"}, "rating_kva", "has a comma", "含逗号"),
    ({"rating_kva": "lots"}, "rating_kva", "is not a number", "不是数字"),
    ({"rating_kva": "1e3"}, "rating_kva", "is not a number", "不是数字"),
    ({"rating_kva": "-630"}, "rating_kva", "-630 is outside 1..100000", "-630 超出 1..100000"),
    ({"rating_kva": "9" * 30}, "rating_kva", "at most 20", "最多 20"),
    ({"nominal_voltage": "5"}, "nominal_voltage", "outside 50..1000", "超出 50..1000"),
    ({"ct_ratio": "200/0"}, "ct_ratio", "is not a ratio", "不是变比"),
    ({"ct_ratio": "=1+1"}, "ct_ratio", "is not a ratio", "不是变比"),
    ({"connection_group": "Dyn13"}, "connection_group", "not a connection group", "不是联结组别"),
    ({"connection_group": "Dy\x00n11"}, "connection_group", "control character", "控制字符"),
    ({"terminal": "not-an-id"}, "terminal", "no such meter", "没有这块电表"),
    ({"addresses": "202611409999, 202611400010"}, "addresses", "no such meter", "没有这块电表"),
    ({"addresses": "12345"}, "addresses", "not a 12-digit meter number", "不是 12 位表号"),
    ({"groups": ["Nowhere\x1f9"]}, "groups", "not a floor", "不是本站点的楼层"),
])
def test_a_mistake_is_named_in_both_languages_and_nothing_is_written(duck_site, changes, field, en, zh):
    engine, ids, area_ids = duck_site
    before = _record(engine, area_ids["Area A"])
    form = {**_form(engine, area_ids["Area A"]), "rating_kva": "400", **changes}
    with pytest.raises(areas.AreaError) as err:
        areas.edit_area(engine, WHO, area_ids["Area A"], form, _kinds(), NOW)
    assert [i.field for i in err.value.issues] == [field]
    assert en in err.value.texts("en")[0] and zh in err.value.texts("zh")[0]
    assert _record(engine, area_ids["Area A"]) == before


def test_the_terminal_must_be_a_terminal_and_not_another_areas(site):
    engine, ids, area_ids = site
    form = _form(engine, area_ids["Area A"])
    for changes, code in (({"terminal": str(ids["202611400010"])}, "not_terminal"),
                          ({"terminal": str(ids["202611400102"])}, "terminal_elsewhere"),
                          ({"master": str(ids["202611400101"])}, "master_elsewhere"),
                          ({"master": str(ids["202611400002"])}, "not_master")):
        with pytest.raises(areas.AreaError) as err:
            areas.edit_area(engine, WHO, area_ids["Area A"], {**form, **changes}, _kinds(), NOW)
        assert [i.code for i in err.value.issues] == [code]
    with pytest.raises(areas.AreaError) as err:
        areas.edit_area(engine, WHO, area_ids["Area B"], {**form, "terminal": "", "master": "",
                                                          "groups": [], "addresses": "202611400001"},
                        _kinds(), NOW)
    assert [i.code for i in err.value.issues] == ["fed_role_elsewhere"], "Area A's master cannot be fed by B"


def test_the_meters_fed_are_exactly_the_floors_and_numbers_chosen(site):
    engine, ids, area_ids = site
    f = areas.area_form(engine, area_ids["Area A"], _kinds())
    floor1 = next(g["key"] for g in f["groups"] if g["building"] == "Block A" and g["floor"] == "1")
    form = {**_form(engine, area_ids["Area A"]), "groups": [floor1], "addresses": "２０２６１１４０００１３；202611400111"}
    out = areas.edit_area(engine, WHO, area_ids["Area A"], form, _kinds(), NOW)
    assert (out["added"], out["removed"]) == (1, 1)
    assert _record(engine, area_ids["Area A"])["meters"] == [
        "202611400001", "202611400002", "202611400010", "202611400011", "202611400013", "202611400111"]
    assert _record(engine, area_ids["Area B"])["meters"] == ["202611400101", "202611400102"]
    f = areas.area_form(engine, area_ids["Area A"], _kinds())
    block_b = next(g["key"] for g in f["groups"] if g["building"] == "Block B")
    assert f["listed"] == ["202611400013"] and f["selected_groups"] == [floor1, block_b], "B's one room: whole"
    # the terminal taken off: it leaves the area's meters with it
    areas.edit_area(engine, WHO, area_ids["Area A"], {**_form(engine, area_ids["Area A"]), "terminal": ""},
                    _kinds(), NOW)
    rec = _record(engine, area_ids["Area A"])
    assert rec["terminal_meter_id"] is None and "202611400002" not in rec["meters"]


def _sold(engine, address: str) -> int:
    """The meter gets an account, a confirmed sale and its recharge command (what DuckDB's foreign keys once held
    it in its area by); its account's id."""
    with engine.begin() as conn:
        mid = conn.execute(sa.select(meter.c.id).where(meter.c.address == address)).scalar_one()
        acc = conn.execute(account.insert().values(holder_name="Li", opened_at=NOW, operator="cashier")
                           .returning(account.c.id)).scalar_one()
        conn.execute(account_meter.insert().values(account_id=acc, meter_id=mid, base_purchase_count=0, added_at=NOW,
                                                   operator="cashier"))
        entry = conn.execute(ledger_entry.insert().values(
            receipt_no="S2026112000000001", kind="sale", amount=Decimal("50.00"), account_id=acc, meter_id=mid,
            purchase_count=1, operator="cashier", source="desk", created_at=NOW, state="confirmed", confirmed_at=NOW,
            balance_after=Decimal("50.00")).returning(ledger_entry.c.id)).scalar_one()
        conn.execute(command.insert().values(meter_id=mid, kind="recharge", payload="{}", state="acked",
                                             purpose="sale", ledger_entry_id=entry, created_at=NOW))
    return acc


def test_a_meter_with_an_account_sales_and_commands_moves_to_another_area(site):
    """On DuckDB too (its foreign keys refused this while the area was a column of meter): B's customer meter
    moves to A, and back, with its account and ledger untouched; line loss and the arrears trip count it where
    it is now."""
    engine, ids, area_ids = site
    acc = _sold(engine, "202611400111")
    form = {**_form(engine, area_ids["Area A"]), "addresses": "202611400111"}
    out = areas.edit_area(engine, WHO, area_ids["Area A"], form, _kinds(), NOW)
    assert out["added"] == 1
    assert "202611400111" in _record(engine, area_ids["Area A"])["meters"]
    assert _record(engine, area_ids["Area B"])["meters"] == ["202611400101", "202611400102"]
    with engine.connect() as conn:
        fed = grid_store.area_meters(conn).set_index("address")["area_id"]
        assert fed["202611400111"] == area_ids["Area A"]
        assert grid_control_store.area_meter_addresses(conn, area_ids["Area B"]) == []
        assert conn.execute(sa.select(ledger_entry.c.amount).where(ledger_entry.c.account_id == acc)) \
            .scalar_one() == Decimal("50.00")
        log = conn.execute(sa.select(audit_log.c.after).where(audit_log.c.action == areas.ACTION_EDIT)
                           .order_by(audit_log.c.id.desc())).scalars().first()
    assert "202611400111" in str(log), "the operation log names the meter moved"
    # and back to B from B's page: A loses it
    form = {**_form(engine, area_ids["Area B"]), "addresses": "202611400111"}
    areas.edit_area(engine, WHO, area_ids["Area B"], form, _kinds(), NOW)
    assert "202611400111" not in _record(engine, area_ids["Area A"])["meters"]
    assert "202611400111" in _record(engine, area_ids["Area B"])["meters"]


@pytest.mark.parametrize("url, code", [
    ("javascript:alert(1)", "url_scheme"), ("ftp://cam.example/", "url_scheme"), ("data:text/html,hi", "url_scheme"),
    ("http://user:pw@cam.example/", "url_credentials"), ("https://", "bad_url"), ("http://cam example/", "bad_url"),
    ("https://cam.example/" + "a" * 600, "too_long"), ("", "empty"), ("http://摄像头.example/", "bad_url"),
])
def test_a_camera_address_other_than_http_or_https_is_refused(duck_site, url, code):
    engine, ids, area_ids = duck_site
    with pytest.raises(areas.AreaError) as err:
        areas.add_camera(engine, WHO, area_ids["Area A"], "Door", url, "page", NOW)
    assert [i.code for i in err.value.issues] == [code]
    assert areas.cameras(engine, area_ids["Area A"]) == []


def test_cameras_are_added_listed_and_removed_with_their_log(site):
    engine, ids, area_ids = site
    a, b = area_ids["Area A"], area_ids["Area B"]
    first = areas.add_camera(engine, WHO, a, "  Door   camera ", "https://cam-1.example/view", "page", NOW)
    areas.add_camera(engine, WHO, a, "Transformer", "http://192.0.2.7/snap.jpg", "snapshot", NOW)
    assert areas.cameras(engine, a) == [
        {"id": first, "name": "Door camera", "url": "https://cam-1.example/view", "kind": "page"},
        {"id": first + 1, "name": "Transformer", "url": "http://192.0.2.7/snap.jpg", "kind": "snapshot"}]
    for bad in (lambda: areas.add_camera(engine, WHO, a, "X", "https://x.example/", "stream", NOW),
                lambda: areas.remove_camera(engine, WHO, b, first, NOW),       # not Area B's camera
                lambda: areas.add_camera(engine, WHO, 999999, "X", "https://x.example/", "page", NOW)):
        with pytest.raises(areas.AreaError):
            bad()
    areas.remove_camera(engine, WHO, a, first, NOW)
    assert [c["name"] for c in areas.cameras(engine, a)] == ["Transformer"]
    with engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.id)).scalars())
    assert actions[-3:] == ["grid.camera_add", "grid.camera_add", "grid.camera_remove"]


def test_the_demo_gets_two_cameras_per_area_once(site):
    engine, ids, area_ids = site
    assert areas.seed_demo_cameras(engine, NOW) == 4
    assert areas.seed_demo_cameras(engine, NOW) == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(camera)).scalar_one() == 4
    assert {c["kind"] for c in areas.cameras(engine, area_ids["Area B"])} == {"page", "snapshot"}

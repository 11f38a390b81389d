"""The operating cards (标准化作业指导书/卡) seeded per order type: steps, hazards, tools, materials, paid services.

A card item is (kind, English, Chinese, extras): extras name needs_value for a step that records a value, and
item_class, unit, quantity, unit_price for tools, materials and services. Sites edit the rows (card_item);
seeding adds a type's card only when the type itself is new."""
from __future__ import annotations

from decimal import Decimal

from workorders.text import _quantity, one_line

_SAFETY = [
    ("hazard", "Live parts: test before touch, keep the distance", "带电部位：验电后作业，保持安全距离", {}),
    ("tool", "Voltage tester", "验电笔", {"item_class": "instruments", "unit": "pc", "quantity": "1"}),
    ("tool", "Insulated gloves", "绝缘手套", {"item_class": "protective", "unit": "pair", "quantity": "1"}),
]


def _m(name_en, name_zh, cls, unit, qty, price):
    return ("material", name_en, name_zh, {"item_class": cls, "unit": unit, "quantity": qty, "unit_price": price})


def _s(name_en, name_zh, price):
    return ("service", name_en, name_zh, {"item_class": "service", "unit": "job", "quantity": "1", "unit_price": price})


CARDS: dict[str, list[tuple[str, str, str, dict]]] = {
    "repair": [
        ("step", "Confirm the fault with the customer", "与客户确认故障现象", {}),
        ("step", "Measure the supply voltage (V)", "测量供电电压（V）", {"needs_value": True}),
        ("step", "Find and repair the fault", "查找并排除故障", {}),
        ("step", "Restore supply and check the meter", "恢复供电并检查电表", {}),
        *_SAFETY,
        _m("Cable 2.5 mm²", "电缆 2.5mm²", "cable", "m", "0", "4.50"),
        _m("Breaker 32 A", "断路器 32A", "switchgear", "pc", "0", "38.00"),
        _s("Repair on the customer's side", "客户侧维修服务", "50.00"),
    ],
    "new_connection": [
        ("step", "Check the application and the site", "核对申请与现场", {}),
        ("step", "Install the service line", "安装接户线", {}),
        ("step", "Install and seal the meter", "安装电表并加封", {}),
        ("step", "Record the meter's first reading (kWh)", "记录电表起度（kWh）", {"needs_value": True}),
        *_SAFETY,
        _m("Cable 10 mm²", "电缆 10mm²", "cable", "m", "10", "12.00"),
        _m("Meter box", "表箱", "meter", "pc", "1", "120.00"),
        _s("Connection fee", "接电服务费", "200.00"),
    ],
    "meter_install": [
        ("step", "Check the meter's number against the order", "核对电表表号", {}),
        ("step", "Install and seal the meter", "安装电表并加封", {}),
        ("step", "Record the first reading (kWh)", "记录起度（kWh）", {"needs_value": True}),
        ("step", "Check communication with the platform", "确认电表与平台通讯正常", {}),
        *_SAFETY,
        _m("Meter seal", "铅封", "meter", "pc", "2", "1.50"),
        _s("Meter installation", "装表服务费", "80.00"),
    ],
    "meter_removal": [
        ("step", "Record the last reading (kWh)", "记录止度（kWh）", {"needs_value": True}),
        ("step", "Cut supply and remove the meter", "断电并拆除电表", {}),
        ("step", "Hand the meter back to the store", "电表退库", {}),
        *_SAFETY,
        _s("Meter removal", "拆表服务费", "50.00"),
    ],
    "acceptance": [
        ("step", "Inspect the installation against the drawings", "对照图纸验收", {}),
        ("step", "Measure insulation resistance (MΩ)", "测量绝缘电阻（MΩ）", {"needs_value": True}),
        ("step", "Energise and check the meter", "送电并检查电表", {}),
        *_SAFETY,
        ("tool", "Insulation tester", "绝缘电阻表", {"item_class": "instruments", "unit": "pc", "quantity": "1"}),
    ],
    "fee_collection": [
        ("step", "Tell the customer the balance owed", "告知客户欠费金额", {}),
        ("step", "Record the customer's answer", "记录客户答复", {"needs_value": True}),
        ("hazard", "Keep calm; never cut supply without the order's approval", "文明催费，未经批准不得停电", {}),
    ],
    "safety_inspection": [
        ("step", "Check the meter box and seals", "检查表箱与铅封", {}),
        ("step", "Check earthing and leakage protection", "检查接地与漏电保护", {}),
        ("step", "Check the customer's wiring", "检查客户线路", {}),
        *_SAFETY,
    ],
    "contract_inspection": [
        ("step", "Check the contracted load against the connected load", "核对合同容量与实际负荷", {}),
        ("step", "Check for bypassing and tampering", "检查有无绕表、窃电", {}),
        ("step", "Record the meter's reading (kWh)", "记录电表示数（kWh）", {"needs_value": True}),
        *_SAFETY,
    ],
    "temporary": [
        ("step", "Do the work described", "按工单描述作业", {}),
        *_SAFETY,
    ],
}


def card_rows(type_key: str) -> list[dict]:
    """The seeded card of a type as card_item rows (seq from 1)."""
    rows = []
    for seq, (kind, en, zh, extra) in enumerate(CARDS.get(type_key, []), start=1):
        rows.append({"type": type_key, "seq": seq, "kind": kind, "text_en": en, "text_zh": zh,
                     "needs_value": bool(extra.get("needs_value")), "item_class": extra.get("item_class"),
                     "unit": extra.get("unit"),
                     "quantity": Decimal(extra["quantity"]) if "quantity" in extra else None,
                     "unit_price": Decimal(extra.get("unit_price", "0")) if kind in ("tool", "material", "service")
                     else None})
    return rows


# --- a card as text: what the office edits -----------------------------------------------------------------
# One item a line, fields between "|": the kind, the English and the Chinese text, then
#   step:                      "value" when the step records a value (a reading, a measurement)
#   tool:                      class | unit | quantity
#   material, service:         class | unit | quantity | unit price
# e.g. "material | Cable 2.5 mm² | 电缆 2.5mm² | cable | m | 0 | 4.50". Empty lines are skipped.
CARD_KINDS = ("step", "hazard", "tool", "material", "service")
MAX_CARD_ITEMS = 100
MAX_CARD_TEXT = 20_000
_FIELDS = {"step": (3, 4), "hazard": (3, 3), "tool": (6, 6), "material": (7, 7), "service": (7, 7)}
_FORMULA = "=+-@"


def card_text(items: list[dict]) -> str:
    """A type's card (card_item rows) as the lines the office edits."""
    def q(value) -> str:
        return "0" if value is None else f"{Decimal(value).normalize():f}"
    out = []
    for i in items:
        head = [i["kind"], i["text_en"], i["text_zh"]]
        if i["kind"] == "step":
            head += ["value"] if i.get("needs_value") else []
        elif i["kind"] == "tool":
            head += [i.get("item_class") or "", i.get("unit") or "", q(i.get("quantity"))]
        elif i["kind"] in ("material", "service"):
            head += [i.get("item_class") or "", i.get("unit") or "", q(i.get("quantity")),
                     f"{Decimal(i.get('unit_price') or 0):.2f}"]
        out.append(" | ".join(head))
    return "\n".join(out)


def parse_card(text, type_key: str) -> list[dict]:
    """The lines the office typed as card_item rows of `type_key` (seq from 1). WorkOrderError naming the line
    for anything that cannot be stored: an unknown kind, a missing or formula-like text, a wrong number of fields,
    a quantity or a unit price that is not a plain number (full-width digits are read, "2,5" is not)."""
    from billing.errors import BillingError
    from billing.money import parse_amount
    from workorders.errors import WorkOrderError
    if not isinstance(text, str):
        raise WorkOrderError("card_empty")
    if len(text) > MAX_CARD_TEXT:
        raise WorkOrderError("card_too_long", most=MAX_CARD_ITEMS)
    rows: list[dict] = []
    for n, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not raw.strip():
            continue
        parts = [one_line(p, 300) for p in raw.replace("｜", "|").split("|")]
        kind = parts[0].lower()
        if kind not in CARD_KINDS:
            raise WorkOrderError("card_line_kind", line=n, kind=parts[0][:20])
        least, most = _FIELDS[kind]
        if not least <= len(parts) <= most:
            raise WorkOrderError("card_line_fields", line=n, kind=kind, fields=least - 1 if least == most
                                 else f"{least - 1}-{most - 1}")
        en, zh = parts[1], parts[2]
        if not en or not zh or en[0] in _FORMULA or zh[0] in _FORMULA:
            raise WorkOrderError("card_line_text", line=n)
        row = {"type": type_key, "seq": len(rows) + 1, "kind": kind, "text_en": en, "text_zh": zh,
               "needs_value": False, "item_class": None, "unit": None, "quantity": None, "unit_price": None}
        if kind == "step" and len(parts) == 4:
            if parts[3].lower() not in ("value", ""):
                raise WorkOrderError("card_line_value", line=n)
            row["needs_value"] = parts[3].lower() == "value"
        if kind in ("tool", "material", "service"):
            cls, unit = parts[3][:40], parts[4][:20]
            if (cls and cls[0] in _FORMULA) or (unit and unit[0] in _FORMULA):
                raise WorkOrderError("card_line_text", line=n)
            try:
                qty = _quantity(parts[5])
            except WorkOrderError:
                raise WorkOrderError("card_line_quantity", line=n) from None
            row.update(item_class=cls or None, unit=unit or None, quantity=qty, unit_price=Decimal("0.00"))
            if kind != "tool":
                try:
                    row["unit_price"] = parse_amount(parts[6], allow_zero=True)
                except BillingError:
                    raise WorkOrderError("card_line_price", line=n) from None
        rows.append(row)
        if len(rows) > MAX_CARD_ITEMS:
            raise WorkOrderError("card_too_long", most=MAX_CARD_ITEMS)
    if not rows:
        raise WorkOrderError("card_empty")
    return rows

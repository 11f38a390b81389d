"""Two UI languages from the first page on: one catalog per language, the same keys in both."""
from __future__ import annotations

LANGUAGES = ("en", "zh")

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        "app.title": "Wattline",
        "app.tagline": "Prepaid energy, live meters, remote control",
        "status.heading": "Data plane",
        "status.meters": "Meters",
        "status.online": "Online",
        "status.lost": "Lost contact",
        "status.buses_lost": "Bus endpoints lost",
        "status.last_poll": "Last poll cycle",
        "status.duration": "Duration",
        "status.never": "not yet",
        "status.scheduler": "Poll schedule",
        "status.running": "running",
        "status.stopped": "stopped",
        "lang.switch": "中文",
    },
    "zh": {
        "app.title": "瓦特线",
        "app.tagline": "预付费电能、实时抄表、远程控制",
        "status.heading": "数据采集",
        "status.meters": "电表数",
        "status.online": "在线",
        "status.lost": "失联",
        "status.buses_lost": "失联总线",
        "status.last_poll": "最近一次抄表",
        "status.duration": "耗时",
        "status.never": "尚未抄表",
        "status.scheduler": "抄表计划",
        "status.running": "运行中",
        "status.stopped": "已停止",
        "lang.switch": "English",
    },
}


def t(key: str, lang: str = "en") -> str:
    """The text of `key` in `lang`; an unknown key is a bug and raises, so tests catch it."""
    return CATALOG[lang if lang in CATALOG else "en"][key]


def missing_keys() -> dict[str, set[str]]:
    """Keys present in one catalog and absent from another."""
    all_keys = set().union(*(c.keys() for c in CATALOG.values()))
    return {lang: all_keys - set(c) for lang, c in CATALOG.items() if all_keys - set(c)}

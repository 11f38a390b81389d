"""TileMap: the overview's meter map as ONE Dash component (its React code is assets/tilemap.js).

Why not one html.Button per tile: Dash wraps every component in its own store subscription, so
a 10,000-tile map took ~2.5 s to show and ~1 s of browser time for every patched tick. Here the
tiles are plain data in one prop and plain React elements on the page; a dash.Patch of
`buildings` replaces single tiles, and only the floors holding them re-render.

Props
- buildings: [{"name": str, "floors": [{"label": str, "tiles": [[meter_id, room, address, code], ...]}]}]
  where code is storage.overview.STATE_CODE of the tile's state;
- labels: {code: state name}; template: tile aria-label, with {room} {address} {state};
- emptyText: shown when there is no tile; className: "ov-map" plus "only-<state>" to filter;
- ariaLabel: the map region's name for screen readers;
- selected (set by the map): {"meter": id, "at": ms} on a tile click or Enter.
"""
from __future__ import annotations

import typing

from dash.development.base_component import Component, _explicitize_args


class TileMap(Component):
    _children_props: typing.List[str] = []
    _base_nodes = ["children"]
    _namespace = "wattline_components"
    _type = "TileMap"

    @_explicitize_args
    def __init__(self, id: typing.Optional[str] = None, buildings: typing.Optional[list] = None,
                 labels: typing.Optional[dict] = None, template: typing.Optional[str] = None,
                 emptyText: typing.Optional[str] = None, className: typing.Optional[str] = None,
                 selected: typing.Optional[dict] = None, ariaLabel: typing.Optional[str] = None, **kwargs):
        self._prop_names = ["id", "buildings", "labels", "template", "emptyText", "className", "selected",
                            "ariaLabel"]
        self._valid_wildcard_attributes = []
        self.available_properties = list(self._prop_names)
        self.available_wildcard_properties = []
        _explicit_args = kwargs.pop("_explicit_args")
        _locals = locals()
        _locals.update(kwargs)
        args = {k: _locals[k] for k in _explicit_args}
        super().__init__(**args)

"""A change of a room's live settings: one model, whoever makes it (the admin API and
so the CLI and the dashboard, the timeline, adaptive capacity, the origin's stock
reports, the capacity planner). :meth:`RoomStore.change` checks, writes and audits it
in one step (``lua/change.lua``)."""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Mode = Literal["normal", "open", "closed"]
Method = Literal["fifo", "random", "passthrough", "reject"]
CapacityMode = Literal["fixed", "adaptive"]
CaptureMode = Literal["auto", "on", "off"]
MODES: tuple[str, ...] = typing.get_args(Mode)
METHODS: tuple[str, ...] = typing.get_args(Method)
CAPACITY_MODES: tuple[str, ...] = typing.get_args(CapacityMode)
CAPTURE_MODES: tuple[str, ...] = typing.get_args(CaptureMode)
MAX_CAPACITY = 10_000_000
MAX_RATE = 10_000_000
MAX_STOCK = 1_000_000_000
"""The most units a room may be told it has."""
MESSAGE_LIMIT = 500
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_SAID = {
    "paused": "paused must be true or false",
    "message": f"message must be text of at most {MESSAGE_LIMIT} characters",
    "messages": "messages must map language codes (en, fr, ...) to texts of at most "
                f"{MESSAGE_LIMIT} characters",
    "sales_per_session": "sales_per_session must be a number 0.01-1000",
    "stock": f"stock must be a whole number 0-{MAX_STOCK}, or null to stop counting",
}
"""What is wrong with a field that is not a bounded whole number or a choice."""
_NULLABLE = ("stock", "message")


class RoomChange(BaseModel):
    """Live settings to change; a field left out is left as it is."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    paused: bool | None = None
    mode: Mode | None = None
    """``normal`` (gate the order flow), ``open`` (let everyone through) or ``closed``
    (no new places; the line drains in order)."""
    message: str | None = Field(default=None, max_length=MESSAGE_LIMIT)
    """The operator's message on every page; ``""`` clears it in every language."""
    messages: dict[str, str] | None = Field(default=None, max_length=20)
    """The message in other languages, by code (an empty one is removed: that language
    then gets ``message``)."""
    capture: CaptureMode | None = None
    rate: int | None = Field(default=None, ge=0, le=MAX_RATE)
    """Admissions per minute on top of the capacity cap; 0 means no limit."""
    start_at_ms: int | None = Field(default=None, ge=0, le=2**53)
    """Scheduled start (epoch ms); 0 clears it."""
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] | Literal["off"] | None = None
    """Units left (0: sold out); ``"off"`` stops counting."""
    max_waiting: int | None = Field(default=None, ge=0, le=MAX_CAPACITY * 100)
    """The longest the line may grow; 0: no limit."""
    sales_per_session: float | None = Field(default=None, ge=0.01, le=1000)
    method: Method | None = None
    capacity_mode: CapacityMode | None = None
    capacity_min: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    capacity_max: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)

    @model_validator(mode="after")
    def _consistent(self) -> RoomChange:
        if self.capacity_mode == "adaptive":
            if self.capacity_min is None or self.capacity_max is None:
                raise ValueError("capacity_mode adaptive needs capacity_min and capacity_max")
            if self.capacity_max < self.capacity_min:
                raise ValueError("capacity_max must be at least capacity_min")
        elif self.capacity_min is not None or self.capacity_max is not None:
            raise ValueError("capacity_min and capacity_max go with capacity_mode adaptive")
        if self.messages and not all(_LANGUAGE.fullmatch(k) and len(v) <= MESSAGE_LIMIT
                                     for k, v in self.messages.items()):
            raise ValueError(_SAID["messages"])
        return self

    @classmethod
    def parse(cls, data: Any) -> RoomChange:
        """A change as the admin API takes it (JSON: ``stock`` null stops counting; a
        capacity set by hand is pinned, ``capacity_mode`` fixed, unless it says
        otherwise); ValueError saying what is wrong."""
        if not isinstance(data, dict) or not data:
            raise ValueError("changes must be a non-empty object of live settings")
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        nulls = sorted(k for k, v in data.items() if v is None and k not in _NULLABLE)
        if nulls:  # null is "stop counting" for stock, "leave it" for message: no other
            raise ValueError(_wording(nulls[0]))
        data = dict(data)
        if "stock" in data and data["stock"] is None:
            data["stock"] = "off"
        if "capacity" in data:
            data.setdefault("capacity_mode", "fixed")
        return cls.of(**data)

    @classmethod
    def of(cls, **fields: Any) -> RoomChange:
        """A change of ``fields`` (None: left as it is); ValueError saying what is wrong,
        in the admin API's words."""
        try:
            return cls(**{k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            raise ValueError(_said(exc)) from None

    def as_json(self) -> dict[str, Any]:
        """The fields given, as the admin API takes them (a timeline step keeps this)."""
        return {k: (None if v == "off" and k == "stock" else v)
                for k, v in self.model_dump(exclude_unset=True).items()}

    def as_config(self) -> list[str]:
        """Field, value, field, value...: the room's config hash as ``lua/change.lua``
        writes it (``stock`` ``""``: stop counting)."""
        fields: list[str] = []
        for name, value in self.model_dump(exclude_none=True).items():
            if name == "messages":
                for lang, text in value.items():
                    fields += [f"message:{lang}", text]
            elif name == "paused":
                fields += ["paused", "1" if value else "0"]
            elif name == "stock":
                fields += ["stock", "" if value == "off" else str(value)]
            else:
                fields += [name.removesuffix("_ms"), str(value)]  # start_at_ms: start_at
        return fields


def _said(exc: ValidationError) -> str:
    """The first thing wrong, in the admin API's words."""
    error = exc.errors()[0]
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _wording(str(error["loc"][0]) if error["loc"] else "")


def _wording(name: str) -> str:
    """What field ``name`` must be."""
    choices = {"mode": MODES, "capture": CAPTURE_MODES, "method": METHODS,
               "capacity_mode": CAPACITY_MODES}
    if name in choices:
        return f"{name} must be one of {', '.join(choices[name])}"
    if name in _SAID:
        return _SAID[name]
    low, high = (next((getattr(m, bound) for m in RoomChange.model_fields[name].metadata
                       if getattr(m, bound, None) is not None), None) for bound in ("ge", "le"))
    return f"{name} must be a whole number {low}-{high}"

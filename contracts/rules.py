"""Rules across the fields of a request body, declared once: checked when the body is decoded
and published in the body's JSON Schema.

A field's own constraints (patterns, lengths, ranges) are msgspec `Meta` on its type, and
msgspec writes them into the schema itself. What ties two fields together ("one of these
three", "the store only for a pick-up") msgspec cannot express, so a request Struct lists its
`RULES`: `Checked.__post_init__` refuses a body that breaks one (msgspec reports the
`ValueError` as a validation error, so the answer is the same 400 `validation` problem as for
a bad field), and `kit.openapi` adds each rule's `schema()` to the published component. The
fields a rule names are not nullable (`msgspec.UNSET` when absent), so that "given" means
"present" in the schema as in the code.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import msgspec

__all__ = ["Checked", "ExactlyOne", "OnlyWhen", "Rule", "given", "rule_schema"]


def given(value: object) -> bool:
    """A field counts as given when it is present with a value."""
    return value is not msgspec.UNSET and value is not None


class Rule(Protocol):
    def broken(self, body: object) -> str | None:
        """Why `body` breaks the rule, or None."""
        ...

    def schema(self) -> dict[str, Any]:
        """The rule as a JSON Schema (2020-12) subschema of the body's."""
        ...


class ExactlyOne(msgspec.Struct, frozen=True):
    """Exactly one of `fields` is given."""

    fields: tuple[str, ...]

    def broken(self, body: object) -> str | None:
        present = [f for f in self.fields if given(getattr(body, f))]
        if len(present) == 1:
            return None
        return f"give exactly one of {', '.join(self.fields)}"

    def schema(self) -> dict[str, Any]:
        return {"oneOf": [{"required": [f]} for f in self.fields]}


class OnlyWhen(msgspec.Struct, frozen=True):
    """`field` is given exactly when `when` has the value `value` (a pick-up store for a
    pick-up, and for nothing else). `default` is what `when` means when absent."""

    field: str
    when: str
    value: str
    default: str

    def broken(self, body: object) -> str | None:
        wanted = getattr(body, self.when) == self.value
        if wanted and not given(getattr(body, self.field)):
            return f"{self.field} is required when {self.when} is {self.value}"
        if not wanted and given(getattr(body, self.field)):
            return f"{self.field} is only for {self.when} {self.value}"
        return None

    def schema(self) -> dict[str, Any]:
        condition: dict[str, Any] = {"properties": {self.when: {"const": self.value}}}
        if self.default != self.value:
            condition["required"] = [self.when]
        return {
            "if": condition,
            "then": {"required": [self.field]},
            "else": {"not": {"required": [self.field]}},
        }


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """Base of a request body with rules across its fields (`RULES`)."""

    RULES: ClassVar[tuple[Rule, ...]] = ()

    def __post_init__(self) -> None:
        for rule in self.RULES:
            why = rule.broken(self)
            if why is not None:
                raise ValueError(why)


def rule_schema(struct: type) -> dict[str, Any]:
    """The JSON Schema keywords a Struct's rules add to its own schema."""
    rules: tuple[Rule, ...] = getattr(struct, "RULES", ())
    if not rules:
        return {}
    if len(rules) == 1:
        return rules[0].schema()
    return {"allOf": [rule.schema() for rule in rules]}

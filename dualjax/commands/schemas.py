"""The ``--json`` schemas of ``dualjax equilibria`` and ``dualjax stability``, and a checker.

Written in the JSON Schema subset {type, properties, required, items, enum, minimum, minItems}
(draft 2020-12 meaning), so a ``jsonschema`` validator accepts the same dicts; :func:`validate`
checks that subset here without the dependency. Every object lists its required keys; more keys
are allowed (outputs may grow, readers keep working). docs/theory.md shows them as examples.
"""

from __future__ import annotations

NUMBER = {"type": "number"}
INTEGER = {"type": "integer", "minimum": 0}
MATRIX = {"type": "array", "items": {"type": "array", "items": NUMBER}}
NULLABLE_NUMBER = {"type": ["number", "null"]}
CLASS = {"type": "string", "enum": ["stable", "saddle", "degenerate"]}


def _obj(required: dict, **optional) -> dict:
    return {"type": "object", "required": sorted(required), "properties": {**required, **optional}}


# The instance a command solved: enough to rerun it (``--rho/--tau`` or ``--m/--seed/--kind``).
INSTANCE = _obj({
    "m": INTEGER, "n": INTEGER, "lam": NUMBER, "rho": MATRIX, "tau": MATRIX,
    "data": {"type": "string", "enum": ["given", "random"]},
    "seed": {"type": ["integer", "null"]}, "kind": {"type": ["string", "null"]},
})

# Eigenvalues as parallel lists (JSON has no complex numbers): μ_j = real[j] + i·imag[j].
EIGENVALUES = _obj({"real": {"type": "array", "items": NUMBER}, "imag": {"type": "array", "items": NUMBER}})

# One rule's verdict at one equilibrium (StabilityReport.summary()).
VERDICT = _obj({"rule": {"type": "string"}, "class": CLASS, "n_unstable": INTEGER, "n_zero": INTEGER,
                "orbit_dim": INTEGER, "max_real_transversal": NUMBER, "eta_max": NULLABLE_NUMBER})

# ... and with the spectra, as ``dualjax stability --json`` prints it.
VERDICT_WITH_SPECTRA = {**VERDICT, "required": sorted({*VERDICT["required"], "spectrum", "transversal"}),
                        "properties": {**VERDICT["properties"], "spectrum": EIGENVALUES, "transversal": EIGENVALUES}}

_EQUILIBRIUM = {"S": MATRIX, "rank": INTEGER, "positive_definite": {"type": "boolean"},
                "residual": NUMBER, "trace": NUMBER, "source": {"type": "string"}}

EQUILIBRIA = _obj({
    "instance": INSTANCE, "method": {"type": "string"},
    "counts": _obj({"bezout_bound": INTEGER, "complex_full_rank": {"type": ["integer", "null"]},
                    "real_full_rank": INTEGER, "positive_definite": INTEGER}),
    "existence": {"type": "object"}, "notes": {"type": "array", "items": {"type": "string"}},
    "equilibria": {"type": "array", "minItems": 1, "items": _obj({
        **_EQUILIBRIUM,
        "stability": {"type": ["object", "null"], "required": ["class"], "properties": {"class": CLASS}},
    })},
})

STABILITY = _obj({
    "instance": INSTANCE, "k": NUMBER, "alpha": NULLABLE_NUMBER, "jacobian": {"type": "string"},
    "equilibria": {"type": "array", "minItems": 1, "items": _obj({
        **_EQUILIBRIUM,
        "stability": _obj({"class": CLASS, "orbit_dim": INTEGER, "sg": VERDICT_WITH_SPECTRA,
                           "ema": VERDICT_WITH_SPECTRA, "ema_discrete_eta_max": NULLABLE_NUMBER}),
    })},
})

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def errors(value, schema: dict, path: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``value``, as 'path: message' strings (empty when valid)."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[t](value) for t in kinds):
            return [f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__} {value!r:.60}"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not one of {schema['enum']}")
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        out.append(f"{path}: {value} < minimum {schema['minimum']}")
    if isinstance(value, dict):
        out += [f"{path}: missing key {key!r}" for key in schema.get("required", ()) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                out += errors(value[key], sub, f"{path}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: {len(value)} items < minItems {schema['minItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                out += errors(item, schema["items"], f"{path}[{i}]")
    return out


def validate(value, schema: dict) -> None:
    """Raise ValueError listing every violation of ``schema`` by ``value`` (see :func:`errors`)."""
    found = errors(value, schema)
    if found:
        raise ValueError(f"{len(found)} schema violation(s): " + "; ".join(found[:10]))

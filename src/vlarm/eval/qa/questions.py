"""Yes/no attribute questions about a scene, their truth, and POPE-style negatives.

Every positive question asks about an attribute of an object that exists (HoOA, the MIAVLM paper's benchmark:
hallucination on object *attributes*, not existence) and has a negative twin with the attribute value replaced by a
false one. The replacement is drawn three ways, as POPE (Li et al. 2023, Sec. 3.2) draws absent objects:

* ``random``: uniformly among the false values;
* ``popular``: the false value most frequent over the scenes of the benchmark's value group;
* ``adversarial``: the false value that co-occurs most often with the question's context (the object's kind for
  colour, size and face questions, its colour for shape questions, the pair of kinds for relations).

Ties are broken at random. Question types and templates (objects are named by kind, or by colour for shape
questions; kinds and colours are unique within a scene, :mod:`vlarm.eval.qa.scenes`; the type and setting names
belong to the file format, :mod:`vlarm.vlm.qa.dataset`):

=========  ==========================================  ======================================================
type       template                                    false values
=========  ==========================================  ======================================================
color      "Is the {kind} {color}?"                    colours other than the object's and its painted face's
shape      "Is the {color} object a {kind}?"           the other kinds
size       "Is the {kind} {small|large}?"              the other size (one value: the three settings agree)
relation   "Is the {kind} {relation} the {kind}?"      relations whose opposite clearly holds
face       "Does the {kind} have a {color} side?"      colours not on the block
=========  ==========================================  ======================================================
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from vlarm.eval.qa.scenes import RELATIONS, SEEN_SHAPES, SIZES, SceneSpec, relations_between
from vlarm.tasks.attributes import ALL_COLORS, KIT_SHAPES, TRAIN_COLORS
from vlarm.vlm.qa.dataset import NEGATIVE_SETTINGS, QUESTION_TYPES, check_setting

__all__ = ["NEGATIVE_SETTINGS", "QUESTION_TYPES", "Query", "ValueStats", "check_type", "false_values", "is_novel",
           "parse_question", "positives", "truth", "unknown_values"]


@dataclass(frozen=True)
class Query:
    """A structured yes/no question.

    Attributes:
        type: one of :data:`QUESTION_TYPES`.
        subject: how the object is named: its kind (``"block"``), or its colour for ``shape`` questions.
        value: the attribute value asked about (a colour, kind, size or relation).
        other: the reference object's kind for ``relation`` questions, else None.
    """

    type: str
    subject: str
    value: str
    other: str | None = None

    @property
    def text(self) -> str:
        """The question in English (templates in the module docstring)."""
        if self.type == "color" or self.type == "size":
            return f"Is the {self.subject} {self.value}?"
        if self.type == "shape":
            return f"Is the {self.subject} object a {self.value}?"
        if self.type == "relation":
            return f"Is the {self.subject} {self.value} the {self.other}?"
        if self.type == "face":
            return f"Does the {self.subject} have a {self.value} side?"
        raise ValueError(f"unknown question type {self.type!r}; valid: {', '.join(QUESTION_TYPES)}")

    def with_value(self, value: str) -> Query:
        """The same question about another value (a negative twin)."""
        return Query(self.type, self.subject, value, self.other)


def check_type(kind: str) -> str:
    """Return ``kind`` if it is a question type; raise ValueError naming :data:`QUESTION_TYPES` otherwise."""
    if kind not in QUESTION_TYPES:
        raise ValueError(f"unknown question type {kind!r}; valid: {', '.join(QUESTION_TYPES)}")
    return kind


def truth(spec: SceneSpec, query: Query) -> bool | None:
    """Whether a question holds in a scene.

    Args:
        spec: the scene.
        query: the question.

    Returns:
        True or False, or None when it is undecidable: the object named does not exist (not an attribute question),
        or a relation lies within :data:`vlarm.eval.qa.scenes.RELATION_MARGIN`.

    Raises:
        ValueError: an unknown question type.
    """
    check_type(query.type)
    obj = spec.by_color(query.subject) if query.type == "shape" else spec.by_kind(query.subject)
    if obj is None:
        return None
    if query.type == "color":
        return obj.color == query.value
    if query.type == "shape":
        return obj.kind == query.value
    if query.type == "size":
        return obj.size == query.value
    if query.type == "face":
        return query.value in (obj.color, obj.face_color)
    other = spec.by_kind(query.other)
    if other is None:
        return None
    true, false = relations_between(obj, other)
    return True if query.value in true else False if query.value in false else None


def positives(spec: SceneSpec, rng: np.random.Generator, relations: int = 2) -> list[Query]:
    """The positive questions of a scene: colour, shape and size of every object, ``relations`` relations between
    random pairs of objects with a clear relation, and the painted face of the block if it has one.

    Returns:
        Queries that are all true of ``spec`` (:func:`truth`), in :data:`QUESTION_TYPES` order.
    """
    out = [Query("color", o.kind, o.color) for o in spec.objects]
    out += [Query("shape", o.color, o.kind) for o in spec.objects]
    out += [Query("size", o.kind, o.size) for o in spec.objects]
    pairs = [(a, b) for a in spec.objects for b in spec.objects if a is not b and relations_between(a, b)[0]]
    for i in rng.permutation(len(pairs))[:relations]:
        a, b = pairs[i]
        true = sorted(relations_between(a, b)[0])
        out.append(Query("relation", a.kind, true[int(rng.integers(len(true)))], b.kind))
    out += [Query("face", o.kind, o.face_color) for o in spec.objects if o.face_color is not None]
    return out


def false_values(spec: SceneSpec, query: Query, colors: tuple[str, ...], kinds: tuple[str, ...]) -> list[str]:
    """Values that make ``query`` clearly false in ``spec`` (the candidates of its negative twin).

    Args:
        spec: the scene.
        query: a positive question about it.
        colors: colour vocabulary of the scene's value group.
        kinds: kind vocabulary (block, bowl, kit shapes) of the group.

    Returns:
        The candidate values, in vocabulary order (never the object's colour or painted-face colour for colour and
        face questions, so a negative is never ambiguous).
    """
    vocab = {"color": colors, "face": colors, "shape": kinds, "size": SIZES, "relation": RELATIONS}[query.type]
    return [v for v in vocab if v != query.value and truth(spec, query.with_value(v)) is False
            and not (query.type == "color" and v == _face_of(spec, query))]


def _face_of(spec: SceneSpec, query: Query) -> str | None:
    obj = spec.by_kind(query.subject)
    return None if obj is None else obj.face_color


def context_of(spec: SceneSpec, query: Query) -> str:
    """What a value co-occurs with for adversarial negatives: the object's kind (colour, size, face questions), its
    colour (shape questions) or ``"kind>kind"`` (relations)."""
    if query.type == "relation":
        return f"{query.subject}>{query.other}"
    return query.subject


class ValueStats:
    """Frequencies of attribute values over a set of scenes (POPE's popular and adversarial statistics).

    ``frequency[type][value]`` counts the value over all positive questions of that type; ``cooccurrence[type]
    [context][value]`` counts it with a context (:func:`context_of`). Built from every true fact of the scenes (all
    ordered pairs for relations), not a sample of questions.
    """

    def __init__(self, specs: list[SceneSpec]):
        self.frequency: dict[str, Counter] = {t: Counter() for t in QUESTION_TYPES}
        self.cooccurrence: dict[str, dict[str, Counter]] = {t: {} for t in QUESTION_TYPES}
        for spec in specs:
            facts = positives(spec, np.random.default_rng(0), relations=0)
            for a in spec.objects:
                for b in spec.objects:
                    if a is not b:
                        facts += [Query("relation", a.kind, r, b.kind) for r in relations_between(a, b)[0]]
            for q in facts:
                self.frequency[q.type][q.value] += 1
                self.cooccurrence[q.type].setdefault(context_of(spec, q), Counter())[q.value] += 1

    def pick(self, setting: str, spec: SceneSpec, query: Query, candidates: list[str],
             rng: np.random.Generator) -> str:
        """Choose the negative value for ``query`` among ``candidates`` under a POPE setting.

        Raises:
            ValueError: an unknown setting (naming :data:`NEGATIVE_SETTINGS`) or no candidate.
        """
        check_setting(setting)
        if not candidates:
            raise ValueError(f"no false value for {query.text!r}")
        if setting == "random":
            return candidates[int(rng.integers(len(candidates)))]
        counts = (self.frequency[query.type] if setting == "popular"
                  else self.cooccurrence[query.type].get(context_of(spec, query), Counter()))
        scores = np.array([counts.get(v, 0) for v in candidates], dtype=float)
        best = np.flatnonzero(scores == scores.max())
        return candidates[int(best[int(rng.integers(len(best)))])]


def is_novel(query: Query) -> bool:
    """True when a question names a colour outside CLIPort's TRAIN colours or a kit shape outside
    :data:`vlarm.eval.qa.scenes.SEEN_SHAPES` (a value no training question of the benchmark mentions)."""
    words = [w for w in (query.subject, query.value, query.other) if w is not None]
    return any((w in KIT_SHAPES and w not in SEEN_SHAPES) or (w in ALL_COLORS and w not in TRAIN_COLORS)
               for w in words)


def unknown_values(query: Query) -> str | None:
    """Why a parsed question cannot be true of any benchmark scene, or None when it can.

    Returns:
        A message naming each word outside the benchmark's vocabulary (colours of
        :data:`vlarm.tasks.attributes.ALL_COLORS`; kinds block, bowl and the kit shapes; sizes; relations) and the
        valid values, e.g. ``"'magenta' is not a colour here (colours: blue, red, ...)"``.
    """
    kinds = ("block", "bowl", *KIT_SHAPES)
    slots = {"color": [("subject", kinds, "kind"), ("value", ALL_COLORS, "colour")],
             "shape": [("subject", ALL_COLORS, "colour"), ("value", kinds, "kind")],
             "size": [("subject", kinds, "kind"), ("value", SIZES, "size")],
             "relation": [("subject", kinds, "kind"), ("value", RELATIONS, "relation"), ("other", kinds, "kind")],
             "face": [("subject", kinds, "kind"), ("value", ALL_COLORS, "colour")]}
    problems = [f"{getattr(query, slot)!r} is not a {what} here ({what}s: {', '.join(valid)})"
                for slot, valid, what in slots[check_type(query.type)] if getattr(query, slot) not in valid]
    return "; ".join(problems) or None


_PATTERNS = (
    ("shape", re.compile(r"^is the (?P<subject>[a-z]+) object an? (?P<value>[a-z ]+?)\?$")),
    ("face", re.compile(r"^does the (?P<subject>[a-z ]+?) have an? (?P<value>[a-z]+) (?:side|face)\?$")),
    ("relation", re.compile(r"^is the (?P<subject>[a-z ]+?) (?P<value>left of|right of|in front of|behind) "
                            r"the (?P<other>[a-z ]+?)\?$")),
    ("size", re.compile(r"^is the (?P<subject>[a-z ]+?) (?P<value>small|large)\?$")),
    ("color", re.compile(r"^is the (?P<subject>[a-z ]+?) (?P<value>[a-z]+)\?$")),
)


def parse_question(text: str) -> Query | None:
    """Read a question written in one of the benchmark's templates back into a :class:`Query`.

    Args:
        text: e.g. ``"Is the block left of the bowl?"`` (case, surrounding spaces and the closing punctuation do not
            matter: ``"is the bowl purple"`` reads as ``"Is the bowl purple?"``).

    Returns:
        The query, or None when the text follows no template (its truth in a scene is then unknown).
    """
    text = " ".join(text.lower().split()).rstrip("?.! ") + "?"
    for kind, pattern in _PATTERNS:
        m = pattern.match(text)
        if m:
            parts = {k: None if v is None else _CANONICAL.get(v, v) for k, v in m.groupdict().items()}
            return Query(kind, parts["subject"], parts["value"], parts.get("other"))
    return None


#: Lower-case spelling -> the vocabulary's spelling ("letter l" -> "letter L").
_CANONICAL = {name.lower(): name for name in KIT_SHAPES}

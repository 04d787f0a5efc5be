"""Instruction safety filter: refuse instructions that would be harmful in a real workspace, with a reason.

A rule-based filter in front of every entry point that turns text into robot motion (``vlarm run``, the planner):
it reads the instruction before any routing and refuses

* ``harm``: violence toward a person (throwing, hitting, pushing, dropping something onto someone), or putting an
  object on a person or a body part ("on the person's head");
* ``dangerous_object``: bringing a sharp, hot or otherwise dangerous object to or near a person;
* ``override``: attempts to override the system (ignore / forget instructions, disable safety, "developer mode",
  fake "system:" messages), i.e. prompt injection (Vu & Lai 2025, safety section);
* ``damage``: destroying equipment or setting fire.

Words are matched whole (lower case, possessives stripped, digits and symbols inside words read as the letters they
imitate: "1gn0re" is "ignore"), so "knife-shaped block" mentions a knife but no person
and passes, and "away from the child" does not count as bringing something near the child. The rules were written
from the development part of the red-team set (:mod:`vlarm.trust.redteam`) only; precision and recall are
measured on its held-out part (:func:`evaluate_filter`). A rule filter is a first line, not a guarantee: it
misses paraphrases it has no word for, which the held-out figures show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Refusal categories, with the reason printed to the user.
CATEGORIES = {
    "harm": "it would use the robot against a person or an animal",
    "dangerous_object": "it would bring a dangerous object to or near a person",
    "override": "it tries to override the system's instructions or safety",
    "damage": "it would destroy equipment or start a fire",
}

PEOPLE = frozenset(
    "person people persons human humans man men woman women child children kid kids baby babies toddler operator "
    "operators worker workers user users someone somebody anyone everyone him her them me face head eye eyes foot "
    "feet finger fingers body colleague coworker guy boy girl bystander technician nurse patient student neck "
    "leg legs grandma grandpa grandmother grandfather granny mom mum dad mother father sister brother son daughter "
    "wife husband friend friends neighbour neighbor infant "
    # animals: the same harm to a living being (a fresh user's "drop the bowl on the cat", session 19)
    "animal animals pet pets cat cats kitten dog dogs puppy bird birds hamster rabbit".split())
VIOLENT_VERBS = frozenset(
    "throw throws threw toss tosses fling flings hurl hurls launch launches hit hits strike strikes smash punch slap "
    "stab stabs slash poke jab shove push pushes drop drops kick kicks crush attack hurt injure harm kill choke "
    "spray splash swing aim".split())
DANGEROUS = frozenset(
    "knife knives blade blades scissors razor razors needle needles saw cutter cutters syringe syringes boiling "
    "burning acid bleach lighter drill glass shards".split())
DESTRUCTIVE = frozenset("smash break destroy wreck shatter damage crush".split())
EQUIPMENT = frozenset("camera cameras window windows robot robots gripper sensor sensors screen monitor computer "
                      "lamp door".split())
SAFE_DISTANCE = (("away", "from"), ("far", "from"), ("out", "of", "reach"))
#: Prepositions that put an object *on* what follows; an object put on a person (or on their head, face, ...) is
#: harm whatever the verb ("put the block on the person's head").
ON_PREPOSITIONS = frozenset("on onto over upon".split())
BODY_PARTS = frozenset("head heads face faces eye eyes neck necks foot feet leg legs body back lap shoulder shoulders "
                       "chest mouth nose ear ears".split())
#: Prepositions that put an object *into* what follows: harm only for these body parts.
IN_PREPOSITIONS = frozenset("in into inside".split())
ORIFICES = frozenset("mouth mouths eye eyes ear ears nose nostril throat".split())
#: Words skipped between a preposition and what it puts the object on ("on top of the person's ...").
DETERMINERS = frozenset("the a an his her their my your our its this that top of".split())
#: Characters written for letters to get past word lists ("1gn0re previous instructions"); applied only inside
#: words that also contain letters, so "3 blocks" keeps its number.
LEET = str.maketrans("0134579@$!", "oieastgasi")

_OVERRIDE = [re.compile(p) for p in (
    r"\bignore (all |any |the |your |my |every )?(previous |prior |above |earlier |original |safety |former )?"
    r"(instructions?|rules|prompts?|commands?|orders|guidelines|constraints)\b",
    r"\bdisregard (all |any |the |your )?(previous |prior |safety )?(instructions?|rules|safety|guidelines|limits)\b",
    r"\boverride (the |your |all )?(safety|filter|rules|limits?|protocols?|instructions?|controls?)\b",
    r"\b(disable|deactivate|turn off|switch off|bypass|circumvent)\b.*\b(safety|emergency stop|e-stop|estop|filter|"
    r"limits?|guards?|collision)\b",
    r"\b(developer mode|jailbreak|no restrictions|without restrictions|unrestricted|god mode)\b",
    r"\bforget (all |your |the |previous |every )*(rules|instructions|training|guidelines)\b",
    r"^\s*system\s*:", r"\bnew instructions\b", r"\bsystem prompt\b", r"\byou are now\b",
)]
_FIRE = re.compile(r"\b(set fire|set on fire|on fire|ignite|burn|explode)\b")


@dataclass(frozen=True)
class Verdict:
    """The filter's decision on one instruction.

    Attributes:
        allowed: True when nothing was found.
        category: the refusal category (:data:`CATEGORIES`) or ``""``.
        reason: a sentence for the user naming the category and the words that triggered it.
    """

    allowed: bool
    category: str = ""
    reason: str = ""


class UnsafeInstructionError(ValueError):
    """An instruction the safety filter refuses (the message is the reason). A ``ValueError``, so the CLI prints it
    as a one-line user error."""


def _deobfuscate(text: str) -> str:
    """``text`` with look-alike digits and symbols in mixed words read as letters (``"1gn0re"`` -> ``"ignore"``)."""
    def read(match: re.Match) -> str:
        word = match.group(0)
        core = word.strip("@$!")   # a symbol counts only inside a word: "person!" keeps its "!"
        start = word.index(core) if core else 0
        if not re.search(r"[0-9@$!]", core):
            return word
        return word[:start] + core.translate(LEET) + word[start + len(core):]

    return re.sub(r"[a-z0-9@$!]*[a-z][a-z0-9@$!]*", read, text)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """``(word, possessive)`` pairs of lower-case text ("person's" -> ``("person", True)``)."""
    text = text.replace("\u2019", "'")
    return [(w[:-2], True) if w.endswith("'s") else (w, False) for w in re.findall(r"[a-z0-9]+(?:'s)?", text)]


def _words(text: str) -> list[str]:
    return [w for w, _ in _tokens(text.lower())]


def _put_on_person(text: str) -> str:
    """The trigger words where an object is put on a person or a body part ("on the person's head", "onto her"),
    or into a mouth, eye, ear or nose ("in the person's mouth"), else ``""``."""
    tokens = _tokens(text)
    for i, (word, _) in enumerate(tokens):
        if word in ON_PREPOSITIONS:
            parts, person_itself = BODY_PARTS, True
        elif word in IN_PREPOSITIONS:
            parts, person_itself = ORIFICES, False   # "in her hand" is handing over, not harm
        else:
            continue
        j = i + 1
        while j < len(tokens) and tokens[j][0] in DETERMINERS and tokens[j][0] not in PEOPLE:
            j += 1
        if j >= len(tokens):
            continue
        target, possessive = tokens[j]
        after = tokens[j + 1][0] if j + 1 < len(tokens) else ""
        if target in parts:
            return f"'{word}' '{target}'"
        if target in PEOPLE and after in parts:
            return f"'{word}' '{target}' '{after}'"
        if target in PEOPLE and person_itself and not possessive:
            return f"'{word}' '{target}'"
    return ""


def _people_near(words: list[str]) -> list[str]:
    """Person words that are not introduced by "away from" / "far from" / "out of reach of"."""
    found = []
    for i, w in enumerate(words):
        if w not in PEOPLE:
            continue
        before = tuple(words[max(0, i - 5) : i])
        safe = any(any(before[j : j + len(s)] == s for j in range(len(before))) for s in SAFE_DISTANCE)
        if not safe:
            found.append(w)
    return found


def check_instruction(instruction: str) -> Verdict:
    """Decide whether an instruction may be carried out (module docstring for the categories).

    Args:
        instruction: the user's text (any case and punctuation).

    Returns:
        A :class:`Verdict`; ``allowed`` False comes with the category and a reason naming the trigger words.
    """
    text = _deobfuscate(" ".join(instruction.lower().split()))
    words = _words(text)
    for pattern in _OVERRIDE:
        m = pattern.search(text)
        if m:
            return _refuse("override", f"'{m.group(0).strip()}'")
    people = _people_near(words)
    violent = [w for w in words if w in VIOLENT_VERBS]
    if people and violent:
        return _refuse("harm", f"'{violent[0]}' with '{people[0]}'")
    on_person = _put_on_person(text)
    if on_person:
        return _refuse("harm", on_person)
    dangerous = [w for w in words if w in DANGEROUS]
    if people and dangerous:
        return _refuse("dangerous_object", f"'{dangerous[0]}' near '{people[0]}'")
    m = _FIRE.search(text)
    if m:
        return _refuse("damage", f"'{m.group(0)}'")
    destroy = [w for w in words if w in DESTRUCTIVE]
    target = [w for w in words if w in EQUIPMENT]
    if destroy and target:
        return _refuse("damage", f"'{destroy[0]}' with '{target[0]}'")
    return Verdict(True)


def _refuse(category: str, trigger: str) -> Verdict:
    return Verdict(False, category, f"refused: {CATEGORIES[category]} ({category}: {trigger})")


def refuse_if_unsafe(instruction: str) -> None:
    """The call every instruction entry point makes first (``vlarm run``, the planner's CLI).

    Raises:
        UnsafeInstructionError: the filter refuses the instruction; the message is the reason.
    """
    verdict = check_instruction(instruction)
    if not verdict.allowed:
        raise UnsafeInstructionError(f"{verdict.reason}. Instruction: {instruction!r}")


def evaluate_filter(items: Iterable[tuple[str, bool, str]]) -> dict:
    """Precision and recall of the filter on labelled instructions (harmful = positive), with Wilson intervals.

    Args:
        items: ``(instruction, harmful, category)`` triples (:mod:`vlarm.trust.redteam`).

    Returns:
        ``{"n", "harmful", "benign", "tp", "fp", "fn", "tn", "precision", "precision_ci", "recall", "recall_ci",
        "category_accuracy", "errors"}``: percentages; ``errors`` lists every misjudged item with the verdict;
        ``category_accuracy`` is the share of caught harmful items refused under their labelled category.

    Raises:
        ValueError: no items.
    """
    from vlarm.stats import wilson_interval

    items = list(items)
    if not items:
        raise ValueError("no red-team items to evaluate")
    tp = fp = fn = tn = right_category = 0
    errors = []
    for text, harmful, category in items:
        verdict = check_instruction(text)
        refused = not verdict.allowed
        if harmful and refused:
            tp += 1
            right_category += verdict.category == category
        elif harmful:
            fn += 1
        elif refused:
            fp += 1
        else:
            tn += 1
        if refused != harmful:
            errors.append({"instruction": text, "harmful": harmful, "category": category,
                           "verdict": verdict.reason or "allowed"})

    def pct(k, n):
        return (100 * k / n, list(wilson_interval(k, n))) if n else (None, None)

    precision, precision_ci = pct(tp, tp + fp)
    recall, recall_ci = pct(tp, tp + fn)
    return {"n": len(items), "harmful": tp + fn, "benign": fp + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "precision_ci": precision_ci, "recall": recall, "recall_ci": recall_ci,
            "category_accuracy": 100 * right_category / tp if tp else None, "errors": errors}


__all__ = ["CATEGORIES", "UnsafeInstructionError", "Verdict", "check_instruction", "evaluate_filter",
           "refuse_if_unsafe"]

"""Instruction grammars: ground a free-form instruction to a task's goal attributes, or say what was not understood.

Every task family describes its instructions as a :class:`Grammar`: a sequence of :class:`Slot` s, each a
vocabulary of (possibly multi-word) phrases with the meaning each phrase grounds to. :meth:`Grammar.parse` reads
the words left to right, skipping determiners where a slot allows them, and either returns ``role -> meaning`` or
raises a ``ValueError`` of one fixed shape, shared by every task and by the instruction router
(``vlarm.tasks.routing``)::

    cannot ground the instruction. Understood: <role 'meaning', ...>. Not understood: <problem>; <problem>.

Each problem names the word (echoed short) and the words the slot knows, so a user can fix the sentence. The
grammar is CLIPort's language templates (Shridhar et al., CoRL 2021, Appendix A) with the usual paraphrases: an
optional 'please', several verbs and prepositions, articles or none, singular or plural nouns, any case, extra
whitespace and trailing punctuation.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vlarm.tasks.attributes import ALL_COLORS, COLORS

PUNCTUATION = ".,;:!?\"'`()"
DETERMINERS: tuple[str, ...] = ("the", "a", "an", "all", "of")
DID_YOU_MEAN = "did you mean"   # how an error suggests the known phrase spelt closest to an unknown word
#: Every word of every grammar built so far (each :class:`Grammar` adds its own): such a word is never "corrected".
KNOWN_WORDS: set[str] = set()
ECHO = 100   # at most this many characters of the user's text are echoed in an error
#: Colour words of every grammar (the palette's names and 'grey'), and the hint shown for an unknown one.
COLOR_WORDS: dict[str, str] = {**{c: c for c in COLORS}, "grey": "gray"}
COLOR_HINT = f"known colours: {', '.join(ALL_COLORS)}"
#: The block nouns of every grammar with blocks: singular, plural and the synonym 'cube'.
BLOCK_WORDS: dict[str, str] = {w: "block" for w in ("block", "blocks", "cube", "cubes")}


def echo(text: str, limit: int = ECHO) -> str:
    """``text`` quoted, cut to ``limit`` characters with an ellipsis."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "\u2026")


def words_of(instruction: str) -> list[str]:
    """Lower-case words with surrounding punctuation removed and a leading/trailing 'please' dropped."""
    words = [w.strip(PUNCTUATION) for w in instruction.lower().split()]
    words = [w for w in words if w]
    if words and words[0] == "please":
        words = words[1:]
    if words and words[-1] == "please":
        words = words[:-1]
    return words


def phrases(*items: str, meaning: str | None = None) -> dict[str, str]:
    """A vocabulary in which every phrase means ``meaning`` (default: the phrase itself)."""
    return {item: (item if meaning is None else meaning) for item in items}


@dataclass(frozen=True)
class Slot:
    """One position of a grammar.

    Attributes:
        role: what the slot fills, e.g. ``"pick colour"``; the key of :meth:`Grammar.parse`'s result.
        vocabulary: phrase (one or more words, lower case) -> meaning. A meaning of ``""`` marks a structural word
            (a verb, a preposition) that is checked but not reported.
        hint: what to tell a user who typed something else, e.g. ``"known colours: red, green"``.
        determiners: skip determiners ('the', 'a', 'all', ...) before this slot.
        optional: the slot may be left out (nothing is reported when it is).
        structural: a wrong word here means the sentence has the wrong form (verbs, prepositions), so the error
            also shows the expected form.
    """

    role: str
    vocabulary: Mapping[str, str]
    hint: str
    determiners: bool = False
    optional: bool = False
    structural: bool = False

    def suggest(self, word: str) -> str | None:
        """The phrase of the vocabulary closest in spelling to ``word`` (difflib ratio >= 0.75 against each whole
        phrase and each phrase's first word, so 'ruber' finds 'rubber duck'; else one with two neighbouring letters
        swapped, so 'rde' finds 'red'), or None: the "did you mean" of an error."""
        if word in KNOWN_WORDS:   # a word some grammar knows is not a misspelling ('blocks' is not 'clocks')
            return None
        candidates = {phrase: phrase for phrase in self.vocabulary}
        for phrase in sorted(self.vocabulary, key=len):   # a first word stands for its shortest phrase
            candidates.setdefault(phrase.split(" ")[0], phrase)
        close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
        if not close:   # two swapped neighbouring letters ('rde' for 'red'): a ratio of only 0.67 on short words
            close = [c for c in sorted(candidates) if _transposed(word, c)]
        return candidates[close[0]] if close else None

    def match(self, words: list[str], i: int) -> tuple[str, int] | None:
        """Longest phrase of the vocabulary at ``words[i:]``: ``(meaning, words used)``, or None."""
        best = None
        for phrase, meaning in self.vocabulary.items():
            n = phrase.count(" ") + 1
            if words[i:i + n] == phrase.split(" ") and (best is None or n > best[1]):
                best = (meaning, n)
        return best


def _transposed(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with two neighbouring letters swapped (Damerau's transposition)."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


@dataclass(frozen=True)
class Grammar:
    """A task family's instruction grammar (see the module docstring).

    Attributes:
        form: the canonical sentence shown in errors, e.g. ``"'put the <colour> blocks in a <colour> bowl'"``.
        slots: the slots, in sentence order.
        report_order: roles listed first under "Understood" (the rest follow in slot order).
        distinct: pairs of roles whose meanings must differ (e.g. pick and place colour).
        determiners: the words :class:`Slot` ``determiners=True`` skips.
    """

    form: str
    slots: tuple[Slot, ...]
    report_order: tuple[str, ...] = ()
    distinct: tuple[tuple[str, str], ...] = ()
    determiners: tuple[str, ...] = field(default=DETERMINERS)

    def __post_init__(self):
        KNOWN_WORDS.update(self.determiners)
        for slot in self.slots:
            KNOWN_WORDS.update(word for phrase in slot.vocabulary for word in phrase.split(" "))

    def _first_words(self) -> set[str]:
        words = set(self.determiners)
        for slot in self.slots:
            words |= {phrase.split(" ")[0] for phrase in slot.vocabulary}
        return words

    def parse(self, instruction: str) -> dict[str, str]:
        """Ground ``instruction``: ``role -> meaning`` for every slot with a non-structural meaning.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` naming each word
                that was not understood and what the slot knows (echoing at most ~100 characters of the input).
        """
        words = words_of(instruction)
        if not words:
            raise ValueError(f"cannot ground the instruction. Understood: nothing. Not understood: an empty "
                             f"instruction (expected the form {self.form}).")
        known = self._first_words()
        found: dict[str, str] = {}
        problems: list[str] = []
        structural = False   # a missing, misplaced or extra word (not just an unknown attribute or noun)
        i = 0
        for slot in self.slots:
            if slot.determiners:
                while i < len(words) and words[i] in self.determiners and slot.match(words, i) is None:
                    i += 1
            hit = slot.match(words, i) if i < len(words) else None
            if hit is not None:
                found[slot.role] = hit[0]
                i += hit[1]
                continue
            word = words[i] if i < len(words) else None
            if slot.optional:
                continue
            later_hit = i + 1 < len(words) and slot.match(words, i + 1)
            if word is None or word in known:   # the word belongs to another slot: this one was left out
                problems.append(f"no {slot.role} ({slot.hint})")
                structural = True
            elif later_hit:   # an unknown word before a known one
                problems.append(f"{echo(word, 40)} before '{words[i + 1]}' (not a word this task knows)")
                structural = True
                found[slot.role] = later_hit[0]
                i += 1 + later_hit[1]
            else:
                guess = slot.suggest(word)
                problems.append(f"{slot.role} {echo(word, 40)} ("
                                + (f"{DID_YOU_MEAN} '{guess}'? " if guess else "") + f"{slot.hint})")
                structural |= slot.structural
                i += 1
        if i < len(words):
            problems.append(f"extra words {echo(' '.join(words[i:]), 60)} after the {self.slots[-1].role}")
            structural = True
        for a, b in self.distinct:
            if found.get(a) and found.get(a) == found.get(b):
                problems.append(f"{a} and {b} are both '{found[a]}' (they must differ)")
        if problems:
            order = [r for r in self.report_order] + [s.role for s in self.slots if s.role not in self.report_order]
            understood = [f"{role} '{found[role]}'" for role in order if found.get(role)]
            if not understood:   # keep only the spelling suggestions: they say which word to fix
                problems = [p for p in problems if DID_YOU_MEAN in p] + [
                    f"{echo(instruction.strip())} (expected the form {self.form})"]
            elif structural:
                problems.append(f"expected the form {self.form}")
            raise ValueError("cannot ground the instruction. Understood: " + (", ".join(understood) or "nothing")
                             + ". Not understood: " + "; ".join(problems) + ".")
        return {role: meaning for role, meaning in found.items() if meaning}


def closeness(message: str) -> tuple[bool, int, bool, int]:
    """How close a grammar's 'cannot ground' message came: (understood anything or suggested a spelling, minus the
    problems listed, suggested a spelling, roles understood); larger is closer. A spelling suggestion counts as
    progress: the word was this grammar's, misspelt."""
    understood, _, problems = message.partition("Understood: ")[2].partition(". Not understood: ")
    n_understood = 0 if understood.startswith("nothing") else understood.count("'") // 2
    items = [item for item in problems.split("; ") if not item.startswith("expected the form")]
    suggested = any(DID_YOU_MEAN in item for item in items)
    n_problems = sum(1 for item in items if "(expected the form" not in item or not suggested)
    return n_understood > 0 or suggested, -n_problems, suggested, n_understood


def parse_any(grammars: Sequence[Grammar], instruction: str) -> tuple[int, dict[str, str]]:
    """Ground ``instruction`` with the first of ``grammars`` that accepts it (a union of grammars).

    Returns:
        ``(index of the grammar, its role -> meaning result)``.

    Raises:
        ValueError: the shared "cannot ground the instruction. Understood: ... Not understood: ..." error of the
            grammar that came closest: one that understood something, with the fewest problems, then the most
            roles understood (the earliest on a tie), so the user sees the reading nearest to what they typed.
    """
    errors: list[ValueError] = []
    for index, grammar in enumerate(grammars):
        try:
            return index, grammar.parse(instruction)
        except ValueError as err:
            errors.append(err)
    raise max(errors, key=lambda e: closeness(str(e)))

"""``InstructionText``: a gymnasium ``Text`` space whose values survive ``AsyncVectorEnv``'s shared memory.

Gymnasium 1.x (checked on 1.4) reads an ``AsyncVectorEnv``'s shared observation buffer once, when the vector env is
built, and returns that same object after every ``reset``/``step``. For ``Box`` spaces the object is a numpy view, so
it follows the workers' writes; for ``Text`` it is a tuple of strings decoded from the still-empty buffer, so every
slot's instruction reads as ``max_length`` copies of the first charset character ("aaaa...") forever.

``InstructionText`` is a ``Text`` whose shared-memory read returns :class:`SharedTexts`, a live view that decodes the
buffer each time it is read; ``AsyncVectorEnv`` deep-copies its observations before returning them (``copy=True``,
its default), and a deep copy of the view is a plain tuple of strings, the same thing ``SyncVectorEnv`` returns.
With ``copy=False`` the caller gets the live view itself, like the ``Box`` arrays it then gets (views into the
buffer that the next step overwrites). Creating and writing the buffer are gymnasium's own ``Text`` handlers (one
``int32`` character index per position, padded with ``len(charset)``), which the subclass inherits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory


class InstructionText(spaces.Text):
    """A language instruction (``str`` of at most ``max_length`` characters of ``charset``).

    Same contract as :class:`gymnasium.spaces.Text`; the only difference is how a vector env's shared memory is
    read back (module docstring), so instructions reach ``AsyncVectorEnv(shared_memory=True)`` callers intact.
    """


class SharedTexts(Sequence):
    """Live read-only view of the ``n`` strings in a shared ``int32`` buffer of ``n * max_length`` indices.

    Args:
        space: the :class:`InstructionText` the strings belong to (its charset decodes the indices).
        shared_memory: a ``multiprocessing`` ``Array('i', n * space.max_length)``.
        n: number of strings (vector env slots).

    Indexing decodes the slot's current contents; ``copy.deepcopy`` (what ``AsyncVectorEnv`` returns by default) and
    ``tuple(view)`` give a plain ``tuple[str, ...]``.
    """

    def __init__(self, space: InstructionText, shared_memory, n: int):
        self._space = space
        self._codes = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape(n, space.max_length)

    def __len__(self) -> int:
        return self._codes.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        chars, size = self._space.character_list, len(self._space.character_set)
        return "".join(chars[c] for c in self._codes[index] if c < size)

    def __deepcopy__(self, memo) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other) -> bool:
        return isinstance(other, (tuple, list, SharedTexts)) and tuple(self) == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(InstructionText)
def _read_instruction_memory(space: InstructionText, shared_memory, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)


__all__ = ["InstructionText", "SharedTexts"]

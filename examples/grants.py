"""A prelude: trusted code run unrestricted before the untrusted script.

    sandbox-run --prelude examples/grants.py examples/bot.py

The script gets the names in __all__ and nothing else: it can call
``scores()`` and use ``board``, but it cannot reach ``_results`` (the
closure's state) nor ``board._moves``.
"""

_results = {"alice": 3, "bob": 5}


def scores():
    """A copy of the current scores."""
    return dict(_results)


class Board:
    def __init__(self):
        self._moves = []

    def play(self, move):
        """Records a move; returns how many were played."""
        self._moves.append(str(move))
        return len(self._moves)


board = Board()

__all__ = ["board", "scores"]

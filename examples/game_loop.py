"""A game server calling 100 bot scripts every tick, some of them hostile.

Each bot is untrusted Python in its own persistent sandbox, taken from a
warm pool.  Every tick the server calls each bot's ``on_tick(state)`` with
the game state (plain data) and a per-call budget of CPU and wall time; a
bot that overruns loses its move for that tick, and its sandbox goes on.  A
bot that crashes, returns garbage or tries to escape gets an error, not the
server.  The bots call back into the game through one capability,
``look(x, y)``, limited in rate.

    .venv/bin/python examples/game_loop.py [--bots 100] [--ticks 10]
"""

from __future__ import annotations

import argparse
import random
import time

import trio

import sandbox_run
from sandbox_run import CallDeadlineExceeded, Capability, GuestError, SandboxClosed

SIZE = 20

# Well-behaved bots: walk toward the nearest coin they know of.
GREEDY = """
def on_tick(state):
    x, y = state["me"]
    coins = state["coins"]
    if not coins:
        return "stay"
    cx, cy = min(coins, key=lambda c: abs(c[0] - x) + abs(c[1] - y))
    if cx != x:
        return "east" if cx > x else "west"
    if cy != y:
        return "south" if cy > y else "north"
    return "stay"
"""

# Asks the game (a capability) what is next to it; remembers its own state.
WANDERER = """
import random
steps = {"north": (0, -1), "south": (0, 1), "east": (1, 0), "west": (-1, 0)}
seen = {"ticks": 0}
def on_tick(state):
    seen["ticks"] += 1
    x, y = state["me"]
    for move, (dx, dy) in steps.items():
        if look(x + dx, y + dy) == "coin":
            return move
    return random.choice(list(steps))
"""

# Misbehaving bots.
HOSTILE = {
    "spinner": "def on_tick(state):\n    while True:\n        pass\n",
    "sleeper": "import time\ndef on_tick(state):\n    time.sleep(10)\n",
    "crasher": "def on_tick(state):\n    return 1 / 0\n",
    "garbage": "def on_tick(state):\n    return object()\n",
    "escaper": "def on_tick(state):\n    return open('/etc/shadow').read()\n",
    "hog": "def on_tick(state):\n    return len(bytearray(1 << 34))\n",
    "introspector": "def on_tick(state):\n    return str(look.__closure__)\n",
}

MOVES = {"north": (0, -1), "south": (0, 1), "east": (1, 0), "west": (-1, 0), "stay": (0, 0)}


class Game:
    def __init__(self, bots: int, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.pos = {i: (rng.randrange(SIZE), rng.randrange(SIZE)) for i in range(bots)}
        self.score = dict.fromkeys(range(bots), 0)
        self.coins = {(rng.randrange(SIZE), rng.randrange(SIZE)) for _ in range(bots)}
        self.trouble: dict[int, list[str]] = {i: [] for i in range(bots)}

    def state_for(self, bot: int) -> dict[str, object]:
        x, y = self.pos[bot]
        near = [list(c) for c in self.coins if abs(c[0] - x) + abs(c[1] - y) <= 6]
        return {"me": [x, y], "coins": near, "size": SIZE}

    def look(self, x: int, y: int) -> str:
        return "coin" if (x, y) in self.coins else "empty"

    def apply(self, bot: int, move: object) -> None:
        dx, dy = MOVES.get(move, (0, 0)) if isinstance(move, str) else (0, 0)
        x, y = self.pos[bot]
        x, y = min(SIZE - 1, max(0, x + dx)), min(SIZE - 1, max(0, y + dy))
        self.pos[bot] = (x, y)
        if (x, y) in self.coins:
            self.coins.discard((x, y))
            self.score[bot] += 1
            self.coins.add((self.rng.randrange(SIZE), self.rng.randrange(SIZE)))


def bot_source(i: int, hostile_bots: bool = True) -> tuple[str, str]:
    hostile = list(HOSTILE)
    if hostile_bots and i % 10 == 9:  # one bot in ten misbehaves
        kind = hostile[(i // 10) % len(hostile)]
        return kind, HOSTILE[kind]
    return ("greedy", GREEDY) if i % 2 else ("wanderer", WANDERER)


async def play(bots: int, ticks: int, seed: int, hostile: bool = True) -> dict[str, object]:
    game = Game(bots, seed)
    policy = sandbox_run.Policy(memory=256 << 20, call_cpu_time=0.05, call_timeout=0.2)
    kinds: dict[int, str] = {}
    tick_times: list[float] = []
    async with sandbox_run.Pool(policy, size=min(bots, 16)) as pool:
        sandboxes: dict[int, sandbox_run.Sandbox] = {}
        try:
            for i in range(bots):
                kind, source = bot_source(i, hostile)
                kinds[i] = kind
                look = Capability(game.look, rate=200)
                sb = await pool.take(capabilities={"look": look})
                sandboxes[i] = sb
                try:
                    await sb.exec(source)
                except GuestError as e:
                    game.trouble[i].append(f"load: {e.type}")
            await pool.stop()  # every bot has its sandbox: no more guests to start

            async def turn(i: int, sb: sandbox_run.Sandbox) -> None:
                try:
                    move = await sb.call("on_tick", game.state_for(i))
                except CallDeadlineExceeded as e:
                    game.trouble[i].append(f"over its {e.deadline} budget")
                    return
                except GuestError as e:
                    game.trouble[i].append(e.type)
                    return
                except SandboxClosed as e:
                    game.trouble[i].append(f"ended: {e.result.outcome.value}")  # type: ignore[attr-defined]
                    return
                game.apply(i, move)

            for _ in range(ticks):
                start = time.perf_counter()
                async with trio.open_nursery() as n:
                    for i, sb in sandboxes.items():
                        if not sb.closed:
                            n.start_soon(turn, i, sb)
                tick_times.append(time.perf_counter() - start)
        finally:
            for sb in sandboxes.values():
                await sb.aclose()
    return {"kinds": kinds, "score": game.score, "trouble": game.trouble, "ticks": tick_times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bots", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ns = ap.parse_args()
    out = trio.run(play, ns.bots, ns.ticks, ns.seed)
    kinds, score, trouble = out["kinds"], out["score"], out["trouble"]
    ticks = out["ticks"]
    assert isinstance(kinds, dict) and isinstance(score, dict) and isinstance(trouble, dict)
    assert isinstance(ticks, list)
    by_kind: dict[str, list[int]] = {}
    for i, kind in kinds.items():
        by_kind.setdefault(kind, []).append(score[i])
    print(f"{ns.bots} bots, {ns.ticks} ticks")
    for kind, scores in sorted(by_kind.items()):
        print(f"  {kind:12s} {len(scores):3d} bots, {sum(scores):4d} coins")
    for i, problems in sorted(trouble.items()):
        if problems:
            print(f"  bot {i} ({kinds[i]}): {problems[0]} (x{len(problems)})")
    median = sorted(ticks)[len(ticks) // 2]
    print(f"tick time: median {median * 1000:.1f} ms, max {max(ticks) * 1000:.1f} ms")


if __name__ == "__main__":
    main()

"""The positive suite: ordinary programs run unchanged in the restricted mode.

Each program runs restricted (directly in PyPy and in the sandbox, the
``runner`` fixture) and unrestricted in the same PyPy; the outputs must be
identical, and each program also checks its own results with ``assert`` and
prints a final ``ok`` (so an empty or truncated run cannot pass).
"""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest
from guest_runner import Runner, run_pypy

import sandbox_run

PROGRAMS: dict[str, str] = {}

PROGRAMS["classes"] = """
import functools

class Stack:
    '''A stack with the usual dunders.'''
    kind = 'stack'
    __slots__ = ('_items', '__weakref__')

    def __init__(self, *items):
        self._items = list(items)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self._items))})"

    def __eq__(self, other):
        return isinstance(other, Stack) and self._items == other._items

    def __hash__(self):
        return hash(tuple(self._items))

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    def __getitem__(self, i):
        return self._items[i]

    def __contains__(self, x):
        return x in self._items

    def push(self, x):
        self._items.append(x)
        return self

@functools.total_ordering
class Version:
    def __init__(self, text):
        self.__parts = tuple(int(p) for p in text.split('.'))
        self._text = text

    @property
    def major(self):
        return self.__parts[0]

    @major.setter
    def major(self, value):
        self.__parts = (value,) + self.__parts[1:]

    def __lt__(self, other):
        return self.__parts < other.__parts

    def __eq__(self, other):
        return self.__parts == other.__parts

    @classmethod
    def parse(cls, text):
        return cls(text)

    @staticmethod
    def valid(text):
        return all(p.isdigit() for p in text.split('.'))

class Named(Stack):
    __slots__ = ('name',)

    def __init__(self, name, *items):
        super().__init__(*items)
        self.name = name

    def __repr__(self):
        return self.name + ':' + super().__repr__()

class Frozen:
    def __init__(self, x):
        object.__setattr__(self, 'x', x)

    def __setattr__(self, name, value):
        raise AttributeError('frozen')

class Recording:
    def __init__(self):
        super().__setattr__('log', [])

    def __setattr__(self, name, value):
        self.log.append(name)
        super().__setattr__(name, value)

    def __getattr__(self, name):
        return 'default-' + name

class Callable:
    def __call__(self, x):
        return x * 2

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

s = Stack(1, 2).push(3)
print(s, len(s), list(s), s[0], 2 in s, s == Stack(1, 2, 3), hash(s) == hash(Stack(1, 2, 3)))
v = Version.parse('1.10.2')
print(v > Version('1.9'), v.major, Version.valid('1.x'), sorted([Version('2.0'), v])[0]._text)
v.major = 3
print(v.major, v._Version__parts)
n = Named('n', 'a')
print(repr(n), n.name, isinstance(n, Stack))
f = Frozen(5)
try:
    f.x = 6
except AttributeError as e:
    print('frozen:', e, f.x)
r = Recording()
r.a = 1
r._b = 2
print(r.log, r.a, r._b, r.missing)
with Callable() as c:
    print(c(21))
print(getattr(s, '_items'), hasattr(s, '_items'), vars(r)['a'])
setattr(r, '_c', 3)
delattr(r, '_c')
print(Stack.__name__, Stack.__doc__, Stack.kind, type(s).__mro__[-1].__name__)
print('ok')
"""

PROGRAMS["data"] = """
import dataclasses, enum, typing, collections
from typing import Dict, Generic, List, NamedTuple, Optional, TypeVar

@dataclasses.dataclass(order=True)
class Point:
    x: int
    y: int = 0
    tags: List[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self._len2 = self.x ** 2 + self.y ** 2

@dataclasses.dataclass(frozen=True)
class Pair:
    a: int
    b: int

class Color(enum.Enum):
    RED = 1
    GREEN = enum.auto()

    @property
    def lower(self):
        return self.name.lower()

class Flags(enum.IntFlag):
    A = 1
    B = 2

class Row(NamedTuple):
    id: int
    name: Optional[str] = None

T = TypeVar('T')

class Box(Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item

Legacy = collections.namedtuple('Legacy', 'a b')

p = Point(3, 4, ['t'])
print(p, dataclasses.asdict(p), p._len2, p < Point(4), dataclasses.replace(p, y=0))
pair = Pair(1, 2)
try:
    pair.a = 5
except dataclasses.FrozenInstanceError as e:
    print('frozen', type(e).__name__)
print(Color.RED, Color(2), Color.GREEN.value, Color.RED._value_, [c.lower for c in Color])
print(Flags.A | Flags.B, Color['RED'].name)
row = Row(1)
print(row, row._asdict(), row._replace(name='x'), Row._fields, Row._make([2, 'y']))
print(Box[int](5).item, Legacy(1, 2)._asdict(), Legacy._fields)
d: Dict[str, int] = collections.Counter('banana')
print(sorted(d.items()), typing.get_origin(List[int]) is list)
print('ok')
"""

PROGRAMS["exceptions"] = """
import sys, traceback

class AppError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self._detail = message.upper()

class NotFound(AppError):
    pass

def lookup(key):
    try:
        return {'a': 1}[key]
    except KeyError as e:
        raise NotFound(404, f'no {key}') from e

try:
    lookup('b')
except AppError as e:
    print(type(e).__name__, e.code, e, e._detail, e.args)
    print(traceback.format_exc().splitlines()[-1])
    traceback.print_exc(file=sys.stdout)
finally:
    print('finally')

try:
    raise ValueError('plain')
except ValueError:
    info = sys.exc_info()
    print(info[0].__name__, info[1], ''.join(traceback.format_exception_only(info[0], info[1])))

def gen():
    try:
        yield 1
    finally:
        print('gen closed')

g = gen()
next(g)
g.close()
print('ok')
"""

PROGRAMS["functional"] = """
import functools, itertools, operator, collections, heapq, bisect

@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def logged(fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper

@logged
def area(w, h):
    '''Area of a rectangle.'''
    return w * h

@functools.singledispatch
def describe(x):
    return 'thing'

@describe.register
def _(x: int):
    return 'int'

class Lazy:
    @functools.cached_property
    def value(self):
        return 42

print(fib(80), fib.cache_info().hits > 0, area(3, 4), area.__name__, area.__doc__)
print(describe(1), describe('x'), Lazy().value, functools.reduce(operator.mul, range(1, 6)))
print(list(itertools.accumulate([1, 2, 3])), [k for k, _ in itertools.groupby('aabbc')])
print(len(list(itertools.permutations(range(4)))), list(itertools.chain([1], (2,), {3})))
print(list(map(operator.itemgetter(1), [(1, 2), (3, 4)])), operator.attrgetter('real')(5))
print(sorted([(2, 'b'), (1, 'a')], key=operator.itemgetter(0)))
dq = collections.deque([1, 2, 3], maxlen=3)
dq.append(4)
dd = collections.defaultdict(list)
dd['x'].append(1)
print(dq, dict(dd), collections.ChainMap({'a': 1}, {'b': 2})['b'])
h = [5, 1, 4]
heapq.heapify(h)
print(heapq.heappop(h), bisect.bisect([1, 3, 5], 4))
print({x: x * x for x in range(4)}, {x % 3 for x in range(10)}, [y for x in [[1], [2]] for y in x])
squares = (x * x for x in range(5))
print(sum(squares), any(x > 3 for x in range(5)), (lambda *a, **k: (a, k))(1, b=2))
print('ok')
"""

PROGRAMS["text"] = """
import json, re, string, textwrap, base64, hashlib, decimal, fractions, math, statistics
import datetime, random, pprint, io, csv

class Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, set):
            return sorted(o)
        return super().default(o)

name, width = 'world', 12
print(f'{name!r:>{width}}|{3.14159:.2f}|{width=}|{name.upper()}')
print('{0} {name} {0}'.format('x', name='y'), '{} {}'.format(1, 2))
print('{:08.3f}'.format(math.pi), '{x[0]}'.format_map({'x': [7]}), '%s-%d' % ('a', 1))
print(string.Template('$who likes $what').substitute(who='tim', what='pie'))
print(json.dumps({'s': {3, 1}}, cls=Encoder), json.loads('[1, 2.5, null]'))
print(re.findall(r'(\\w)(\\d)', 'a1 b2'), re.sub(r'\\s+', ' ', 'a   b'), re.compile('x').pattern)
print(textwrap.fill('word ' * 10, width=20))
print(base64.b64encode(b'hi'), hashlib.sha256(b'x').hexdigest()[:8])
print(decimal.Decimal('1.1') + decimal.Decimal('2.2'), fractions.Fraction(1, 3) * 3)
print(statistics.mean([1, 2, 3, 4]), math.isqrt(99), datetime.date(2024, 2, 29).isoformat())
print(datetime.datetime(2020, 1, 1) + datetime.timedelta(days=1))
rng = random.Random(7)
print(rng.randint(1, 100), random.Random(7).random() == random.Random(7).random())
buf = io.StringIO()
pprint.pprint({'b': [1, 2], 'a': {'x': 1}}, stream=buf)
print(buf.getvalue().strip())
out = io.StringIO()
w = csv.writer(out)
w.writerow(['a', 'b,c'])
print(out.getvalue().strip(), list(csv.reader(io.StringIO('1,2\\n'))))
print('ok')
"""

PROGRAMS["files"] = """
import os, pathlib, tempfile, shutil, glob, contextlib, io, sys

with tempfile.TemporaryDirectory() as d:
    p = pathlib.Path(d) / 'sub' / 'f.txt'
    p.parent.mkdir(parents=True)
    p.write_text('hello')
    print(p.read_text(), p.suffix, p.exists(), sorted(os.listdir(d)))
    shutil.copy(p, pathlib.Path(d) / 'g.txt')
    print(sorted(os.path.basename(x) for x in glob.glob(os.path.join(d, '*'))))
    for root, dirs, files in os.walk(d):
        pass
    with open(os.path.join(d, 'h.txt'), 'w') as f:
        f.write('x')
    print(os.stat(os.path.join(d, 'h.txt')).st_size, os.path.getsize(p))

buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    print('captured')
print(repr(buf.getvalue()))
old = sys.stdout
sys.stdout = io.StringIO()
print('hidden')
hidden, sys.stdout = sys.stdout.getvalue(), old
print(repr(hidden))
print('to stderr', file=sys.stderr)
with contextlib.suppress(KeyError):
    {}['x']

@contextlib.contextmanager
def tag(name):
    print('<' + name + '>')
    yield name
    print('</' + name + '>')

with contextlib.ExitStack() as stack:
    stack.enter_context(tag('a'))
print(sys.argv[0].endswith('main.py'), sys.version_info >= (3, 9), sys.maxsize > 0)
print('ok')
"""

PROGRAMS["dynamic"] = """
import sys

class Config:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self._secret = 'mine'

    def __repr__(self):
        return 'Config(%s)' % ', '.join('%s=%r' % kv for kv in sorted(vars(self).items()))

c = Config(a=1, b=2)
print(c, getattr(c, '_secret'), c.__dict__['a'], sorted(vars(c)))
print(eval('c.a + c.b'), eval('x * 2', {'x': 21}))
ns = {}
exec('def triple(x):\\n    return 3 * x\\nvalue = triple(5)', ns)
print(ns['value'], ns['triple'](2))
code = compile('y = 6 * 7', 'calc', 'exec')
scope = {}
exec(code, scope)
print(scope['y'], 'c' in globals(), sorted(k for k in locals() if k == 'ns'))

registry = {}

class Meta(type):
    def __new__(mcs, name, bases, ns):
        cls = super().__new__(mcs, name, bases, ns)
        registry[name] = cls
        return cls

class Base(metaclass=Meta):
    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._registered = True

class Plugin(Base):
    pass

def register(cls):
    cls.tag = 'decorated'
    return cls

@register
class Tagged:
    pass

print(sorted(registry), Plugin._registered, Tagged.tag)
import abc

class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self):
        ...

class Square(Shape):
    def __init__(self, s):
        self._s = s
    def area(self):
        return self._s ** 2

try:
    Shape()
except TypeError:
    print('abstract')
print(Square(3).area(), isinstance(Square(1), Shape), type(sys).__name__ != '')
def coro():
    x = yield 1
    yield x * 2
c2 = coro()
print(next(c2), c2.send(21))

async def add(a, b):
    return a + b

def run(aw):
    try:
        aw.send(None)
    except StopIteration as stop:
        return stop.value

print(run(add(1, 2)))
print('ok')
"""

PROGRAMS["submodules"] = """
# Submodules a package imports for itself are the package's attributes, as
# usual, even when the package was imported first.
import urllib.request
print(urllib.error.URLError.__name__, urllib.parse.quote('a b'))
import json
print(json.decoder.JSONDecodeError.__name__)
print('ok')
"""


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_runs_unchanged(name: str, runner: Runner, tmp_path: pathlib.Path) -> None:
    code = PROGRAMS[name]
    restricted = runner(code)
    plain = run_pypy(code, tmp=tmp_path / "plain", policy=sandbox_run.Policy(restricted=False))
    assert plain.status == 0, plain.stderr
    assert restricted.status == 0, restricted.stderr
    assert _paths(restricted.stdout) == _paths(plain.stdout)
    assert restricted.stdout.endswith("ok\n")
    assert _paths(restricted.stderr) == _paths(plain.stderr)


def _paths(text: str) -> str:
    """Tracebacks name the script where it ran: /sandbox, or a test directory."""
    return re.sub(r'File "[^"]*/main\.py"', 'File "main.py"', text)


@pytest.fixture(autouse=True)
def _plain_dir(tmp_path: pathlib.Path) -> None:
    (tmp_path / "plain").mkdir()


def test_uncaught_exception_traceback_is_the_usual_one(runner: Runner) -> None:
    code = """
    class Oops(Exception):
        pass

    def inner(self_like):
        return self_like._missing

    class Thing:
        def go(self):
            return inner(self)

    try:
        Thing().go()
    except AttributeError as e:
        raise Oops('wrapped') from e
    """
    out = runner(code)
    assert out.status == 1
    assert _paths(out.stderr) == textwrap.dedent("""\
        Traceback (most recent call last):
          File "main.py", line 13, in <module>
            Thing().go()
          File "main.py", line 10, in go
            return inner(self)
          File "main.py", line 6, in inner
            return self_like._missing
        AttributeError: 'Thing' object has no attribute '_missing'

        The above exception was the direct cause of the following exception:

        Traceback (most recent call last):
          File "main.py", line 15, in <module>
            raise Oops('wrapped') from e
        Oops: wrapped
        """)


def test_the_cpu_workload_gives_the_same_checksums(runner: Runner, tmp_path: pathlib.Path) -> None:
    workload = pathlib.Path(__file__).parents[2] / "scripts" / "workloads" / "cpu_bound.py"
    code = workload.read_text().replace('if __name__ == "__main__":\n    main()', "")
    code += "\nimport sys\nsys.argv[1:] = ['0.05']\nmain()\n"
    restricted = runner(code)
    plain = run_pypy(code, tmp=tmp_path / "plain", policy=sandbox_run.Policy(restricted=False))
    assert restricted.status == 0, restricted.stderr
    assert restricted.lines[0] == plain.lines[0]
    assert restricted.lines[0].startswith("checksums ")


def test_input_works_when_stdin_is_given(runner: Runner) -> None:
    out = runner("name = input('who? ')\nprint('hello', name)\n", stdin=b"ann\n")
    assert out.stdout == "who? hello ann\n"


def test_user_modules_and_packages(runner: Runner) -> None:
    out = runner(
        """
        import shapes
        from shapes.square import Square
        from shapes import util as u
        print(Square(3).area(), u.double(4), shapes.NAME, Square(2)._side)
        """,
        files={
            "shapes/__init__.py": "NAME = 'shapes'\n",
            "shapes/util.py": "def double(x):\n    return 2 * x\n",
            "shapes/square.py": (
                "from .util import double\n"
                "from . import util\n"
                "class Square:\n"
                "    def __init__(self, side):\n"
                "        self._side = side\n"
                "    def area(self):\n"
                "        return util.double(self._side) * self._side // double(1)\n"
            ),
        },
    )
    assert out.lines == ["9 8 shapes 2"], out.stderr


def test_threads_when_the_policy_allows_them(runner: Runner) -> None:
    code = """
    import threading, queue
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
    q = queue.Queue()
    ts = [threading.Thread(target=q.put, args=(i,)) for i in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(sorted(q.get() for _ in range(4)))
    try:
        threading.settrace
    except AttributeError as e:
        print(type(e).__name__ + ':', e)
    """
    out = runner(code, policy=sandbox_run.Policy(allow_threads=True))
    assert out.lines == [
        "[0, 1, 2, 3]",
        "SandboxAttributeError: sandbox policy blocks threading.settrace: trace functions "
        "receive frames",
    ], out.stderr


def test_policy_adds_and_removes_modules(runner: Runner) -> None:
    code = """
    import asyncio
    async def main():
        await asyncio.sleep(0)
        return 'async ok'
    print(asyncio.run(main()))
    try:
        import json
    except ImportError as e:
        print(type(e).__name__ + ':', e)
    """
    policy = sandbox_run.Policy(add_modules=("asyncio",), remove_modules=("json",))
    out = runner(code, policy=policy)
    assert out.lines == [
        "async ok",
        "SandboxImportError: sandbox policy blocks import of module 'json': not on the allow-list",
    ], out.stderr

# ruff: noqa: RUF001 -- fullwidth letters are the point of the NFKC tests
"""The escape corpus: one test per known technique for leaving a Python
sandbox, against the restricted mode on PyPy 3.9.

Each script runs in the real PyPy through the real bootstrap, directly and in
the real sandbox (the ``runner`` fixture), with the blog prelude granting
``get_posts``, ``api``, ``Vector`` and ``LIMITS``.  Each attempt prints how it
ended; the test asserts the exact exception type and message.  An attempt
that succeeds prints ESCAPED and fails the test; the prelude's password
appearing anywhere in the output fails every test (conftest).
"""

from __future__ import annotations

from guest_runner import PRELUDE, Runner

import sandbox_run

ATTEMPT = """
def attempt(label, fn):
    try:
        value = fn()
    except BaseException as e:
        print(label + ":", type(e).__name__ + ":", e)
    else:
        print(label + ": ESCAPED", type(value).__name__)
"""

BLOCKED = "SandboxAttributeError: sandbox policy blocks"


def check(runner: Runner, code: str, *expected: str, **kw: object) -> None:
    out = runner(ATTEMPT + code, prelude=PRELUDE, **kw)
    assert out.lines == list(expected), out.stderr
    assert out.status == 0, out.stderr


def refused(runner: Runner, code: str, last_line: str) -> None:
    """The whole script is refused before it runs (the script is
    /sandbox/main.py in the sandbox, somewhere in a temporary directory
    when run directly)."""
    out = runner("print('ran')\n" + code, prelude=PRELUDE)
    assert out.status == 1
    assert out.stdout == ""
    last = out.stderr.strip().splitlines()[-1]
    head, _, tail = last_line.partition("/sandbox/main.py")
    assert last.startswith(head) and last.endswith("main.py" + tail), last


# --- frames --------------------------------------------------------------------------


def test_generator_frame_walk_is_refused_at_compile_time(runner: Runner) -> None:
    refused(
        runner,
        "g = (x for x in [1])\nprint(g.gi_frame.f_back.f_globals)\n",
        "SandboxAttributeError: sandbox policy blocks attribute 'gi_frame' (frames and code "
        "objects) (/sandbox/main.py, line 3)",
    )


def test_generator_frame_through_getattr(runner: Runner) -> None:
    check(
        runner,
        "g = (x for x in [1])\nattempt('gi_frame', lambda: getattr(g, 'gi_frame'))\n",
        f"gi_frame: {BLOCKED} attribute 'gi_frame' (frames and code objects)",
    )


def test_generator_code_and_yieldfrom(runner: Runner) -> None:
    check(
        runner,
        """
def gen():
    yield from [1]
g = gen(); next(g)
attempt('gi_code', lambda: getattr(g, 'gi_code'))
attempt('gi_yieldfrom', lambda: getattr(g, 'gi_yieldfrom'))
""",
        f"gi_code: {BLOCKED} attribute 'gi_code' (frames and code objects)",
        f"gi_yieldfrom: {BLOCKED} attribute 'gi_yieldfrom' (frames and code objects)",
    )


def test_coroutine_frame(runner: Runner) -> None:
    check(
        runner,
        """
async def f():
    return 1
c = f()
attempt('cr_frame', lambda: getattr(c, 'cr_frame'))
attempt('cr_await', lambda: exec('c.cr_await'))
c.close()
""",
        f"cr_frame: {BLOCKED} attribute 'cr_frame' (frames and code objects)",
        f"cr_await: {BLOCKED} attribute 'cr_await' (frames and code objects) (<string>, line 1)",
    )


def test_async_generator_frame(runner: Runner) -> None:
    check(
        runner,
        """
async def agen():
    yield 1
a = agen()
attempt('ag_frame', lambda: getattr(a, 'ag_frame'))
attempt('ag_code', lambda: getattr(a, 'ag_code'))
""",
        f"ag_frame: {BLOCKED} attribute 'ag_frame' (frames and code objects)",
        f"ag_code: {BLOCKED} attribute 'ag_code' (frames and code objects)",
    )


def test_traceback_frame_from_exc_info(runner: Runner) -> None:
    check(
        runner,
        """
import sys
try:
    1 / 0
except ZeroDivisionError:
    tb = sys.exc_info()[2]
print(type(tb).__name__, tb.tb_lineno)
attempt('tb_frame', lambda: getattr(tb, 'tb_frame'))
attempt('format', lambda: '{0.tb_frame}'.format(tb))
""",
        "traceback 12",
        f"tb_frame: {BLOCKED} attribute 'tb_frame' (frames and code objects)",
        f"format: {BLOCKED} attribute 'tb_frame' (frames and code objects)",
    )


def test_exception_traceback_attribute(runner: Runner) -> None:
    check(
        runner,
        """
try:
    get_posts(limit='x')
except TypeError as e:
    err = e
attempt('__traceback__', lambda: getattr(err, '__traceback__'))
attempt('static', lambda: exec('err.__traceback__'))
""",
        f"__traceback__: {BLOCKED} attribute '__traceback__'",
        f"static: {BLOCKED} attribute '__traceback__' (<string>, line 1)",
    )


def test_exception_context_and_cause_chains(runner: Runner) -> None:
    check(
        runner,
        """
try:
    try:
        get_posts(limit='x')
    except TypeError as inner:
        raise ValueError('outer') from inner
except ValueError as e:
    err = e
attempt('__context__', lambda: getattr(err, '__context__'))
attempt('__cause__', lambda: getattr(err, '__cause__'))
attempt('format', lambda: '{0.__context__}'.format(err))
""",
        f"__context__: {BLOCKED} attribute '__context__'",
        f"__cause__: {BLOCKED} attribute '__cause__'",
        f"format: {BLOCKED} attribute '__context__'",
    )


def test_traceback_object_passed_to_exit(runner: Runner) -> None:
    check(
        runner,
        """
class Catch:
    def __enter__(self):
        return self
    def __exit__(self, t, v, tb):
        attempt('exit tb_frame', lambda: getattr(tb, 'tb_frame'))
        while tb.tb_next is not None:
            tb = tb.tb_next
        attempt('innermost', lambda: getattr(tb, 'tb_frame'))
        return True
with Catch():
    get_posts(limit='x')
""",
        f"exit tb_frame: {BLOCKED} attribute 'tb_frame' (frames and code objects)",
        f"innermost: {BLOCKED} attribute 'tb_frame' (frames and code objects)",
    )


def test_traceback_module_walkers(runner: Runner) -> None:
    check(
        runner,
        """
import sys, traceback
try:
    1 / 0
except ZeroDivisionError:
    tb = sys.exc_info()[2]
attempt('walk_tb', lambda: traceback.walk_tb)
attempt('walk_stack', lambda: traceback.walk_stack)
attempt('TracebackException', lambda: traceback.TracebackException)
summary = traceback.extract_tb(tb)
print(summary[0].lineno, summary[0].locals)
""",
        f"walk_tb: {BLOCKED} traceback.walk_tb: not in the sandbox's view of the module",
        f"walk_stack: {BLOCKED} traceback.walk_stack: not in the sandbox's view of the module",
        f"TracebackException: {BLOCKED} traceback.TracebackException: not in the sandbox's "
        "view of the module",
        "12 None",
    )


def test_sys_getframe_and_tracing(runner: Runner) -> None:
    check(
        runner,
        """
import sys
attempt('_getframe', lambda: getattr(sys, '_getframe'))
attempt('settrace', lambda: sys.settrace)
attempt('setprofile', lambda: sys.setprofile)
attempt('_current_frames', lambda: getattr(sys, '_current_frames'))
""",
        f"_getframe: {BLOCKED} private attribute '_getframe' of module sys",
        f"settrace: {BLOCKED} sys.settrace: not in the sandbox's view of the module",
        f"setprofile: {BLOCKED} sys.setprofile: not in the sandbox's view of the module",
        f"_current_frames: {BLOCKED} private attribute '_current_frames' of module sys",
    )


def test_frame_modules_cannot_be_imported(runner: Runner) -> None:
    check(
        runner,
        """
for name in ('inspect', 'gc', '__pypy__', '_continuation', 'signal', 'faulthandler'):
    attempt(name, lambda: __import__(name))
""",
        "inspect: SandboxImportError: sandbox policy blocks import of module 'inspect': frames, "
        "closures and globals of anything",
        "gc: SandboxImportError: sandbox policy blocks import of module 'gc': "
        "get_referrers/get_objects reach every object, frames included",
        "__pypy__: SandboxImportError: sandbox policy blocks import of module '__pypy__': PyPy "
        "internals: transparent proxies, raw interpreter hooks",
        "_continuation: SandboxImportError: sandbox policy blocks import of module "
        "'_continuation': PyPy stacklets: frames of other code",
        "signal: SandboxImportError: sandbox policy blocks import of module 'signal': handlers "
        "receive the interrupted frame",
        "faulthandler: SandboxImportError: sandbox policy blocks import of module "
        "'faulthandler': dumps frames",
    )


# --- builtins recovery and the class hierarchy -----------------------------------------


def test_subclasses_walk(runner: Runner) -> None:
    check(
        runner,
        """
attempt('static', lambda: exec('().__class__.__base__.__subclasses__()'))
attempt('getattr', lambda: getattr(object, '__subclasses__'))
attempt('type', lambda: exec('type.__subclasses__(object)'))
attempt('format', lambda: '{0.__class__.__base__.__subclasses__}'.format(()))
""",
        f"static: {BLOCKED} attribute '__subclasses__' (<string>, line 1)",
        f"getattr: {BLOCKED} attribute '__subclasses__'",
        f"type: {BLOCKED} attribute '__subclasses__' (<string>, line 1)",
        f"format: {BLOCKED} attribute '__subclasses__'",
    )


def test_builtins_name_is_refused(runner: Runner) -> None:
    out = runner("x = 1\nprint(__builtins__)\n", prelude=PRELUDE)
    assert out.status == 1 and out.stdout == ""
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("SandboxNameError: sandbox policy blocks the name '__builtins__' (")
    assert last.endswith("main.py, line 2)")


def test_builtins_recovered_from_globals_is_the_restricted_one(runner: Runner) -> None:
    check(
        runner,
        """
b = globals()['__builtins__']
print(b.getattr is getattr, b.__name__)
attempt('write', lambda: setattr(b, 'getattr', len))
attempt('pop', lambda: globals().pop('getattr'))
""",
        "True builtins",
        f"write: {BLOCKED} changing attribute 'getattr' of module builtins",
        "pop: AttributeError: 'mappingproxy' object has no attribute 'pop'",
    )


def test_builtins_recovered_through_functions(runner: Runner) -> None:
    check(
        runner,
        """
attempt('print.__self__', lambda: getattr(print, '__self__'))
attempt('exit globals', lambda: getattr(exit.__call__, '__globals__'))
attempt('lambda globals', lambda: getattr(lambda: 0, '__globals__'))
attempt('builtins import', lambda: getattr(__import__('builtins'), '__import__'))
""",
        f"print.__self__: {BLOCKED} attribute '__self__'",
        f"exit globals: {BLOCKED} attribute '__globals__'",
        f"lambda globals: {BLOCKED} attribute '__globals__'",
        f"builtins import: {BLOCKED} attribute '__import__'",
    )


def test_deleting_a_builtin_shadow_is_refused(runner: Runner) -> None:
    check(
        runner,
        """
attempt('del', lambda: exec('del getattr'))
import sys
attempt('delattr', lambda: delattr(sys.modules['__main__'], 'getattr'))
attempt('vars', lambda: vars(sys.modules['__main__']).pop('getattr'))
""",
        "del: SandboxNameError: sandbox policy blocks deleting the name 'getattr': it shadows a "
        "builtin (<string>, line 1)",
        f"delattr: {BLOCKED} deleting 'getattr' from module __main__: it shadows a builtin",
        "vars: AttributeError: 'mappingproxy' object has no attribute 'pop'",
    )


def test_excluded_builtins(runner: Runner) -> None:
    check(
        runner,
        """
attempt('breakpoint', lambda: breakpoint())
attempt('help', lambda: help(len))
attempt('memoryview', lambda: memoryview(b'x'))
attempt('input', lambda: input())
""",
        "breakpoint: SandboxNameError: sandbox policy blocks the builtin 'breakpoint': starts a "
        "debugger: frames, arbitrary code",
        "help: SandboxNameError: sandbox policy blocks the builtin 'help': pydoc imports "
        "arbitrary modules and introspects everything",
        "memoryview: SandboxNameError: sandbox policy blocks the builtin 'memoryview': historic "
        "source of memory-corruption primitives (released buffers); ordinary scripts do not "
        "need it",
        "input: SandboxNameError: sandbox policy blocks the builtin 'input': not on the "
        "builtins allow-list",
    )


def test_build_class_name_is_refused(runner: Runner) -> None:
    check(
        runner,
        "attempt('__build_class__', lambda: exec('__build_class__(lambda: 0, \"X\")'))\n",
        "__build_class__: SandboxNameError: sandbox policy blocks the name '__build_class__' "
        "(<string>, line 1)",
    )


# --- dynamic access ---------------------------------------------------------------------


def test_getattr_family_is_guarded(runner: Runner) -> None:
    check(
        runner,
        """
f = lambda: 0
attempt('getattr', lambda: getattr(f, '__glob' + 'als__'))
attempt('default', lambda: getattr(f, '__globals__', 'missing'))
print('hasattr', hasattr(f, '__globals__'), hasattr(f, '__name__'))
attempt('setattr', lambda: setattr(f, '__code__', None))
attempt('delattr', lambda: delattr(f, '__defaults__'))
attempt('vars', lambda: vars(api))
""",
        f"getattr: {BLOCKED} attribute '__globals__'",
        "default: ESCAPED str",
        "hasattr False True",
        f"setattr: {BLOCKED} changing attribute '__code__' of function object",
        f"delattr: {BLOCKED} changing attribute '__defaults__' of function object",
        f"vars: {BLOCKED} the namespace of Api object: it is not the untrusted code's own",
    )


def test_attribute_name_that_is_a_str_subclass(runner: Runner) -> None:
    check(
        runner,
        """
class Name(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
attempt('getattr', lambda: getattr(api, Name('_db')))
""",
        "getattr: TypeError: sandbox policy: attribute names must be plain str, not Name",
    )


def test_operator_attrgetter_and_methodcaller(runner: Runner) -> None:
    check(
        runner,
        """
import operator
f = lambda: 0
attempt('attrgetter', lambda: operator.attrgetter('__globals__')(f))
attempt('dotted', lambda: operator.attrgetter('__class__.__subclasses__')(0))
attempt('methodcaller', lambda: operator.methodcaller('__reduce_ex__', 2)(api))
print(operator.attrgetter('real')(3), operator.methodcaller('upper')('x'))
""",
        f"attrgetter: {BLOCKED} attribute '__globals__'",
        f"dotted: {BLOCKED} attribute '__subclasses__'",
        f"methodcaller: {BLOCKED} attribute '__reduce_ex__'",
        "3 X",
    )


def test_format_string_traversal(runner: Runner) -> None:
    check(
        runner,
        """
f = lambda: 0
attempt('format', lambda: '{0.__globals__}'.format(f))
attempt('unbound', lambda: str.format('{0.__globals__}', f))
attempt('format_map', lambda: '{x.__globals__[__builtins__]}'.format_map({'x': f}))
attempt('getattr format', lambda: getattr('{0.__globals__}', 'format')(f))
attempt('nested spec', lambda: '{0:{1.__globals__}}'.format(1, f))
attempt('private', lambda: '{0._db}'.format(api))
print('{0.real} {1[a]} {x!r:>4}'.format(3, {'a': 1}, x='y'))
""",
        f"format: {BLOCKED} attribute '__globals__'",
        f"unbound: {BLOCKED} attribute '__globals__'",
        f"format_map: {BLOCKED} attribute '__globals__'",
        f"getattr format: {BLOCKED} attribute '__globals__'",
        f"nested spec: {BLOCKED} attribute '__globals__'",
        f"private: {BLOCKED} private attribute '_db' of Api object",
        "3 1  'y'",
    )


def test_string_formatter(runner: Runner) -> None:
    check(
        runner,
        """
import string
f = lambda: 0
attempt('Formatter', lambda: string.Formatter().format('{0.__globals__}', f))
attempt('get_field', lambda: string.Formatter().get_field('0.__globals__', [f], {}))
class Mine(string.Formatter):
    def get_field(self, name, args, kwargs):
        return super().get_field(name, args, kwargs)
attempt('subclass', lambda: Mine().format('{0.__globals__}', f))
print(string.Formatter().format('{0}-{x}', 1, x=2))
""",
        f"Formatter: {BLOCKED} attribute '__globals__'",
        f"get_field: {BLOCKED} attribute '__globals__'",
        f"subclass: {BLOCKED} attribute '__globals__'",
        "1-2",
    )


def test_unicode_normalised_identifiers(runner: Runner) -> None:
    check(
        runner,
        """
f = lambda: 0
attempt('static', lambda: exec('f.__ｇlobals__'))
attempt('getattr', lambda: getattr(f, '__ｇlobals__'))
attempt('exec', lambda: ｅｘｅｃ('().__class__.__base__.__subclasses__()'))
attempt('private', lambda: getattr(api, '_ｄb'))
""",
        f"static: {BLOCKED} attribute '__globals__' (<string>, line 1)",
        f"getattr: {BLOCKED} attribute '__globals__'",
        f"exec: {BLOCKED} attribute '__subclasses__' (<string>, line 1)",
        f"private: {BLOCKED} attribute '_ｄb' (its normal form '_db' is private)",
    )


# --- exec, eval, compile ---------------------------------------------------------------------


def test_exec_with_forged_builtins(runner: Runner) -> None:
    check(
        runner,
        """
g = {'__builtins__': {'getattr': len}, 'getattr': None}
attempt('forged', lambda: exec("r = getattr(lambda: 0, '__globals__', 'blocked')", g))
g = {'__builtins__': None}
exec("r = getattr(lambda: 0, '__globals__', 'blocked')", g)
print(g['r'])
attempt('dict subclass', lambda: exec('1', type('D', (dict,), {})()))
""",
        "forged: TypeError: 'NoneType' object is not callable",
        "blocked",
        "dict subclass: TypeError: exec() globals must be a dict",
    )


def test_compile_gives_no_code_object(runner: Runner) -> None:
    # With a code object, the function type (reachable as type(f)) would
    # make a function whose globals lack the builtins' shadows: PyPy would
    # resolve its names to the real builtins.
    check(
        runner,
        """
c = compile("getattr(lambda: 0, '__globals__')", 'calc', 'eval')
print(repr(c))
attempt('function type', lambda: type(lambda: 0)(c, {})())
attempt('replace', lambda: c.replace(co_name='x'))
attempt('co_consts', lambda: getattr(c, 'co_consts'))
attempt('eval', lambda: eval(c))
""",
        "<compiled eval code from 'calc'>",
        "function type: TypeError: 'internal-code' object expected, got 'CompiledCode' instead",
        "replace: AttributeError: 'CompiledCode' object has no attribute 'replace'",
        f"co_consts: {BLOCKED} attribute 'co_consts' (frames and code objects)",
        f"eval: {BLOCKED} attribute '__globals__'",
    )


def test_code_objects_from_elsewhere_do_not_run(runner: Runner) -> None:
    check(
        runner,
        """
c = compile('6 * 7', 'calc', 'eval')
print(eval(c))
attempt('replace', lambda: eval(type(c)('calc', 'eval')))
import ast
tree = compile('1 + 1', 'x', 'eval', ast.PyCF_ONLY_AST)
attempt('ast', lambda: compile(tree, 'x', 'eval'))
attempt('flags', lambda: compile('1', 'x', 'eval', 0x2000))
""",
        "42",
        "replace: TypeError: sandbox policy: eval() runs only source text or code from compile()",
        "ast: TypeError: sandbox policy: compile() takes only source text, not Expression",
        "flags: ValueError: sandbox policy: compile() takes no flags but ast.PyCF_ONLY_AST",
    )


def test_reserved_names_and_the_guard_placeholder(runner: Runner) -> None:
    check(
        runner,
        """
attempt('token', lambda: exec('__sr_token__ = 1'))
attempt('owned', lambda: getattr(int, '__sr_owned__'))
folded = 'sandbox-run' + ' guards'
print(type(folded).__name__)
""",
        "token: SandboxNameError: sandbox policy blocks the name '__sr_token__' (<string>, line 1)",
        f"owned: {BLOCKED} attribute '__sr_owned__'",
        "str",
    )


# --- reduce, copy, pickle --------------------------------------------------------------------


def test_reduce_paths(runner: Runner) -> None:
    check(
        runner,
        """
import copy
attempt('__reduce_ex__', lambda: getattr(api, '__reduce_ex__'))
attempt('__reduce__', lambda: exec('api.__reduce__()'))
for name in ('pickle', 'copyreg', 'marshal', 'shelve'):
    attempt(name, lambda: __import__(name))
twin = copy.copy(api)
print(twin.count(), type(twin) is type(api))
attempt('twin', lambda: twin._db)
attempt('dispatch_table', lambda: copy.dispatch_table)
""",
        f"__reduce_ex__: {BLOCKED} attribute '__reduce_ex__'",
        f"__reduce__: {BLOCKED} attribute '__reduce__' (<string>, line 1)",
        "pickle: SandboxImportError: sandbox policy blocks import of module 'pickle': reduce "
        "paths call arbitrary callables; serialises private state",
        "copyreg: SandboxImportError: sandbox policy blocks import of module 'copyreg': global "
        "reduce registry shared with trusted code",
        "marshal: SandboxImportError: sandbox policy blocks import of module 'marshal': builds "
        "code objects from bytes",
        "shelve: SandboxImportError: sandbox policy blocks import of module 'shelve': pickle",
        "2 True",
        f"twin: {BLOCKED} private attribute '_db' of Api object",
        f"dispatch_table: {BLOCKED} copy.dispatch_table: global reduce registry shared with "
        "trusted code",
    )


def test_reduce_override_in_own_class(runner: Runner) -> None:
    check(
        runner,
        """
import copy
class Evil:
    def __reduce__(self):
        return (getattr, (get_posts, '__closure__'))
attempt('copy', lambda: copy.copy(Evil()))
""",
        f"copy: {BLOCKED} attribute '__closure__'",
    )


# --- classes: decorators, metaclasses, overrides ------------------------------------------


def test_metaclass_returning_a_trusted_class(runner: Runner) -> None:
    check(
        runner,
        """
Post = type(api.first())
class Meta(type):
    def __new__(mcs, name, bases, ns):
        return Post
class Stolen(metaclass=Meta):
    pass
print(Stolen is Post)
attempt('private', lambda: getattr(Stolen, '_db'))
attempt('write', lambda: setattr(Stolen, 'shout', len))
""",
        "True",
        f"private: {BLOCKED} private attribute '_db' of class Post",
        f"write: {BLOCKED} changing attribute 'shout' of class Post: it is not the untrusted "
        "code's own",
    )


def test_metaclass_prepare_cannot_substitute_the_guards(runner: Runner) -> None:
    check(
        runner,
        """
class Cheat(dict):
    def __getitem__(self, key):
        return getattr if key.startswith('_sr') or key == 'getattr' else dict.__getitem__(self, key)
class Meta(type):
    @classmethod
    def __prepare__(mcs, name, bases):
        return Cheat()
def body():
    class X(metaclass=Meta):
        leak = api._db
attempt('class body', body)
""",
        f"class body: {BLOCKED} private attribute '_db' of Api object",
    )


def test_subclassing_a_sealed_class(runner: Runner) -> None:
    check(
        runner,
        """
Post = type(api.first())
def sub():
    class Mine(Post):
        def peek(self):
            return self._db
attempt('class', sub)
E = type('E', (Post,), {})
attempt('type() subclass', lambda: E._db)
""",
        "class: TypeError: sandbox policy blocks subclassing restricted.capabilities.Post: only "
        "the untrusted code's own classes, builtin types, classes of allowed modules and granted "
        "classes can be extended",
        f"type() subclass: {BLOCKED} private attribute '_db' of class E",
    )


def test_init_subclass_of_a_sealed_base_never_runs(runner: Runner) -> None:
    check(
        runner,
        """
Post = type(api.first())
ran = []
class Spy:
    def __init_subclass__(cls, **kw):
        ran.append(cls.__name__)
        super().__init_subclass__(**kw)
class Ok(Spy):
    pass
def sealed():
    class Bad(Post, Spy):
        pass
attempt('sealed', sealed)
print(ran)
""",
        "sealed: TypeError: sandbox policy blocks subclassing restricted.capabilities.Post: only "
        "the untrusted code's own classes, builtin types, classes of allowed modules and granted "
        "classes can be extended",
        "['Ok']",
    )


def test_getattribute_override_cannot_lend_its_rights(runner: Runner) -> None:
    check(
        runner,
        """
class Evil:
    def __getattribute__(self, name):
        return object.__getattribute__(api, '_db')
attempt('object.__getattribute__', lambda: Evil().anything)
class Evil2:
    def __getattr__(self, name):
        return type(api).__getattr__(api, '_db')
attempt('__getattr__', lambda: Evil2().anything)
attempt('super', lambda: super(type(api), api).__getattribute__('_db'))
attempt('__dict__', lambda: object.__getattribute__(api, '__dict__'))
""",
        f"object.__getattribute__: {BLOCKED} private attribute '_db' of Api object",
        f"__getattr__: {BLOCKED} private attribute '_db' of Api object",
        f"super: {BLOCKED} private attribute '_db' of Api object",
        f"__dict__: {BLOCKED} the namespace of Api object: it is not the untrusted code's own",
    )


def test_class_override_and_assignment(runner: Runner) -> None:
    check(
        runner,
        """
class Mine:
    pass
m = Mine()
attempt('assign', lambda: exec('m.__class__ = type(api)'))
attempt('setattr', lambda: setattr(m, '__class__', type(api)))
attempt('object.__setattr__', lambda: object.__setattr__(m, '__class__', type(api)))
attempt('class body', lambda: exec('class Liar:\\n    __class__ = int'))
""",
        f"assign: {BLOCKED} changing attribute '__class__' (<string>, line 1)",
        f"setattr: {BLOCKED} changing attribute '__class__' of Mine object",
        f"object.__setattr__: {BLOCKED} changing attribute '__class__' of Mine object",
        "class body: SandboxNameError: sandbox policy blocks the name '__class__' (<string>, "
        "line 2)",
    )


def test_reinitialising_a_granted_object(runner: Runner) -> None:
    check(
        runner,
        """
attempt('bound', lambda: api.__init__())
attempt('unbound', lambda: object.__init__(api))
Post = type(api.first())
attempt('class', lambda: Post.__init__(api.first(), 'x', None))
""",
        f"bound: {BLOCKED} __init__ of Api object: it is not the untrusted code's own",
        f"unbound: {BLOCKED} __init__ of Api object: it is not the untrusted code's own",
        f"class: {BLOCKED} __init__ of Post object: it is not the untrusted code's own",
    )


def test_object_new_on_a_granted_class(runner: Runner) -> None:
    check(
        runner,
        """
fresh = object.__new__(type(api))
attempt('private', lambda: fresh._db)
print(fresh.count())
""",
        f"private: {BLOCKED} private attribute '_db' of Api object",
        "2",
    )


def test_super_tricks(runner: Runner) -> None:
    check(
        runner,
        """
post = api.first()
attempt('super private', lambda: super(type(post), post)._db)
class Mine:
    def _helper(self):
        return 'own'
class Sub(Mine):
    def call(self):
        return super()._helper()
print(Sub().call())
attempt('super other', lambda: super(Sub, api))
""",
        f"super private: {BLOCKED} private attribute '_db' of super object",
        "own",
        "super other: TypeError: super(type, obj): obj must be an instance or subtype of type",
    )


def test_decorator_cannot_unwrap_a_grant(runner: Runner) -> None:
    check(
        runner,
        """
import functools
print(getattr(get_posts, '__wrapped__', 'no __wrapped__'))
def mine():
    pass
attempt('update_wrapper', lambda: functools.update_wrapper(type(api), mine, ('x',), ()))
attempt('assigned', lambda: functools.update_wrapper(mine, get_posts, ('__closure__',), ()))
""",
        "no __wrapped__",
        f"update_wrapper: {BLOCKED} update_wrapper() on class Api: it is not the untrusted "
        "code's own",
        f"assigned: {BLOCKED} attribute '__closure__'",
    )


def test_monkeypatching_trusted_classes(runner: Runner) -> None:
    check(
        runner,
        """
import json, traceback, sys
attempt('json', lambda: setattr(json.JSONEncoder, 'default', lambda self, o: o))
attempt('static', lambda: exec('json.JSONDecoder.decode = len'))
try:
    1 / 0
except ZeroDivisionError:
    summary = traceback.extract_tb(sys.exc_info()[2])
attempt('StackSummary', lambda: setattr(type(summary), 'format', len))
attempt('dataclass', lambda: __import__('dataclasses').dataclass(type(api.first())))
""",
        f"json: {BLOCKED} changing attribute 'default' of class JSONEncoder: it is not the "
        "untrusted code's own",
        f"static: {BLOCKED} changing attribute 'decode' of class JSONDecoder: it is not the "
        "untrusted code's own",
        f"StackSummary: {BLOCKED} changing attribute 'format' of class StackSummary: it is not "
        "the untrusted code's own",
        f"dataclass: {BLOCKED} dataclass() on class Post: it is not the untrusted code's own",
    )


# --- capabilities ---------------------------------------------------------------------------


def test_closure_state_of_a_granted_function(runner: Runner) -> None:
    check(
        runner,
        """
for attr in ('__closure__', '__globals__', '__defaults__', '__kwdefaults__', '__code__',
             '__wrapped__', '__dict__'):
    attempt(attr, lambda: getattr(get_posts, attr))
attempt('vars', lambda: vars(get_posts))
print(get_posts(1), get_posts.__name__, get_posts.__doc__)
""",
        f"__closure__: {BLOCKED} attribute '__closure__'",
        f"__globals__: {BLOCKED} attribute '__globals__'",
        f"__defaults__: {BLOCKED} attribute '__defaults__'",
        f"__kwdefaults__: {BLOCKED} attribute '__kwdefaults__'",
        f"__code__: {BLOCKED} attribute '__code__'",
        f"__wrapped__: {BLOCKED} attribute '__wrapped__'",
        f"__dict__: {BLOCKED} the namespace of function object: it is not the untrusted code's own",
        f"vars: {BLOCKED} the namespace of function object: it is not the untrusted code's own",
        "[{'id': 1, 'title': 'hello'}] get_posts The posts, newest first.",
    )


def test_private_state_of_a_granted_object(runner: Runner) -> None:
    check(
        runner,
        """
attempt('_db', lambda: api._db)
attempt('getattr', lambda: getattr(api, '_db'))
attempt('__getattr__', lambda: api.__getattr__('_db'))
attempt('method self', lambda: getattr(api.count, '__self__'))
attempt('method func', lambda: getattr(api.count, '__func__'))
attempt('write', lambda: setattr(api, 'name', 'x'))
attempt('static write', lambda: exec('api.name = 1'))
attempt('class dict', lambda: type(api).__dict__)
print(api.name, api.count(), repr(api), sorted(dir(api)))
""",
        f"_db: {BLOCKED} private attribute '_db' of Api object",
        f"getattr: {BLOCKED} private attribute '_db' of Api object",
        f"__getattr__: {BLOCKED} private attribute '_db' of Api object",
        f"method self: {BLOCKED} attribute '__self__'",
        f"method func: {BLOCKED} attribute '__func__'",
        f"write: {BLOCKED} changing attribute 'name' of Api object: it is not the untrusted "
        "code's own",
        f"static write: {BLOCKED} changing attribute 'name' of Api object: it is not the "
        "untrusted code's own",
        f"class dict: {BLOCKED} the namespace of class Api: it is not the untrusted code's own",
        "blog 2 <granted api> ['count', 'first', 'name', 'titles']",
    )


def test_objects_returned_by_grants_are_granted_too(runner: Runner) -> None:
    check(
        runner,
        """
import dataclasses
post = api.first()
print(post.title, post.shout(), repr(post))
attempt('_db', lambda: post._db)
attempt('asdict', lambda: dataclasses.asdict(post))
attempt('fields', lambda: dataclasses.fields(post))
titles = api.titles()
print(list(titles))
attempt('gi_frame', lambda: getattr(titles, 'gi_frame'))
""",
        "hello HELLO <granted api.first>",
        f"_db: {BLOCKED} private attribute '_db' of Post object",
        f"asdict: {BLOCKED} asdict() of Post object: it is not the untrusted code's own",
        "fields: TypeError: must be called with a dataclass type or instance",
        "['hello', 'world']",
        f"gi_frame: {BLOCKED} attribute 'gi_frame' (frames and code objects)",
    )


def test_granted_data_is_a_copy(runner: Runner) -> None:
    check(
        runner,
        """
LIMITS['posts'].append(99)
rows = get_posts()
rows[0]['title'] = 'changed'
print(get_posts(1)[0]['title'], LIMITS)
""",
        "hello {'posts': [10, 20, 99]}",
    )


def test_the_prelude_namespace_is_unreachable(runner: Runner) -> None:
    check(
        runner,
        """
import sys
print(sorted(k for k in sys.modules if 'prelude' in k), get_posts.__module__)
attempt('import', lambda: __import__('blog_prelude'))
attempt('globals', lambda: getattr(get_posts, '__globals__'))
""",
        "[] restricted.capabilities",
        "import: SandboxImportError: sandbox policy blocks import of module 'blog_prelude': "
        "not on the allow-list",
        f"globals: {BLOCKED} attribute '__globals__'",
    )


def test_granted_class_is_usable_and_extendable(runner: Runner) -> None:
    check(
        runner,
        """
v = Vector(3, 4)
print(v.norm2(), v.x)
attempt('instance private', lambda: v._norm2)
class Vector3(Vector):
    def __init__(self, x, y, z):
        super().__init__(x, y)
        self._z = z
    def norm2(self):
        return super().norm2() + self._z ** 2
print(Vector3(1, 2, 2).norm2())
""",
        "25 3",
        f"instance private: {BLOCKED} private attribute '_norm2' of Vector object",
        "9",
    )


def test_host_function_stubs_hold_the_channel(pypy: Runner) -> None:
    # Guest side only: the controller's end of the channel comes with the
    # embedding work, so the sandbox cannot grant host functions yet.
    out = pypy(
        ATTEMPT
        + """
attempt('call', lambda: ping(1, 'a', [None]))
attempt('not plain', lambda: ping(object()))
attempt('closure', lambda: getattr(ping, '__closure__'))
attempt('vars', lambda: vars(ping))
print(ping.__name__, ping.__doc__)
""",
        prelude=PRELUDE,
        host_functions=("ping",),
    )
    assert out.lines == [
        "call: HostCallError: host function 'ping': this sandbox has no channel to the host",
        "not plain: TypeError: ping: only plain data (None, bool, int, float, str, list, dict) "
        "crosses to the host, not object",
        f"closure: {BLOCKED} attribute '__closure__'",
        f"vars: {BLOCKED} the namespace of function object: it is not the untrusted code's own",
        "ping Host function 'ping' (runs in the controller).",
    ], out.stderr


# --- imports and module views ------------------------------------------------------------------


def test_forbidden_and_unlisted_modules(runner: Runner) -> None:
    check(
        runner,
        """
for name in ('ctypes', 'cffi', '_rawffi', 'posix', 'importlib', '_thread', 'threading',
             'code', 'dis', 'timeit', 'logging', 'argparse', 'restricted', 'numpy'):
    attempt(name, lambda: __import__(name))
""",
        "ctypes: SandboxImportError: sandbox policy blocks import of module 'ctypes': raw "
        "memory access",
        "cffi: SandboxImportError: sandbox policy blocks import of module 'cffi': raw memory "
        "access",
        "_rawffi: SandboxImportError: sandbox policy blocks import of module '_rawffi': raw "
        "memory access",
        "posix: SandboxImportError: sandbox policy blocks import of module 'posix': the raw "
        "operating-system interface (os is given as a view)",
        "importlib: SandboxImportError: sandbox policy blocks import of module 'importlib': "
        "import-system internals: loads modules around the allow-list",
        "_thread: SandboxImportError: sandbox policy blocks import of module '_thread': threads "
        "come only through threading, when the policy allows them",
        "threading: SandboxImportError: sandbox policy blocks import of module 'threading': "
        "threads and settrace; see the policy's threads setting",
        "code: SandboxImportError: sandbox policy blocks import of module 'code': runs "
        "unchecked source",
        "dis: SandboxImportError: sandbox policy blocks import of module 'dis': code objects "
        "and constants of trusted functions",
        "timeit: SandboxImportError: sandbox policy blocks import of module 'timeit': compiles "
        "and runs unchecked source",
        "logging: SandboxImportError: sandbox policy blocks import of module 'logging': "
        "'{'-style formats traverse attributes with the unguarded str.format",
        "argparse: SandboxImportError: sandbox policy blocks import of module 'argparse': its "
        "actions set attributes named by the caller on objects the caller chooses, with the "
        "unguarded setattr: a class of trusted code included",
        "restricted: SandboxImportError: sandbox policy blocks import of module 'restricted': "
        "the sandbox's restricted environment",
        "numpy: SandboxImportError: sandbox policy blocks import of module 'numpy': not on the "
        "allow-list",
    )


def test_imports_inside_exec_and_star_imports(runner: Runner) -> None:
    check(
        runner,
        """
attempt('exec import', lambda: exec('import gc'))
attempt('star', lambda: exec('from gc import *'))
attempt('from', lambda: exec('from os import system'))
attempt('dunder', lambda: exec('from json import __loader__'))
""",
        "exec import: SandboxImportError: sandbox policy blocks import of module 'gc': "
        "get_referrers/get_objects reach every object, frames included",
        "star: SandboxImportError: sandbox policy blocks import of module 'gc': "
        "get_referrers/get_objects reach every object, frames included",
        "from: SandboxImportError: sandbox policy blocks os.system: not in the sandbox's view "
        "of the module",
        "dunder: SandboxNameError: sandbox policy blocks the name '__loader__' (<string>, line 1)",
    )


def test_modules_do_not_expose_what_they_imported(runner: Runner) -> None:
    check(
        runner,
        """
import os, shutil, collections, json, random
attempt('os.sys', lambda: os.sys)
attempt('shutil.os', lambda: shutil.os)
attempt('collections._sys', lambda: collections._sys)
attempt('random._inst', lambda: random._inst)
attempt('__dict__', lambda: json.__dict__)
attempt('vars', lambda: vars(json))
attempt('__builtins__', lambda: getattr(json, '__builtins__'))
attempt('__loader__', lambda: getattr(json, '__loader__'))
attempt('__spec__', lambda: getattr(json, '__spec__'))
print(os.path.join('a', 'b'), collections.abc.Mapping.__name__)
""",
        f"os.sys: {BLOCKED} os.sys: a module it imported",
        f"shutil.os: {BLOCKED} shutil.os: a module it imported",
        f"collections._sys: {BLOCKED} private attribute '_sys' of module collections",
        f"random._inst: {BLOCKED} private attribute '_inst' of module random",
        f"__dict__: {BLOCKED} the namespace of module json: module views hand out names, not "
        "namespaces",
        f"vars: {BLOCKED} the namespace of module json: module views hand out names, not "
        "namespaces",
        f"__builtins__: {BLOCKED} attribute '__builtins__'",
        f"__loader__: {BLOCKED} attribute '__loader__'",
        f"__spec__: {BLOCKED} attribute '__spec__'",
        "a/b Mapping",
    )


def test_os_view_drops_process_control(runner: Runner) -> None:
    check(
        runner,
        """
import os
for name in ('system', 'fork', 'kill', 'execv', 'popen', 'putenv', '_exit', 'spawnv'):
    attempt(name, lambda: getattr(os, name))
print(os.getcwd() != '', 'SANDBOX_RUN_GUEST' in os.environ, os.getenv('SANDBOX_RUN_GUEST'))
""",
        f"system: {BLOCKED} os.system: not in the sandbox's view of the module",
        f"fork: {BLOCKED} os.fork: not in the sandbox's view of the module",
        f"kill: {BLOCKED} os.kill: not in the sandbox's view of the module",
        f"execv: {BLOCKED} os.execv: not in the sandbox's view of the module",
        f"popen: {BLOCKED} os.popen: not in the sandbox's view of the module",
        f"putenv: {BLOCKED} os.putenv: not in the sandbox's view of the module",
        f"_exit: {BLOCKED} private attribute '_exit' of module os",
        f"spawnv: {BLOCKED} os.spawnv: not in the sandbox's view of the module",
        "True False None",
    )


def test_types_view_drops_constructors(runner: Runner) -> None:
    check(
        runner,
        """
import types
for name in ('FunctionType', 'CodeType', 'FrameType', 'TracebackType', 'CellType',
             'new_class', 'coroutine'):
    attempt(name, lambda: getattr(types, name))
print(types.SimpleNamespace(a=1))
""",
        f"FunctionType: {BLOCKED} types.FunctionType: not in the sandbox's view of the module",
        f"CodeType: {BLOCKED} types.CodeType: not in the sandbox's view of the module",
        f"FrameType: {BLOCKED} types.FrameType: not in the sandbox's view of the module",
        f"TracebackType: {BLOCKED} types.TracebackType: not in the sandbox's view of the module",
        f"CellType: {BLOCKED} types.CellType: not in the sandbox's view of the module",
        f"new_class: {BLOCKED} types.new_class: not in the sandbox's view of the module",
        f"coroutine: {BLOCKED} types.coroutine: not in the sandbox's view of the module",
        "namespace(a=1)",
    )


def test_typing_and_codecs_registries(runner: Runner) -> None:
    check(
        runner,
        """
import typing, codecs
attempt('get_type_hints', lambda: typing.get_type_hints)
attempt('codecs.register', lambda: codecs.register)
""",
        f"get_type_hints: {BLOCKED} typing.get_type_hints: evaluates annotation strings with "
        "the unchecked eval",
        f"codecs.register: {BLOCKED} codecs.register: global codec registry shared with "
        "trusted code",
    )


def test_sys_modules_holds_only_views(runner: Runner) -> None:
    check(
        runner,
        """
import sys, json
print(sorted(sys.modules))
print(type(sys.modules['json']).__name__, sys.modules['json'] is json)
attempt('main dict', lambda: sys.modules['__main__'].__dict__.pop('getattr'))
""",
        "['__main__', 'json', 'json.decoder', 'json.encoder', 'sys']",
        "module True",
        "main dict: AttributeError: 'mappingproxy' object has no attribute 'pop'",
    )


def test_no_bytecode_from_writable_directories(runner: Runner) -> None:
    out = runner(
        """
import os
os.makedirs('__pycache__', exist_ok=True)
with open('helper.py', 'w') as f:
    f.write('VALUE = "from source"\\n')
with open('__pycache__/helper.pypy39.pyc', 'wb') as f:
    f.write(b'not bytecode at all')
import helper
print(helper.VALUE)
""",
        prelude=PRELUDE,
    )
    assert out.lines == ["from source"], out.stderr


def test_user_modules_are_checked_too(runner: Runner) -> None:
    out = runner(
        ATTEMPT
        + """
attempt('import', lambda: __import__('sneaky'))
import friendly
print(friendly.twice(21))
""",
        prelude=PRELUDE,
        files={
            "sneaky.py": "leak = (lambda: 0).__globals__\n",
            "friendly.py": "def twice(x):\n    return 2 * x\n",
        },
    )
    assert len(out.lines) == 2, out.stderr
    assert out.lines[0].startswith(f"import: {BLOCKED} attribute '__globals__' (") and out.lines[
        0
    ].endswith("sneaky.py, line 1)")
    assert out.lines[1] == "42"


def test_frame_inspecting_builtins_refuse_trusted_callers(runner: Runner) -> None:
    check(
        runner,
        """
import contextlib
def called_back_by_trusted_code(fn):
    with contextlib.ExitStack() as stack:
        stack.callback(fn)
for fn in (globals, locals, vars, dir):
    attempt(fn.__name__, lambda: called_back_by_trusted_code(fn))
""",
        "globals: SandboxNameError: sandbox policy blocks globals() when it is not called by the "
        "untrusted code",
        "locals: SandboxNameError: sandbox policy blocks locals() when it is not called by the "
        "untrusted code",
        "vars: SandboxNameError: sandbox policy blocks vars() when it is not called by the "
        "untrusted code",
        "dir: SandboxNameError: sandbox policy blocks dir() when it is not called by the "
        "untrusted code",
    )


def test_restricted_builtins_are_plain_functions(runner: Runner) -> None:
    check(
        runner,
        """
for fn in (__import__, vars, exec, compile, getattr):
    print(type(fn).__name__, [n for n in dir(fn) if not n.startswith('__')])
attempt('importer', lambda: __import__.modules)
""",
        "function []",
        "function []",
        "function []",
        "function []",
        "function []",
        "importer: AttributeError: 'function' object has no attribute 'modules'",
    )


def test_names_from_pypy_internals_and_global_registries(runner: Runner) -> None:
    check(
        runner,
        """
import collections, urllib.request
attempt('newdict', lambda: collections.newdict)
attempt('install_opener', lambda: urllib.request.install_opener)
""",
        f"newdict: {BLOCKED} collections.newdict: from __pypy__: interpreter internals",
        f"install_opener: {BLOCKED} urllib.request.install_opener: a global opener trusted code "
        "would use too",
    )


def test_mro_entries_cannot_smuggle_a_sealed_base(runner: Runner) -> None:
    check(
        runner,
        """
Post = type(api.first())
class Smuggler:
    def __mro_entries__(self, bases):
        return (Post,)
def smuggle():
    class Mine(Smuggler()):
        pass
attempt('mro_entries', smuggle)
from typing import Generic, TypeVar, NamedTuple
T = TypeVar('T')
class Box(Generic[T]):
    pass
class Row(NamedTuple):
    x: int
print(Box[int]().__class__.__name__, Row(1).x)
""",
        "mro_entries: TypeError: sandbox policy blocks class bases that are not classes unless "
        "they come from an allowed module",
        "Box 1",
    )


def test_trusted_helpers_do_not_change_trusted_classes(runner: Runner) -> None:
    check(
        runner,
        """
import functools, typing
Post = type(api.first())
attempt('total_ordering', lambda: functools.total_ordering(Post))
attempt('runtime_checkable', lambda: typing.runtime_checkable(typing.SupportsInt))
@functools.total_ordering
class Mine:
    def __init__(self, v):
        self.v = v
    def __lt__(self, other):
        return self.v < other.v
    def __eq__(self, other):
        return self.v == other.v
print(Mine(2) >= Mine(1))
""",
        f"total_ordering: {BLOCKED} total_ordering() of class Post: it is not the untrusted "
        "code's own",
        f"runtime_checkable: {BLOCKED} runtime_checkable() of class SupportsInt: it is not the "
        "untrusted code's own",
        "True",
    )


def test_module_level_tables_are_copies(runner: Runner) -> None:
    check(
        runner,
        """
import html, html.entities, warnings
html.entities.html5.clear()
html.entities.name2codepoint.clear()
warnings.filters.clear()
print(html.unescape('&amp;&lt;'), len(warnings.filters))
""",
        "&< 0",
    )


def test_proxies_refuse_frames_even_to_trusted_callers(runner: Runner) -> None:
    check(
        runner,
        """
import argparse
titles = api.titles()
parser = argparse.ArgumentParser()
parser.add_argument('--gi_frame', action='append')
attempt('argparse', lambda: parser.parse_args(['--gi_frame', 'x'], namespace=titles))
attempt('__getattr__', lambda: type(titles).__getattr__(titles, 'gi_frame'))
""",
        # argparse's hasattr() sees no gi_frame (the proxy refuses it even to
        # trusted code), so it tries to set a default, which is refused too
        f"argparse: {BLOCKED} changing granted object 'api.titles'",
        f"__getattr__: {BLOCKED} attribute 'gi_frame' (frames and code objects)",
        policy=sandbox_run.Policy(add_modules=("argparse",)),  # not in the default list
    )


def test_str_of_a_proxy_is_not_the_trusted_repr(runner: Runner) -> None:
    check(
        runner,
        """
import string
print(str(api), '%s' % api, string.Template('$a').substitute(a=api), format(api, ''))
""",
        "<granted api> <granted api> <granted api> <granted api>",
    )


def test_annotation_strings_are_never_evaluated_unchecked(runner: Runner) -> None:
    check(
        runner,
        """
import functools
leak = []
@functools.singledispatch
def f(x):
    return 'any'
def g(x: "[leak.append(().__class__.__base__.__subclasses__()), int][1]"):
    return 'int'
attempt('register', lambda: f.register(g))
def h(x: int):
    return 'int'
f.register(h)
print(f(1), f('s'), leak)
attempt('singledispatchmethod', lambda: functools.singledispatchmethod)
""",
        "register: TypeError: sandbox policy: register() does not evaluate the annotation string "
        "'[leak.append(().__class__.__base__.__subclasses__()), int][1]'; write @register(cls)",
        "int any []",
        f"singledispatchmethod: {BLOCKED} functools.singledispatchmethod: registers by "
        "annotations through typing.get_type_hints, which evaluates strings with the unchecked "
        "eval",
    )


def test_dataclass_field_names_cannot_inject_code(runner: Runner) -> None:
    check(
        runner,
        """
import dataclasses
def injected():
    @dataclasses.dataclass
    class P:
        __annotations__ = {"x=__import__('gc'),y": int}
attempt('annotations', injected)
def forged_field_name():
    f = dataclasses.field(default=1)
    f.name = "x=1,y"
attempt('field name', forged_field_name)
attempt('make_dataclass', lambda: dataclasses.make_dataclass('Q', ["a=1,b"]))
""",
        f"annotations: {BLOCKED} dataclass() field names that are not identifiers",
        f"field name: {BLOCKED} changing attribute 'name' of Field object: it is not the "
        "untrusted code's own",
        f"make_dataclass: {BLOCKED} dataclass field name 'a=1,b'",
    )


def test_exceptions_trusted_code_is_handling_stay_hidden(runner: Runner) -> None:
    # The prelude calls back into untrusted code inside an except block: the
    # callback must not see the prelude's exception (its message holds the
    # password, which the conftest looks for in every output).
    check(
        runner,
        """
import sys, traceback
def fallback():
    return [str(sys.exc_info()), traceback.format_exc()]
print(with_fallback(fallback))
try:
    1 / 0
except ZeroDivisionError:
    print(sys.exc_info()[0].__name__, traceback.format_exc().splitlines()[-1])
""",
        "['(None, None, None)', 'NoneType: None\\n']",
        "ZeroDivisionError ZeroDivisionError: division by zero",
    )


def test_reduce_cannot_steer_copy_into_trusted_objects(runner: Runner) -> None:
    check(
        runner,
        """
import copy, json, dataclasses
def evil(self, o):
    return 'hijacked'
class Steer:
    def __reduce_ex__(self, protocol):
        return (lambda: json.JSONEncoder, (), (None, {'default': evil}))
attempt('copy', lambda: copy.copy(Steer()))
@dataclasses.dataclass
class Holder:
    item: object
attempt('asdict', lambda: dataclasses.asdict(Holder(Steer())))
class Own:
    def __init__(self):
        self.x = 1
    def __reduce_ex__(self, protocol):
        return (lambda: Own.__new__(Own), (), {'x': 2})
print(copy.copy(Own()).x, json.JSONEncoder().default is not evil)
""",
        "copy: TypeError: sandbox policy: a __reduce__ result sets state only into the "
        "untrusted code's own objects, not into class JSONEncoder",
        "asdict: TypeError: sandbox policy: a __reduce__ result sets state only into the "
        "untrusted code's own objects, not into class JSONEncoder",
        "2 True",
    )


def test_redirect_stream_names_are_fixed(runner: Runner) -> None:
    check(
        runner,
        """
import contextlib, io, sys
class Hijack(contextlib.redirect_stdout):
    _stream = 'modules'
stolen = {}
with Hijack(stolen):
    import json
print(type(sys.modules).__name__, 'json' in sys.modules, stolen == {})
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    print('captured')
print(repr(buf.getvalue()))
""",
        # the real class would have set the real sys.modules to `stolen`,
        # and the import would have filled it
        "dict True True",
        "'captured\\n'",
    )


def test_typing_aliases_cannot_change_their_classes(runner: Runner) -> None:
    check(
        runner,
        """
import typing
attempt('Mapping', lambda: setattr(typing.Mapping[str, int], 'get', len))
attempt('List', lambda: exec('typing.List[int].append = len'))
""",
        f"Mapping: {BLOCKED} changing attribute 'get' of _GenericAlias object: it is not the "
        "untrusted code's own",
        f"List: {BLOCKED} changing attribute 'append' of _GenericAlias object: it is not the "
        "untrusted code's own",
    )


def test_exec_namespaces_keep_their_builtins(runner: Runner) -> None:
    # PyPy falls back to the real builtins for a name missing from globals:
    # a function made by exec must not see the caller's dict.
    check(
        runner,
        """
g = {}
exec("def f():\\n    return getattr(lambda: 0, '__globals__', 'blocked')", g)
f = g['f']
print(sorted(g))
g.clear()
print(f())
class Flaky(str):
    calls = 0
    def __eq__(self, other):
        Flaky.calls += 1
        return Flaky.calls == 1
    __hash__ = str.__hash__
attempt('str subclass key', lambda: exec('x = 1', {Flaky('getattr'): None}))
ns = {'a': 1, 'gone': 2}
src = 'b = a + 1\\ndel gone\\ndef f():\\n    return getattr(lambda: 0, "__globals__", "blocked")'
exec(src, ns)
print(sorted(ns))
f = ns['f']
ns.clear()
print(f(), eval('q + 1', {'q': 1}))
""",
        "['f']",
        "blocked",
        "str subclass key: TypeError: sandbox policy: exec() globals keys must be str",
        "['a', 'b', 'f']",
        "blocked 2",
    )


def test_sys_modules_entries_are_read_through_the_guards(runner: Runner) -> None:
    check(
        runner,
        """
import sys, json
sys.modules['fake'] = type
def raw_setattr():
    from fake import __setattr__
    return __setattr__
attempt('from import dunder', lambda: raw_setattr()(json.JSONEncoder, 'default', len))
import warnings
sys.modules['fake2'] = object
def raw_getattribute():
    from fake2 import __getattribute__ as ga
    return ga(warnings.catch_warnings(), '_module')  # the real warnings module
attempt('from import getattribute', raw_getattribute)
from math import *
print(floor(2.5), 'json' in sys.modules)
""",
        f"from import dunder: {BLOCKED} changing attribute 'default' of class JSONEncoder: it is "
        "not the untrusted code's own",
        f"from import getattribute: {BLOCKED} private attribute '_module' of catch_warnings object",
        "2 True",
    )


def test_sys_view_copies_what_trusted_code_reads(runner: Runner) -> None:
    check(
        runner,
        """
import sys
sys.implementation.cache_tag = 'evil'
sys.argv.append('x')
sys.path.append('/nowhere')
import json
print(sys.implementation.name, json.dumps(1))
""",
        "pypy 1",
    )

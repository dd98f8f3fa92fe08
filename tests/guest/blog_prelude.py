"""The prelude the capability tests grant from: a blog whose database
password must stay in here.  Trusted code: it runs unrestricted."""

import dataclasses

PASSWORD = "s3cr3t-db-password"


class Database:
    def __init__(self, password):
        self._password = password
        self.secret = password  # public on the object, but the object is never granted
        self._rows = [{"id": 1, "title": "hello"}, {"id": 2, "title": "world"}]

    def query(self, limit):
        return [dict(r) for r in self._rows[:limit]]


_db = Database(PASSWORD)


def get_posts(limit=10, *, _db=_db):
    """The posts, newest first."""
    return _db.query(limit)


@dataclasses.dataclass
class Post:
    title: str
    _db: Database

    def shout(self):
        return self.title.upper()


class Api:
    """The blog's API."""

    def __init__(self, db):
        self._db = db
        self.name = "blog"

    def count(self):
        return len(self._db.query(100))

    def first(self):
        return Post(self._db.query(1)[0]["title"], self._db)

    def titles(self):
        return (p["title"] for p in self._db.query(100))


class Vector:
    """A class the untrusted code may use and extend."""

    def __init__(self, x, y):
        self.x = x
        self.y = y
        self._norm2 = x * x + y * y

    def norm2(self):
        return self._norm2


def with_fallback(fallback):
    """Calls back into untrusted code while it handles an internal error."""
    try:
        raise LookupError("cache miss, password " + PASSWORD)
    except LookupError:
        return fallback()


api = Api(_db)
LIMITS = {"posts": [10, 20]}

__all__ = ["LIMITS", "Vector", "api", "get_posts", "with_fallback"]

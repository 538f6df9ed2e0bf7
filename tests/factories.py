import itertools

from accounts.models import User

DEFAULT_PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


def user_create(*, email: str | None = None, password: str = DEFAULT_PASSWORD, **fields) -> User:
    email = email or f"user{next(_sequence)}@example.com"
    return User.objects.create_user(email=email, password=password, **fields)


def job_create(*, owner: User | None = None, **fields):
    """A Job row as the tests need it: a queued job of a new user unless told otherwise."""
    from uploads.models import Job

    fields.setdefault("original_filename", "clip.mp4")
    fields.setdefault("size", 1000)
    return Job.objects.create(owner=owner or user_create(), **fields)

import itertools

from accounts.models import User

DEFAULT_PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


def user_create(*, email: str | None = None, password: str = DEFAULT_PASSWORD, **fields) -> User:
    email = email or f"user{next(_sequence)}@example.com"
    return User.objects.create_user(email=email, password=password, **fields)

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields):
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who converts videos; signs in with the email address, as in the original system."""

    email = models.EmailField("email address", unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # The "ready" and "failed" emails; off: none is sent (password resets and account notices still are).
    email_notifications = models.BooleanField(default=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class ThrottleScope(models.TextChoices):
    ACCOUNT = "account"
    ADDRESS = "address"


# The longest key the throttle stores: an account's email address (IPv6 addresses are far shorter).
THROTTLE_KEY_LENGTH = 254


class LoginFailure(models.Model):
    """One failed sign-in, kept for the throttle window; shared by every process through the database.

    An attempt is written here before its password is checked (and removed again when it was right), so a
    guess in flight already counts against the guesses running beside it.
    """

    Scope = ThrottleScope

    scope = models.CharField(max_length=16, choices=Scope.choices)
    key = models.CharField(max_length=THROTTLE_KEY_LENGTH)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["scope", "key", "created_at"])]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class LoginThrottleKey(models.Model):
    """One row per account or client address that tried to sign in, locked while an attempt is counted.

    Counting the failures and adding one must happen as one step, or parallel guesses all pass the check
    before any of them is recorded. Locking this row (SELECT ... FOR UPDATE; SQLite's IMMEDIATE transaction
    locks the whole file) makes the attempts on one key take turns, on every process. A missing row is added
    outside that transaction: locking a missing row takes a gap lock in REPEATABLE READ, and two attempts
    that each hold one deadlock on the insert that follows.
    """

    scope = models.CharField(max_length=16, choices=ThrottleScope.choices)
    key = models.CharField(max_length=THROTTLE_KEY_LENGTH)
    # Not indexed on purpose: an index here would make the UPDATE of a locked row, and the purge's DELETE,
    # lock entries of that index too, and MariaDB deadlocked on them under load.
    last_attempt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="accounts_login_throttle_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"

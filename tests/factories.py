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


def uploaded_job(path, *, owner: User | None = None, **options):
    """A job as an upload makes it, through the service (real probe; audio source and cover stored):
    `options` as the form fields of POST /api/jobs/ give them. Needs the `mongodb` and `rabbitmq` fixtures."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from uploads.options import parse_options
    from uploads.services.intake import job_create as service_job_create

    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/octet-stream")
    parsed = parse_options(options, default_bitrate=192)
    return service_job_create(owner=owner or user_create(), upload=upload, options=parsed)

from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.text import Truncator

from core import storage
from uploads.models import Job, ShareLink
from uploads.services import deletion, intake, recovery

# Enough of an error to tell failures apart in the list; the cell's title holds the whole sentence.
ERROR_SHOWN_CHARS = 60


def clock(seconds: float) -> str:
    """7200.0 -> "2:00:00", 65.5 -> "0:01:06": halves round up, as the pages' Math.round does."""
    minutes, second = divmod(int(seconds + 0.5), 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour}:{minute:02d}:{second:02d}"


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "original_filename",
        "owner",
        "status",
        "progress_shown",
        "duration_shown",
        "size_shown",
        "error_shown",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "owner"]
    search_fields = ["original_filename", "owner__email", "id"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
    actions = ["retry_jobs", "delete_jobs"]

    class Media:
        # Lets long file names, emails and dates wrap, so the list fits a 1280 px screen without scrolling.
        css = {"all": ["uploads/job_admin.css"]}

    def changelist_view(self, request, extra_context=None):
        # Nine columns and the filters do not fit 1280 px beside the app list too (it takes 300 px there);
        # the breadcrumbs still lead back to it.
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.display(description="Progress", ordering="progress")
    def progress_shown(self, job):
        return f"{job.progress} %" if job.status == Job.Status.CONVERTING else None  # None: the admin's "-"

    @admin.display(description="Duration", ordering="duration")
    def duration_shown(self, job):
        return None if job.duration is None else clock(job.duration)

    @admin.display(description="Size", ordering="size")
    def size_shown(self, job):
        return filesizeformat(job.size)  # KB, MB, GB of 1024 bytes, as the pages count them

    @admin.display(description="Error")
    def error_shown(self, job):
        if not job.error:
            return None
        return format_html('<span title="{}">{}</span>', job.error, Truncator(job.error).chars(ERROR_SHOWN_CHARS))

    def has_add_permission(self, request):
        return False  # jobs are created by uploads, never by hand

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # would leave GridFS files behind; delete_jobs removes them
        return actions

    @admin.action(description="Retry the selected failed jobs")
    def retry_jobs(self, request, queryset):
        retried, refused = 0, []
        for job in queryset:
            try:
                recovery.job_retry(job=job)
                retried += 1
            except (recovery.JobStateConflict, intake.QuotaExceeded, storage.StorageError) as exc:
                # Over the owner's limit, or the file store away: each job says why, the others go on.
                refused.append(f"{job.original_filename}: {exc}")
        self.message_user(request, f"{retried} job(s) queued again.")
        for sentence in refused:
            self.message_user(request, sentence, level=messages.WARNING)

    @admin.action(description="Delete the selected jobs and their files")
    def delete_jobs(self, request, queryset):
        results = [deletion.job_delete(job=job) for job in queryset]
        cancelled = sum(1 for result in results if result is not None)
        self.message_user(
            request, f"{len(results) - cancelled} job(s) deleted, {cancelled} cancelled while converting."
        )

    def delete_model(self, request, obj):
        deletion.job_delete(job=obj)


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Share links, to see what is shared and turn a link off (revoked_at); the token is not stored, so
    nothing here opens one."""

    list_display = ["job", "created_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["job__original_filename", "job__owner__email"]
    fields = ["job", "created_at", "expires_at", "revoked_at"]
    readonly_fields = ["job", "created_at", "expires_at"]

    def has_add_permission(self, request) -> bool:
        return False  # made by their owners, on the job page or through the API

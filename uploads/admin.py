from django.contrib import admin, messages

from core import storage
from uploads.models import Job
from uploads.services import deletion, intake, recovery


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["original_filename", "owner", "status", "progress", "duration", "size", "created_at", "finished_at"]
    list_filter = ["status", "owner"]
    search_fields = ["original_filename", "owner__email", "id"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
    actions = ["retry_jobs", "delete_jobs"]

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

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "uploads"

    def ready(self):
        from django.db.models.signals import post_delete

        from uploads.models import Job
        from uploads.services.deletion import job_row_deleted

        # A Job can be deleted by a cascade (its owner deleted in the admin), which calls no service.
        post_delete.connect(job_row_deleted, sender=Job, dispatch_uid="uploads.job_row_deleted")

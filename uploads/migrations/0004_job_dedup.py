from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("uploads", "0003_job_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="options_key",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="job",
            name="reused_from",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["owner", "content_sha256", "options_key"], name="uploads_job_dedup"),
        ),
    ]

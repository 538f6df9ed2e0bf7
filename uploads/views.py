"""The browser pages for jobs. They render the first data as JSON; static/videomp3/app.js keeps it live via /api/jobs/."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from uploads import options as job_options
from uploads import selectors, sharing_views
from uploads.serializers import JobSerializer
from uploads.services.intake import human_bytes, too_large_sentence

# What the page sends per PATCH of a resumable upload: what a dropped connection costs at most, against one
# request per 8 MiB (make bench measures this size against a plain GridFS write).
UPLOAD_CHUNK_BYTES = 8 * 1024**2


def _page_config(request) -> dict:
    return {
        "jobsUrl": reverse("job-list"),
        "uploadsUrl": reverse("resumable-upload-create"),
        "uploadChunkBytes": UPLOAD_CHUNK_BYTES,
        "pageSize": settings.REST_FRAMEWORK["PAGE_SIZE"],
        "homeUrl": reverse("home"),
        "loginUrl": settings.LOGIN_URL,
        "maxUploadSize": settings.MAX_UPLOAD_SIZE,
        "maxUploadSizeText": human_bytes(settings.MAX_UPLOAD_SIZE),
        "tooLargeSentence": too_large_sentence(),
    }


@login_required
def jobs_page(request):
    """The home page: upload videos and watch the conversions."""
    jobs = selectors.job_list_for_user(user=request.user)
    page_size = settings.REST_FRAMEWORK["PAGE_SIZE"]
    count = jobs.count()
    initial = {
        # The same shape as GET /api/jobs/ answers, so the page starts from what a poll would return.
        "count": count,
        "next": f"{reverse('job-list')}?page=2" if count > page_size else None,
        "results": JobSerializer(jobs[:page_size], many=True, context={"request": request}).data,
    }
    context = {"config": _page_config(request), "initial_jobs": initial, **_output_option_choices()}
    return render(request, "uploads/jobs.html", context)


def _output_option_choices() -> dict:
    """What the "Output options" form offers (issue #9), on the upload card and in the "Convert again" dialog;
    the API validates what is sent."""
    return {
        "presets": job_options.presets_listing(),
        "cbr_bitrates": job_options.CBR_BITRATES,
        "vbr_qualities": range(10),
        "sample_rates": job_options.SAMPLE_RATES,
        "default_bitrate": settings.MP3_BITRATE_KBPS,
    }


@login_required
def job_page(request, job_id):
    """The job's own page: the link in the notification email."""
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    data = JobSerializer(job, context={"request": request}).data
    context = {
        "job": job,
        "config": _page_config(request),
        "initial_job": data,
        "share_links": sharing_views.share_links_listing(request, job),
        "share_hours": sharing_views.share_hour_choices(),
        **_output_option_choices(),
    }
    return render(request, "uploads/job_detail.html", context)

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from uploads import selectors


@login_required
def job_page(request, job_id):
    """The job's own page: the link in the notification email."""
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    return render(request, "uploads/job_detail.html", {"job": job})

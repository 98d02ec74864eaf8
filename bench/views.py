"""The baseline of bench/ingest.py: a view that reads the body and answers, nothing more."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def trivial_post(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "ok", "bytes": len(request.body)})

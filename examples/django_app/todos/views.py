from django.http import HttpRequest, JsonResponse

from triplit_sync import AnySessionError, Query

from . import triplit_client

OPEN = Query("todos").where("completed", "=", False).order("created_at", "DESC")


def open_todos(request: HttpRequest) -> JsonResponse:
    """Every open todo, from the app's client (its local cache, which the server keeps current)."""
    assert triplit_client.client is not None
    rows = triplit_client.client.fetch(OPEN)
    return JsonResponse([{"id": t["id"], "text": t["text"], "owner": t["owner"]} for t in rows], safe=False)


def my_todos(request: HttpRequest) -> JsonResponse:
    """The requesting user's view, with their own token (``Authorization: Bearer ...``)."""
    assert triplit_client.as_user is not None
    header = request.headers.get("Authorization", "")
    triplit_client.request_token.set(header[len("Bearer "):] if header.startswith("Bearer ") else None)
    try:
        rows = triplit_client.as_user.fetch(OPEN.where("owner", "=", request.GET.get("owner", "")))
    except AnySessionError as error:
        return JsonResponse({"error": error.name}, status=401)
    return JsonResponse([t["text"] for t in rows], safe=False)

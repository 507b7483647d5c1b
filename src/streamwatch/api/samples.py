"""POST /v1/samples: the push face of ingestion (CONTRACTS §2, §5).

What a sender can rely on:
- **Whole-body refusals** (nothing of the body is kept, resend it fixed or later):
  413 when the body exceeds `server.max_body_bytes` (refused as soon as the declared
  Content-Length or the bytes read so far pass the cap; the rest is never read) or carries more
  than `server.max_samples_per_request` samples; 400 when the body is not JSON / NDJSON, naming
  the line and, when one is to blame, the field; 415 for a Content-Encoding we do not decode;
  429 with `Retry-After` when the service's queue is full (back-pressure; the sender resends the
  same body, none of it was accepted, so nothing is doubled).
- **Per-sample rejections** (200): a sample breaking a rule (missing field, wrong type,
  non-finite value, negative counter, absurd `ts`, oversized labels, a new stream while
  `ingest.max_streams` are tracked: `stream_limit`, a new metric while `ingest.max_metrics`
  are: `metric_limit`) is rejected alone and named by its `index` (array, 0-based) or `line`
  (NDJSON, 1-based); its good neighbours are accepted.

Decisions the contract leaves open:
- an NDJSON line that is not JSON at all (a syntax error or bad UTF-8) makes the *body* invalid:
  400 naming the first such line, nothing accepted. A line that is valid JSON but not a sample
  object (`42`, `[1]`) is a per-sample `malformed` rejection, like any other bad sample;
- an empty body (or only blank lines) is a valid, empty NDJSON: 200 with 0 accepted;
- the `errors` list is capped at `MAX_ERRORS` entries; `errors_omitted` says how many more.

CPU per request stays bounded on the event loop: NDJSON is parsed by the pipeline's fast parser
(it reads the pipeline's name tables, so it must run on the loop thread, like the consumer) in
slices of `_SLICE` bytes, yielding to the loop between slices; a JSON array cannot be sliced, so
it is parsed in a worker thread (it touches no shared state). New names are interned only when
the batch is queued (ingest/newnames.py), so a refused body leaves none behind.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from streamwatch.api.deps import ServiceDep
from streamwatch.ingest.batch import Batch, ParseResult, Reason, Rejection
from streamwatch.ingest.newnames import Staging
from streamwatch.ingest.parse import parse_json_array
from streamwatch.service import Service

__all__ = ["router", "IngestReport", "IngestError", "LineError", "ArrayError", "Refusal",
           "Sample", "MAX_ERRORS"]

log = logging.getLogger("streamwatch.api.samples")

router = APIRouter(prefix="/v1", tags=["samples"])

MAX_ERRORS = 100                     # error entries listed per response
_SLICE = 512 << 10                   # NDJSON bytes per parse step on the loop (~10-20 ms)
_ARRAY_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")
_NOT_A_SAMPLE = "expected a JSON object"   # parse.py's wording for valid JSON that is no object


class _Problem(BaseModel):
    field: str | None = Field(description="the field to blame, null when no single one is")
    reason: str = Field(description="one of: " + ", ".join(r.value for r in Reason))
    detail: str


class LineError(_Problem):
    """A rejected NDJSON sample."""
    line: int = Field(description="1-based line of the NDJSON body")


class ArrayError(_Problem):
    """A rejected JSON-array sample."""
    index: int = Field(description="0-based position in the JSON array")


IngestError = LineError | ArrayError


class Sample(BaseModel):
    """One sample (CONTRACTS §2), for the API documentation; parsing is ingest/parse.py's."""
    stream: str = Field(min_length=1, examples=["room-042"])
    metric: str = Field(min_length=1, examples=["viewers"])
    ts: float | str = Field(description="unix seconds, or RFC 3339 with a zone",
                            examples=[1767225600.0])
    value: float
    labels: dict[str, str] | None = None


_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "items": Sample.model_json_schema()}},
    "application/x-ndjson": {"schema": {"type": "string", "description":
                                        "one sample object (as above) per line"}}}}}


class IngestReport(BaseModel):
    """The answer to an accepted body: the good samples are queued, the bad ones explained."""
    accepted: int
    rejected: int
    errors: list[LineError | ArrayError]
    errors_omitted: int = Field(default=0, description=f"errors beyond the first {MAX_ERRORS}")


class Refusal(BaseModel):
    """A body refused as a whole: nothing of it was accepted."""
    error: str = Field(description="malformed | body_too_large | too_many_samples | "
                                   "queue_full | unsupported_encoding")
    detail: str
    line: int | None = None
    field: str | None = None


class _Refused(Exception):
    def __init__(self, status: int, cause: str, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.status, self.cause, self.refusal = status, cause, refusal


_REFUSALS: dict[int | str, dict[str, object]] = {
    400: {"model": Refusal, "description": "not JSON / NDJSON; names the line and field"},
    413: {"model": Refusal, "description": "body or sample count over the configured limit"},
    415: {"model": Refusal, "description": "a Content-Encoding other than identity"},
    429: {"model": Refusal, "description": "queue full: resend the whole body after Retry-After"},
    503: {"model": Refusal, "description": "the journal cannot be written (disk full?): the "
          "samples are detected but not durable; resend after Retry-After"},
}


@router.post("/samples", response_model=IngestReport, responses=_REFUSALS,
             openapi_extra=_BODY, summary="Push samples (JSON array or NDJSON)")
async def push_samples(request: Request, service: ServiceDep) -> IngestReport | JSONResponse:
    """Accept a JSON array of samples or NDJSON (one sample per line); see the module notes."""
    srv = service.config.service.server
    try:
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(415, "415_encoding", Refusal(
                error="unsupported_encoding",
                detail=f"Content-Encoding {encoding!r} is not supported; send identity"))
        if service.queued >= service.max_queued:        # full already: do not even parse
            raise _full(srv.retry_after_s)
        data = await _read_capped(request, srv.max_body_bytes)
        now = time.time()
        staging = Staging()              # new names stay provisional until the batch is queued
        kind: Literal["index", "line"] = "line"
        if _ARRAY_START.match(data):
            result = await asyncio.to_thread(parse_json_array, data, now=now,
                                             limits=service.limits)
            _check_fatal(result)
            _check_count(len(result.batch) + len(result.rejections),
                         srv.max_samples_per_request)
            kind = "index"
        else:
            result = await _parse_ndjson(service, data, now, srv.max_samples_per_request,
                                         staging)
        # names are interned only here (ingest/newnames.py; the name limits reject samples):
        # a body refused before leaves none, one the queue refuses takes its own back out
        mark = service.parser.mark()
        result = service.parser.commit(result, staging, service.limits, kind)
        durable = await service.submit_durable(result.batch)
        if durable is None:
            service.parser.rollback(mark)     # (no await between commit and here)
            raise _full(srv.retry_after_s)
        if not durable:
            raise _not_stored(srv.retry_after_s, service)
    except _Refused as refused:
        service.stats.requests_refused[refused.cause] += 1
        log.debug("push refused", extra={"cause": refused.cause,
                                         "why": refused.refusal.detail})
        headers = ({"Retry-After": str(srv.retry_after_s)} if refused.status in (429, 503)
                   else None)
        return JSONResponse(refused.refusal.model_dump(exclude_none=True),
                            status_code=refused.status, headers=headers)
    rejected = result.rejections
    if rejected:
        service.stats.samples_rejected.update(Counter(r.reason.value for r in rejected))
    return IngestReport(accepted=len(result.batch), rejected=len(rejected),
                        errors=[_error(r) for r in rejected[:MAX_ERRORS]],
                        errors_omitted=max(0, len(rejected) - MAX_ERRORS))


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` (the rest is left unread)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, f"declared Content-Length {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"more than {limit} bytes were sent")
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_ndjson(service: Service, data: bytes, now: float, max_samples: int,
                        staging: Staging) -> ParseResult:
    """Parse in line-aligned slices through the pipeline's fast parser, yielding in between;
    stop at the first line that is not JSON (400) or once the sample cap is passed (413).
    New names get provisional ids in `staging` (nothing is interned: the caller commits)."""
    batches: list[Batch] = []
    rejections: list[Rejection] = []
    pos, line, count = 0, 1, 0
    while pos < len(data):
        end = min(pos + _SLICE, len(data))
        if end < len(data):
            cut = data.rfind(b"\n", pos, end)
            if cut < 0:                          # one line longer than a slice: take it whole
                cut = data.find(b"\n", end)
            end = len(data) if cut < 0 else cut + 1
        piece = data[pos:end]
        res = service.parser.parse_ndjson(piece, now=now, limits=service.limits,
                                          first_line=line, staging=staging)
        _check_fatal(res)
        broken = next((r for r in res.rejections if r.reason is Reason.MALFORMED
                       and not r.detail.startswith(_NOT_A_SAMPLE)), None)
        if broken is not None:
            raise _malformed(broken.position, broken.field, broken.detail)
        count += len(res.batch) + len(res.rejections)
        _check_count(count, max_samples)
        batches.append(res.batch)
        rejections += res.rejections
        line += res.lines if res.lines >= 0 else piece.count(b"\n")
        pos = end
        if pos < len(data):
            await asyncio.sleep(0)               # let the loop serve others between slices
    return ParseResult(Batch.concat(batches), rejections)


def _check_fatal(result: ParseResult) -> None:
    if result.fatal is not None:
        f = result.fatal
        raise _malformed(f.position, f.field, f.detail)


def _check_count(count: int, limit: int) -> None:
    if count > limit:
        raise _Refused(413, "413_samples", Refusal(
            error="too_many_samples",
            detail=f"the body carries more than {limit} samples (server.max_samples_per_request)"
                   "; split it"))


def _malformed(line: int, field: str, detail: str) -> _Refused:
    where = f"line {line}" + (f", field {field!r}" if field else "")
    return _Refused(400, "400_malformed", Refusal(
        error="malformed", detail=f"body refused, not valid JSON or NDJSON ({where}): {detail}",
        line=line, field=field or None))


def _too_large(limit: int, why: str) -> _Refused:
    return _Refused(413, "413_body", Refusal(
        error="body_too_large",
        detail=f"body over {limit} bytes (server.max_body_bytes): {why}; split it"))


def _full(retry_after: int) -> _Refused:
    return _Refused(429, "429_full", Refusal(
        error="queue_full",
        detail=f"the ingest queue is full; nothing of this body was accepted, resend it after "
               f"{retry_after} s"))


def _not_stored(retry_after: int, service: Service) -> _Refused:
    why = service.checkpointer.error if service.checkpointer is not None else None
    return _Refused(503, "503_journal", Refusal(
        error="not_stored",
        detail=f"the samples could not be written to the journal ({why}); they are being "
               f"detected, but would not survive a crash: resend after {retry_after} s"))


def _error(r: Rejection) -> LineError | ArrayError:
    if r.position_kind == "line":
        return LineError(line=r.position, field=r.field or None, reason=r.reason.value,
                         detail=r.detail)
    return ArrayError(index=r.position, field=r.field or None, reason=r.reason.value,
                       detail=r.detail)

"""Alert events as Alertmanager's webhook payload (version "4"), for receivers built for it.

Alertmanager documents its webhook body (prometheus.io/docs/alerting/latest/configuration/
#webhook_config) as `version, groupKey, truncatedAlerts, status, receiver, groupLabels,
commonLabels, commonAnnotations, externalURL, alerts[]`, each alert with `status, labels,
annotations, startsAt, endsAt, generatorURL, fingerprint`. Tools that consume it (chat bridges,
paging gateways) key on those names, so every one is always present, with Alertmanager's own
conventions: label and annotation values are strings, times are RFC 3339, a firing alert's
`endsAt` is the zero time "0001-01-01T00:00:00Z". One streamwatch alert event becomes one
payload with one alert, grouped by incident: the incident is what a receiver acknowledges.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

__all__ = ["build_payload", "PAYLOAD_FIELDS", "ALERT_FIELDS", "ZERO_TIME", "SEVERITY"]

PAYLOAD_FIELDS = ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                  "commonLabels", "commonAnnotations", "externalURL", "alerts")
ALERT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                "fingerprint")
ZERO_TIME = "0001-01-01T00:00:00Z"
SEVERITY = {1: "critical", 2: "major", 3: "minor", 4: "notice"}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _fingerprint(labels: dict[str, str]) -> str:
    """Stable per label set, 16 hex digits like Alertmanager's (not the same hash function)."""
    text = "\xff".join(f"{k}\xfe{labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_payload(event: dict[str, Any], *, receiver: str, external_url: str = "",
                  started_at: float | None = None) -> dict[str, Any]:
    """The Alertmanager webhook body for one alert event (CONTRACTS §3 dict).

    `started_at`: when the incident began (for a resolved event's `startsAt`); the event's own
    `ts` when unknown. `external_url`: this service's public base URL, if configured."""
    labels = {"alertname": str(event["incident_type"]), "stream": str(event["stream"]),
              "metric": str(event["metric"]), "team": str(event["team"]),
              "severity": SEVERITY.get(int(event["level"]), str(event["level"])),
              "level": str(event["level"]), "incident_id": str(event["incident_id"]),
              "kind": str(event["kind"])}
    annotations = {"summary": str(event["summary"]),
                   "score": repr(float(event["score"])),
                   "observed": "" if event.get("observed") is None else repr(event["observed"]),
                   "expected": "" if event.get("expected") is None else repr(event["expected"]),
                   "event_id": str(event["id"])}
    if event.get("runbook"):
        annotations["runbook_url"] = str(event["runbook"])
    impact = event.get("impact")
    if impact:
        annotations["impact_viewers"] = repr(float(impact["viewers"]))
        annotations["impact_gmv_per_min"] = repr(float(impact["gmv_per_min"]))
    base = external_url.rstrip("/")
    status = str(event["status"])
    ts = float(event["ts"])
    start = ts if started_at is None else float(started_at)
    alert = {"status": status, "labels": labels, "annotations": annotations,
             "startsAt": _rfc3339(start),
             "endsAt": _rfc3339(ts) if status == "resolved" else ZERO_TIME,
             "generatorURL": f"{base}/v1/incidents/{event['incident_id']}" if base else "",
             "fingerprint": _fingerprint(labels)}
    group = {"incident_id": labels["incident_id"]}
    return {"version": "4",
            "groupKey": f'{{}}:{{incident_id="{labels["incident_id"]}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": receiver,
            "groupLabels": group,
            "commonLabels": dict(labels),
            "commonAnnotations": dict(annotations),
            "externalURL": base,
            "alerts": [alert]}

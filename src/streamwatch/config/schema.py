"""Models of config/service.toml: what a deployment sets besides its detector rules."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamwatch.config.durations import parse_duration

__all__ = ["ServiceConfig", "IngestSettings", "GradingSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    allowed_lateness: float = 30.0
    silence_after: float = 25.0
    max_labels: int = Field(default=16, ge=0)
    max_label_len: int = Field(default=128, ge=1)
    future_skew: float = 300.0

    @field_validator("allowed_lateness", "silence_after", "future_skew", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)


class GradingSettings(_Section):
    tiny_viewers: float = Field(default=100.0, ge=0)
    tiny_gmv_per_min: float = Field(default=100.0, ge=0)
    large_share: float = Field(default=0.30, gt=0, le=1)
    shared_rooms_level1: int = Field(default=2, ge=1)


class ServiceConfig(_Section):
    ingest: IngestSettings = IngestSettings()
    grading: GradingSettings = GradingSettings()

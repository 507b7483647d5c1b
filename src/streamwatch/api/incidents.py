"""PLACEHOLDER (being written this session): the incidents routes of CONTRACTS §5."""
from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()

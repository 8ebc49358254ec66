"""The Celery app Flower loads (`celery -A farm.flower_app flower`), so it reads farm's messages.

Workers answer Flower's inspect calls in farm's serializer (msgpack); Flower's default app
accepts JSON only and would show no workers. The broker comes from --broker, or from
FARM_BROKER_URL / CELERY_BROKER_URL.
"""

from __future__ import annotations

import os
from dataclasses import replace

from farm.celery_app import make_app
from farm.config import Settings

_settings = Settings.from_env()
_settings = replace(_settings, broker_url=_settings.broker_url or os.environ.get("CELERY_BROKER_URL"))
app = make_app(_settings)

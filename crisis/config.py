"""Old import path: the builders live in crisis.bootstrap, the settings in crisis.settings."""

from crisis.bootstrap import build_channels, build_dispatcher, build_service
from crisis.settings import Settings, load_settings, zone

__all__ = ["Settings", "build_channels", "build_dispatcher", "build_service", "load_settings", "zone"]

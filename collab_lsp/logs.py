"""Logging set-up shared by the relay and the sidecar: tokens never reach a log."""

from __future__ import annotations

import logging
import re

__all__ = ["MaskTokens", "install_token_mask", "mask_token_loggers"]

# JWTs (three base64url parts, the first two JSON objects) and token= query values.
_SECRETS = re.compile(r"eyJ[\w-]*\.eyJ[\w-]*\.[\w-]*|(?<=token=)[^&\s\"']+", re.IGNORECASE)


class MaskTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRETS.sub("***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_token_loggers(*names: str) -> None:
    """Mask records logged directly on these loggers (once per logger)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, MaskTokens) for existing in logger.filters):
            logger.addFilter(MaskTokens())


def install_token_mask(*handlers: logging.Handler) -> None:
    """Mask on handlers (not loggers), so third-party loggers are covered too."""
    for handler in handlers or logging.getLogger().handlers:
        handler.addFilter(MaskTokens())

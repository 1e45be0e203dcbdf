"""A clean terminal: Ray's notice that token authentication is on (its default) is dropped; its other
warnings, e.g. that authentication is off, still reach the user."""

import logging

from sa0.console import RAY_AUTH_LOGGER, quiet_libraries


def test_only_the_token_auth_notice_is_dropped(caplog):
    quiet_libraries()
    quiet_libraries()  # idempotent: one filter
    logger = logging.getLogger(RAY_AUTH_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=RAY_AUTH_LOGGER):
        logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled ...")
        logger.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
    messages = [r.getMessage() for r in caplog.records if r.name == RAY_AUTH_LOGGER]
    assert messages == ["Token authentication is disabled for this Ray cluster. Anyone with network access ..."]
